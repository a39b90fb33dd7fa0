//! The one integration-test binary: servers on 127.0.0.1:0 in temp dirs, spoken to over HTTP.

mod api;
mod cli;
mod common;
mod flows;
mod patch;
mod transport;
