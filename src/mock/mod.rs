//! The simulated Rokt API (built in issue #3).

use crate::cli::MockApiArgs;

/// `rokt-export mock-api`: serves the simulated API until interrupted.
pub async fn run_standalone(_args: &MockApiArgs) -> u8 {
    eprintln!("error: `rokt-export mock-api` is not built yet (tracked in issue #3)");
    crate::exit::RUN_FAILED
}
