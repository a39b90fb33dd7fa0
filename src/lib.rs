//! scimlite: a SCIM 2.0 service provider (RFC 7643/7644) in one binary with one SQLite file.
//!
//! Layers: `http` (transport: HTTP/1.1 connections, TLS, limits) → `api` (endpoint handlers)
//! → `scim` (pure protocol) and `store` (a trait with SQLite behind it).
// Unsafe only where `memory` allows it (two calls into the C allocator).
#![deny(unsafe_code)]

pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod events;
pub mod http;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod priority;
pub mod scim;
pub mod selftest;
pub mod server;
pub mod store;
pub mod tenant;
pub mod tls;
pub mod transfer;

pub use server::{start, ServerHandle};
