//! The OAuth 2.0 client-credentials token manager: turns the app credentials into bearer tokens.
//!
//! One [`TokenManager`] per process, shared by every job, so that the process holds one access token
//! at a time. Its invariants:
//! - **Single flight.** The cache and the renewal sit behind one async mutex: however many callers
//!   ask while a renewal is under way, one token request is made and they all get its answer
//!   (a failure included, so that wrong credentials are not tried once per waiting caller).
//! - **Renewal ahead of expiry** by `min(5 min, lifetime / 10)`, measured on the monotonic clock from
//!   the moment the token request was *sent*, so that a token is never used in its last moments.
//! - **Invalidate by generation.** Every token carries a generation number; a 401 invalidates only
//!   the token that was used, so ten concurrent 401s cause one renewal, not ten.
//! - **Nothing secret leaves.** The Basic header is built by [`Credentials::basic_authorization`],
//!   the bearer header by [`AccessToken`]; both are marked sensitive and neither is ever logged.
//!
//! - **A bounded lifetime.** `expires_in` is taken up to [`MAX_LIFETIME`] (a day) and the renewal
//!   time computed with checked arithmetic: a server that says 2^64-1 seconds gets a token
//!   renewed daily, not a panic.
//! - **Secrets scrubbed.** Every form of the credentials and of the latest tokens is cut from
//!   what servers say before it reaches a message (`scrub::Secrets`, shared with the client
//!   through `TokenManager::secrets`).
//!
//! Transient failures of the token endpoint (408, 429, 5xx, timeouts, resets) are retried through
//! [`retry::run`] with the client's backoff and retry budget, honouring `Retry-After`. Its answer
//! is read up to [`MAX_TOKEN_ANSWER_BYTES`] (or `[api] max_body_bytes` when smaller); a redirect
//! is not followed.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::header::{self, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;
use tracing::{Instrument, debug, warn};

use super::body::{describe_size, read_capped};
use super::http_error::{self, Failure, Redact, error_message, truncate};
use super::retry::{self, Backoff, Policy, Verdict};
use super::scrub::{Secrets, redirect_message};
use crate::config::{ApiConfig, Credentials};

/// Hands out access tokens for the Rokt API. Cheap to clone: clones share one cache.
#[derive(Clone)]
pub struct TokenManager {
    inner: Arc<Inner>,
}

/// A bearer token. `Debug` shows only its generation; two tokens are equal when they are the same
/// issued token (same generation).
#[derive(Clone)]
pub struct AccessToken {
    secret: SecretString,
    /// `Bearer <token>`, built once and marked sensitive so that no `Debug` of a request prints it.
    header: HeaderValue,
    generation: u64,
}

/// Why no token could be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    /// The token endpoint refused the credentials (HTTP 400, 401 or 403). Retrying cannot help;
    /// the operator must fix the variables named in `credentials`.
    #[error(
        "the Rokt token endpoint rejected the app credentials (HTTP {status}, error `{code}`{}); check {credentials}",
        detail(.message)
    )]
    Rejected {
        status: u16,
        /// The OAuth `error` code the server sent, e.g. `invalid_client`.
        code: String,
        /// The server's `error_description` (or similar), if any.
        message: String,
        /// Which variables or files the credentials came from, e.g. `ROKT_APP_ID and ROKT_APP_SECRET`.
        credentials: String,
    },
    /// The token endpoint stayed unreachable (429, 5xx, timeouts, resets) through every retry.
    #[error("the Rokt token endpoint is unavailable after {attempts} attempts; last: {last}")]
    Unavailable { attempts: u32, last: String },
    /// Any other answer, e.g. 404 from a wrong `[api] token_path`.
    #[error(
        "the Rokt token endpoint {url} answered HTTP {status}: {message}; check [api] base_url and token_path"
    )]
    Unexpected {
        status: u16,
        url: String,
        message: String,
    },
    /// A 2xx answer that holds no usable token.
    #[error("the Rokt token endpoint's answer is not a usable token: {0}")]
    Malformed(String),
    /// The request could not be sent at all for a reason retrying cannot fix (e.g. an invalid URL).
    #[error("cannot send the token request to {url}: {message}")]
    Request { url: String, message: String },
}

impl AuthError {
    /// Whether asking again later may succeed (the endpoint was unavailable). Rejected credentials,
    /// wrong URLs and garbage answers will not fix themselves. The manager has already used its own
    /// retries when it returns an error, so callers should not retry at once.
    pub fn is_retriable(&self) -> bool {
        self.is_unavailable()
    }

    /// Whether the token endpoint stayed unreachable through every retry.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, AuthError::Unavailable { .. })
    }

    /// Whether the operator must fix the credentials or `[api]`: the credentials were rejected,
    /// the token endpoint is not one (a wrong `base_url` or `token_path`), or its URL is unusable.
    /// A malformed answer is the server's fault, not the configuration's.
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            AuthError::Rejected { .. } | AuthError::Unexpected { .. } | AuthError::Request { .. }
        )
    }
}

fn detail(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

impl TokenManager {
    /// A manager for the token endpoint at `api.base_url + api.token_path`, retrying transient
    /// failures up to `api.max_retries` times with `backoff` (tests use [`Backoff::fast`]). The
    /// API client makes the process's one manager; tests make their own.
    pub fn with_backoff(
        http: reqwest::Client,
        api: &ApiConfig,
        credentials: Credentials,
        backoff: Backoff,
    ) -> TokenManager {
        let body_limit = usize::try_from(api.max_body_bytes)
            .unwrap_or(usize::MAX)
            .min(MAX_TOKEN_ANSWER_BYTES);
        TokenManager {
            inner: Arc::new(Inner {
                http,
                url: format!("{}{}", api.base_url.trim_end_matches('/'), api.token_path),
                secrets: Secrets::new(&credentials.echoable_forms()),
                body_limit,
                credentials,
                retry: Policy {
                    backoff,
                    max_retries: Some(api.max_retries),
                },
                state: Mutex::new(State::default()),
                generations: AtomicU64::new(0),
                renewals: AtomicU64::new(0),
            }),
        }
    }

    /// A valid token: the cached one, or a new one when none is cached or it is due for renewal.
    /// Concurrent callers share one renewal.
    pub async fn token(&self) -> Result<AccessToken, AuthError> {
        let asked = Instant::now();
        let mut state = self.inner.state.lock().await;
        if let Some(cached) = &state.cached
            && Instant::now() < cached.renew_at
        {
            return Ok(cached.token.clone());
        }
        // A renewal that failed while we waited for the lock answers us too: asking again at once
        // would only repeat it (and multiply requests with rejected credentials).
        if let Some((failed_at, error)) = &state.last_failure
            && *failed_at >= asked
        {
            return Err(error.clone());
        }
        match self.inner.fetch().await {
            Ok(cached) => {
                let token = cached.token.clone();
                state.cached = Some(cached);
                state.last_failure = None;
                Ok(token)
            }
            Err(error) => {
                state.cached = None;
                state.last_failure = Some((Instant::now(), error.clone()));
                Err(error)
            }
        }
    }

    /// Forgets `used` if it is still the current token (after the API answered 401 to it), so the
    /// next [`TokenManager::token`] renews. A token already replaced is left alone: that is how
    /// many concurrent 401s for the same token cause a single renewal.
    pub(crate) async fn invalidate(&self, used: &AccessToken) {
        let mut state = self.inner.state.lock().await;
        if state
            .cached
            .as_ref()
            .is_some_and(|c| c.token.generation == used.generation)
        {
            debug!(generation = used.generation, "access token invalidated");
            state.cached = None;
        }
    }

    /// How many token requests have succeeded since the manager was made (for metrics and tests).
    pub fn renewals(&self) -> u64 {
        self.inner.renewals.load(Ordering::Relaxed)
    }

    /// The credentials and the latest tokens, in every spelling, to cut from server messages.
    pub(crate) fn secrets(&self) -> &Secrets {
        &self.inner.secrets
    }
}

impl fmt::Debug for TokenManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenManager")
            .field("url", &self.inner.url)
            .field("credentials", &self.inner.credentials)
            .field("renewals", &self.renewals())
            .finish_non_exhaustive()
    }
}

impl AccessToken {
    /// Which issued token this is; increases with every renewal.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The token itself, still wrapped. Nothing in this crate exposes it except the `Authorization`
    /// header; tests expose it to check that it never appears in logs.
    pub fn secret(&self) -> &SecretString {
        &self.secret
    }

    /// The `Authorization: Bearer ...` header value (marked sensitive).
    pub(crate) fn authorization(&self) -> HeaderValue {
        self.header.clone()
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("generation", &self.generation)
            .field("secret", &"[REDACTED]")
            .finish()
    }
}

impl PartialEq for AccessToken {
    fn eq(&self, other: &AccessToken) -> bool {
        self.generation == other.generation
    }
}

impl Eq for AccessToken {}

struct Inner {
    http: reqwest::Client,
    url: String,
    credentials: Credentials,
    secrets: Secrets,
    /// The largest token answer read.
    body_limit: usize,
    retry: Policy,
    state: Mutex<State>,
    generations: AtomicU64,
    renewals: AtomicU64,
}

#[derive(Default)]
struct State {
    cached: Option<Cached>,
    /// The last renewal's failure and when it ended, shared with callers that were waiting for it.
    last_failure: Option<(Instant, AuthError)>,
}

struct Cached {
    token: AccessToken,
    renew_at: Instant,
}

/// The token endpoint's answer (RFC 6749 section 5.1).
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default, deserialize_with = "seconds")]
    expires_in: Option<u64>,
    #[serde(default)]
    token_type: Option<String>,
}

/// `expires_in` as a number or, as some servers send it, a string of digits.
fn seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Seconds {
        Number(u64),
        Text(String),
    }
    match Option::<Seconds>::deserialize(d)? {
        None => Ok(None),
        Some(Seconds::Number(n)) => Ok(Some(n)),
        Some(Seconds::Text(t)) => t
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom("`expires_in` is not a number of seconds")),
    }
}

/// The lifetime assumed when the server does not say (Rokt documents one hour).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
/// The most a token is renewed ahead of its expiry.
const MAX_RENEWAL_MARGIN: Duration = Duration::from_secs(300);
/// The longest lifetime believed: a token said to last longer is renewed after a day anyway (and
/// a lifetime of 2^64-1 seconds does not overflow the clock).
pub const MAX_LIFETIME: Duration = Duration::from_secs(86_400);
/// The largest token answer read: a token answer is a few kilobytes (a Cognito access token is
/// about one), so anything near this is not one.
pub const MAX_TOKEN_ANSWER_BYTES: usize = 1 << 20;

/// How long before expiry to renew: a tenth of the lifetime, at most five minutes. A one-hour token
/// is renewed five minutes early; a three-second test token 0.3 s early, not on every request.
fn renewal_margin(lifetime: Duration) -> Duration {
    (lifetime / 10).min(MAX_RENEWAL_MARGIN)
}

impl Inner {
    /// Requests a token, retrying transient failures with backoff.
    async fn fetch(&self) -> Result<Cached, AuthError> {
        let fetched = retry::run(
            &self.retry,
            |attempt| async move {
                let sent = Instant::now();
                let span = tracing::debug_span!("token_request", attempt);
                let answer = self.request_once().instrument(span).await?;
                Ok(self.accept(answer, sent))
            },
            |failure| match failure {
                Failure::Transient { retry_after, .. } => {
                    retry_after.map_or(Verdict::Retry, Verdict::RetryAfter)
                }
                Failure::Fatal(_) => Verdict::Fail,
            },
            |retrying| {
                warn!(
                    attempt = retrying.attempt,
                    delay_ms = u64::try_from(retrying.delay.as_millis()).unwrap_or(u64::MAX),
                    error = %retrying.error,
                    "token request failed; retrying"
                );
            },
        )
        .await;
        fetched.map_err(|gave_up| match gave_up.error {
            Failure::Fatal(error) => error,
            Failure::Transient { description, .. } => AuthError::Unavailable {
                attempts: gave_up.attempts,
                last: description,
            },
        })
    }

    fn accept(&self, answer: (TokenResponse, HeaderValue), sent: Instant) -> Cached {
        let (response, header) = answer;
        let lifetime = lifetime(response.expires_in);
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        self.renewals.fetch_add(1, Ordering::Relaxed);
        self.secrets.add_token(&response.access_token);
        debug!(
            generation,
            expires_in_secs = response.expires_in,
            renew_after_secs = lifetime.as_secs(),
            "access token renewed"
        );
        Cached {
            token: AccessToken {
                secret: response.access_token.into(),
                header,
                generation,
            },
            renew_at: renew_at(sent, lifetime),
        }
    }

    async fn request_once(&self) -> Result<(TokenResponse, HeaderValue), Failure<AuthError>> {
        // Base64 behind "Basic " is always a valid header value; the error path is for completeness.
        let mut basic = HeaderValue::from_str(
            self.credentials.basic_authorization().expose_secret(),
        )
        .map_err(|_| {
            Failure::Fatal(AuthError::Request {
                url: self.url.clone(),
                message: "the Basic authorization is not a valid header value".into(),
            })
        })?;
        basic.set_sensitive(true);
        let started = Instant::now();
        let result = self
            .http
            .post(&self.url)
            .header(header::AUTHORIZATION, basic)
            .header(header::ACCEPT, "application/json")
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await;
        let mut response = result.map_err(|e| self.unanswered(&e))?;
        let status = response.status().as_u16();
        let retry_after = http_error::retry_after(response.headers());
        let location = response
            .headers()
            .get(header::LOCATION)
            .map(|l| String::from_utf8_lossy(l.as_bytes()).into_owned());
        let capped = read_capped(&mut response, self.body_limit)
            .await
            .map_err(|e| self.unanswered(&e))?;
        let body = capped.bytes;
        debug!(
            method = "POST",
            url = %self.url,
            status,
            latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "token endpoint answered"
        );
        match status {
            200..=299 if capped.truncated => Err(Failure::Fatal(AuthError::Malformed(format!(
                "it is larger than {}",
                describe_size(self.body_limit as u64)
            )))),
            200..=299 => parse_token(&body).map_err(Failure::Fatal),
            300..=399 => Err(Failure::Fatal(AuthError::Unexpected {
                status,
                url: self.url.clone(),
                message: redirect_message(location.as_deref(), &self.secrets),
            })),
            400 | 401 | 403 => {
                let (code, message) = oauth_error(&body, status, &self.secrets);
                // AWS API Gateway's answer to a path it does not know (a wrong token_path), not
                // the token endpoint's verdict on the credentials.
                if status == 403 && message == "Missing Authentication Token" {
                    return Err(Failure::Fatal(AuthError::Unexpected {
                        status,
                        url: self.url.clone(),
                        message: format!(
                            "\"{message}\", the API gateway's answer to a path it does not know"
                        ),
                    }));
                }
                Err(Failure::Fatal(AuthError::Rejected {
                    status,
                    code,
                    message,
                    credentials: self.credentials.source().to_string(),
                }))
            }
            s if http_error::is_retriable_status(s) => {
                Err(Failure::answered(s, &body, retry_after, &self.secrets))
            }
            s => Err(Failure::Fatal(AuthError::Unexpected {
                status: s,
                url: self.url.clone(),
                message: error_message(&body, s, &self.secrets),
            })),
        }
    }

    fn unanswered(&self, error: &reqwest::Error) -> Failure<AuthError> {
        Failure::unanswered(error, |message| AuthError::Request {
            url: self.url.clone(),
            message,
        })
    }
}

fn parse_token(body: &[u8]) -> Result<(TokenResponse, HeaderValue), AuthError> {
    // serde_json's message names the position and the expected field, never the values.
    let response: TokenResponse =
        serde_json::from_slice(body).map_err(|e| AuthError::Malformed(e.to_string()))?;
    if response.access_token.is_empty() {
        return Err(AuthError::Malformed("`access_token` is empty".into()));
    }
    if let Some(kind) = &response.token_type
        && !kind.eq_ignore_ascii_case("bearer")
    {
        return Err(AuthError::Malformed(format!(
            "`token_type` is `{kind}`, expected `Bearer`"
        )));
    }
    let mut header =
        HeaderValue::from_str(&format!("Bearer {}", response.access_token)).map_err(|_| {
            AuthError::Malformed("`access_token` holds characters not allowed in a header".into())
        })?;
    header.set_sensitive(true);
    Ok((response, header))
}

/// How long a token is used before renewal is due: `expires_in` (an hour when absent), at most
/// [`MAX_LIFETIME`].
fn lifetime(expires_in: Option<u64>) -> Duration {
    expires_in
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_LIFETIME)
        .min(MAX_LIFETIME)
}

/// When a token obtained by a request sent at `sent` is renewed. Checked: should the clock have no
/// room left (it cannot with [`MAX_LIFETIME`], but the arithmetic does not rely on it), the token
/// is due at once rather than the process panicking.
fn renew_at(sent: Instant, lifetime: Duration) -> Instant {
    sent.checked_add(lifetime.saturating_sub(renewal_margin(lifetime)))
        .unwrap_or(sent)
}

/// The OAuth `error` code and description of a refusal (RFC 6749 section 5.2), tolerating other
/// shapes: the code falls back to the HTTP status, the description to whatever message is there.
/// Both are the server's words: secrets are cut from them.
fn oauth_error(body: &[u8], status: u16, secrets: &dyn Redact) -> (String, String) {
    let value: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let code = value
        .as_ref()
        .and_then(|v| v.get("error"))
        .and_then(|v| v.as_str())
        .map(|c| truncate(&secrets.redact(c)));
    let description = value
        .as_ref()
        .and_then(|v| {
            ["error_description", "message", "detail"]
                .iter()
                .find_map(|k| v.get(*k).and_then(|m| m.as_str()))
        })
        .map(|d| truncate(&secrets.redact(d)));
    match (code, description) {
        (Some(code), Some(description)) => (code, description),
        (Some(code), None) => (code, String::new()),
        (None, Some(description)) => (format!("http_{status}"), description),
        (None, None) => (
            format!("http_{status}"),
            error_message(body, status, secrets),
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn renewal_margin_scales_with_the_lifetime() {
        assert_eq!(
            renewal_margin(Duration::from_secs(3600)),
            Duration::from_secs(300)
        );
        assert_eq!(
            renewal_margin(Duration::from_secs(3)),
            Duration::from_millis(300)
        );
        assert_eq!(
            renewal_margin(Duration::from_secs(86_400)),
            Duration::from_secs(300)
        );
        assert_eq!(renewal_margin(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn token_answer_is_parsed_and_checked() {
        let (t, header) =
            parse_token(br#"{"access_token":"abc","expires_in":3600,"token_type":"Bearer"}"#)
                .unwrap();
        assert_eq!(t.expires_in, Some(3600));
        let (t, _) = parse_token(br#"{"access_token":"abc","expires_in":"60"}"#).unwrap();
        assert_eq!(t.expires_in, Some(60));
        let (t, _) = parse_token(br#"{"access_token":"abc"}"#).unwrap();
        assert_eq!(t.expires_in, None);
        assert!(header.is_sensitive());
        assert!(matches!(
            parse_token(br#"{"access_token":"","expires_in":3600}"#),
            Err(AuthError::Malformed(_))
        ));
        assert!(matches!(
            parse_token(br#"{"access_token":"abc","token_type":"mac"}"#),
            Err(AuthError::Malformed(_))
        ));
        let Err(err) = parse_token(br#"{"access_token":"#) else {
            panic!("a truncated answer parsed");
        };
        assert!(!err.is_retriable());
    }

    #[test]
    fn oauth_errors_are_read_in_any_shape_and_scrubbed() {
        let none = Secrets::default();
        assert_eq!(
            oauth_error(
                br#"{"error":"invalid_client","error_description":"bad"}"#,
                400,
                &none
            ),
            ("invalid_client".into(), "bad".into())
        );
        assert_eq!(
            oauth_error(br#"{"message":"Forbidden"}"#, 403, &none),
            ("http_403".into(), "Forbidden".into())
        );
        assert_eq!(oauth_error(b"", 403, &none).0, "http_403");
        let secrets = Secrets::new(&Credentials::new("the-id", "the-secret").echoable_forms());
        let (code, description) = oauth_error(
            br#"{"error":"bad the-id","error_description":"got the-id:the-secret"}"#,
            400,
            &secrets,
        );
        assert_eq!(
            (code.as_str(), description.as_str()),
            ("bad ***", "got ***")
        );
    }

    #[test]
    fn lifetimes_are_bounded_and_never_overflow_the_clock() {
        assert_eq!(lifetime(None), DEFAULT_LIFETIME);
        assert_eq!(lifetime(Some(3600)), Duration::from_secs(3600));
        assert_eq!(lifetime(Some(u64::MAX)), MAX_LIFETIME);
        let now = Instant::now();
        assert_eq!(
            renew_at(now, lifetime(Some(u64::MAX))),
            now + MAX_LIFETIME - MAX_RENEWAL_MARGIN
        );
        // Even unclamped, the arithmetic does not panic.
        assert_eq!(renew_at(now, Duration::MAX), now);
    }

    #[test]
    fn rejected_names_the_variables_and_the_code() {
        let e = AuthError::Rejected {
            status: 400,
            code: "invalid_client".into(),
            message: "unknown client".into(),
            credentials: "ROKT_APP_ID and ROKT_APP_SECRET".into(),
        };
        let text = e.to_string();
        assert!(text.contains("`invalid_client`"), "{text}");
        assert!(text.contains("ROKT_APP_ID and ROKT_APP_SECRET"), "{text}");
        assert!(!e.is_retriable());
    }
}
