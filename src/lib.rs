//! rokt-export: exports Rokt Reporting API reports into Postgres (or an embedded SQLite file) on cron
//! schedules.
//!
//! The binary in `main.rs` only calls [`cli::main`]; everything it runs lives here so that tests,
//! benchmarks and the binary call the same functions.
//! See `ARCHITECTURE.md` for the code map.

pub mod api;
pub mod catalogue;
pub(crate) mod check;
pub mod cli;
pub mod config;
pub mod daemon;
pub(crate) mod decimal;
pub(crate) mod demo;
pub(crate) mod discover;
pub mod export;
pub(crate) mod metrics;
pub mod mock;
pub(crate) mod schedule;
pub(crate) mod server;
pub mod store;
pub(crate) mod telemetry;
pub mod tls;
pub mod verify;
