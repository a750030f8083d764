//! `rokt-export run`: the daemon, until SIGTERM or SIGINT.

use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpListener;

use super::exit::Exit;
use crate::config::{Credentials, Env};

/// Loads the config and the credentials, binds `[server] listen` and runs the daemon until a stop
/// signal; exit 0 after a clean stop.
pub(super) async fn run(path: &Path, env: &Env) -> Result<(), Exit> {
    let config = super::load_config(path, env)?;
    let credentials = Credentials::from_env(env)?;
    // Handlers first, so that a SIGTERM arriving during start-up is not lost.
    let signals = super::signals::Signals::install()
        .map_err(|e| Exit::failed(format!("cannot install the SIGTERM/SIGINT handlers: {e}")))?;
    let listener = TcpListener::bind(config.server.listen).await.map_err(|e| {
        Exit::failed(format!(
            "cannot listen on {} (`[server] listen` in {}): {e}",
            config.server.listen,
            config.path.display()
        ))
    })?;
    // The first signal stops (running windows get the grace period), a second one cuts it short.
    crate::daemon::run_until_stopped_or_hurried(
        Arc::new(config),
        credentials,
        listener,
        signals.nth(1),
        signals.nth(2),
    )
    .await
    .map_err(|e| Exit::failed(e.to_string()))
}
