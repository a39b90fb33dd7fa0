//! `scimlite selftest`: Okta's and Entra ID's provisioning traffic, replayed against any SCIM
//! endpoint. [`flows`] is the one description of that traffic (the integration tests run the
//! same flows against an in-process server); [`step`] holds the step model, templates and
//! checks; the runner sends the requests and cleans up what the flows created.
//!
//! This is a client: it sits beside the server layers and uses none of them except the
//! protocol constants in `scim`.

pub mod flows;
mod runner;
pub mod step;
mod tls;

pub use flows::{Flow, Idp};
pub use runner::{new_run_id, run, Client, Mark, Outcome, Report, SelftestError};
