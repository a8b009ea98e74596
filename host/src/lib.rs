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
pub mod http;
pub mod idempotency;
pub mod orders;
pub mod outbox;
pub mod paging;
pub mod payments;
pub mod points;
pub mod policy;
pub mod popular;
pub mod quote;
pub mod seed;
pub mod state;
pub mod telemetry;
pub mod users;
pub mod validate;

pub use application::Application;
pub use config::Settings;
