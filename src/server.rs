//! The daemon's HTTP side: `/healthz` (the process is alive), `/readyz` (the database answers and
//! the scheduler runs) and `/metrics` (Prometheus text format), with axum.
//!
//! Invariants: the handlers never touch the database or the API themselves. Readiness is what the
//! daemon last recorded in [`Health`] (it pings the database in the background), so a probe every
//! second from Kubernetes costs nothing and cannot pile up connections while the database hangs.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::metrics::Metrics;

/// Why the daemon is not ready, as `/readyz` says it: short and fixed (the details, such as the
/// database's error message, go to the log where they happen).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Database {
    NotConnectedYet,
    Reachable,
    Unreachable,
}

/// What `/readyz` reports, kept up to date by the daemon.
///
/// Ready means: the database answered the last ping, the scheduler runs, and no job's latest run
/// ended in a panic. A panic is a bug, not an outage: the next firing would most likely panic
/// again, so the pod says so where the operator and a rolling update look (a release whose runs
/// panic then stalls its rollout instead of replacing working pods). It clears when that job's
/// next run ends without one. Failed runs (API or database trouble) do not touch readiness: they
/// are retried and counted, and `/readyz` says nothing about the API.
#[derive(Debug)]
pub struct Health {
    scheduler_running: AtomicBool,
    database: Mutex<Database>,
    /// Jobs whose latest run panicked.
    panicked: Mutex<BTreeSet<String>>,
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
            database: Mutex::new(Database::NotConnectedYet),
            panicked: Mutex::new(BTreeSet::new()),
        }
    }

    /// The scheduler started (true) or stopped firing (false).
    pub fn set_scheduler_running(&self, running: bool) {
        self.scheduler_running.store(running, Ordering::SeqCst);
    }

    /// The outcome of the latest database check (what went wrong is for the caller to log).
    pub fn set_database(&self, reachable: bool) {
        *self.database.lock().unwrap_or_else(PoisonError::into_inner) = if reachable {
            Database::Reachable
        } else {
            Database::Unreachable
        };
    }

    /// A run of `job` ended: in a panic (`true`) or not.
    pub fn run_ended(&self, job: &str, panicked: bool) {
        let mut set = self.panicked.lock().unwrap_or_else(PoisonError::into_inner);
        if panicked {
            set.insert(job.to_owned());
        } else {
            set.remove(job);
        }
    }

    /// `Ok` when ready to work, else every reason it is not, one short line each.
    pub fn readiness(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        match *self.database.lock().unwrap_or_else(PoisonError::into_inner) {
            Database::Reachable => {}
            Database::NotConnectedYet => problems.push("database: not connected yet".to_owned()),
            Database::Unreachable => problems.push("database: unreachable".to_owned()),
        }
        if !self.scheduler_running.load(Ordering::SeqCst) {
            problems.push("scheduler: not running".to_owned());
        }
        for job in self
            .panicked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            problems.push(format!("job {job}: its last run panicked (see the log)"));
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

/// How much a client of the health port may hold. The port has two legitimate clients, Prometheus
/// and the kubelet (or a local curl), each with a connection or two and small requests.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once. Further ones are not accepted until one closes: they wait in
    /// the listen backlog (and a client gives up after its own timeout).
    pub max_connections: usize,
    /// How long a client may take to send a request's headers, counted from when the server
    /// starts waiting for them (an idle keep-alive connection too): then it is cut.
    pub header_read_timeout: Duration,
    /// The connection's read buffer, which bounds a request's headers (hyper's minimum is 8 KiB):
    /// larger headers are refused with 431.
    pub max_header_bytes: usize,
    /// A connection is closed (after its request in flight) once it is this old, so that a slow
    /// body or a client that stops reading cannot hold a slot for ever.
    pub max_connection_age: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 32,
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 8 * 1024,
            max_connection_age: Duration::from_secs(120),
        }
    }
}

/// Serves the routes on `listener` with the default [`Limits`] until `shutdown` completes, then
/// finishes the requests in flight and returns.
pub async fn serve(
    listener: TcpListener,
    state: ServerState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, state, Limits::default(), shutdown).await
}

/// [`serve`] with other limits (the tests use small ones).
pub async fn serve_with(
    listener: TcpListener,
    state: ServerState,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stop, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        // A free slot first: past the cap, connections are not accepted (they wait in the backlog).
        let slot = tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break, // never closed
            },
        };
        let stream = loop {
            tokio::select! {
                () = &mut shutdown => break None,
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => break Some(stream),
                    Err(e) => {
                        // Out of file descriptors, or a peer that left: not worth a busy loop.
                        tracing::debug!(error = %e, "accepting a connection on the health port failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        };
        let Some(stream) = stream else { break };
        let app = app.clone();
        let mut stopping = stopping.clone();
        connections.spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                use tower::ServiceExt as _;
                app.clone().oneshot(request)
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .max_buf_size(limits.max_header_bytes.max(8192))
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            let close = tokio::select! {
                _ = connection.as_mut() => return,
                _ = stopping.wait_for(|s| *s) => true,
                () = tokio::time::sleep(limits.max_connection_age) => true,
            };
            if close {
                connection.as_mut().graceful_shutdown();
                // The request in flight may finish; a client that does not read is cut.
                let _ = tokio::time::timeout(limits.header_read_timeout, connection).await;
            }
        });
    }
    drop(listener);
    let _ = stop.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
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
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::time::Instant;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpStream;

    #[test]
    fn ready_only_with_the_database_and_the_scheduler_and_no_panicked_job() {
        let h = Health::new();
        let problems = h.readiness().unwrap_err();
        assert!(problems.contains("database: not connected yet"));
        assert!(problems.contains("scheduler: not running"));
        h.set_database(true);
        assert_eq!(h.readiness().unwrap_err(), "scheduler: not running");
        h.set_scheduler_running(true);
        assert_eq!(h.readiness(), Ok(()));
        h.set_database(false);
        assert_eq!(h.readiness().unwrap_err(), "database: unreachable");
        h.set_database(true);
        h.run_ended("j", true);
        assert_eq!(
            h.readiness().unwrap_err(),
            "job j: its last run panicked (see the log)"
        );
        h.run_ended("j", false);
        assert_eq!(h.readiness(), Ok(()));
    }

    /// The daemon's server on a port-0 listener with `limits`; stopped when the sender drops.
    async fn server(limits: Limits) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let health = Arc::new(Health::new());
        let state = ServerState {
            health,
            metrics: Arc::new(Metrics::new(["j"])),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve_with(listener, state, limits, async move {
            let _ = stopped.await;
        }));
        (addr, stop)
    }

    /// Sends a request on `stream` and reads its status line (`None`: closed without one).
    async fn status(stream: &mut TcpStream) -> Option<String> {
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .ok()?;
        let mut buf = vec![0u8; 1024];
        let n = stream.read(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        text.lines()
            .next()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
    }

    /// True once the server closed `stream` (reads end or fail), waiting at most `limit`.
    async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
        let mut buf = [0u8; 256];
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, stream.read(&mut buf)).await {
                Err(_) => return false,
                Ok(Ok(0) | Err(_)) => return true,
                Ok(Ok(_)) => {}
            }
        }
    }

    #[tokio::test]
    async fn clients_slow_to_send_their_headers_are_cut_off() {
        let (addr, _stop) = server(Limits {
            header_read_timeout: Duration::from_secs(1),
            ..Limits::default()
        })
        .await;
        // One header line every 200 ms, for up to 60 s: the server must hang up long before.
        let mut dribbler = TcpStream::connect(addr).await.unwrap();
        dribbler
            .write_all(b"GET /healthz HTTP/1.1\r\n")
            .await
            .unwrap();
        let started = Instant::now();
        let mut cut = false;
        for i in 0..300 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if dribbler
                .write_all(format!("X-Slow-{i}: y\r\n").as_bytes())
                .await
                .is_err()
            {
                cut = true;
                break;
            }
            if closed_within(&mut dribbler, Duration::from_millis(1)).await {
                cut = true;
                break;
            }
        }
        assert!(cut, "still open after {:?}", started.elapsed());
        assert!(started.elapsed() < Duration::from_secs(30));
        // A client that connects and says nothing is cut too.
        let mut silent = TcpStream::connect(addr).await.unwrap();
        assert!(closed_within(&mut silent, Duration::from_secs(30)).await);
        // And a normal request is served.
        let mut ok = TcpStream::connect(addr).await.unwrap();
        assert_eq!(status(&mut ok).await.as_deref(), Some("HTTP/1.1 200 OK"));
    }

    #[tokio::test]
    async fn large_headers_are_refused() {
        let (addr, _stop) = server(Limits::default()).await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let big = format!(
            "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "a".repeat(64 * 1024)
        );
        let _ = stream.write_all(big.as_bytes()).await;
        let mut buf = vec![0u8; 1024];
        let answer = match stream.read(&mut buf).await {
            Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
            Err(_) => String::new(),
        };
        // hyper answers 431 once its 8 KiB buffer is full, or closes the connection while the
        // client is still writing; never a 200 after reading 64 KiB of headers.
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
            "{answer}"
        );
    }

    #[tokio::test]
    async fn connections_beyond_the_cap_wait_until_one_closes() {
        let (addr, _stop) = server(Limits {
            max_connections: 3,
            header_read_timeout: Duration::from_secs(60),
            ..Limits::default()
        })
        .await;
        let mut held = Vec::new();
        for _ in 0..3 {
            let mut s = TcpStream::connect(addr).await.unwrap();
            assert_eq!(status(&mut s).await.as_deref(), Some("HTTP/1.1 200 OK"));
            held.push(s); // kept alive, so each holds its slot
        }
        let mut extra = TcpStream::connect(addr).await.unwrap();
        let waiting = tokio::time::timeout(Duration::from_millis(500), status(&mut extra)).await;
        assert!(
            waiting.is_err(),
            "the connection beyond the cap was served: {waiting:?}"
        );
        drop(held.pop());
        let served = tokio::time::timeout(Duration::from_secs(30), async {
            let mut buf = vec![0u8; 1024];
            let n = extra.read(&mut buf).await.unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        })
        .await
        .expect("served once a slot was free");
        assert!(served.starts_with("HTTP/1.1 200 OK"), "{served}");
    }
}
