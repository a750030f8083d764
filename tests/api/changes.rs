//! Numbers that stay right when Rokt's data changes (issue 15): campaigns renamed, rows that
//! vanish, answers without rows, tables made when names were part of the key, each account in its
//! own zone and currency, an API that refuses an `endDate` in the future, a process killed while a
//! window deletes. Real Postgres (and SQLite), the simulated API over HTTP.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{Days, NaiveDate, Utc};
use rokt_export::api::ApiClient;
use rokt_export::config::{Config, Env};
use rokt_export::export::{self, Context, DayRange, NoProgress, RunRequest, RunResult};
use rokt_export::mock::{Faults, MockConfig, MockServer, NoData};
use rokt_export::store::{Store, Trigger};
use sqlx::Row as _;

use crate::helpers::{TestDb, config_file, run_binary};

const US: &str = "3141592";
const AU: &str = "2718281";

/// Campaigns and creatives, a name beside each id: the grain is (campaign_id, creative_id). Each
/// account in its own zone and currency (no `timezone`/`currency`).
const CREATIVES: &str = r#"
[defaults]
lookback_days = 7
window_days = 10

[[jobs]]
name = "creative_daily"
schedule = "15 5 * * *"
accounts = ["3141592", "2718281"]
report = "campaigns"
dimensions = ["campaign_id", "campaign_name", "creative_id", "creative_name"]
metrics = ["impressions", "referrals", "gross_cost", "acquisitions"]
"#;

const METRICS: [&str; 4] = ["impressions", "referrals", "gross_cost", "acquisitions"];

fn days_ago(n: u64) -> NaiveDate {
    Utc::now()
        .date_naive()
        .checked_sub_days(Days::new(n))
        .unwrap()
}

struct Pipeline {
    mock: MockServer,
    ctx: Context,
}

async fn pipeline(toml: &str, database_url: &str) -> Pipeline {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    pipeline_on(mock, toml, database_url).await
}

/// A pipeline on a simulated API already started (to read its campaigns for the job first).
async fn pipeline_on(mock: MockServer, toml: &str, database_url: &str) -> Pipeline {
    rokt_export::tls::install_crypto_provider();
    let env = Env::default()
        .with("DATABASE_URL", database_url)
        .with("ROKT_API_BASE_URL", &mock.base_url());
    let config = Config::from_toml(std::path::Path::new("jobs.toml"), toml, &env).unwrap();
    let store = Store::connect(&config.database).await.unwrap();
    store.migrate().await.unwrap();
    let api = ApiClient::new(&config.api, mock.credentials()).unwrap();
    Pipeline {
        mock,
        ctx: Context::new(Arc::new(config), api, store),
    }
}

fn between(job: &str, from: NaiveDate, to: NaiveDate) -> RunRequest {
    let mut r = RunRequest::new(job, Trigger::RunNow);
    r.range = DayRange::Explicit {
        from: Some(from),
        to: Some(to),
    };
    r
}

async fn run(p: &Pipeline, request: &RunRequest) -> RunResult {
    let result = export::run_job(&p.ctx, request, &NoProgress).await.unwrap();
    assert!(result.succeeded(), "{result:?}");
    result
}

/// A decimal as an exact number of millionths.
fn micros(s: &str) -> i128 {
    let s = s.trim_matches('"');
    let (neg, s) = s.strip_prefix('-').map_or((false, s), |r| (true, r));
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let mut frac = frac.to_owned();
    frac.truncate(6);
    while frac.len() < 6 {
        frac.push('0');
    }
    let v = int.parse::<i128>().unwrap() * 1_000_000 + frac.parse::<i128>().unwrap();
    if neg { -v } else { v }
}

/// What the simulated API answers for `dims` over `[from, to]`, per (account, day): each metric's
/// sum in millionths, and the rows; in each account's own zone and currency.
fn api_days(
    mock: &MockServer,
    dims: &[&str],
    from: NaiveDate,
    to: NaiveDate,
) -> BTreeMap<(String, String), (Vec<i128>, usize)> {
    let dims: Vec<String> = dims.iter().map(|d| (*d).to_owned()).collect();
    let metrics: Vec<String> = METRICS.iter().map(|m| (*m).to_owned()).collect();
    let mut out: BTreeMap<(String, String), (Vec<i128>, usize)> = BTreeMap::new();
    for account in [US, AU] {
        for row in mock.query_rows(
            account,
            "campaigns",
            &dims,
            &metrics,
            from,
            to.succ_opt().unwrap(),
            true,
        ) {
            let day = row["datetime"].as_str().unwrap()[..10].to_owned();
            let entry = out
                .entry((account.to_owned(), day))
                .or_insert((vec![0; METRICS.len()], 0));
            for (i, m) in METRICS.iter().enumerate() {
                entry.0[i] += micros(&row[*m].to_string());
            }
            entry.1 += 1;
        }
    }
    out
}

/// Which database a test body runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Postgres,
    Sqlite,
}

/// A test's own database: a Postgres database (dropped with it) or a SQLite file in a temporary
/// directory.
enum Db {
    Postgres(TestDb),
    Sqlite {
        _dir: tempfile::TempDir,
        url: String,
    },
}

/// A pool on a test's database, to look at what the export left.
enum Pool {
    Postgres(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
}

impl Db {
    async fn new(kind: Kind) -> Db {
        match kind {
            Kind::Postgres => Db::Postgres(TestDb::new().await),
            Kind::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("rokt.db").display());
                Db::Sqlite { _dir: dir, url }
            }
        }
    }

    fn url(&self) -> &str {
        match self {
            Db::Postgres(db) => &db.url,
            Db::Sqlite { url, .. } => url,
        }
    }

    /// The Postgres database (for the tests that run there only).
    fn pg(&self) -> &TestDb {
        match self {
            Db::Postgres(db) => db,
            Db::Sqlite { .. } => panic!("a Postgres test on SQLite"),
        }
    }

    /// `name` as SQL on this database names it: in the store's schema on Postgres.
    fn table(&self, name: &str) -> String {
        match self {
            Db::Postgres(_) => format!("rokt.{name}"),
            Db::Sqlite { .. } => name.to_owned(),
        }
    }

    async fn pool(&self) -> Pool {
        match self {
            Db::Postgres(db) => Pool::Postgres(db.pool().await),
            Db::Sqlite { url, .. } => Pool::Sqlite(sqlx::SqlitePool::connect(url).await.unwrap()),
        }
    }
}

impl Pool {
    async fn scalar(&self, sql: &str) -> i64 {
        match self {
            Pool::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
            Pool::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
        }
    }

    /// Every row of `sql`'s answer, each column read as text (`CAST(... AS TEXT)` them).
    async fn texts(&self, sql: &str, columns: usize) -> Vec<Vec<String>> {
        match self {
            Pool::Postgres(p) => sqlx::query(sql)
                .fetch_all(p)
                .await
                .unwrap()
                .iter()
                .map(|r| (0..columns).map(|i| r.get(i)).collect())
                .collect(),
            Pool::Sqlite(p) => sqlx::query(sql)
                .fetch_all(p)
                .await
                .unwrap()
                .iter()
                .map(|r| (0..columns).map(|i| r.get(i)).collect())
                .collect(),
        }
    }

    async fn execute(&self, sql: &str) {
        match self {
            Pool::Postgres(p) => {
                sqlx::raw_sql(sql).execute(p).await.unwrap();
            }
            Pool::Sqlite(p) => {
                sqlx::raw_sql(sql).execute(p).await.unwrap();
            }
        }
    }

    async fn close(self) {
        match self {
            Pool::Postgres(p) => p.close().await,
            Pool::Sqlite(p) => p.close().await,
        }
    }
}

/// The same per (account, day) from a job table, on either database (each row's numbers read as
/// text and added exactly here: SQLite's `sum` is a float's).
async fn table_days(
    db: &Db,
    table: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> BTreeMap<(String, String), (Vec<i128>, usize)> {
    let pool = db.pool().await;
    let metrics: Vec<String> = METRICS
        .iter()
        .map(|m| format!("CAST({m} AS TEXT)"))
        .collect();
    let sql = format!(
        "SELECT account_id, CAST(date AS TEXT), {} FROM {} WHERE date BETWEEN '{from}' AND '{to}'",
        metrics.join(", "),
        db.table(table),
    );
    let rows = pool.texts(&sql, 2 + METRICS.len()).await;
    pool.close().await;
    let mut out: BTreeMap<(String, String), (Vec<i128>, usize)> = BTreeMap::new();
    for row in rows {
        let entry = out
            .entry((row[0].clone(), row[1].clone()))
            .or_insert((vec![0; METRICS.len()], 0));
        for i in 0..METRICS.len() {
            entry.0[i] += micros(&row[2 + i]);
        }
        entry.1 += 1;
    }
    out
}

async fn scalar(db: &Db, sql: &str) -> i64 {
    let pool = db.pool().await;
    let v = pool.scalar(sql).await;
    pool.close().await;
    v
}

/// Counts the `DELETE` statements run on a Postgres table from now on (a statement-level trigger,
/// which fires once per statement, also one that deletes nothing): read them with
/// [`delete_statements`].
async fn count_delete_statements(db: &Db, table: &str) {
    let pool = db.pool().await;
    pool.execute(&format!(
        "CREATE TABLE public.delete_statements (n bigint NOT NULL); \
         INSERT INTO public.delete_statements VALUES (0); \
         CREATE FUNCTION public.count_delete_statement() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN UPDATE public.delete_statements SET n = n + 1; RETURN NULL; END $$; \
         CREATE TRIGGER count_delete_statements AFTER DELETE ON {} \
         FOR EACH STATEMENT EXECUTE FUNCTION public.count_delete_statement();",
        db.table(table)
    ))
    .await;
    pool.close().await;
}

async fn delete_statements(db: &Db) -> i64 {
    scalar(db, "SELECT n FROM public.delete_statements").await
}

async fn primary_key(db: &Db, table: &str) -> Vec<String> {
    let pool = db.pg().pool().await;
    let key: Vec<String> = sqlx::query_scalar(
        "SELECT a.attname::text FROM pg_constraint c \
         JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey) \
         WHERE c.conrelid = to_regclass($1) AND c.contype = 'p' \
         ORDER BY array_position(c.conkey, a.attnum)",
    )
    .bind(format!("rokt.{table}"))
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    key
}

const CREATIVE_DIMS: [&str; 4] = [
    "campaign_id",
    "campaign_name",
    "creative_id",
    "creative_name",
];

/// Renames and restated conversions: rows change, none vanishes. On Postgres, also that no
/// `DELETE` statement is sent for it.
async fn a_rename_leaves_one_row_per_grain(kind: Kind) {
    let db = Db::new(kind).await;
    let p = pipeline(CREATIVES, db.url()).await;
    let (from, to) = (days_ago(20), days_ago(1));
    run(&p, &between("creative_daily", from, to)).await;
    if kind == Kind::Postgres {
        assert_eq!(
            primary_key(&db, "creative_daily").await,
            ["account_id", "date", "campaign_id", "creative_id"],
            "names are not part of the key"
        );
        count_delete_statements(&db, "creative_daily").await;
    }

    // Two campaigns renamed: a live report shows the new name on every day, past days included.
    // And a day passes: the last week's conversions are restated.
    let campaigns = p.mock.campaign_ids(US);
    for (i, id) in campaigns.iter().take(2).enumerate() {
        assert!(
            p.mock
                .rename_campaign(US, id, &format!("Renamed {i} \"again\""))
        );
    }
    p.mock.advance_time(1);
    let table = db.table("creative_daily");
    let restated_before = scalar(
        &db,
        &format!(
            "SELECT count(*) FROM {table} WHERE date >= '{}' AND campaign_id NOT IN ('{}', '{}')",
            days_ago(7),
            campaigns[0],
            campaigns[1]
        ),
    )
    .await;
    let again = run(&p, &between("creative_daily", from, to)).await;
    assert!(
        again.rows_written() > u64::try_from(restated_before).unwrap() / 2,
        "the renamed and the restated rows were rewritten: {} written",
        again.rows_written()
    );
    assert_eq!(again.rows_deleted(), 0);
    if kind == Kind::Postgres {
        assert_eq!(
            delete_statements(&db).await,
            0,
            "rows changed, none vanished: no DELETE was sent"
        );
    }

    let duplicates = scalar(
        &db,
        &format!(
            "SELECT count(*) FROM (SELECT 1 FROM {table} \
             GROUP BY account_id, date, campaign_id, creative_id HAVING count(*) > 1) d"
        ),
    )
    .await;
    assert_eq!(duplicates, 0);
    assert_eq!(
        table_days(&db, "creative_daily", from, to).await,
        api_days(&p.mock, &CREATIVE_DIMS, from, to),
        "per account and day: every metric's sum and the row count equal the API's"
    );
    let old_name = scalar(
        &db,
        &format!(
            "SELECT count(*) FROM {table} WHERE campaign_id = '{}' \
             AND campaign_name NOT LIKE 'Renamed 0%'",
            campaigns[0]
        ),
    )
    .await;
    assert_eq!(old_name, 0, "every day shows the new name");
    p.mock.stop().await;
}

#[tokio::test]
async fn a_rename_leaves_one_row_per_grain_and_sums_equal_the_apis() {
    a_rename_leaves_one_row_per_grain(Kind::Postgres).await;
}

#[tokio::test]
async fn on_sqlite_a_rename_leaves_one_row_per_grain_too() {
    a_rename_leaves_one_row_per_grain(Kind::Sqlite).await;
}

/// A creative invalidated: its rows of the re-read days are deleted, exactly those, and counted.
/// On Postgres, also that one `DELETE` statement does it (one window of one account lost rows).
async fn vanished_rows_are_deleted(kind: Kind) {
    let db = Db::new(kind).await;
    let p = pipeline(CREATIVES, db.url()).await;
    let (from, to) = (days_ago(20), days_ago(1));
    run(&p, &between("creative_daily", from, to)).await;
    let table = db.table("creative_daily");
    let creative = p.mock.creative_ids(US)[3].clone();
    let invalid_from = days_ago(6);
    let vanishing = format!(
        "SELECT count(*) FROM {table} WHERE account_id = '{US}' \
         AND creative_id = '{creative}' AND date >= '{invalid_from}'"
    );
    let others = format!(
        "SELECT count(*) FROM {table} WHERE NOT (account_id = '{US}' \
         AND creative_id = '{creative}' AND date >= '{invalid_from}')"
    );
    let before = scalar(&db, &vanishing).await;
    let others_before = scalar(&db, &others).await;
    assert!(before > 0);
    if kind == Kind::Postgres {
        count_delete_statements(&db, "creative_daily").await;
    }
    assert!(p.mock.invalidate_creative(US, &creative, invalid_from));

    // One window per account (9 days, window_days = 10): the US one lost rows, the AU one none.
    let recent = run(&p, &between("creative_daily", days_ago(9), to)).await;
    assert_eq!(recent.rows_deleted(), u64::try_from(before).unwrap());
    assert_eq!(scalar(&db, &vanishing).await, 0);
    assert_eq!(
        scalar(&db, &others).await,
        others_before,
        "no other row was deleted"
    );
    if kind == Kind::Postgres {
        assert_eq!(
            delete_statements(&db).await,
            1,
            "one DELETE, by the US window"
        );
    }
    let recorded = scalar(
        &db,
        &format!(
            "SELECT CAST(coalesce(sum(rows_deleted), 0) AS BIGINT) FROM {}",
            db.table("export_runs")
        ),
    )
    .await;
    assert_eq!(recorded, before, "export_runs.rows_deleted counts them");
    assert_eq!(
        table_days(&db, "creative_daily", from, to).await,
        api_days(&p.mock, &CREATIVE_DIMS, from, to)
    );
    // An unchanged re-read deletes nothing, writes nothing and sends no DELETE.
    let same = run(&p, &between("creative_daily", days_ago(9), to)).await;
    assert_eq!((same.rows_written(), same.rows_deleted()), (0, 0));
    if kind == Kind::Postgres {
        assert_eq!(delete_statements(&db).await, 1, "no further DELETE");
    }
    p.mock.stop().await;
}

#[tokio::test]
async fn rows_the_api_no_longer_has_are_deleted_and_counted() {
    vanished_rows_are_deleted(Kind::Postgres).await;
}

#[tokio::test]
async fn on_sqlite_rows_the_api_no_longer_has_are_deleted_and_counted_too() {
    vanished_rows_are_deleted(Kind::Sqlite).await;
}

#[tokio::test]
async fn fingerprints_of_the_old_layout_are_rewritten_once_and_only_vanished_rows_go() {
    let db = Db::new(Kind::Postgres).await;
    let p = pipeline(CREATIVES, db.url()).await;
    let (from, to) = (days_ago(9), days_ago(1));
    run(&p, &between("creative_daily", from, to)).await;
    // What a release before the key half left: fingerprints that carry no key (random ones
    // stand for them: an old fingerprint's high half is no key's hash either).
    let pool = db.pg().pool().await;
    sqlx::query("UPDATE rokt.creative_daily SET _row_hash = md5(random()::text)::uuid")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE public.old_hashes AS SELECT _row_hash FROM rokt.creative_daily")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    count_delete_statements(&db, "creative_daily").await;
    let creative = p.mock.creative_ids(US)[1].clone();
    let vanishing = format!(
        "SELECT count(*) FROM rokt.creative_daily WHERE account_id = '{US}' \
         AND creative_id = '{creative}' AND date >= '{}'",
        days_ago(4)
    );
    let rows = "SELECT count(*) FROM rokt.creative_daily";
    let (gone, total) = (scalar(&db, &vanishing).await, scalar(&db, rows).await);
    assert!(gone > 0);
    assert!(p.mock.invalidate_creative(US, &creative, days_ago(4)));

    let upgraded = run(&p, &between("creative_daily", from, to)).await;
    assert_eq!(
        upgraded.rows_written(),
        0,
        "values unchanged: rewriting a fingerprint is no write"
    );
    assert_eq!(upgraded.rows_deleted(), u64::try_from(gone).unwrap());
    assert_eq!(scalar(&db, &vanishing).await, 0);
    assert_eq!(
        scalar(&db, rows).await,
        total - gone,
        "no other row deleted"
    );
    let old_left = scalar(
        &db,
        "SELECT count(*) FROM rokt.creative_daily WHERE _row_hash IN \
         (SELECT _row_hash FROM public.old_hashes)",
    )
    .await;
    assert_eq!(
        old_left, 0,
        "every row left has a fingerprint of the new layout"
    );
    assert_eq!(
        delete_statements(&db).await,
        2,
        "the first re-read cannot tell: one DELETE per window (one per account)"
    );

    let again = run(&p, &between("creative_daily", from, to)).await;
    assert_eq!((again.rows_written(), again.rows_deleted()), (0, 0));
    assert_eq!(delete_statements(&db).await, 2, "from then on, none");
    p.mock.stop().await;
}

/// Answers without rows keep the days (with a warning on the run) unless `allow_empty`.
async fn an_answer_without_rows_keeps_the_days(kind: Kind) {
    let db = Db::new(kind).await;
    let p = pipeline(CREATIVES, db.url()).await;
    let (from, to) = (days_ago(12), days_ago(1));
    run(&p, &between("creative_daily", from, to)).await;
    let rows = format!("SELECT count(*) FROM {}", db.table("creative_daily"));
    let before = scalar(&db, &rows).await;

    for shape in [NoData::Missing, NoData::Null] {
        p.mock.set_faults(Faults {
            answers_without_data: Some(shape),
            ..Faults::default()
        });
        let empty = run(&p, &between("creative_daily", from, to)).await;
        assert_eq!(scalar(&db, &rows).await, before, "{shape:?}: rows kept");
        assert_eq!(empty.rows_deleted(), 0);
        assert_eq!(empty.empty_answers(), 4, "two windows of two accounts");
        assert!(
            empty.warnings().iter().all(|w| w.contains("no rows")),
            "{:?}",
            empty.warnings()
        );
    }
    let warned = scalar(
        &db,
        &format!(
            "SELECT count(*) FROM {} WHERE warnings LIKE '%no rows%'",
            db.table("export_runs")
        ),
    )
    .await;
    assert_eq!(warned, 8, "recorded on each run");

    // Told so, an empty answer empties its days, and only those.
    let earlier = format!(
        "SELECT count(*) FROM {} WHERE date < '{}'",
        db.table("creative_daily"),
        days_ago(3)
    );
    let earlier_before = scalar(&db, &earlier).await;
    let mut emptying = between("creative_daily", days_ago(3), to);
    emptying.allow_empty = true;
    let emptied = run(&p, &emptying).await;
    assert_eq!(
        emptied.rows_deleted(),
        u64::try_from(before - earlier_before).unwrap()
    );
    let left = scalar(
        &db,
        &format!(
            "SELECT count(*) FROM {} WHERE date >= '{}'",
            db.table("creative_daily"),
            days_ago(3)
        ),
    )
    .await;
    assert_eq!(left, 0);
    assert_eq!(scalar(&db, &earlier).await, earlier_before);
    p.mock.stop().await;
}

#[tokio::test]
async fn an_answer_without_rows_keeps_the_days_unless_told_otherwise() {
    an_answer_without_rows_keeps_the_days(Kind::Postgres).await;
}

#[tokio::test]
async fn on_sqlite_an_answer_without_rows_keeps_the_days_unless_told_otherwise_too() {
    an_answer_without_rows_keeps_the_days(Kind::Sqlite).await;
}

/// A generic job: one campaign's creative breakdown (a legacy endpoint), one day per window, so
/// its rows are keyed by account, `window_start` and the creative (`groupByValue`).
fn creative_breakdown(campaign: &str) -> String {
    format!(
        r#"
[[jobs]]
name = "creative_breakdown"
schedule = "0 6 * * *"
accounts = ["{US}"]
endpoint = "/reporting/accounts/{{account_id}}/campaigns/{campaign}/breakdown"
query = {{ dateStart = "{{start_date}}", dateEnd = "{{end_date}}", currency = "{{currency}}", timeZoneVariation = "{{timezone}}", groupby = "creative" }}
records = "/data/items"
key = ["groupByValue"]
window_days = 1
"#
    )
}

#[tokio::test]
async fn a_generic_job_replaces_each_window_start_and_keeps_a_day_answered_empty() {
    let db = Db::new(Kind::Postgres).await;
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let (from, to) = (days_ago(4), days_ago(1));
    // The US campaign with the most creatives over those days.
    let dims = ["campaign_id".to_owned(), "creative_id".to_owned()];
    let mut creatives: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for row in mock.query_rows(
        US,
        "campaigns",
        &dims,
        &["impressions".to_owned()],
        from,
        to.succ_opt().unwrap(),
        true,
    ) {
        let id = |k: &str| row[k].as_str().unwrap().to_owned();
        creatives
            .entry(id("campaign_id"))
            .or_default()
            .insert(id("creative_id"));
    }
    let (campaign, its) = creatives
        .iter()
        .max_by_key(|(_, c)| c.len())
        .map(|(id, c)| (id.clone(), c.iter().cloned().collect::<Vec<_>>()))
        .unwrap();
    assert!(its.len() >= 2, "{campaign} has {its:?}");
    let p = pipeline_on(mock, &creative_breakdown(&campaign), db.url()).await;
    let first = run(&p, &between("creative_breakdown", from, to)).await;
    assert_eq!(first.windows.len(), 4, "one window per day");
    count_delete_statements(&db, "creative_breakdown").await;
    let table = db.table("creative_breakdown");
    let all = format!("SELECT count(*) FROM {table}");
    let total = scalar(&db, &all).await;

    // One creative invalidated from two days ago: gone from the windows of those two days.
    let (gone, invalid_from) = (&its[0], days_ago(2));
    let vanishing = format!(
        "SELECT count(*) FROM {table} WHERE account_id = '{US}' AND group_by_value = '{gone}' \
         AND window_start >= '{invalid_from}'"
    );
    let before = scalar(&db, &vanishing).await;
    let days = scalar(
        &db,
        &format!(
            "SELECT count(DISTINCT window_start) FROM {table} WHERE group_by_value = '{gone}' \
             AND window_start >= '{invalid_from}'"
        ),
    )
    .await;
    assert!(before > 0 && days > 0);
    assert!(p.mock.invalidate_creative(US, gone, invalid_from));
    let again = run(&p, &between("creative_breakdown", from, to)).await;
    assert_eq!(again.rows_deleted(), u64::try_from(before).unwrap());
    assert_eq!(scalar(&db, &vanishing).await, 0);
    assert_eq!(
        scalar(&db, &all).await,
        total - before,
        "no other row was deleted: the creative's earlier days stay"
    );
    assert_eq!(
        delete_statements(&db).await,
        days,
        "one DELETE per window (account and window_start) that lost a row, none for the others"
    );

    // Every creative of the campaign invalidated from yesterday: that day's answer has no
    // items at all, which is taken for a hiccup: its rows are kept, with a warning.
    let last = format!("SELECT count(*) FROM {table} WHERE window_start = '{to}'");
    let kept = scalar(&db, &last).await;
    assert!(kept > 0);
    for creative in &its[1..] {
        assert!(p.mock.invalidate_creative(US, creative, to));
    }
    let empty = run(&p, &between("creative_breakdown", to, to)).await;
    assert_eq!(empty.rows_deleted(), 0);
    assert_eq!(empty.empty_answers(), 1);
    assert!(
        empty.warnings().iter().any(|w| w.contains("no rows")),
        "{:?}",
        empty.warnings()
    );
    assert_eq!(scalar(&db, &last).await, kept, "rows kept");
    assert_eq!(delete_statements(&db).await, days, "no DELETE sent");
    let warned = scalar(
        &db,
        &format!(
            "SELECT count(*) FROM {} WHERE job = 'creative_breakdown' AND window_start = '{to}' \
             AND warnings LIKE '%no rows%'",
            db.table("export_runs")
        ),
    )
    .await;
    assert_eq!(warned, 1, "recorded on the run");
    p.mock.stop().await;
}

/// A job whose key still holds the campaign's name, as every table made before the grain key.
const NAMED_KEY: &str = r#"
[[jobs]]
name = "campaign_daily"
schedule = "15 5 * * *"
accounts = ["3141592"]
report = "campaigns"
timezone = "UTC"
currency = "USD"
dimensions = ["campaign_id", "campaign_name"]
key = ["campaign_id", "campaign_name"]
metrics = ["impressions", "acquisitions"]
"#;

/// What the release before the grain key left behind after a rename: besides each row of
/// `campaign`'s last four days, a twin under its old name, loaded earlier.
fn old_twins_sql(table: &str, campaign: &str, since: NaiveDate, older: &str) -> String {
    format!(
        "INSERT INTO {table} (account_id, date, campaign_id, campaign_name, impressions, \
         acquisitions, currency, timezone, _extra, _run_id, _loaded_at, _row_hash) \
         SELECT account_id, date, campaign_id, 'Its Old Name', impressions + 1, acquisitions, \
         currency, timezone, _extra, _run_id, {older}, NULL FROM {table} \
         WHERE campaign_id = '{campaign}' AND date >= '{since}'"
    )
}

#[tokio::test]
async fn a_table_keyed_on_names_is_brought_to_its_grain_keeping_the_newest_rows() {
    let db = Db::new(Kind::Postgres).await;
    let (from, to) = (days_ago(10), days_ago(1));
    let old = pipeline(NAMED_KEY, db.url()).await;
    run(&old, &between("campaign_daily", from, to)).await;
    assert_eq!(
        primary_key(&db, "campaign_daily").await,
        ["account_id", "date", "campaign_id", "campaign_name"]
    );
    let renamed = old.mock.campaign_ids(US)[1].clone();
    old.mock.stop().await;
    let pool = db.pg().pool().await;
    let sql = old_twins_sql(
        "rokt.campaign_daily",
        &renamed,
        days_ago(4),
        "_loaded_at - interval '1 day'",
    );
    sqlx::query(&sql).execute(&pool).await.unwrap();
    pool.close().await;
    let total = scalar(&db, "SELECT count(*) FROM rokt.campaign_daily").await;
    let grains = scalar(
        &db,
        "SELECT count(*) FROM (SELECT DISTINCT account_id, date, campaign_id \
         FROM rokt.campaign_daily) g",
    )
    .await;
    assert_eq!(total - grains, 4, "four days hold the campaign twice");

    // The new release: the job's key is its grain; the first run upgrades the table.
    let grain_job = NAMED_KEY.replace("key = [\"campaign_id\", \"campaign_name\"]\n", "");
    let new = pipeline(&grain_job, db.url()).await;
    run(&new, &between("campaign_daily", to, to)).await;
    assert_eq!(
        primary_key(&db, "campaign_daily").await,
        ["account_id", "date", "campaign_id"]
    );
    assert_eq!(
        scalar(&db, "SELECT count(*) FROM rokt.campaign_daily").await,
        grains,
        "one row per grain, none without a twin lost"
    );
    let old_names = scalar(
        &db,
        "SELECT count(*) FROM rokt.campaign_daily WHERE campaign_name = 'Its Old Name'",
    )
    .await;
    assert_eq!(old_names, 0, "of two rows of a grain, the newest was kept");
    // A name may be NULL now that it is an ordinary column.
    let nullable = scalar(
        &db,
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'rokt' \
         AND table_name = 'campaign_daily' AND column_name = 'campaign_name' AND is_nullable = 'YES'",
    )
    .await;
    assert_eq!(nullable, 1);
    new.mock.stop().await;
}

#[tokio::test]
async fn on_sqlite_a_table_keyed_on_names_is_brought_to_its_grain_too() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("rokt.db").display());
    let (from, to) = (days_ago(6), days_ago(1));
    let old = pipeline(NAMED_KEY, &url).await;
    run(&old, &between("campaign_daily", from, to)).await;
    let renamed = old.mock.campaign_ids(US)[0].clone();
    old.ctx.store.close().await;
    old.mock.stop().await;
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let sql = old_twins_sql(
        "campaign_daily",
        &renamed,
        days_ago(4),
        "'2000-01-01T00:00:00+00:00'",
    );
    sqlx::query(&sql).execute(&pool).await.unwrap();
    let count = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let grains = count(
        "SELECT count(*) FROM (SELECT DISTINCT account_id, date, campaign_id FROM campaign_daily)",
    )
    .await;
    assert_eq!(
        count("SELECT count(*) FROM campaign_daily").await,
        grains + 4
    );

    let grain_job = NAMED_KEY.replace("key = [\"campaign_id\", \"campaign_name\"]\n", "");
    let new = pipeline(&grain_job, &url).await;
    run(&new, &between("campaign_daily", to, to)).await;
    assert_eq!(count("SELECT count(*) FROM campaign_daily").await, grains);
    assert_eq!(
        count("SELECT count(*) FROM campaign_daily WHERE campaign_name = 'Its Old Name'").await,
        0,
        "the newest row of each grain was kept"
    );
    new.mock.stop().await;
}

#[tokio::test]
async fn each_account_is_read_in_its_own_zone_and_currency() {
    let db = Db::new(Kind::Postgres).await;
    let p = pipeline(CREATIVES, db.url()).await;
    let (from, to) = (days_ago(12), days_ago(2));
    run(&p, &between("creative_daily", from, to)).await;
    let pool = db.pg().pool().await;
    let units: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT DISTINCT account_id, timezone, currency FROM rokt.creative_daily ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        units,
        [
            (AU.into(), "Australia/Sydney".into(), "AUD".into()),
            (US.into(), "America/New_York".into(), "USD".into()),
        ]
    );
    let state: Vec<(String, String, String)> =
        sqlx::query_as("SELECT account_id, timezone, currency FROM rokt.export_state ORDER BY 1")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(state, units, "the state remembers them");
    pool.close().await;
    let dims = [
        "campaign_id",
        "campaign_name",
        "creative_id",
        "creative_name",
    ];
    let api = api_days(&p.mock, &dims, from, to);
    assert_eq!(table_days(&db, "creative_daily", from, to).await, api);
    // Sydney's days are not UTC's: the same day asked in UTC and USD has other numbers.
    let utc = p.mock.query_rows_in(
        AU,
        "campaigns",
        &[],
        &["impressions".to_owned()],
        to,
        to.succ_opt().unwrap(),
        "UTC",
        "USD",
    );
    let utc_impressions = micros(&utc[0]["impressions"].to_string());
    assert_ne!(api[&(AU.to_owned(), to.to_string())].0[0], utc_impressions);
    p.mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_would_change_an_accounts_zone_is_refused_until_reloaded() {
    let db = Db::new(Kind::Postgres).await;
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let job = |units: &str| {
        format!(
            "[[jobs]]\nname = \"campaign_daily\"\nschedule = \"15 5 * * *\"\naccounts = [\"{AU}\"]\n\
             report = \"campaigns\"\ndimensions = [\"campaign_id\"]\nmetrics = [\"impressions\"]\n{units}"
        )
    };
    let env = |config: &std::path::Path| {
        vec![
            ("DATABASE_URL".to_owned(), db.url().to_owned()),
            ("ROKT_API_BASE_URL".to_owned(), mock.base_url()),
            ("ROKT_APP_ID".to_owned(), "demo-app-id".to_owned()),
            ("ROKT_APP_SECRET".to_owned(), "demo-app-secret".to_owned()),
            (
                "ROKT_EXPORT_CONFIG".to_owned(),
                config.display().to_string(),
            ),
        ]
    };
    let from = days_ago(5).to_string();
    let to = days_ago(1).to_string();
    let run_now = |config: &std::path::Path, extra: &[&str]| {
        let env = env(config);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut args = vec!["--run-now", "campaign_daily", "--from", &from, "--to", &to];
        args.extend_from_slice(extra);
        run_binary(&args, &env)
    };
    let (_dir, utc) = config_file(&job("timezone = \"UTC\"\ncurrency = \"USD\"\n"));
    let out = tokio::task::block_in_place(|| run_now(&utc, &[]));
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    // Without units the account's own would be read: Sydney and AUD, into a table of UTC and USD.
    let (_dir2, own) = config_file(&job(""));
    let out = tokio::task::block_in_place(|| run_now(&own, &[]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(78), "{stdout}\n{stderr}");
    let said = format!("{stdout}{stderr}");
    for needle in [
        "UTC and USD",
        "Australia/Sydney and AUD",
        "--reload",
        "another `table`",
    ] {
        assert!(said.contains(needle), "{needle} in {said}");
    }
    let mixed = scalar(
        &db,
        "SELECT count(DISTINCT timezone) FROM rokt.campaign_daily",
    )
    .await;
    assert_eq!(mixed, 1, "nothing was loaded");

    let out = tokio::task::block_in_place(|| run_now(&own, &["--reload"]));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let pool = db.pg().pool().await;
    let units: Vec<(String, String)> =
        sqlx::query_as("SELECT DISTINCT timezone, currency FROM rokt.campaign_daily")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(units, [("Australia/Sydney".into(), "AUD".into())]);
    pool.close().await;
    mock.stop().await;
}

#[tokio::test]
async fn an_api_that_refuses_a_future_end_date_gets_windows_ending_today() {
    let db = Db::new(Kind::Postgres).await;
    let toml = r#"
[[jobs]]
name = "campaign_daily"
schedule = "15 5 * * *"
accounts = ["3141592"]
report = "campaigns"
timezone = "UTC"
currency = "USD"
dimensions = ["campaign_id"]
metrics = ["impressions"]
window_days = 3
"#;
    let p = pipeline(toml, db.url()).await;
    p.mock.set_faults(Faults {
        refuse_future_end_date: true,
        ..Faults::default()
    });
    let today = Utc::now().date_naive();
    let result = run(&p, &between("campaign_daily", days_ago(5), today)).await;
    let last_day = scalar(
        &db,
        "SELECT (max(date) = current_date - 1)::int::bigint FROM rokt.campaign_daily",
    )
    .await;
    assert_eq!(last_day, 1, "up to yesterday");
    assert!(
        result.warnings().iter().any(|w| w.contains("future")),
        "{:?}",
        result.warnings()
    );
    // Remembered: the next run asks no future end at all.
    p.mock.reset_counters();
    run(&p, &between("campaign_daily", days_ago(1), today)).await;
    assert_eq!(
        p.mock.counters().api_requests_by_status.get(&400),
        None,
        "{:?}",
        p.mock.counters()
    );
    p.mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_killed_while_its_window_deletes_leaves_all_or_nothing() {
    let db = Db::new(Kind::Postgres).await;
    let toml = r#"
[[jobs]]
name = "creative_daily"
schedule = "15 5 * * *"
accounts = ["3141592"]
report = "campaigns"
timezone = "UTC"
currency = "USD"
dimensions = ["campaign_id", "creative_id"]
metrics = ["impressions", "acquisitions"]
"#;
    let p = pipeline(toml, db.url()).await;
    let (from, to) = (days_ago(6), days_ago(1));
    run(&p, &between("creative_daily", from, to)).await;
    let fingerprint = "SELECT count(*) || ':' || sum(impressions) || ':' || sum(acquisitions) \
                       FROM rokt.creative_daily";
    let pool = db.pg().pool().await;
    let before: String = sqlx::query_scalar(fingerprint)
        .fetch_one(&pool)
        .await
        .unwrap();

    // The next load both rewrites rows (conversions restated) and deletes some (a creative gone).
    p.mock.advance_time(1);
    let creative = p.mock.creative_ids(US)[2].clone();
    let vanishing_sql = format!(
        "SELECT count(*) FROM rokt.creative_daily WHERE creative_id = '{creative}' \
         AND date >= '{}'",
        days_ago(3)
    );
    let vanishing = scalar(&db, &vanishing_sql).await;
    assert!(vanishing > 0, "the creative has rows to lose");
    let rows = "SELECT count(*) FROM rokt.creative_daily";
    let rows_before = scalar(&db, rows).await;
    let state = "SELECT high_water_date::text || ' ' || updated_at::text FROM rokt.export_state";
    let state_before: String = sqlx::query_scalar(state).fetch_one(&pool).await.unwrap();
    assert!(p.mock.invalidate_creative(US, &creative, days_ago(3)));
    // Hold the rows that will be deleted, so the window's DELETE waits inside its transaction.
    let mut holder = pool.begin().await.unwrap();
    sqlx::query(
        "SELECT 1 FROM rokt.creative_daily WHERE creative_id = $1 AND date >= $2 FOR UPDATE",
    )
    .bind(&creative)
    .bind(days_ago(3))
    .fetch_all(&mut *holder)
    .await
    .unwrap();

    let (_dir, config) = config_file(toml);
    let mut child = std::process::Command::new(crate::helpers::binary())
        .args(["--config", config.to_str().unwrap()])
        .args([
            "--run-now",
            "creative_daily",
            "--from",
            &from.to_string(),
            "--to",
            &to.to_string(),
        ])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", db.url())
        .env("ROKT_API_BASE_URL", p.mock.base_url())
        .env("ROKT_APP_ID", "demo-app-id")
        .env("ROKT_APP_SECRET", "demo-app-secret")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let waiting = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                   AND wait_event_type = 'Lock' AND query LIKE 'DELETE FROM%'";
    let mut seen = false;
    for _ in 0..600 {
        let n: i64 = sqlx::query_scalar(waiting).fetch_one(&pool).await.unwrap();
        if n > 0 {
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(seen, "the window never reached its delete");
    // SIGKILL: no clean-up of any kind.
    child.kill().unwrap();
    let _ = child.wait();
    holder.rollback().await.unwrap();
    // The killed backend's transaction is rolled back by the server.
    for _ in 0..200 {
        let n: i64 = sqlx::query_scalar(waiting).fetch_one(&pool).await.unwrap();
        if n == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let after: String = sqlx::query_scalar(fingerprint)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        after, before,
        "neither the rewritten nor the deleted rows of the window"
    );
    let state_after: String = sqlx::query_scalar(state).fetch_one(&pool).await.unwrap();
    assert_eq!(state_after, state_before, "nor its state");
    let running = "SELECT count(*) FROM rokt.export_runs WHERE status = 'running'";
    assert_eq!(
        scalar(&db, running).await,
        1,
        "the killed window's run record, as it was started, and nothing recorded of its end"
    );
    let deleted_recorded = "SELECT coalesce(sum(rows_deleted), 0)::bigint FROM rokt.export_runs";
    assert_eq!(scalar(&db, deleted_recorded).await, 0);

    // The same window again, to the end: it would have changed the table, and now does.
    let env = [
        ("DATABASE_URL", db.url().to_owned()),
        ("ROKT_API_BASE_URL", p.mock.base_url()),
        ("ROKT_APP_ID", "demo-app-id".to_owned()),
        ("ROKT_APP_SECRET", "demo-app-secret".to_owned()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (from, to) = (from.to_string(), to.to_string());
    let config = config.to_str().unwrap();
    let args = [
        "--config",
        config,
        "--run-now",
        "creative_daily",
        "--from",
        &from,
        "--to",
        &to,
    ];
    let out = tokio::task::block_in_place(|| run_binary(&args, &env));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        scalar(&db, &vanishing_sql).await,
        0,
        "the creative's rows went"
    );
    assert_eq!(
        scalar(&db, rows).await,
        rows_before - vanishing,
        "and no other row"
    );
    assert_eq!(
        scalar(&db, deleted_recorded).await,
        vanishing,
        "export_runs counts them"
    );
    let rerun: String = sqlx::query_scalar(fingerprint)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_ne!(rerun, before, "rows deleted and conversions restated");
    assert_eq!(
        scalar(&db, running).await,
        0,
        "no run left running: the killed one is marked failed by the next run"
    );
    let abandoned = scalar(
        &db,
        "SELECT count(*) FROM rokt.export_runs WHERE status = 'failed' \
         AND error LIKE 'abandoned:%'",
    )
    .await;
    assert_eq!(abandoned, 1);
    pool.close().await;
    p.mock.stop().await;
}
