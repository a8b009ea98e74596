//! End-to-end tests: the real server against real PostgreSQL and Redis.
//! Run with `cargo test --release --workspace`.

mod bad_input;
mod coupons;
mod evolution;
mod faults;
mod idempotency;
mod limits;
mod operations;
mod orders;
mod points;
mod policies;
mod polyglot;
mod products;
mod shadow;
