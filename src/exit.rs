//! Process exit codes, as promised in the contract (sysexits.h where one fits).

/// Everything succeeded.
pub const SUCCESS: u8 = 0;
/// A run (or one of its windows) failed.
pub const RUN_FAILED: u8 = 1;
/// The command line could not be parsed (clap's own convention).
pub const USAGE: u8 = 2;
/// A required service (the Rokt API or the database) stayed unreachable after retries (EX_UNAVAILABLE).
pub const UNAVAILABLE: u8 = 69;
/// The configuration or the credentials are invalid (EX_CONFIG).
pub const CONFIG: u8 = 78;
