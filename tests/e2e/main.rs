//! End-to-end tests: the real server against real PostgreSQL and Redis.
//! Run with `cargo test --release --workspace`.

mod audit;
mod bad_input;
mod config;
mod console;
mod coupons;
mod evolution;
mod faults;
mod hardening;
mod idempotency;
mod identity;
mod limits;
mod operations;
mod orders;
mod points;
mod policies;
mod polyglot;
mod products;
mod scale;
mod shadow;
