//! Small hostile servers for the API client's tests: what the simulated API will not do because
//! Rokt does not (redirects, gzip bombs, error pages that quote the request's headers, heads too
//! large to parse, certificates that do not verify). Each binds a loopback port before it serves,
//! answers every request with the bytes its handler returns (raw HTTP/1.1, `Connection: close`),
//! and remembers what it was sent.

use std::io::{Read as _, Write as _};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// The request line and headers, as sent.
    pub head: String,
}

impl Seen {
    pub fn is_token_request(&self) -> bool {
        self.path == "/auth/oauth2/token"
    }
}

type Handler = dyn Fn(&Seen, usize) -> Vec<u8> + Send + Sync;

/// A plain-HTTP hostile server.
pub struct Hostile {
    base_url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

impl Hostile {
    /// Serves on `127.0.0.1:0`; `answer(request, n)` gives the raw bytes for the `n`-th request
    /// (1-based, token requests included).
    pub async fn start(
        answer: impl Fn(&Seen, usize) -> Vec<u8> + Send + Sync + 'static,
    ) -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let answer: Arc<Handler> = Arc::new(answer);
        let task = tokio::spawn({
            let seen = seen.clone();
            async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    tokio::spawn(serve_one(stream, seen.clone(), answer.clone()));
                }
            }
        });
        Hostile {
            base_url,
            seen,
            task,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// Every request so far, in the order they came.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Requests other than token requests.
    pub fn api_requests(&self) -> usize {
        self.seen().iter().filter(|s| !s.is_token_request()).count()
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_one(mut stream: TcpStream, seen: Arc<Mutex<Vec<Seen>>>, answer: Arc<Handler>) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buffer.len() < head_end + length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
    let mut words = head.split_whitespace();
    let request = Seen {
        method: words.next().unwrap_or_default().to_owned(),
        path: words.next().unwrap_or_default().to_owned(),
        head: head.clone(),
    };
    let n = {
        let mut seen = seen.lock().unwrap();
        seen.push(request.clone());
        seen.len()
    };
    let bytes = answer(&request, n);
    // The client may hang up first (it refused the answer): that is its right.
    let _ = stream.write_all(&bytes).await;
    let _ = stream.shutdown().await;
}

/// A raw answer: status line, headers, `Content-Length` and `Connection: close`, body.
pub fn raw(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// A JSON answer.
pub fn json(status: &str, body: &str) -> Vec<u8> {
    raw(
        status,
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
}

/// The token every hostile server hands out.
pub const TOKEN: &str = "hostile-token-0123456789abcdef";

/// A good token answer.
pub fn token_answer() -> Vec<u8> {
    json(
        "200 OK",
        &format!(r#"{{"access_token":"{TOKEN}","expires_in":3600,"token_type":"Bearer"}}"#),
    )
}

/// An HTTPS server whose certificate no client trusts (self-signed, made for these tests): every
/// handshake fails on the client's side. Counts the connections it accepts.
pub struct UntrustedTls {
    base_url: String,
    connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

/// A throwaway self-signed certificate and its key (P-256, CN `hostile.test`, SAN 127.0.0.1 and
/// localhost, made with `openssl req -x509`); it protects nothing.
const CERT_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBojCCAUegAwIBAgIUZ0T+kMqRlmms6VIbN1aSJg1klScwCgYIKoZIzj0EAwIw
FzEVMBMGA1UEAwwMaG9zdGlsZS50ZXN0MCAXDTI2MTIwMTIzMDkyMVoYDzIxMjYx
MTA3MjMwOTIxWjAXMRUwEwYDVQQDDAxob3N0aWxlLnRlc3QwWTATBgcqhkjOPQIB
BggqhkjOPQMBBwNCAAQB/l7CLgVJqe0X9RBv7B/WKGi2bDNkUlkYbhhJ/wOd1PGx
o6FHwih6i2op3hAg07Xm6sexRuTATEncyM2O3eXho28wbTAdBgNVHQ4EFgQUeTHX
M2+ZJ6Q3/8Ka1n+F2XKj+HcwHwYDVR0jBBgwFoAUeTHXM2+ZJ6Q3/8Ka1n+F2XKj
+HcwDwYDVR0TAQH/BAUwAwEB/zAaBgNVHREEEzARhwR/AAABgglsb2NhbGhvc3Qw
CgYIKoZIzj0EAwIDSQAwRgIhAOR1NFy667tAeKt3g+vUeLumYLOiNy3J40nJpO0U
6u7VAiEA83K8jBo1Ydv/dFTPO4etWC+Qut2GEq+iTCU4oeZBr2I=
-----END CERTIFICATE-----
";
const KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgpdA8AR4ChS99oN+m
XnHiI9wIa2yuqZ8MSqbaEEy1g9OhRANCAAQB/l7CLgVJqe0X9RBv7B/WKGi2bDNk
UlkYbhhJ/wOd1PGxo6FHwih6i2op3hAg07Xm6sexRuTATEncyM2O3eXh
-----END PRIVATE KEY-----
";

impl UntrustedTls {
    pub async fn start() -> UntrustedTls {
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        rokt_export::tls::install_crypto_provider();
        let cert = CertificateDer::from_pem_slice(CERT_PEM.as_bytes()).unwrap();
        let key = PrivateKeyDer::from_pem_slice(KEY_PEM.as_bytes()).unwrap();
        let config = Arc::new(
            rustls::ServerConfig::builder()
                .with_no_client_auth()
                .with_single_cert(vec![cert], key)
                .unwrap(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("https://{}", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let connections = connections.clone();
            async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    connections.fetch_add(1, Ordering::SeqCst);
                    let Ok(stream) = stream.into_std() else {
                        continue;
                    };
                    let config = config.clone();
                    // The handshake, blocking, on its own thread: it ends when the client gives up.
                    tokio::task::spawn_blocking(move || {
                        let _ = stream.set_nonblocking(false);
                        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                        let Ok(conn) = rustls::ServerConnection::new(config) else {
                            return;
                        };
                        let mut tls = rustls::StreamOwned::new(conn, stream);
                        let mut byte = [0u8; 1];
                        let _ = tls.read(&mut byte);
                        let _ = tls.flush();
                    });
                }
            }
        });
        UntrustedTls {
            base_url,
            connections,
            task,
        }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for UntrustedTls {
    fn drop(&mut self) {
        self.task.abort();
    }
}
