//! The integration tests: one binary (faster to link than one per file), one module per area.
//! Every test gets its own Postgres database (see `helpers::TestDb`) and, where it needs the API,
//! its own simulated Rokt API on a loopback port.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod auth;
mod changes;
mod cli;
mod client;
mod config;
mod credentials;
mod daemon;
mod export;
mod health;
mod helpers;
mod hostile;
mod hostile_peers;
mod logs;
mod mock;
mod odd_answers;
mod onboarding;
mod ops;
mod postgres;
mod refused_values;
mod reload;
mod store;
mod terminal;
mod verify;
