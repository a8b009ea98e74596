//! `commerce`: a commerce backend whose business policy runs as WebAssembly
//! components. The binary is a thin wrapper around [`cli::run`]; tests build
//! an [`Application`] directly.

pub mod application;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod coupons;
pub mod db;
pub mod demo;
pub mod error;
pub mod http;
pub mod idempotency;
pub mod identity;
pub mod orders;
pub mod outbox;
pub mod paging;
pub mod points;
pub mod policy;
pub mod popular;
pub mod quote;
pub mod seed;
pub mod state;
pub mod tasks;
pub mod telemetry;
#[cfg(test)]
mod testing;
pub mod users;
pub mod validate;

pub use application::Application;
pub use config::Settings;
pub use error::{Error, Result};
