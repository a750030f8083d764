//! The daemon's HTTP side: `/healthz` (the process is alive), `/readyz` (the database answers and
//! the scheduler runs) and `/metrics` (Prometheus text format), with axum.
//!
//! Invariants: the handlers never touch the database or the API themselves. Readiness is what the
//! daemon last recorded in [`Health`] (it pings the database in the background), so a probe every
//! second from Kubernetes costs nothing and cannot pile up connections while the database hangs.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

use crate::metrics::Metrics;

/// What `/readyz` reports, kept up to date by the daemon.
#[derive(Debug)]
pub struct Health {
    scheduler_running: AtomicBool,
    /// `None` when the last database check succeeded, else what is wrong.
    database_problem: Mutex<Option<String>>,
}

impl Default for Health {
    fn default() -> Health {
        Health::new()
    }
}

impl Health {
    /// Not ready: no database connection yet, scheduler not started.
    pub fn new() -> Health {
        Health {
            scheduler_running: AtomicBool::new(false),
            database_problem: Mutex::new(Some("not connected to the database yet".into())),
        }
    }

    /// The scheduler started (true) or stopped firing (false).
    pub fn set_scheduler_running(&self, running: bool) {
        self.scheduler_running.store(running, Ordering::SeqCst);
    }

    /// The outcome of the latest database check.
    pub fn set_database(&self, result: Result<(), String>) {
        *self
            .database_problem
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = result.err();
    }

    /// `Ok` when ready to work, else every reason it is not.
    pub fn readiness(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        if let Some(p) = self
            .database_problem
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            problems.push(format!("database: {p}"));
        }
        if !self.scheduler_running.load(Ordering::SeqCst) {
            problems.push("scheduler: not running".to_owned());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n"))
        }
    }
}

/// What the handlers read.
#[derive(Debug, Clone)]
pub struct ServerState {
    pub health: Arc<Health>,
    pub metrics: Arc<Metrics>,
}

/// The routes, for [`serve`] and for tests that drive the router directly.
pub fn router(state: ServerState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Serves the routes on `listener` until `shutdown` completes, then finishes the requests in
/// flight and returns.
pub async fn serve(
    listener: TcpListener,
    state: ServerState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<ServerState>) -> Response {
    match state.health.readiness() {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(problems) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready\n{problems}\n"),
        )
            .into_response(),
    }
}

async fn metrics(State(state): State<ServerState>) -> Response {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        state.metrics.encode(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_with_the_database_and_the_scheduler() {
        let h = Health::new();
        let problems = h.readiness().unwrap_err();
        assert!(problems.contains("not connected to the database yet"));
        assert!(problems.contains("scheduler: not running"));
        h.set_database(Ok(()));
        assert_eq!(h.readiness().unwrap_err(), "scheduler: not running");
        h.set_scheduler_running(true);
        assert_eq!(h.readiness(), Ok(()));
        h.set_database(Err("connection refused".into()));
        assert_eq!(h.readiness().unwrap_err(), "database: connection refused");
    }
}
