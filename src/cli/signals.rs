//! SIGTERM and SIGINT as a future: how `run` and `mock-api` learn that they should stop.

use std::future::Future;

/// Installs the handlers now (so a signal arriving during start-up is not lost) and returns a
/// future that completes on the first SIGTERM or SIGINT.
pub(super) fn stop_signal() -> std::io::Result<impl Future<Output = ()> + Send> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    })
}
