//! The one integration-test binary: servers on 127.0.0.1:0 in temp dirs, spoken to over HTTP.

mod api;
mod browser;
mod bulk;
mod cli;
mod common;
mod console;
mod crash;
mod cursor;
mod events;
mod extensions;
mod filters;
mod flows;
mod fuzz_corpus;
mod instances;
mod integrity;
mod limits;
mod negative;
mod obs;
mod ops;
mod patch;
mod patch_shapes;
mod proxy;
mod query;
mod tenants;
mod transport;
