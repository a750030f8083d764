//! The Rokt API client: every request rokt-export makes to the API goes through [`ApiClient`].
//!
//! What it guarantees, whoever calls it:
//! - at most `max_concurrent_requests` requests in flight across the whole process (a permit is held
//!   only while a request is on the wire or waits out an API-wide pause, never during its own
//!   backoff sleep);
//! - a `Retry-After` pauses the whole API, not one request: until it has passed no request is sent
//!   (see `gate.rs`);
//! - 401, 429, 5xx (but 501), timeouts and broken connections are retried through [`retry::run`]
//!   with exponential backoff and full jitter (see [`retry::Backoff`]), honouring `Retry-After`, up
//!   to `max_retries` times, with a fresh look at the token before every attempt; a 401 first
//!   invalidates the token it was answered to, so each retry after one has a new token;
//! - TLS failures, answers that are not HTTP or whose head is too large, redirects (none is
//!   followed) and other 4xx fail at once, a 4xx with the API's own message;
//! - the body is returned as bytes, or sent piece by piece through a channel as it arrives (a
//!   report's rows are parsed on the way in and its body is never held whole): parsing (and so a
//!   malformed-JSON error naming the endpoint and position) is the caller's job, and is never
//!   retried; a body larger than `[api] max_body_bytes` once decompressed is refused;
//! - only `https://`, or `http://` to this machine unless `[api] allow_insecure_http` (checked
//!   when the client is built, as the configuration does);
//! - no request leaves its endpoint: an account id must be one
//!   ([`crate::config::account_id`]), and a path with a `.` or `..` segment is refused before it
//!   is sent (a URL parser would resolve it into another path);
//! - nothing secret is logged: method, path, status, latency and attempt, never headers; server
//!   messages are scrubbed of the credentials and tokens (`scrub.rs`) before they are quoted.
//!
//! It logs at DEBUG (every request) and WARN (every retry) and never at ERROR: the caller decides
//! what a failure means.
//!
//! The folder: this file is the client; `error` [`ApiError`]; `accounts` what the API says about
//! accounts (the list, a report's help); [`token`] the token manager (the only user of the app
//! credentials); [`retry`] the crate's one retry loop; `http_error` what a failed exchange means
//! (error bodies, transport errors, `Retry-After`); `gate` the API-wide `Retry-After` pause;
//! `body` bounded body reads; `scrub` secrets cut from server messages; `stats` the counters
//! behind [`ApiClient::stats`].

mod accounts;
mod body;
mod error;
mod gate;
mod http_error;
pub mod retry;
mod scrub;
mod stats;
pub mod token;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::NaiveDate;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::header;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::{debug, instrument, warn};

use crate::config::account_id::{ACCOUNT_ID_RULE, is_account_id, quote_id};
use crate::config::template::Values;
use crate::config::{ApiConfig, Credentials, GenericJob, Method, QueryJob, Report, check_base_url};
pub use accounts::{Account, Offer, Slug};
use body::{describe_size, read_capped};
pub use error::ApiError;
use gate::Gate;
use http_error::{Failure, describe_transport, error_message};
use retry::{Backoff, Policy, Verdict};
use scrub::redirect_message;
pub use stats::{ApiStats, LatencyHistogram};
use token::{AccessToken, TokenManager};

/// The client. Cheap to clone: clones share the HTTP connection pool, the token and the
/// concurrency cap.
#[derive(Clone)]
pub struct ApiClient {
    inner: Arc<Inner>,
}

/// A successful (2xx) answer.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    /// The body, decompressed.
    pub body: Bytes,
    /// Method and path, e.g. `POST /v1/query/accounts/1/campaigns/`, for messages.
    pub endpoint: String,
    /// HTTP requests made for this call, counting retries (those after a 401 too).
    pub attempts: u32,
}

/// One Query API report request: the job's report, dimensions and metrics, per day, for the days
/// `start..=last` of one account, in the given time zone and currency.
#[derive(Debug, Clone, Copy)]
pub struct ReportRequest<'a> {
    pub account_id: &'a str,
    pub job: &'a QueryJob,
    /// The first day.
    pub start: NaiveDate,
    /// The last day, included (Rokt's `endDate` is exclusive, so the day after is sent).
    pub last: NaiveDate,
    /// An Olson name (`timezoneVariation`).
    pub timezone: &'a str,
    /// `currencyCode`.
    pub currency: &'a str,
}

/// What [`ApiClient::query_report_into`] sends of a successful answer, as it arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// An answer starts: whatever came before belonged to an attempt that failed midway.
    Start,
    /// The next bytes of the body.
    Data(Bytes),
}

/// A channel's sending half for [`Piece`]s.
pub type PieceSender = tokio::sync::mpsc::Sender<Piece>;

impl ApiResponse {
    /// Parses the body. A syntax error or an unexpected shape names the endpoint and the position.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_json::from_slice(&self.body).map_err(|e| ApiError::MalformedJson {
            endpoint: self.endpoint.clone(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })
    }
}

impl ApiClient {
    /// Builds the HTTP client (rustls, gzip, `rokt-export/<version>` user agent, the configured
    /// timeouts), the token manager and the process-wide concurrency cap.
    pub fn new(api: &ApiConfig, credentials: Credentials) -> Result<ApiClient, ApiError> {
        ApiClient::with_backoff(api, credentials, Backoff::default())
    }

    /// Like [`ApiClient::new`] with another backoff policy, for the API and the token endpoint
    /// alike (tests use [`Backoff::fast`] to stay quick).
    pub fn with_backoff(
        api: &ApiConfig,
        credentials: Credentials,
        backoff: Backoff,
    ) -> Result<ApiClient, ApiError> {
        // The configuration checks this already; a client built from an `ApiConfig` made in code
        // is held to the same rules.
        let base_url = check_base_url(&api.base_url, api.allow_insecure_http).map_err(|e| {
            ApiError::Client(format!(
                "[api] base_url \"{}\" {e}",
                crate::config::printable_url(&api.base_url)
            ))
        })?;
        crate::tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .user_agent(concat!("rokt-export/", env!("CARGO_PKG_VERSION")))
            .gzip(true)
            .timeout(api.request_timeout)
            .connect_timeout(api.connect_timeout)
            // See `scrub::redirect_message` for why none is followed.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ApiError::Client(describe_transport(&e)))?;
        let api = ApiConfig {
            base_url,
            ..api.clone()
        };
        let tokens = TokenManager::with_backoff(http.clone(), &api, credentials, backoff);
        Ok(ApiClient {
            inner: Arc::new(Inner {
                http,
                base_url: api.base_url.clone(),
                max_body_bytes: usize::try_from(api.max_body_bytes).unwrap_or(usize::MAX),
                gate: Gate::default(),
                tokens,
                // Zero would block every request forever; config validation should prevent it.
                permits: Semaphore::new(api.max_concurrent_requests.max(1)),
                max_retries: api.max_retries,
                backoff,
                stats: stats::Recorder::default(),
            }),
        })
    }

    /// The token manager (shared with every clone of this client).
    pub fn tokens(&self) -> &TokenManager {
        &self.inner.tokens
    }

    /// `GET /v1/query/accounts`: the accounts the credentials can read.
    pub async fn accounts(&self) -> Result<Vec<Account>, ApiError> {
        let response = self
            .send(
                reqwest::Method::GET,
                "/v1/query/accounts".into(),
                &[],
                None,
                None,
            )
            .await?;
        accounts::parse_accounts(&response)
    }

    /// `GET /v1/query/accounts/{account_id}/{report}/help`: the dimensions and metrics `report`
    /// offers this account.
    pub async fn help(&self, account_id: &str, report: Report) -> Result<Offer, ApiError> {
        let path = format!(
            "/v1/query/accounts/{}/{}/help",
            utf8_percent_encode(account_id, PATH_SEGMENT),
            report.name()
        );
        check_account_id(account_id, &path, reqwest::Method::GET)?;
        let response = self
            .send(reqwest::Method::GET, path, &[], None, None)
            .await?;
        accounts::parse_help(&response)
    }

    /// `POST /v1/query/accounts/{account_id}/campaigns/` (or `/transactions`): the job's report
    /// per day for the request's days, the whole body at once.
    pub async fn query_report(&self, request: &ReportRequest<'_>) -> Result<ApiResponse, ApiError> {
        self.report(request, None).await
    }

    /// Like [`ApiClient::query_report`], but the answer's body is sent through `pieces` as it
    /// arrives (each answer, a retry's too, after a [`Piece::Start`]); the returned response's
    /// `body` is empty. A closed receiver stops the reading (the receiver found the answer
    /// unusable and knows why); the call still returns `Ok`.
    pub async fn query_report_into(
        &self,
        request: &ReportRequest<'_>,
        pieces: &PieceSender,
    ) -> Result<ApiResponse, ApiError> {
        self.report(request, Some(pieces)).await
    }

    /// The request behind [`ApiClient::query_report`] and [`ApiClient::query_report_into`].
    async fn report(
        &self,
        request: &ReportRequest<'_>,
        pieces: Option<&PieceSender>,
    ) -> Result<ApiResponse, ApiError> {
        let path = format!(
            "/v1/query/accounts/{}{}",
            utf8_percent_encode(request.account_id, PATH_SEGMENT),
            request.job.report.path_suffix()
        );
        check_account_id(request.account_id, &path, reqwest::Method::POST)?;
        let body = report_body(request);
        self.send(reqwest::Method::POST, path, &[], Some(&body), pieces)
            .await
    }

    /// A generic job's request: its method, its endpoint with path placeholders percent-encoded,
    /// its query parameters and JSON body with placeholders expanded.
    pub async fn generic(
        &self,
        job: &GenericJob,
        values: &Values<'_>,
    ) -> Result<ApiResponse, ApiError> {
        let method = match job.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
        };
        let path = job.endpoint.expand_path(values);
        check_account_id(values.account_id, &path, method.clone())?;
        let query: Vec<(String, String)> = job
            .query
            .iter()
            .map(|(k, t)| (k.clone(), t.expand(values)))
            .collect();
        let body = job.body.as_ref().map(|b| b.expand(values));
        self.send(method, path, &query, body.as_ref(), None).await
    }

    /// A snapshot of the request counters.
    pub fn stats(&self) -> ApiStats {
        self.inner.stats.snapshot(self.inner.tokens.renewals())
    }

    /// Sends one logical request, with the retries described in the module docs.
    #[instrument(skip_all, fields(method = %method, path = %path))]
    async fn send(
        &self,
        method: reqwest::Method,
        path: String,
        query: &[(String, String)],
        body: Option<&serde_json::Value>,
        pieces: Option<&PieceSender>,
    ) -> Result<ApiResponse, ApiError> {
        let endpoint = format!("{method} {path}");
        if let Some(segment) = dot_segment(&path) {
            return Err(ApiError::Refused {
                endpoint,
                message: format!(
                    "the path has a `{segment}` segment, which would make it another path; \
                     refused before sending"
                ),
            });
        }
        let url = format!("{}{}", self.inner.base_url, path);
        let body = match body {
            Some(b) => Some(Bytes::from(serde_json::to_vec(b).map_err(|e| {
                ApiError::Transport {
                    endpoint: endpoint.clone(),
                    message: format!("cannot serialise the request body: {e}"),
                }
            })?)),
            None => None,
        };
        let call = Call {
            method,
            url,
            query,
            body,
            endpoint,
            pieces,
            requests: AtomicU32::new(0),
            unauthorized: Mutex::new(None),
        };
        let policy = Policy {
            backoff: self.inner.backoff,
            max_retries: Some(self.inner.max_retries),
        };
        let answered = retry::run(
            &policy,
            |_| self.try_once(&call),
            |failure| match failure {
                Failure::Transient { retry_after, .. } => {
                    retry_after.map_or(Verdict::Retry, Verdict::RetryAfter)
                }
                Failure::Fatal(_) => Verdict::Fail,
            },
            |retrying| {
                self.inner.stats.retry();
                warn!(
                    attempt = call.requests.load(Ordering::Relaxed),
                    retry = retrying.attempt,
                    max_retries = self.inner.max_retries,
                    delay_ms = millis(retrying.delay),
                    error = %retrying.error,
                    "API request failed; retrying"
                );
            },
        )
        .await;
        let attempts = call.requests.into_inner();
        let unauthorized = call
            .unauthorized
            .into_inner()
            .unwrap_or_else(|e| e.into_inner());
        let endpoint = call.endpoint;
        match answered {
            Ok(body) => Ok(ApiResponse {
                body,
                endpoint,
                attempts,
            }),
            Err(gave_up) => Err(match (gave_up.error, unauthorized) {
                (Failure::Fatal(error), _) => error,
                // Every retry had a fresh token and was refused: not an outage, the tokens this
                // token endpoint issues are not accepted here.
                (Failure::Transient { .. }, Some(message)) => ApiError::Status {
                    status: 401,
                    endpoint,
                    message: format!(
                        "{message} (refused {attempts} times in a row, with a new token after \
                         each refusal)"
                    ),
                },
                (Failure::Transient { description, .. }, None) => ApiError::RetriesExhausted {
                    endpoint,
                    attempts,
                    last: description,
                },
            }),
        }
    }

    /// One attempt of a call: a request with the current token. A 401 (the token expired early
    /// or was revoked) invalidates that token, so that the retry asks for a new one, and is
    /// retried like any transient failure (counted against `max_retries`). An answer with
    /// `Retry-After` pauses every request to the API ([`Gate`]).
    async fn try_once(&self, call: &Call<'_>) -> Result<Bytes, Failure<ApiError>> {
        let secrets = self.inner.tokens.secrets();
        let token = self.inner.tokens.token().await;
        let token = token.map_err(|e| Failure::Fatal(ApiError::Auth(e)))?;
        let attempt = call.requests.fetch_add(1, Ordering::Relaxed) + 1;
        let unauthorized = |message: Option<String>| {
            *call.unauthorized.lock().unwrap_or_else(|e| e.into_inner()) = message;
        };
        let answer = match self.attempt(call, &token, attempt).await {
            Ok(answer) => answer,
            Err(Unanswered::Transport(e)) => {
                unauthorized(None);
                return Err(Failure::unanswered(&e, |message| ApiError::Transport {
                    endpoint: call.endpoint.clone(),
                    message,
                }));
            }
            Err(Unanswered::TooLarge { .. }) => {
                return Err(Failure::Fatal(ApiError::Refused {
                    endpoint: call.endpoint.clone(),
                    message: format!(
                        "the answer is larger than [api] max_body_bytes ({}, counted \
                         decompressed); it was not read further and is not retried (a genuine \
                         answer this large needs a smaller window_days)",
                        describe_size(self.inner.max_body_bytes as u64)
                    ),
                }));
            }
        };
        let status = answer.status;
        if (200..300).contains(&status) {
            return Ok(answer.body);
        }
        if status == 401 {
            debug!(attempt, "401 Unauthorized; the token is invalidated");
            self.inner.tokens.invalidate(&token).await;
            let message = error_message(&answer.body, status, secrets);
            unauthorized(Some(message.clone()));
            return Err(Failure::Transient {
                description: format!("HTTP 401: {message}"),
                retry_after: None,
            });
        }
        unauthorized(None);
        if http_error::is_retriable_status(status) {
            if let Some(wait) = answer.retry_after {
                let wait = wait.min(self.inner.backoff.retry_after_cap);
                if !wait.is_zero() {
                    debug!(
                        wait_ms = millis(wait),
                        "Retry-After: no request to the API until it has passed"
                    );
                }
                self.inner.gate.pause_for(wait);
            }
            return Err(Failure::answered(
                status,
                &answer.body,
                answer.retry_after,
                secrets,
            ));
        }
        let message = if (300..400).contains(&status) {
            redirect_message(answer.location.as_deref(), secrets)
        } else {
            error_message(&answer.body, status, secrets)
        };
        Err(Failure::Fatal(ApiError::Status {
            status,
            endpoint: call.endpoint.clone(),
            message,
        }))
    }

    /// One HTTP request, holding a concurrency permit from before the API-wide pause check until
    /// the body is read (and, with a channel, handed over).
    async fn attempt(
        &self,
        call: &Call<'_>,
        token: &AccessToken,
        attempt: u32,
    ) -> Result<Answer, Unanswered> {
        // The semaphore is never closed, so acquiring cannot fail; if it somehow did, sending
        // without a permit is better than failing the run.
        let _permit = self.inner.permits.acquire().await.ok();
        let paused = self.inner.gate.wait().await;
        if !paused.is_zero() {
            debug!(
                waited_ms = millis(paused),
                attempt, "waited for the API's Retry-After"
            );
        }
        let started = Instant::now();
        let result = self.exchange(call, token).await;
        let latency = started.elapsed();
        match &result {
            Ok(answer) => {
                self.inner.stats.request(Some(answer.status), latency);
                debug!(
                    status = answer.status,
                    latency_ms = millis(latency),
                    attempt,
                    bytes = answer.bytes,
                    "API answered"
                );
            }
            Err(Unanswered::Transport(e)) => {
                self.inner.stats.request(None, latency);
                debug!(
                    latency_ms = millis(latency),
                    attempt,
                    error = %describe_transport(e),
                    "API request got no answer"
                );
            }
            Err(Unanswered::TooLarge { status }) => {
                self.inner.stats.request(Some(*status), latency);
                debug!(
                    latency_ms = millis(latency),
                    attempt,
                    limit = self.inner.max_body_bytes,
                    "API answer larger than max_body_bytes; refused"
                );
            }
        }
        result
    }

    async fn exchange(&self, call: &Call<'_>, token: &AccessToken) -> Result<Answer, Unanswered> {
        let mut builder = self
            .inner
            .http
            .request(call.method.clone(), &call.url)
            .header(header::AUTHORIZATION, token.authorization())
            .header(header::ACCEPT, "application/json");
        if !call.query.is_empty() {
            builder = builder.query(call.query);
        }
        if let Some(body) = &call.body {
            builder = builder
                .header(header::CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        let mut response = builder.send().await?;
        let status = response.status().as_u16();
        let retry_after = http_error::retry_after(response.headers());
        let location = (300..400).contains(&status).then(|| {
            response
                .headers()
                .get(header::LOCATION)
                .map(|l| String::from_utf8_lossy(l.as_bytes()).into_owned())
        });
        let success = (200..300).contains(&status);
        let limit = self.inner.max_body_bytes;
        if success && response.content_length().is_some_and(|n| n > limit as u64) {
            return Err(Unanswered::TooLarge { status });
        }
        if let Some(pieces) = call.pieces
            && success
        {
            // A closed receiver stops the reading: the rest is not read and the connection is
            // closed, not reused. The count is of decompressed bytes (reqwest undoes gzip
            // before it hands a chunk over): one addition and one comparison per chunk.
            let mut bytes = 0usize;
            if pieces.send(Piece::Start).await.is_ok() {
                while let Some(chunk) = response.chunk().await? {
                    bytes += chunk.len();
                    if bytes > limit {
                        return Err(Unanswered::TooLarge { status });
                    }
                    if pieces.send(Piece::Data(chunk)).await.is_err() {
                        break;
                    }
                }
            }
            return Ok(Answer {
                status,
                retry_after,
                location: None,
                body: Bytes::new(),
                bytes,
            });
        }
        // An error answer is read only as far as its message can matter.
        let limit = if success {
            limit
        } else {
            limit.min(MAX_ERROR_BODY_BYTES)
        };
        let capped = read_capped(&mut response, limit).await?;
        if success && capped.truncated {
            return Err(Unanswered::TooLarge { status });
        }
        Ok(Answer {
            status,
            retry_after,
            location: location.flatten(),
            bytes: capped.bytes.len(),
            body: capped.bytes,
        })
    }
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("base_url", &self.inner.base_url)
            .field("max_retries", &self.inner.max_retries)
            .field("tokens", &self.inner.tokens)
            .finish_non_exhaustive()
    }
}

struct Inner {
    http: reqwest::Client,
    base_url: String,
    /// `[api] max_body_bytes`.
    max_body_bytes: usize,
    /// The API-wide `Retry-After` pause.
    gate: Gate,
    tokens: TokenManager,
    permits: Semaphore,
    max_retries: u32,
    backoff: Backoff,
    stats: stats::Recorder,
}

/// One logical request, shared by its attempts.
struct Call<'a> {
    method: reqwest::Method,
    url: String,
    query: &'a [(String, String)],
    /// Serialised once: retries resend the same bytes.
    body: Option<Bytes>,
    /// Method and path, for messages.
    endpoint: String,
    /// Where a successful answer's body goes as it arrives, if not into [`Answer::body`].
    pieces: Option<&'a PieceSender>,
    /// HTTP requests made so far, retries included.
    requests: AtomicU32,
    /// The API's message when the last attempt was answered 401 (the final error then says that
    /// fresh tokens were refused, rather than that the API was unavailable).
    unauthorized: Mutex<Option<String>>,
}

struct Answer {
    status: u16,
    retry_after: Option<Duration>,
    /// A redirect's `Location`.
    location: Option<String>,
    /// Empty when the body went to a sink; an error answer's first [`MAX_ERROR_BODY_BYTES`].
    body: Bytes,
    /// Bytes of body received.
    bytes: usize,
}

/// Why an exchange produced no answer to look at.
enum Unanswered {
    Transport(reqwest::Error),
    /// A successful answer's body exceeds `[api] max_body_bytes`.
    TooLarge {
        status: u16,
    },
}

impl From<reqwest::Error> for Unanswered {
    fn from(e: reqwest::Error) -> Unanswered {
        Unanswered::Transport(e)
    }
}

/// How much of an error answer is read: its message is quoted to 500 characters at most.
const MAX_ERROR_BODY_BYTES: usize = 64 << 10;

/// Characters left as they are in a path segment (RFC 3986 unreserved), as in
/// [`crate::config::template::Template::expand_path`].
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Refuses an account id that is not one ([`ACCOUNT_ID_RULE`]) before anything is sent.
fn check_account_id(id: &str, path: &str, method: reqwest::Method) -> Result<(), ApiError> {
    if is_account_id(id) {
        return Ok(());
    }
    Err(ApiError::Refused {
        endpoint: format!("{method} {path}"),
        message: format!(
            "{} is not an account id (an id is {ACCOUNT_ID_RULE}); refused before sending",
            quote_id(id)
        ),
    })
}

/// The first `.` or `..` segment of `path` (before its query), however it is written: a URL
/// parser resolves `%2e` and `%2E` like a dot, and so would make the request another path.
fn dot_segment(path: &str) -> Option<&str> {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    path.split('/').find(|segment| {
        let lower = segment.to_ascii_lowercase();
        let dots = lower.replace("%2e", ".");
        dots == "." || dots == ".."
    })
}

/// The Query API request body for one window.
fn report_body(request: &ReportRequest<'_>) -> serde_json::Value {
    // `endDate` is exclusive; `succ_opt` fails only at the end of chrono's calendar.
    let end = request.last.succ_opt().unwrap_or(request.last);
    serde_json::json!({
        "interval": "day",
        "startDate": request.start.format("%Y-%m-%d").to_string(),
        "endDate": end.format("%Y-%m-%d").to_string(),
        "metrics": request.job.metrics,
        "dimensions": request.job.dimensions,
        "timezoneVariation": request.timezone,
        "currencyCode": request.currency,
    })
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn report_body_sends_the_exclusive_end_date() {
        let job = QueryJob::new(
            Report::Campaigns,
            vec!["campaign_id".into()],
            vec!["impressions".into(), "referrals".into()],
        );
        let body = report_body(&ReportRequest {
            account_id: "1",
            job: &job,
            start: NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
            last: NaiveDate::from_ymd_opt(2026, 3, 31).unwrap(),
            timezone: "America/Los_Angeles",
            currency: "USD",
        });
        assert_eq!(
            body,
            serde_json::json!({
                "interval": "day", "startDate": "2026-03-01", "endDate": "2026-04-01",
                "metrics": ["impressions", "referrals"], "dimensions": ["campaign_id"],
                "timezoneVariation": "America/Los_Angeles", "currencyCode": "USD",
            })
        );
    }

    #[test]
    fn dot_segments_are_found_however_spelled() {
        assert_eq!(dot_segment("/v1/query/accounts/1/campaigns/"), None);
        assert_eq!(dot_segment("/reporting/a.b/..c/x"), None);
        assert_eq!(dot_segment("/v1/query/accounts/../campaigns/"), Some(".."));
        assert_eq!(dot_segment("/a/./b"), Some("."));
        assert_eq!(dot_segment("/a/%2E%2e/b"), Some("%2E%2e"));
        assert_eq!(dot_segment("/a/.%2E"), Some(".%2E"));
        assert_eq!(
            dot_segment("/a/b?x=/../"),
            None,
            "the query is not the path"
        );
    }

    #[test]
    fn malformed_json_names_endpoint_and_position() {
        let response = ApiResponse {
            body: Bytes::from_static(b"{\"data\": [\n  {\"a\": 1},\n  {\"a\": tru"),
            endpoint: "POST /v1/query/accounts/1/campaigns/".into(),
            attempts: 1,
        };
        let err = response.json::<serde_json::Value>().unwrap_err();
        match &err {
            ApiError::MalformedJson { endpoint, line, .. } => {
                assert_eq!(endpoint, "POST /v1/query/accounts/1/campaigns/");
                assert_eq!(*line, 3);
            }
            other => panic!("{other:?}"),
        }
        assert!(!err.is_retriable());
        assert!(!err.is_unavailable());
        assert!(err.to_string().contains("line 3"), "{err}");
    }
}
