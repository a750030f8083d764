//! The simulated Rokt API: `rokt-export mock-api`, `rokt-export demo` and the test suite run it.
//!
//! It follows `rokt-api.md`, awkward parts included: a Cognito-style token endpoint (400/403 for bad
//! credentials, never 401), 401 for unknown, expired or revoked bearer tokens, the AWS API
//! Gateway's 403 `{"message": "Missing Authentication Token"}` for a path or method it does not
//! know, the Query API with an exclusive `endDate` and a trailing slash on the campaigns path, the
//! legacy `/reporting` endpoints as Rokt's pages document them (the `legacy` module lists them
//! with its own choices), and restated conversions. What each report offers is the catalogue's
//! ([`crate::catalogue`]; `slugs` says how the simulation computes each slug). Its data are
//! deterministic (the `data` module describes the model: every grouping adds up exactly, ratios
//! and distinct counts (`distinct`) are computed from a row's parts, names stress a loader) and
//! its faults are injectable while it runs (the `faults` module: they hit API paths only, never
//! the token endpoint or the admin API).
//!
//! `docs/simulated-api.md` maps each fact of `rokt-api.md` to the test that holds the simulation
//! to it, or to what the simulation chose where the page is silent. The choices, in short:
//! - A report without `timezoneVariation` or `currencyCode` is in the account's own
//!   `accountTimezone` and `accountCurrencyCode` (PostHog's docs: leave them blank "to use your
//!   Rokt account's defaults"); other currencies are converted at fixed rates, value metrics too.
//! - `datetime` is the report day in the requested `timezoneVariation` written as
//!   `YYYY-MM-DDT00:00:00Z` (the documented example's form); a day's numbers depend on the zone's
//!   UTC offset that day. Loaders should take the first ten characters as the day.
//! - Rows exist for every day up to and including `today`, for every combination of the requested
//!   dimensions; none after `today`. A range longer than 31 days is 400.
//! - Only `/v1/query/accounts/{id}/campaigns/` (with the slash) and `.../transactions` (without)
//!   exist; the other spelling is a path the gateway does not know (403). The admin API's unknown
//!   paths are 404: it is not behind a gateway.
//! - What is available varies by account: accounts take the profiles US, AU, GB in turn (their
//!   own zone and currency; `accountTimezoneOffset` in minutes east of UTC; `accountOwner` an
//!   e-mail), and an AU account has no `cost_per_impression` or `conversion_roas`, a GB one no
//!   `campaign_objective` or `cost_per_impression`. Its `campaigns/help` leaves them out and a
//!   campaigns report that names one is 400 (its message points at `help`).
//!
//! Start one per test with [`MockServer::start`]; it binds before it serves, so the address it
//! returns answers at once. The admin API lives under `/__mock/`, a path no Rokt client calls:
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/__mock/state` | today, days advanced, account ids |
//! | GET / PUT | `/__mock/faults` | the [`Faults`] in force (PUT a JSON object; missing fields are off) |
//! | GET | `/__mock/counters` | the [`Counters`] |
//! | POST | `/__mock/reset` | zero the counters (faults stay) |
//! | POST | `/__mock/revoke-tokens` | every issued token becomes unknown |
//! | POST | `/__mock/advance?days=N` | time passes: see [`MockServer::advance_time`] |
//! | POST | `/__mock/rename-campaign` | `{"account_id", "campaign_id", "name"}`: every report shows the new name, past days included |
//! | POST | `/__mock/invalidate-creative` | `{"account_id", "creative_id", "from": "YYYY-MM-DD"}`: the creative's rows from that day on vanish |

mod auth;
mod data;
mod distinct;
mod faults;
mod legacy;
mod query;
mod slugs;

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query as QueryParams, State};
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::NaiveDate;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

pub use faults::{Counters, Faults, NoData};

use crate::config::Credentials;
use faults::{CounterState, Injected};

/// The token endpoint's path, as on api.rokt.com.
pub const TOKEN_PATH: &str = "/auth/oauth2/token";

/// What the simulation serves.
#[derive(Clone)]
pub struct MockConfig {
    /// The app id the token endpoint accepts (default `demo-app-id`).
    pub app_id: String,
    /// The app secret the token endpoint accepts (default `demo-app-secret`).
    pub app_secret: String,
    /// The account ids the credentials can read (default `3141592`, `2718281`); any other id is 403.
    pub accounts: Vec<String>,
    /// Campaigns in each account (default 5).
    pub campaigns_per_account: u32,
    /// Creatives in each campaign (default 2).
    pub creatives_per_campaign: u32,
    /// The simulation's today: no report has a row after it (default: today in UTC).
    pub today: NaiveDate,
    /// How long an issued token lasts (default 3600 s); `Faults::token_lifetime_secs` overrides it.
    pub token_lifetime: Duration,
    /// Seeds every number the simulation serves (default 42).
    pub seed: u64,
    /// Faults in force from the start (default none).
    pub faults: Faults,
}

impl Default for MockConfig {
    fn default() -> MockConfig {
        MockConfig {
            app_id: "demo-app-id".into(),
            app_secret: "demo-app-secret".into(),
            accounts: vec!["3141592".into(), "2718281".into()],
            campaigns_per_account: 5,
            creatives_per_campaign: 2,
            today: chrono::Utc::now().date_naive(),
            token_lifetime: Duration::from_secs(3600),
            seed: 42,
            faults: Faults::default(),
        }
    }
}

impl fmt::Debug for MockConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockConfig")
            .field("app_id", &self.app_id)
            .field("app_secret", &"[REDACTED]")
            .field("accounts", &self.accounts)
            .field("campaigns_per_account", &self.campaigns_per_account)
            .field("creatives_per_campaign", &self.creatives_per_campaign)
            .field("today", &self.today)
            .field("token_lifetime", &self.token_lifetime)
            .field("seed", &self.seed)
            .field("faults", &self.faults)
            .finish()
    }
}

/// A running simulated API. Dropping it stops it too; [`MockServer::stop`] also waits until it has.
pub struct MockServer {
    shared: SharedRef,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl MockServer {
    /// Binds `127.0.0.1:0` and serves.
    pub async fn start(config: MockConfig) -> std::io::Result<MockServer> {
        MockServer::start_on(config, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    /// Binds `addr` and serves.
    pub async fn start_on(config: MockConfig, addr: SocketAddr) -> std::io::Result<MockServer> {
        let listener = TcpListener::bind(addr).await?;
        MockServer::from_listener(config, listener)
    }

    /// Serves on a listener the caller bound.
    pub fn from_listener(config: MockConfig, listener: TcpListener) -> std::io::Result<MockServer> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(config));
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(serve(listener, shared.clone(), rx));
        Ok(MockServer {
            shared,
            addr,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash: the `[api] base_url` to use.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The credentials the token endpoint accepts.
    pub fn credentials(&self) -> Credentials {
        Credentials::new(&self.shared.config.app_id, &self.shared.config.app_secret)
    }

    /// Replaces the faults in force; "every Nth" counts from this call on.
    pub fn set_faults(&self, faults: Faults) {
        self.shared.set_faults(faults);
    }

    /// The faults in force.
    pub fn faults(&self) -> Faults {
        self.shared.faults()
    }

    /// What it served since it started or since [`MockServer::reset_counters`].
    pub fn counters(&self) -> Counters {
        self.shared.counters.snapshot()
    }

    /// Zeroes the counters.
    pub fn reset_counters(&self) {
        self.shared.counters.reset();
    }

    /// Every token issued so far becomes unknown: API calls with it are answered 401.
    pub fn revoke_tokens(&self) {
        self.shared.tokens.revoke_all();
    }

    /// Time passes: `today` moves `days` forward (new days get rows) and every day of the last
    /// week restates its conversion metrics (acquisitions, conversions, conversion value and what
    /// derives from them) upwards. A day older than 7 days before today never changes, and a day
    /// exactly 7 days old already holds its final numbers, so a client that re-reads
    /// `[today - 7, today]` after each advance sees every change. `advance_time(0)` changes nothing.
    pub fn advance_time(&self, days: u32) {
        self.shared.advance(days);
    }

    /// The simulation's today (the configured one plus every day advanced).
    pub fn today(&self) -> NaiveDate {
        self.shared.today()
    }

    /// Renames a campaign: every report shows the new name on every day, past days included, as
    /// the live API does. False when the account or campaign is unknown.
    pub fn rename_campaign(&self, account_id: &str, campaign_id: &str, name: &str) -> bool {
        self.shared
            .change_catalog(|c| c.rename_campaign(account_id, campaign_id, name))
    }

    /// Invalidates a creative's rows from `from` on: they vanish from every report and total.
    /// False when the account or creative is unknown.
    pub fn invalidate_creative(
        &self,
        account_id: &str,
        creative_id: &str,
        from: NaiveDate,
    ) -> bool {
        self.shared
            .change_catalog(|c| c.invalidate_creative(account_id, creative_id, from))
    }

    /// An account's campaign ids, in order.
    pub fn campaign_ids(&self, account_id: &str) -> Vec<String> {
        self.shared.catalog().campaign_ids(account_id)
    }

    /// An account's creative ids, in order.
    pub fn creative_ids(&self, account_id: &str) -> Vec<String> {
        self.shared.catalog().creative_ids(account_id)
    }

    /// The rows the Query API would answer, computed in process, for tests that compare table sums:
    /// as if `POST /v1/query/accounts/{account_id}/{report}` were sent with these dimensions and
    /// metrics, `interval: "day"` when `interval_day`, in the account's own zone and currency (as
    /// when the request names none) and no filters. Unlike the API,
    /// the range may be longer than 31 days. Empty when the API would answer an error (unknown
    /// account, report or slug, `end_exclusive <= start`); see [`MockServer::try_query_rows`].
    #[allow(clippy::too_many_arguments)]
    pub fn query_rows(
        &self,
        account_id: &str,
        report: &str,
        dimensions: &[String],
        metrics: &[String],
        start: NaiveDate,
        end_exclusive: NaiveDate,
        interval_day: bool,
    ) -> Vec<serde_json::Value> {
        self.try_query_rows(
            account_id,
            report,
            dimensions,
            metrics,
            start,
            end_exclusive,
            interval_day,
        )
        .unwrap_or_default()
    }

    /// [`MockServer::query_rows`], with the API's error message when the query is invalid.
    #[allow(clippy::too_many_arguments)]
    pub fn try_query_rows(
        &self,
        account_id: &str,
        report: &str,
        dimensions: &[String],
        metrics: &[String],
        start: NaiveDate,
        end_exclusive: NaiveDate,
        interval_day: bool,
    ) -> Result<Vec<serde_json::Value>, String> {
        let asked = (account_id, report, dimensions, metrics);
        self.rows_in(asked, (start, end_exclusive), interval_day, None)
    }

    /// [`MockServer::query_rows`] in the time zone and currency the request names.
    #[allow(clippy::too_many_arguments)]
    pub fn query_rows_in(
        &self,
        account_id: &str,
        report: &str,
        dimensions: &[String],
        metrics: &[String],
        start: NaiveDate,
        end_exclusive: NaiveDate,
        timezone: &str,
        currency: &str,
    ) -> Vec<serde_json::Value> {
        let asked = (account_id, report, dimensions, metrics);
        self.rows_in(
            asked,
            (start, end_exclusive),
            true,
            Some((timezone, currency)),
        )
        .unwrap_or_default()
    }

    /// The rows of `(account, report, dimensions, metrics)` over `[start, end)`, in `units` (zone
    /// and currency) or the account's own.
    fn rows_in(
        &self,
        (account_id, report, dimensions, metrics): (&str, &str, &[String], &[String]),
        (start, end_exclusive): (NaiveDate, NaiveDate),
        interval_day: bool,
        in_units: Option<(&str, &str)>,
    ) -> Result<Vec<serde_json::Value>, String> {
        let catalog = self.shared.catalog();
        let account = catalog
            .account(account_id)
            .ok_or_else(|| format!("account {account_id} is not accessible"))?;
        let report = data::Report::parse(report)
            .ok_or_else(|| format!("unknown report \"{report}\"; use campaigns or transactions"))?;
        let mut body = serde_json::json!({
            "startDate": start.to_string(),
            "endDate": end_exclusive.to_string(),
            "dimensions": dimensions,
            "metrics": metrics,
        });
        if interval_day {
            body["interval"] = "day".into();
        }
        if let Some((zone, currency)) = in_units {
            body["timezoneVariation"] = zone.into();
            body["currencyCode"] = currency.into();
        }
        let query = query::parse_query_within(report, body.to_string().as_bytes(), None)
            .and_then(|q| query::offered(account, q))?;
        let (text, _) = query::answer(&catalog, account, &query, self.shared.today());
        let mut answer: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("unreadable answer: {e}"))?;
        match answer.get_mut("data").map(serde_json::Value::take) {
            Some(serde_json::Value::Array(rows)) => Ok(rows),
            _ => Err("the answer has no data array".into()),
        }
    }

    /// Stops accepting, closes every connection and waits until the server task has ended.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// State shared by every connection of one server.
pub(crate) struct Shared {
    config: MockConfig,
    /// Replaced whole by a rename or an invalidation (the admin API); requests hold the one they
    /// started with.
    catalog: std::sync::RwLock<Arc<data::Catalog>>,
    days_advanced: AtomicU32,
    faults: Mutex<Faults>,
    /// API requests since the faults were last set ("every Nth" counts these).
    fault_sequence: AtomicU64,
    tokens: auth::TokenStore,
    counters: CounterState,
}

pub(crate) type SharedRef = Arc<Shared>;

impl Shared {
    fn new(config: MockConfig) -> Shared {
        let catalog = data::Catalog::new(
            config.seed,
            &config.accounts,
            config.campaigns_per_account,
            config.creatives_per_campaign,
        );
        Shared {
            faults: Mutex::new(config.faults.clone()),
            catalog: std::sync::RwLock::new(Arc::new(catalog)),
            days_advanced: AtomicU32::new(0),
            fault_sequence: AtomicU64::new(0),
            tokens: auth::TokenStore::default(),
            counters: CounterState::default(),
            config,
        }
    }

    /// The catalog in force.
    pub(crate) fn catalog(&self) -> Arc<data::Catalog> {
        Arc::clone(&self.catalog.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Changes the catalog (a rename, an invalidation); `change` says whether it found its target.
    fn change_catalog(&self, change: impl FnOnce(&mut data::Catalog) -> bool) -> bool {
        let mut current = self.catalog.write().unwrap_or_else(|e| e.into_inner());
        let mut next = data::Catalog::clone(&current);
        let found = change(&mut next);
        if found {
            *current = Arc::new(next);
        }
        found
    }

    fn today(&self) -> NaiveDate {
        let days = u64::from(self.days_advanced.load(Ordering::SeqCst));
        self.config
            .today
            .checked_add_days(chrono::Days::new(days))
            .unwrap_or(self.config.today)
    }

    fn advance(&self, days: u32) -> NaiveDate {
        self.days_advanced.fetch_add(days, Ordering::SeqCst);
        self.today()
    }

    fn faults(&self) -> Faults {
        self.faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_faults(&self, faults: Faults) {
        *self.faults.lock().unwrap_or_else(|e| e.into_inner()) = faults;
        self.fault_sequence.store(0, Ordering::SeqCst);
    }

    fn token_lifetime(&self) -> Duration {
        match self.faults().token_lifetime_secs {
            Some(secs) => Duration::from_secs(secs),
            None => self.config.token_lifetime,
        }
    }
}

/// A JSON answer.
pub(crate) fn json_response(status: StatusCode, body: String) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// `{"message": ...}`, the error body of the API gateway and the Query API.
pub(crate) fn message(status: StatusCode, text: &str) -> Response {
    json_response(status, serde_json::json!({ "message": text }).to_string())
}

fn router(shared: SharedRef) -> Router {
    Router::new()
        .route(TOKEN_PATH, post(auth::token))
        .route("/v1/query/accounts", get(query::accounts))
        .route(
            "/v1/query/accounts/{account_id}/campaigns/help",
            get(query::campaigns_help),
        )
        .route(
            "/v1/query/accounts/{account_id}/transactions/help",
            get(query::transactions_help),
        )
        .route(
            "/v1/query/accounts/{account_id}/campaigns/",
            post(query::campaigns),
        )
        .route(
            "/v1/query/accounts/{account_id}/transactions",
            post(query::transactions),
        )
        .merge(legacy::routes())
        .route("/__mock/state", get(admin_state))
        .route("/__mock/faults", get(admin_faults).put(admin_set_faults))
        .route("/__mock/counters", get(admin_counters))
        .route("/__mock/reset", post(admin_reset))
        .route("/__mock/revoke-tokens", post(admin_revoke))
        .route("/__mock/advance", post(admin_advance))
        .route("/__mock/rename-campaign", post(admin_rename))
        .route("/__mock/invalidate-creative", post(admin_invalidate))
        .fallback(unknown_path)
        .method_not_allowed_fallback(unknown_path)
        .with_state(shared)
}

/// What AWS API Gateway, in front of Rokt's API, answers for a path (or a method on a path) it
/// does not know: 403 `{"message": "Missing Authentication Token"}`, with or without a token,
/// rather than 404. The admin API is not behind a gateway: an unknown admin path is 404.
async fn unknown_path(uri: axum::http::Uri) -> Response {
    if uri.path().starts_with("/__mock/") {
        message(StatusCode::NOT_FOUND, "Not Found")
    } else {
        message(StatusCode::FORBIDDEN, MISSING_AUTHENTICATION_TOKEN)
    }
}

/// The gateway's message for an unknown path or method.
pub const MISSING_AUTHENTICATION_TOKEN: &str = "Missing Authentication Token";

async fn admin_state(State(shared): State<SharedRef>) -> Response {
    json_response(
        StatusCode::OK,
        serde_json::json!({
            "today": shared.today().to_string(),
            "days_advanced": shared.days_advanced.load(Ordering::SeqCst),
            "accounts": shared.config.accounts,
        })
        .to_string(),
    )
}

async fn admin_faults(State(shared): State<SharedRef>) -> Response {
    json_response(
        StatusCode::OK,
        serde_json::to_string(&shared.faults()).unwrap_or_default(),
    )
}

async fn admin_set_faults(State(shared): State<SharedRef>, body: Bytes) -> Response {
    match serde_json::from_slice::<Faults>(&body) {
        Ok(f) => {
            shared.set_faults(f);
            admin_faults(State(shared)).await
        }
        Err(e) => message(
            StatusCode::BAD_REQUEST,
            &format!("not a faults object: {e}"),
        ),
    }
}

async fn admin_counters(State(shared): State<SharedRef>) -> Response {
    json_response(
        StatusCode::OK,
        serde_json::to_string(&shared.counters.snapshot()).unwrap_or_default(),
    )
}

async fn admin_reset(State(shared): State<SharedRef>) -> StatusCode {
    shared.counters.reset();
    StatusCode::NO_CONTENT
}

async fn admin_revoke(State(shared): State<SharedRef>) -> StatusCode {
    shared.tokens.revoke_all();
    StatusCode::NO_CONTENT
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Rename {
    account_id: String,
    campaign_id: String,
    name: String,
}

async fn admin_rename(State(shared): State<SharedRef>, body: Bytes) -> Response {
    match serde_json::from_slice::<Rename>(&body) {
        Ok(r)
            if shared
                .change_catalog(|c| c.rename_campaign(&r.account_id, &r.campaign_id, &r.name)) =>
        {
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(r) => message(
            StatusCode::NOT_FOUND,
            &format!("no campaign {} in account {}", r.campaign_id, r.account_id),
        ),
        Err(e) => message(
            StatusCode::BAD_REQUEST,
            &format!("expected {{\"account_id\", \"campaign_id\", \"name\"}}: {e}"),
        ),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Invalidate {
    account_id: String,
    creative_id: String,
    from: NaiveDate,
}

async fn admin_invalidate(State(shared): State<SharedRef>, body: Bytes) -> Response {
    match serde_json::from_slice::<Invalidate>(&body) {
        Ok(i)
            if shared.change_catalog(|c| {
                c.invalidate_creative(&i.account_id, &i.creative_id, i.from)
            }) =>
        {
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(i) => message(
            StatusCode::NOT_FOUND,
            &format!("no creative {} in account {}", i.creative_id, i.account_id),
        ),
        Err(e) => message(
            StatusCode::BAD_REQUEST,
            &format!("expected {{\"account_id\", \"creative_id\", \"from\": \"YYYY-MM-DD\"}}: {e}"),
        ),
    }
}

#[derive(serde::Deserialize)]
struct AdvanceParams {
    days: Option<u32>,
}

async fn admin_advance(
    State(shared): State<SharedRef>,
    QueryParams(params): QueryParams<AdvanceParams>,
) -> Response {
    let today = shared.advance(params.days.unwrap_or(1));
    json_response(
        StatusCode::OK,
        serde_json::json!({ "today": today.to_string() }).to_string(),
    )
}

/// Accepts connections until `shutdown` fires (or its sender is dropped), then closes them all.
async fn serve(listener: TcpListener, shared: SharedRef, mut shutdown: oneshot::Receiver<()>) {
    let app = router(shared.clone());
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                // A failed accept (a peer that left, too many open files) concerns one connection.
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                let app = app.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        handle(shared.clone(), app.clone(), req)
                    });
                    // An error here is a client that went away or a dropped-connection fault.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.abort_all();
}

/// Returned instead of an answer to make hyper close the connection: the dropped-connection fault.
#[derive(Debug)]
struct DroppedConnection;

impl fmt::Display for DroppedConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for DroppedConnection {}

/// Counts the request, injects faults on API paths, and otherwise lets the router answer.
async fn handle(
    shared: SharedRef,
    app: Router,
    request: Request<Incoming>,
) -> Result<Response, DroppedConnection> {
    let path = request.uri().path();
    if path.starts_with("/__mock/") {
        return Ok(route(app, request).await);
    }
    if path == TOKEN_PATH {
        shared.counters.token_request();
        return Ok(route(app, request).await);
    }
    let _in_flight = shared.counters.api_request();
    let faults = shared.faults();
    let n = shared.fault_sequence.fetch_add(1, Ordering::SeqCst) + 1;
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    let response = match faults.pick(n) {
        Some(Injected::Drop) => {
            shared.counters.answered(0);
            return Err(DroppedConnection);
        }
        Some(Injected::TooManyRequests { retry_after_secs }) => {
            shared
                .counters
                .pause_announced(Duration::from_secs(retry_after_secs));
            let mut r = message(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            r
        }
        Some(Injected::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            message(
                status,
                status.canonical_reason().unwrap_or("Internal Server Error"),
            )
        }
        Some(Injected::Malformed) => json_response(
            StatusCode::OK,
            "{\"data\":[{\"campaign_id\":\"1\",\"impressions\":12,".into(),
        ),
        Some(Injected::Revoke) => {
            shared.tokens.revoke_all();
            route(app, request).await
        }
        None => route(app, request).await,
    };
    shared.counters.answered(response.status().as_u16());
    Ok(response)
}

async fn route(app: Router, request: Request<Incoming>) -> Response {
    use tower::ServiceExt as _;
    match app.oneshot(request).await {
        Ok(response) => response.into_response(),
        Err(never) => match never {},
    }
}
