//! The daemon's health port under slow and greedy clients, with real sockets against a running
//! daemon (in this process, or the built binary for the process-wide open-files limit).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rokt_export::config::{Config, Credentials, Env};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::binary;

const JOBS: &str = r#"
[server]
listen = "127.0.0.1:0"

[[jobs]]
name = "yearly"
schedule = "0 0 1 1 *"
accounts = ["3141592"]
report = "campaigns"
metrics = ["impressions"]
"#;

/// A daemon in this process on an SQLite file, serving on a port-0 listener until the sender
/// is dropped.
async fn daemon(dir: &std::path::Path) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let path = dir.join("jobs.toml");
    std::fs::write(&path, JOBS).unwrap();
    let url = format!("sqlite://{}", dir.join("d.db").display());
    let env = Env::from_pairs([
        ("DATABASE_URL", url),
        ("ROKT_APP_ID", "a".to_owned()),
        ("ROKT_APP_SECRET", "b".to_owned()),
    ]);
    let config = Config::load(&path, &env).unwrap();
    let credentials = Credentials::from_env(&env).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(rokt_export::daemon::run_until_stopped(
        Arc::new(config),
        credentials,
        listener,
        async move {
            let _ = stopped.await;
        },
    ));
    (addr, stop)
}

/// Sends `GET path` on `stream` and returns the first line of the answer (`None`: closed).
async fn get(stream: &mut TcpStream, path: &str) -> Option<String> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    read_head(stream).await
}

async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).await.ok()?;
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    text.lines()
        .next()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_port_caps_connections_and_cuts_slow_clients() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _stop) = daemon(dir.path()).await;

    // The cap (32): hold 32 served keep-alive connections; a 33rd is not served while they are.
    let mut held = Vec::new();
    for _ in 0..32 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        assert_eq!(
            get(&mut s, "/healthz").await.as_deref(),
            Some("HTTP/1.1 200 OK")
        );
        held.push(s);
    }
    let mut extra = TcpStream::connect(addr).await.unwrap();
    let waited =
        tokio::time::timeout(Duration::from_millis(500), get(&mut extra, "/healthz")).await;
    assert!(waited.is_err(), "served beyond the cap: {waited:?}");
    held.clear();
    let answer = tokio::time::timeout(Duration::from_secs(30), read_head(&mut extra))
        .await
        .expect("served once slots were free");
    assert_eq!(answer.as_deref(), Some("HTTP/1.1 200 OK"));

    // /readyz says why in a few words (no database error text): not ready or ready.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = get(&mut s, "/readyz").await.unwrap();
    assert!(head.contains(" 200 ") || head.contains(" 503 "), "{head}");

    // A client sending one header line a second is cut off (after 10 s), long before it is done.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\n").await.unwrap();
    let started = Instant::now();
    let mut cut = false;
    for i in 0..60 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if slow
            .write_all(format!("X-Slow-{i}: y\r\n").as_bytes())
            .await
            .is_err()
        {
            cut = true;
            break;
        }
        let mut buf = [0u8; 64];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(1), slow.read(&mut buf)).await
        {
            cut = true;
            break;
        }
    }
    assert!(
        cut,
        "a slow client kept its connection for {:?}",
        started.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(45));
}

#[tokio::test]
async fn the_daemon_raises_its_soft_open_files_limit() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("jobs.toml");
    std::fs::write(&config, JOBS).unwrap();
    let log = dir.path().join("d.log");
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -S -n 256 && exec "$0" --config "$1" run"#)
        .arg(binary())
        .arg(&config)
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ROKT_APP_ID", "a")
        .env("ROKT_APP_SECRET", "b")
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("d.db").display()),
        )
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("serving /healthz")
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id())).unwrap();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (soft, hard) = (fields[3], fields[4]);
    let soft: u64 = soft.parse().unwrap();
    let hard: u64 = hard.parse().unwrap_or(u64::MAX);
    assert_eq!(soft, hard.min(65_536), "{line}");
    assert!(soft > 256 || hard <= 256, "{line}");
}
