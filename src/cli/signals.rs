//! SIGTERM and SIGINT as futures: how `run`, `run-now` and `mock-api` learn that they should stop,
//! and (for the first two) that a second signal asks them to stop at once.

use std::future::Future;

use tokio::sync::watch;

/// The stop signals received so far, counted from when [`Signals::install`] was called.
pub(super) struct Signals {
    received: watch::Receiver<u32>,
}

impl Signals {
    /// Installs the handlers now (so a signal arriving during start-up is not lost) and counts
    /// every SIGTERM and SIGINT from then on.
    pub(super) fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let (count, received) = watch::channel(0u32);
        tokio::spawn(async move {
            loop {
                let name = tokio::select! {
                    _ = term.recv() => "SIGTERM",
                    _ = int.recv() => "SIGINT",
                };
                let n = *count.borrow() + 1;
                if n == 1 {
                    tracing::info!("{name} received");
                } else {
                    tracing::warn!("{name} received again: stopping now, without waiting any more");
                }
                if count.send(n).is_err() {
                    return;
                }
            }
        });
        Ok(Signals { received })
    }

    /// Completes once `n` signals have arrived (the first: stop; the second: stop now).
    pub(super) fn nth(&self, n: u32) -> impl Future<Output = ()> + Send + use<> {
        let mut received = self.received.clone();
        async move {
            if received.wait_for(|c| *c >= n).await.is_err() {
                // The counting task is gone (the runtime is shutting down): no signal will come.
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Installs the handlers now and returns a future that completes on the first SIGTERM or SIGINT.
pub(super) fn stop_signal() -> std::io::Result<impl Future<Output = ()> + Send> {
    Ok(Signals::install()?.nth(1))
}
