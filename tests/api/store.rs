//! The store against real databases: each case runs on Postgres (its own database from `TestDb`)
//! and on SQLite (a file in a temporary directory) through one generic function taking the `Env`.

use chrono::NaiveDate;
use rokt_export::config::{Backend, DatabaseConfig, DatabaseUrl};
use rokt_export::store::{
    Batch, ColumnData, ColumnSpec, ColumnType, NewRun, RunStatus, STALE_RUN_ERROR, StateUpdate,
    Store, StoreError, TableSpec, Trigger,
};
use sqlx::{Connection, PgConnection, Row, SqliteConnection};

use crate::helpers::TestDb;

/// A store plus a plain connection to read what landed, and what keeps the database alive.
struct Env {
    store: Store,
    config: DatabaseConfig,
    reader: Reader,
    _db: Option<TestDb>,
    _dir: Option<tempfile::TempDir>,
}

enum Reader {
    Pg(PgConnection),
    Sqlite(SqliteConnection),
}

const SCHEMA: &str = "rokt";

async fn pg_env() -> Env {
    pg_env_with_schema(SCHEMA).await
}

async fn pg_env_with_schema(schema: &str) -> Env {
    let db = TestDb::new().await;
    let config = DatabaseConfig::new(DatabaseUrl::parse(&db.url).unwrap(), schema);
    let store = Store::connect(&config).await.unwrap();
    store.migrate().await.unwrap();
    let mut conn = PgConnection::connect(&db.url).await.unwrap();
    sqlx::query(&format!("SET search_path TO \"{schema}\""))
        .execute(&mut conn)
        .await
        .unwrap();
    Env {
        store,
        config,
        reader: Reader::Pg(conn),
        _db: Some(db),
        _dir: None,
    }
}

async fn sqlite_env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("rokt export.db").display());
    let config = DatabaseConfig::new(DatabaseUrl::parse(&url).unwrap(), SCHEMA);
    let store = Store::connect(&config).await.unwrap();
    store.migrate().await.unwrap();
    let conn = SqliteConnection::connect(&url).await.unwrap();
    Env {
        store,
        config,
        reader: Reader::Sqlite(conn),
        _db: None,
        _dir: Some(dir),
    }
}

impl Env {
    /// Rows of `sql`, every column read as optional text (write `CAST(x AS TEXT)` for non-text).
    async fn rows(&mut self, sql: &str) -> Vec<Vec<Option<String>>> {
        fn decode<R: Row>(rows: Vec<R>) -> Vec<Vec<Option<String>>>
        where
            for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
            usize: sqlx::ColumnIndex<R>,
        {
            rows.iter()
                .map(|r| (0..r.len()).map(|i| r.try_get(i).unwrap()).collect())
                .collect()
        }
        match &mut self.reader {
            Reader::Pg(c) => decode(sqlx::query(sql).fetch_all(c).await.unwrap()),
            Reader::Sqlite(c) => decode(sqlx::query(sql).fetch_all(c).await.unwrap()),
        }
    }

    /// The column names of `table`, in order.
    async fn columns(&mut self, table: &str) -> Vec<String> {
        let sql = match self.reader {
            Reader::Pg(_) => format!(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = '{SCHEMA}' AND table_name = '{table}' ORDER BY ordinal_position"
            ),
            Reader::Sqlite(_) => format!("SELECT name FROM pragma_table_info('{table}')"),
        };
        self.rows(&sql)
            .await
            .into_iter()
            .map(|r| r[0].clone().unwrap())
            .collect()
    }

    async fn run(&self, job: &str) -> i64 {
        self.store
            .start_run(&new_run(job, "3141592"))
            .await
            .unwrap()
    }

    /// (status, rows_written, api_requests, error) of a run.
    async fn run_row(&mut self, id: i64) -> (String, i64, i64, Option<String>) {
        let rows = self
            .rows(&format!(
                "SELECT status, CAST(rows_written AS TEXT), CAST(api_requests AS TEXT), error \
                 FROM export_runs WHERE id = {id}"
            ))
            .await;
        let r = &rows[0];
        (
            r[0].clone().unwrap(),
            r[1].as_deref().unwrap().parse().unwrap(),
            r[2].as_deref().unwrap().parse().unwrap(),
            r[3].clone(),
        )
    }
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 1, d).unwrap()
}

fn new_run(job: &str, account: &str) -> NewRun {
    NewRun {
        job: job.into(),
        account_id: account.into(),
        window_start: day(1),
        window_end: day(7),
        trigger: Trigger::RunNow,
    }
}

fn state(job: &str, high_water: NaiveDate) -> StateUpdate {
    StateUpdate {
        job: job.into(),
        account_id: "3141592".into(),
        high_water: Some(high_water),
        timezone: "UTC".into(),
        currency: "USD".into(),
    }
}

/// A Query-API-like table: key (account_id, date, campaign_name).
fn campaign_spec() -> TableSpec {
    TableSpec {
        table: "campaign_daily".into(),
        columns: vec![
            ColumnSpec::new("account_id", ColumnType::Text),
            ColumnSpec::new("date", ColumnType::Date),
            ColumnSpec::new("campaign_name", ColumnType::Text),
            ColumnSpec::new("impressions", ColumnType::Numeric),
            ColumnSpec::new("active", ColumnType::Boolean),
            ColumnSpec::new("_extra", ColumnType::Json),
        ],
        key: vec!["account_id".into(), "date".into(), "campaign_name".into()],
        descriptive: Vec::new(),
    }
}

/// One row of `campaign_spec`.
struct Campaign<'a> {
    date: NaiveDate,
    name: Option<&'a str>,
    impressions: &'a str,
    extra: &'a str,
}

fn campaign_batch(rows: &[Campaign<'_>]) -> Batch {
    let s = |v: &str| Some(v.to_owned());
    Batch {
        columns: vec![
            ColumnData::Text(rows.iter().map(|_| s("3141592")).collect()),
            ColumnData::Date(rows.iter().map(|r| Some(r.date)).collect()),
            ColumnData::Text(rows.iter().map(|r| r.name.map(str::to_owned)).collect()),
            ColumnData::Numeric(rows.iter().map(|r| s(r.impressions)).collect()),
            ColumnData::Boolean(rows.iter().map(|_| Some(true)).collect()),
            ColumnData::Json(rows.iter().map(|r| s(r.extra)).collect()),
        ],
    }
}

fn c<'a>(d: u32, name: &'a str, impressions: &'a str) -> Campaign<'a> {
    Campaign {
        date: day(d),
        name: Some(name),
        impressions,
        extra: "{}",
    }
}

/// Loads `batch` in a run of its own and returns the rows written.
async fn load(env: &Env, spec: &TableSpec, batch: &Batch) -> u64 {
    let run = env.run("campaign_daily").await;
    env.store
        .commit_window(run, spec, batch, 1, None)
        .await
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// The cases, each run on both backends.

async fn migrate_twice_is_a_no_op(env: &mut Env) {
    env.store.migrate().await.unwrap();
    env.store.migrate().await.unwrap();
    assert_eq!(env.store.table_row_count("export_runs").await.unwrap(), 0);
    assert_eq!(env.store.table_row_count("export_state").await.unwrap(), 0);
    env.store.ping().await.unwrap();
    let migrations = env
        .rows("SELECT CAST(count(*) AS TEXT) FROM _sqlx_migrations")
        .await;
    assert_eq!(migrations[0][0].as_deref(), Some("2"));
}

async fn ensure_table_creates_adds_and_never_drops(env: &mut Env) {
    let spec = campaign_spec();
    let created = env.store.ensure_table(&spec).await.unwrap();
    assert!(created.created);
    let again = env.store.ensure_table(&spec).await.unwrap();
    assert_eq!(again, Default::default(), "a second ensure changes nothing");
    assert_eq!(
        env.columns("campaign_daily").await,
        [
            "account_id",
            "date",
            "campaign_name",
            "impressions",
            "active",
            "_extra",
            "_run_id",
            "_loaded_at",
            "_row_hash"
        ]
    );
    load(env, &spec, &campaign_batch(&[c(1, "spring", "10")])).await;

    // The job gains a metric and a dimension: both columns are added, the key widened, rows kept.
    let mut wider = spec.clone();
    wider
        .columns
        .push(ColumnSpec::new("gross_cost", ColumnType::Numeric));
    wider
        .columns
        .push(ColumnSpec::new("creative", ColumnType::Text));
    wider.key.push("creative".into());
    let changes = env.store.ensure_table(&wider).await.unwrap();
    assert_eq!(changes.added, ["gross_cost", "creative"]);
    assert!(changes.key_widened);
    assert!(!changes.created);
    let old = env
        .rows("SELECT campaign_name, creative, CAST(impressions AS TEXT) FROM campaign_daily")
        .await;
    assert_eq!(
        old,
        [[
            Some("spring".into()),
            Some(String::new()),
            Some("10".into())
        ]]
    );
    let mut batch = campaign_batch(&[c(1, "spring", "11")]);
    batch
        .columns
        .push(ColumnData::Numeric(vec![Some("2.5")].into()));
    batch
        .columns
        .push(ColumnData::Text(vec![Some("c1")].into()));
    assert_eq!(load(env, &wider, &batch).await, 1);
    assert_eq!(
        env.store.table_row_count("campaign_daily").await.unwrap(),
        2
    );

    // The job as it was before: a key that lost a column is refused, nothing is dropped.
    let narrowed = env.store.ensure_table(&spec).await.unwrap_err();
    assert!(
        matches!(narrowed, StoreError::KeyMismatch { .. }),
        "{narrowed}"
    );
    // A metric whose type changed is reported and kept.
    let mut retyped = wider.clone();
    retyped.columns[3].ty = ColumnType::Text;
    let changes = env.store.ensure_table(&retyped).await.unwrap();
    assert_eq!(changes.type_mismatches.len(), 1);
    assert_eq!(changes.type_mismatches[0].column, "impressions");
    assert_eq!(
        changes.type_mismatches[0].existing_type,
        Some(ColumnType::Numeric)
    );
    assert_eq!(env.columns("campaign_daily").await.len(), 11);
    assert_eq!(
        env.store.table_row_count("campaign_daily").await.unwrap(),
        2
    );
}

async fn upserts_write_newest_values_and_skip_unchanged_rows(env: &mut Env) {
    let spec = campaign_spec();
    env.store.ensure_table(&spec).await.unwrap();
    let first = campaign_batch(&[c(1, "a", "10"), c(1, "b", "20"), c(2, "a", "30")]);
    assert_eq!(load(env, &spec, &first).await, 3);
    assert_eq!(
        load(env, &spec, &first).await,
        0,
        "an unchanged re-read writes nothing"
    );
    assert_eq!(
        env.store.table_row_count("campaign_daily").await.unwrap(),
        3
    );

    // Restatement: one value changed, one row new.
    let second = campaign_batch(&[
        c(1, "a", "10"),
        c(1, "b", "25"),
        c(2, "a", "30"),
        c(3, "a", "1"),
    ]);
    let run = env.run("campaign_daily").await;
    let written = env
        .store
        .commit_window(run, &spec, &second, 4, None)
        .await
        .unwrap();
    assert_eq!(written, 2);
    assert_eq!(
        env.run_row(run).await,
        ("succeeded".into(), 2, 4, None),
        "the run records its rows and requests"
    );
    let rows = env
        .rows(
            "SELECT campaign_name, CAST(impressions AS TEXT), CAST(_run_id AS TEXT) \
             FROM campaign_daily ORDER BY date, campaign_name",
        )
        .await;
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[1][1].as_deref(), Some("25"));
    assert_eq!(
        rows[1][2],
        Some(run.to_string()),
        "_run_id names the run that wrote it"
    );
    assert_ne!(
        rows[0][2],
        Some(run.to_string()),
        "an unchanged row keeps its old _run_id"
    );

    // A key twice in one batch: the last row wins.
    let dup = campaign_batch(&[c(4, "a", "1"), c(4, "a", "2")]);
    assert_eq!(load(env, &spec, &dup).await, 1);
    let rows = env
        .rows(&format!(
            "SELECT CAST(impressions AS TEXT) FROM campaign_daily WHERE date = '{}'",
            day(4)
        ))
        .await;
    assert_eq!(rows, [[Some("2".into())]]);
}

async fn rows_from_before_fingerprints_get_one_and_keep_their_metadata(env: &mut Env) {
    let spec = campaign_spec();
    env.store.ensure_table(&spec).await.unwrap();
    let first = campaign_batch(&[c(1, "a", "10"), c(1, "b", "20")]);
    assert_eq!(load(env, &spec, &first).await, 2);
    let before = env
        .rows("SELECT CAST(_run_id AS TEXT), CAST(_loaded_at AS TEXT) FROM campaign_daily ORDER BY campaign_name")
        .await;

    // A table made by a release without fingerprints: the column is added, its rows have none.
    env.rows("ALTER TABLE campaign_daily DROP COLUMN _row_hash")
        .await;
    let changes = env.store.ensure_table(&spec).await.unwrap();
    assert_eq!(changes.added, ["_row_hash"]);

    // Re-read with "a" unchanged and "b" restated: only "b" counts as written, "a" keeps the run
    // and time its values last changed, and both get their fingerprint.
    let second = campaign_batch(&[c(1, "a", "10"), c(1, "b", "21")]);
    assert_eq!(load(env, &spec, &second).await, 1);
    let after = env
        .rows("SELECT CAST(_run_id AS TEXT), CAST(_loaded_at AS TEXT), CAST(impressions AS TEXT) FROM campaign_daily ORDER BY campaign_name")
        .await;
    assert_eq!(
        after[0][..2],
        before[0][..],
        "an unchanged row keeps its metadata"
    );
    assert_ne!(
        after[1][0], before[1][0],
        "a changed row names the run that changed it"
    );
    assert_eq!(after[1][2].as_deref(), Some("21"));
    let unhashed = env
        .rows("SELECT CAST(count(*) AS TEXT) FROM campaign_daily WHERE _row_hash IS NULL")
        .await;
    assert_eq!(unhashed, [[Some("0".into())]]);
    assert_eq!(load(env, &spec, &second).await, 0);
}

async fn a_null_text_key_is_stored_as_empty_and_upserts(env: &mut Env) {
    let spec = campaign_spec();
    env.store.ensure_table(&spec).await.unwrap();
    let null_name = |imps| Campaign {
        date: day(1),
        name: None,
        impressions: imps,
        extra: "{}",
    };
    assert_eq!(
        load(env, &spec, &campaign_batch(&[null_name("5")])).await,
        1
    );
    assert_eq!(
        load(env, &spec, &campaign_batch(&[null_name("6")])).await,
        1
    );
    let rows = env
        .rows("SELECT campaign_name, CAST(impressions AS TEXT) FROM campaign_daily")
        .await;
    assert_eq!(rows, [[Some(String::new()), Some("6".into())]]);

    // A null in a non-text key column fails the window, with nothing written.
    let mut bad = campaign_batch(&[c(1, "x", "1")]);
    bad.columns[1] = ColumnData::Date(vec![None]);
    let run = env.run("campaign_daily").await;
    let err = env
        .store
        .commit_window(run, &spec, &bad, 1, None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidBatch { .. }), "{err}");
    assert!(!err.is_retriable());
    assert_eq!(env.run_row(run).await.0, "running");
}

async fn odd_names_and_values_round_trip(env: &mut Env) {
    let table = "campaña; 日報 🎉\tx";
    let spec = TableSpec {
        table: table.into(),
        columns: vec![
            ColumnSpec::new("it's key", ColumnType::Text),
            ColumnSpec::new("DROP TABLE x;--", ColumnType::Text),
            ColumnSpec::new("名前\t🎉 Mixed Case", ColumnType::Numeric),
        ],
        key: vec!["it's key".into()],
        descriptive: Vec::new(),
    };
    env.store.ensure_table(&spec).await.unwrap();
    let value = "o'brien; \"q\" \t 広告 🚀";
    let batch = Batch {
        columns: vec![
            ColumnData::Text(vec![Some(value)].into()),
            ColumnData::Text(vec![Some("'); DROP TABLE export_runs; --")].into()),
            ColumnData::Numeric(vec![Some("1.5")].into()),
        ],
    };
    assert_eq!(load(env, &spec, &batch).await, 1);
    assert_eq!(load(env, &spec, &batch).await, 0);
    let rows = env
        .rows(&format!(
            "SELECT \"it's key\", \"DROP TABLE x;--\" FROM \"{table}\""
        ))
        .await;
    assert_eq!(
        rows,
        [[
            Some(value.into()),
            Some("'); DROP TABLE export_runs; --".into())
        ]]
    );
    assert_eq!(env.store.table_row_count(table).await.unwrap(), 1);

    for bad in ["a\"b", "a\0b", &"x".repeat(64), ""] {
        let mut s = spec.clone();
        s.table = bad.into();
        let err = env.store.ensure_table(&s).await.unwrap_err();
        assert!(matches!(err, StoreError::InvalidName { .. }), "{err}");
        assert!(env.store.table_row_count(bad).await.is_err());
    }
}

async fn commit_window_is_atomic(env: &mut Env) {
    let spec = campaign_spec();
    env.store.ensure_table(&spec).await.unwrap();
    // More rows than one statement holds on either backend, the bad one last: the chunks already
    // written must be rolled back with it.
    let names: Vec<String> = (0..10_050).map(|i| format!("c{i}")).collect();
    let mut rows: Vec<Campaign<'_>> = names.iter().map(|n| c(1, n, "1")).collect();
    rows.last_mut().unwrap().extra = "{not json";
    let run = env.run("campaign_daily").await;
    let err = env
        .store
        .commit_window(
            run,
            &spec,
            &campaign_batch(&rows),
            3,
            Some(&state("campaign_daily", day(7))),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Query { .. }), "{err}");
    assert!(
        !err.is_retriable(),
        "bad input is not worth retrying: {err}"
    );
    assert_eq!(
        env.store.table_row_count("campaign_daily").await.unwrap(),
        0
    );
    assert_eq!(env.run_row(run).await.0, "running");
    assert_eq!(
        env.store
            .high_water("campaign_daily", "3141592")
            .await
            .unwrap(),
        None
    );
    env.store.fail_run(run, &err.to_string(), 3).await.unwrap();
    let (status, written, requests, error) = env.run_row(run).await;
    assert_eq!((status.as_str(), written, requests), ("failed", 0, 3));
    assert!(error.unwrap().contains("campaign_daily"));

    // A failed run cannot be committed afterwards.
    let ok = campaign_batch(&[c(1, "a", "1")]);
    let err = env
        .store
        .commit_window(run, &spec, &ok, 1, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::RunNotRunning(id) if id == run),
        "{err}"
    );
    assert_eq!(
        env.store.table_row_count("campaign_daily").await.unwrap(),
        0
    );

    // Text that is not a number fails the window too (Postgres parses it; SQLite would keep it as
    // text, so that half is Postgres-only).
    if env.store.backend() == Backend::Postgres {
        let run = env.run("campaign_daily").await;
        let nan = campaign_batch(&[c(1, "a", "12,5")]);
        assert!(
            env.store
                .commit_window(run, &spec, &nan, 1, None)
                .await
                .is_err()
        );
        assert_eq!(
            env.store.table_row_count("campaign_daily").await.unwrap(),
            0
        );
    }
}

async fn the_high_water_mark_never_moves_backwards(env: &mut Env) {
    let spec = campaign_spec();
    env.store.ensure_table(&spec).await.unwrap();
    let job = "campaign_daily";
    assert_eq!(env.store.high_water(job, "3141592").await.unwrap(), None);
    for (mark, expected) in [(10, 10), (5, 10), (12, 12)] {
        let run = env.run(job).await;
        env.store
            .commit_window(
                run,
                &spec,
                &campaign_batch(&[c(mark, "a", "1")]),
                1,
                Some(&state(job, day(mark))),
            )
            .await
            .unwrap();
        assert_eq!(
            env.store.high_water(job, "3141592").await.unwrap(),
            Some(day(expected))
        );
    }
    assert_eq!(env.store.high_water(job, "other").await.unwrap(), None);
    // An empty window still records its run and may move the mark.
    let run = env.run(job).await;
    let empty = campaign_batch(&[]);
    let written = env
        .store
        .commit_window(run, &spec, &empty, 1, Some(&state(job, day(13))))
        .await
        .unwrap();
    assert_eq!(written, 0);
    assert_eq!(
        env.store.high_water(job, "3141592").await.unwrap(),
        Some(day(13))
    );
}

async fn stale_runs_are_failed_unless_their_job_is_locked(env: &mut Env) {
    let stale = env.run("crashed").await;
    let live = env.run("live").await;
    let done = env.run("done").await;
    env.store.fail_run(done, "boom", 0).await.unwrap();
    let lock = env.store.try_lock_job("live").await.unwrap().unwrap();
    assert_eq!(env.store.fail_stale_runs().await.unwrap(), 1);
    let (status, _, _, error) = env.run_row(stale).await;
    assert_eq!(status, "failed");
    assert_eq!(error.as_deref(), Some(STALE_RUN_ERROR));
    assert_eq!(env.run_row(live).await.0, "running");
    assert_eq!(env.run_row(done).await.3.as_deref(), Some("boom"));
    lock.release().await;
    assert_eq!(env.store.fail_stale_runs().await.unwrap(), 1);
    assert_eq!(env.run_row(live).await.0, "failed");
    assert_eq!(env.store.fail_stale_runs().await.unwrap(), 0);
}

async fn status_shows_the_latest_run_and_high_water_range(env: &mut Env) {
    assert!(env.store.status().await.unwrap().is_empty());
    let spec = campaign_spec();
    env.store.ensure_table(&spec).await.unwrap();
    let job = "campaign_daily";
    for (account, mark) in [("a1", 3), ("a2", 9)] {
        let run = env.store.start_run(&new_run(job, account)).await.unwrap();
        let update = StateUpdate {
            job: job.into(),
            account_id: account.into(),
            high_water: Some(day(mark)),
            timezone: "UTC".into(),
            currency: "USD".into(),
        };
        env.store
            .commit_window(
                run,
                &spec,
                &campaign_batch(&[c(mark, account, "1")]),
                2,
                Some(&update),
            )
            .await
            .unwrap();
    }
    let failed = env.run(job).await;
    env.store
        .fail_run(failed, "the API said 500", 7)
        .await
        .unwrap();
    let skipped = env
        .store
        .record_skipped(
            &new_run("other_job", "a1"),
            "another process holds the lock",
        )
        .await
        .unwrap();

    let status = env.store.status().await.unwrap();
    assert_eq!(status.len(), 2);
    let s = &status[0];
    assert_eq!(s.job, job);
    assert_eq!(s.last_run_id, Some(failed));
    assert_eq!(s.last_status, Some(RunStatus::Failed));
    assert_eq!(s.last_trigger, Some(Trigger::RunNow));
    assert_eq!(s.last_rows_written, Some(0));
    assert_eq!(s.last_error.as_deref(), Some("the API said 500"));
    assert!(s.last_started_at.is_some() && s.last_finished_at.is_some());
    assert!(s.last_success_at.is_some());
    assert_eq!(
        (s.high_water_min, s.high_water_max),
        (Some(day(3)), Some(day(9)))
    );
    let o = &status[1];
    assert_eq!(o.job, "other_job");
    assert_eq!(o.last_run_id, Some(skipped));
    assert_eq!(o.last_status, Some(RunStatus::Skipped));
    assert_eq!(o.last_success_at, None);
    assert_eq!(o.high_water_min, None);
}

/// Error texts are cut to 8 KiB on a character boundary, for failed and for skipped runs.
async fn long_error_texts_are_cut_on_a_character_boundary(env: &mut Env) {
    // 10,001 bytes; byte 8,192 is the middle of an 'é'.
    let long = format!("x{}", "é".repeat(5_000));
    let failed = env.run("campaign_daily").await;
    env.store.fail_run(failed, &long, 1).await.unwrap();
    let skipped = env
        .store
        .record_skipped(&new_run("campaign_daily", "a1"), &long)
        .await
        .unwrap();
    for (id, status) in [(failed, "failed"), (skipped, "skipped")] {
        let (stored_status, _, _, error) = env.run_row(id).await;
        assert_eq!(stored_status, status);
        let error = error.unwrap();
        assert_eq!(error.len(), 8_191, "{status}");
        assert!(long.starts_with(&error), "{status}");
    }
}

/// A second store on the same database (another pool, like another process) is locked out.
async fn job_locks_exclude_a_second_store(env: &mut Env) {
    let other = Store::connect(&env.config).await.unwrap();
    let held = env
        .store
        .try_lock_job("campaign_daily")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(held.job(), "campaign_daily");
    assert!(
        other
            .try_lock_job("campaign_daily")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        env.store
            .try_lock_job("campaign_daily")
            .await
            .unwrap()
            .is_none()
    );
    let unrelated = other.try_lock_job("another_job").await.unwrap().unwrap();
    held.release().await;
    let taken = other.try_lock_job("campaign_daily").await.unwrap().unwrap();
    assert!(
        env.store
            .try_lock_job("campaign_daily")
            .await
            .unwrap()
            .is_none()
    );
    taken.release().await;
    unrelated.release().await;
    other.close().await;
}

/// Two windows of one job committing at once (separate connections) both land; two stores
/// ensuring the same table at once (two replicas starting) both succeed.
async fn concurrent_windows_and_table_setup(env: &mut Env) {
    let spec = campaign_spec();
    let other = Store::connect(&env.config).await.unwrap();
    let (a, b) = tokio::join!(env.store.ensure_table(&spec), other.ensure_table(&spec));
    assert!(
        a.unwrap().created ^ b.unwrap().created,
        "exactly one of them creates it"
    );
    let names: Vec<String> = (0..3000).map(|i| format!("c{i}")).collect();
    let first: Vec<Campaign<'_>> = names.iter().map(|n| c(1, n, "1")).collect();
    let second: Vec<Campaign<'_>> = names.iter().map(|n| c(2, n, "2")).collect();
    let (first, second) = (campaign_batch(&first), campaign_batch(&second));
    let (r1, r2) = (
        env.run("campaign_daily").await,
        env.run("campaign_daily").await,
    );
    let (s1, s2) = (
        state("campaign_daily", day(1)),
        state("campaign_daily", day(2)),
    );
    let (w1, w2) = tokio::join!(
        env.store.commit_window(r1, &spec, &first, 1, Some(&s1)),
        other.commit_window(r2, &spec, &second, 1, Some(&s2)),
    );
    assert_eq!((w1.unwrap(), w2.unwrap()), (3000, 3000));
    assert_eq!(
        env.store.table_row_count("campaign_daily").await.unwrap(),
        6000
    );
    assert_eq!(
        env.store
            .high_water("campaign_daily", "3141592")
            .await
            .unwrap(),
        Some(day(2))
    );
    other.close().await;
}

macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let mut env = super::pg_env().await;
                    super::$case(&mut env).await;
                    env.store.close().await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let mut env = super::sqlite_env().await;
                    super::$case(&mut env).await;
                    env.store.close().await;
                }
            )*
        }
    };
}

on_both_backends!(
    migrate_twice_is_a_no_op,
    ensure_table_creates_adds_and_never_drops,
    upserts_write_newest_values_and_skip_unchanged_rows,
    rows_from_before_fingerprints_get_one_and_keep_their_metadata,
    a_null_text_key_is_stored_as_empty_and_upserts,
    odd_names_and_values_round_trip,
    commit_window_is_atomic,
    the_high_water_mark_never_moves_backwards,
    stale_runs_are_failed_unless_their_job_is_locked,
    status_shows_the_latest_run_and_high_water_range,
    long_error_texts_are_cut_on_a_character_boundary,
    job_locks_exclude_a_second_store,
    concurrent_windows_and_table_setup,
);

// ---------------------------------------------------------------------------------------------
// Backend-specific behaviour.

#[tokio::test]
async fn postgres_tables_live_in_the_configured_schema() {
    let mut env = pg_env_with_schema("BI data").await;
    env.store.ensure_table(&campaign_spec()).await.unwrap();
    let Reader::Pg(conn) = &mut env.reader else {
        unreachable!()
    };
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_schema::text, table_name::text FROM information_schema.tables \
         WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 2",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let expected: Vec<(String, String)> = [
        "_sqlx_migrations",
        "campaign_daily",
        "export_runs",
        "export_state",
    ]
    .iter()
    .map(|t| ("BI data".to_string(), t.to_string()))
    .collect();
    assert_eq!(tables, expected);
    // Reconnecting to an existing schema works and finds the tables.
    let again = Store::connect(&env.config).await.unwrap();
    again.migrate().await.unwrap();
    assert_eq!(again.table_row_count("campaign_daily").await.unwrap(), 0);
    again.close().await;
    env.store.close().await;
}

/// An upsert that finds its row locks it (`xmax` is set) even when `WHERE ... IS DISTINCT FROM`
/// then leaves it alone; rows whose fingerprint is already stored must not reach the upsert at all.
#[tokio::test]
async fn postgres_unchanged_rows_are_not_even_sent() {
    let mut env = pg_env().await;
    let spec = campaign_spec();
    env.store.ensure_table(&spec).await.unwrap();
    let batch = campaign_batch(&[c(1, "a", "10"), c(2, "a", "20"), c(3, "a", "30")]);
    assert_eq!(load(&env, &spec, &batch).await, 3);
    let xmax = "SELECT xmax::text, CAST(_run_id AS TEXT) FROM campaign_daily ORDER BY date";
    let before = env.rows(xmax).await;
    assert_eq!(load(&env, &spec, &batch).await, 0);
    assert_eq!(
        env.rows(xmax).await,
        before,
        "no row was locked or rewritten"
    );

    // A restatement of one day sends that row alone.
    let restated = campaign_batch(&[c(1, "a", "10"), c(2, "a", "22"), c(3, "a", "30")]);
    assert_eq!(load(&env, &spec, &restated).await, 1);
    let after = env.rows(xmax).await;
    assert_eq!(after[0], before[0]);
    assert_eq!(after[2], before[2]);
    assert_ne!(after[1][1], before[1][1]);
    env.store.close().await;
}

#[tokio::test]
async fn postgres_numerics_are_exact() {
    let mut env = pg_env().await;
    let spec = campaign_spec();
    env.store.ensure_table(&spec).await.unwrap();
    let big = "12345678901234567890.123456";
    let batch = campaign_batch(&[c(1, "a", big), c(1, "b", "12.340000")]);
    assert_eq!(load(&env, &spec, &batch).await, 2);
    let rows = env
        .rows("SELECT impressions::text FROM campaign_daily ORDER BY campaign_name")
        .await;
    assert_eq!(rows, [[Some(big.into())], [Some("12.340000".into())]]);
    // The same value written with other trailing zeros is not a change.
    let batch = campaign_batch(&[c(1, "b", "12.34")]);
    assert_eq!(load(&env, &spec, &batch).await, 0);
    env.store.close().await;
}

#[tokio::test]
async fn sqlite_numerics_keep_fifteen_significant_digits() {
    // SQLite's NUMERIC affinity stores decimals as 64-bit floats: exact to about 15 digits, which
    // covers the demo's figures. Postgres (production) is exact; see the test above.
    let mut env = sqlite_env().await;
    let spec = campaign_spec();
    env.store.ensure_table(&spec).await.unwrap();
    let batch = campaign_batch(&[
        c(1, "a", "12345678901234567890.123456"),
        c(1, "b", "12.340000"),
    ]);
    assert_eq!(load(&env, &spec, &batch).await, 2);
    let rows = env
        .rows("SELECT CAST(impressions AS TEXT) FROM campaign_daily ORDER BY campaign_name")
        .await;
    assert_eq!(
        rows,
        [
            [Some("1.23456789012346e+19".into())],
            [Some("12.34".into())]
        ]
    );
    env.store.close().await;
}

#[tokio::test]
async fn sqlite_locks_are_per_file_and_released_on_drop() {
    let env = sqlite_env().await;
    let other_file = sqlite_env().await;
    let lock = env.store.try_lock_job("j").await.unwrap().unwrap();
    assert!(other_file.store.try_lock_job("j").await.unwrap().is_some());
    drop(lock);
    assert!(env.store.try_lock_job("j").await.unwrap().is_some());
}

#[tokio::test]
async fn postgres_locks_are_per_schema() {
    let env = pg_env().await;
    let other_schema = DatabaseConfig::new(env.config.url.clone(), "other");
    let other = Store::connect(&other_schema).await.unwrap();
    let held = env.store.try_lock_job("j").await.unwrap().unwrap();
    let beside = other.try_lock_job("j").await.unwrap().unwrap();
    held.release().await;
    beside.release().await;
    other.close().await;
    env.store.close().await;
}

#[tokio::test]
async fn connection_errors_hide_the_password_and_are_retriable() {
    // Port 1 on loopback: refused at once.
    let config = DatabaseConfig::new(
        DatabaseUrl::parse("postgres://rokt:s3cr3t-pw@127.0.0.1:1/rokt").unwrap(),
        SCHEMA,
    );
    let err = Store::connect(&config).await.unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("s3cr3t-pw"), "{shown}");
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
    assert!(err.is_unavailable() && err.is_retriable(), "{err:?}");
}
