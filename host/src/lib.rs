//! `commerce`: a commerce backend whose business policy runs as WebAssembly
//! components. The binary is a thin wrapper around [`cli::run`]; tests build
//! an [`Application`] directly.

pub mod application;
pub(crate) mod audit;
pub(crate) mod catalog;
pub mod cli;
pub mod config;
pub mod coupons;
pub(crate) mod db;
pub(crate) mod demo;
pub mod deployment;
pub mod error;
pub mod http;
pub(crate) mod idempotency;
pub mod identity;
pub(crate) mod orders;
pub(crate) mod outbox;
pub(crate) mod paging;
pub(crate) mod points;
pub mod policy;
pub(crate) mod popular;
pub(crate) mod quote;
pub mod redis;
pub(crate) mod replays;
pub mod seed;
pub mod state;
pub(crate) mod tasks;
pub(crate) mod telemetry;
#[cfg(test)]
mod testing;
pub(crate) mod users;
pub(crate) mod validate;

pub use application::Application;
pub use config::Settings;
pub use error::{Error, Result};
