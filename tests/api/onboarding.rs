//! Starting out (issue 16): `discover` writes jobs from what the accounts offer, and `validate
//! --online` checks a configuration against the API and the database. The built binary, against
//! the simulated API over HTTP and a real Postgres.

use std::process::Output;

use chrono::{Days, NaiveDate, Utc};
use rokt_export::mock::{MockConfig, MockServer};
use sqlx::Row as _;

use crate::helpers::{TestDb, config_file, run_binary};

const US: &str = "3141592";
const AU: &str = "2718281";
const GB: &str = "1618033";

/// Three accounts: the simulation's US, AU and GB profiles (an AU account has no
/// `cost_per_impression` or `conversion_roas`, a GB one no `campaign_objective` or
/// `cost_per_impression`).
async fn mock() -> MockServer {
    MockServer::start(MockConfig {
        accounts: vec![US.into(), AU.into(), GB.into()],
        ..MockConfig::default()
    })
    .await
    .unwrap()
}

/// The environment of a command against `mock`, plus `extra`.
fn env(mock: &MockServer, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = vec![
        ("ROKT_API_BASE_URL".to_owned(), mock.base_url()),
        ("ROKT_APP_ID".to_owned(), "demo-app-id".to_owned()),
        ("ROKT_APP_SECRET".to_owned(), "demo-app-secret".to_owned()),
    ];
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    env
}

/// Runs the binary without blocking the runtime the simulated API is served on.
fn run(args: &[&str], env: &[(String, String)]) -> Output {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    tokio::task::block_in_place(|| run_binary(args, &env))
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn days_ago(n: u64) -> NaiveDate {
    Utc::now()
        .date_naive()
        .checked_sub_days(Days::new(n))
        .unwrap()
}

/// How many `[[jobs]]` tables `toml` has.
fn jobs(toml: &str) -> usize {
    toml.lines().filter(|l| *l == "[[jobs]]").count()
}

/// The `[[jobs]]` block of `report` in discover's output.
fn block<'a>(toml: &'a str, report: &str) -> &'a str {
    let start = toml
        .find(&format!("name = \"{report}_daily\""))
        .unwrap_or_else(|| panic!("no {report} job in\n{toml}"));
    let rest = &toml[start..];
    let end = rest[1..].find("[[jobs]]").map_or(rest.len(), |i| i + 1);
    &rest[..end]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_lists_the_accounts_and_what_each_report_offers_them() {
    let mock = mock().await;
    let env = env(&mock, &[]);
    let out = run(&["--config", "/nonexistent/jobs.toml", "discover"], &env);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    // Each account: id, name (escaped to one line), country, zone, currency, owner.
    for needle in [
        "3141592  Pi Retail \"Outlet\"; Café 日本語 🛒  country US, zone America/New_York",
        "2718281  E's Travel\\tCo 🌏  country AU, zone Australia/Sydney",
        "currency AUD, owner ads.2718281@example.com",
        "1618033  Tau Ticketing <b>&amp;</b>  country GB, zone Europe/London (UTC+",
        "currency GBP, owner ads.1618033@example.com",
        // What each report offers each account.
        "2718281: 11 dimensions, 38 metrics; not cost_per_impression, conversion_roas",
        "1618033: 10 dimensions, 39 metrics; not campaign_objective, cost_per_impression",
        "3141592: 4 dimensions, 7 metrics",
    ] {
        assert!(stdout.contains(needle), "no {needle:?} in\n{stdout}");
    }
    assert_eq!(jobs(&stdout), 2, "{stdout}");
    let campaigns = block(&stdout, "campaigns");
    let at = |needle: &str| {
        campaigns
            .find(needle)
            .unwrap_or_else(|| panic!("no {needle:?} in\n{campaigns}"))
    };
    // The grain, then its names; additive metrics first; each slug with its description.
    assert!(at("    \"campaign_id\",") < at("    \"campaign_name\","));
    assert!(campaigns.contains("# The campaign's current name (describes campaign_id)"));
    assert!(at("    \"gross_cost\",") < at("    \"referral_rate\","));
    assert!(at("    \"conversion_value\",") < at("    \"unique_campaigns\","));
    assert!(at("# Additive") < at("# Not additive"));
    for line in campaigns
        .lines()
        .filter(|l| l.trim_start().starts_with('"'))
    {
        assert!(line.contains(" # "), "no description: {line}");
    }
    // What one account lacks is a comment saying who lacks it, never a slug a run asks for.
    assert!(
        campaigns.contains("# \"campaign_objective\",")
            && campaigns.contains("(not offered by 1618033)"),
        "{campaigns}"
    );
    assert!(
        campaigns.contains("(not offered by 2718281, 1618033)"),
        "{campaigns}"
    );
    assert!(campaigns.contains("accounts = [\"3141592\", \"2718281\", \"1618033\"]"));
    assert!(campaigns.contains("schedule = \"15 5,17 * * *\""));
    // Each account in its own zone and currency, and the pasted block still says so.
    assert!(
        !campaigns
            .lines()
            .any(|l| l.starts_with("timezone") || l.starts_with("currency")),
        "{campaigns}"
    );
    assert!(
        campaigns.contains("# timezone = \"UTC\"")
            && campaigns.contains("unset: each account is read in its own zone"),
        "{campaigns}"
    );

    // One report, one account.
    let out = run(
        &[
            "--config",
            "/nonexistent/jobs.toml",
            "discover",
            "--report",
            "transactions",
            "--account",
            AU,
        ],
        &env,
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert_eq!(jobs(&stdout), 1, "{stdout}");
    assert!(stdout.contains("accounts = [\"2718281\"]"), "{stdout}");
    assert!(stdout.contains("Accounts (1 of the 3 these credentials read)"));

    // An account the credentials do not read: a configuration problem naming it.
    let out = run(&["discover", "--account", "999"], &env);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(78), "{stdout}\n{stderr}");
    assert!(stderr.contains("account 999 is not among"), "{stderr}");
    // A report that is not one: a usage error with a suggestion.
    let out = run(&["discover", "--report", "campaing"], &env);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("did you mean \"campaigns\""));
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_output_passes_validate_and_runs_as_it_is() {
    let db = TestDb::new().await;
    let mock = mock().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("discovered.toml");
    let file_arg = file.display().to_string();
    let env = env(&mock, &[("DATABASE_URL", db.url.as_str())]);

    let out = run(&["discover", "--output", &file_arg], &env);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("wrote 2 jobs for 3 accounts"), "{stdout}");
    let written = std::fs::read_to_string(&file).unwrap();
    // Never overwritten without --force.
    std::fs::write(&file, "# mine\n").unwrap();
    let out = run(&["discover", "--output", &file_arg], &env);
    assert_eq!(out.status.code(), Some(2), "{:?}", text(&out));
    assert!(text(&out).1.contains("--force"));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "# mine\n");
    let out = run(&["discover", "--output", &file_arg, "--force"], &env);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), written);

    // As it is: valid offline (no environment at all), and online.
    let out = run(&["--config", &file_arg, "validate"], &[]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let out = run(&["--config", &file_arg, "validate", "--online"], &env);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(!stdout.contains("PROBLEM"), "{stdout}");

    // And it runs: every account, in its own zone and currency.
    let (from, to) = (days_ago(2).to_string(), days_ago(1).to_string());
    for (job, rows_per_account_day) in [("campaigns_daily", 5), ("transactions_daily", 3)] {
        let out = run(
            &[
                "--config",
                &file_arg,
                "--run-now",
                job,
                "--from",
                &from,
                "--to",
                &to,
            ],
            &env,
        );
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{job}: {stdout}\n{stderr}");
        let pool = db.pool().await;
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM rokt.{job}"))
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(n, 3 * 2 * rows_per_account_day, "{job}");
        pool.close().await;
    }
    let pool = db.pool().await;
    let row = sqlx::query(
        "SELECT sum(impressions)::text, min(currency), min(timezone) \
         FROM rokt.campaigns_daily WHERE account_id = $1",
    )
    .bind(AU)
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    let (sum, currency, zone): (String, String, String) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(
        (currency.as_str(), zone.as_str()),
        ("AUD", "Australia/Sydney")
    );
    let api: i64 = mock
        .query_rows(
            AU,
            "campaigns",
            &["campaign_id".to_owned()],
            &["impressions".to_owned()],
            days_ago(2),
            Utc::now().date_naive(),
            true,
        )
        .iter()
        .map(|r| r["impressions"].as_i64().unwrap())
        .sum();
    assert_eq!(sum, api.to_string());
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_online_names_what_an_au_or_gb_account_lacks_with_a_did_you_mean() {
    let db = TestDb::new().await;
    let mock = mock().await;
    let (_dir, config) = config_file(&format!(
        r#"
[[jobs]]
name = "campaign_daily"
schedule = "15 5 * * *"
accounts = "all"
report = "campaigns"
dimensions = ["campaign_id", "campaign_objective"]
metrics = ["impressions", "cost_per_impression", "conversion_roas", "gros_cost"]

[[jobs]]
name = "us_only"
schedule = "15 5 * * *"
accounts = ["{US}", "999"]
report = "transactions"
metrics = ["transactions"]
"#
    ));
    let config = config.display().to_string();
    let env = env(&mock, &[("DATABASE_URL", db.url.as_str())]);
    let out = run(&["--config", &config, "validate", "--online"], &env);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(78), "{stdout}\n{stderr}");
    for needle in [
        "api: http://127.0.0.1:",
        "3 accounts these credentials read (3141592, 2718281, 1618033)",
        "campaign_daily: accounts = \"all\": 3 accounts",
        // The GB account: no campaign_objective; the AU one: no cost_per_impression or
        // conversion_roas; a typo everywhere, with a suggestion.
        "PROBLEM     campaign_daily: account 1618033 lacks dimension \"campaign_objective\", \
         metric \"cost_per_impression\", metric \"gros_cost\" (did you mean \"gross_cost\"?) in \
         the campaigns report",
        "PROBLEM     campaign_daily: account 2718281 lacks metric \"cost_per_impression\", \
         metric \"conversion_roas\", metric \"gros_cost\" (did you mean \"gross_cost\"?)",
        "PROBLEM     campaign_daily: account 3141592 lacks metric \"gros_cost\" (did you mean \
         \"gross_cost\"?)",
        "PROBLEM     us_only: account 999 is not among the accounts these credentials read",
        "ok          us_only: account 3141592: every dimension and metric offered; read in \
         America/New_York (the account's own), USD (the account's own)",
        "ok          database: ",
        "may create and alter tables in schema rokt (tried in a transaction that was rolled back)",
    ] {
        assert!(stdout.contains(needle), "no {needle:?} in\n{stdout}");
    }
    assert!(stderr.contains("found 4 problems"), "{stderr}");
    // A slug the account lacks but the report knows gets no "did you mean".
    assert!(
        !stdout.contains("\"conversion_roas\" (did you mean"),
        "{stdout}"
    );
    // Nothing was created: not even the schema.
    let pool = db.pool().await;
    let schemas: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'rokt'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(schemas, 0);
    pool.close().await;
    mock.stop().await;
}

/// A login role with no privileges, dropped when dropped.
struct Role {
    name: String,
    admin_url: String,
}

impl Role {
    async fn new(db: &TestDb) -> Role {
        let name = format!("rokt_test_role_{}", uuid::Uuid::new_v4().simple());
        let pool = db.pool().await;
        sqlx::query(&format!("CREATE ROLE \"{name}\" LOGIN"))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        Role {
            name,
            admin_url: db.url.clone(),
        }
    }

    /// `db`'s URL as this role.
    fn url(&self, db: &TestDb) -> String {
        let mut url = url::Url::parse(&db.url).unwrap();
        url.set_username(&self.name).unwrap();
        url.set_password(None).unwrap();
        url.to_string()
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        let (url, name) = (self.admin_url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                use sqlx::Connection as _;
                if let Ok(mut conn) = sqlx::PgConnection::connect(&url).await {
                    let _ = sqlx::query(&format!("DROP ROLE IF EXISTS \"{name}\""))
                        .execute(&mut conn)
                        .await;
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_online_exits_69_when_unreachable_and_78_for_what_needs_fixing() {
    let db = TestDb::new().await;
    let mock = mock().await;
    let job = format!(
        "[api]\nmax_retries = 0\n[[jobs]]\nname = \"j\"\nschedule = \"0 5 * * *\"\n\
         accounts = [\"{US}\"]\nreport = \"campaigns\"\nmetrics = [\"impressions\"]\n"
    );
    let (_dir, config) = config_file(&job);
    let config = config.display().to_string();
    let online = |env: &[(String, String)]| {
        let out = run(&["--config", &config, "validate", "--online"], env);
        let (stdout, stderr) = text(&out);
        (out.status.code(), format!("{stdout}\n{stderr}"))
    };
    let ok = env(&mock, &[("DATABASE_URL", db.url.as_str())]);
    let (code, said) = online(&ok);
    assert_eq!(code, Some(0), "{said}");

    // The API does not answer: 69, and plain validate does not care.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let mut no_api = ok.clone();
    no_api[0].1 = closed;
    let (code, said) = online(&no_api);
    assert_eq!(code, Some(69), "{said}");
    assert!(said.contains("UNREACHABLE api"), "{said}");
    assert_eq!(
        run(&["--config", &config, "validate"], &no_api)
            .status
            .code(),
        Some(0)
    );

    // The database does not answer: 69.
    let mut no_db = ok.clone();
    no_db[3].1 = "postgres://postgres@127.0.0.1:1/nothing".to_owned();
    let (code, said) = online(&no_db);
    assert_eq!(code, Some(69), "{said}");
    assert!(said.contains("UNREACHABLE database"), "{said}");

    // Credentials the token endpoint rejects: 78.
    let mut wrong = ok.clone();
    wrong[2].1 = "not-the-secret".to_owned();
    let (code, said) = online(&wrong);
    assert_eq!(code, Some(78), "{said}");
    assert!(said.contains("rejected the app credentials"), "{said}");
    assert!(!said.contains("not-the-secret"), "{said}");

    // A role that may not create the schema: 78, saying what to grant.
    let role = Role::new(&db).await;
    let mut weak = ok.clone();
    weak[3].1 = role.url(&db);
    let (code, said) = online(&weak);
    assert_eq!(code, Some(78), "{said}");
    assert!(
        said.contains("schema rokt does not exist and role rokt_test_role_"),
        "{said}"
    );

    // SQLite: a file that does not exist yet is fine when it can be created, and is not created.
    let sqlite_dir = tempfile::tempdir().unwrap();
    let file = sqlite_dir.path().join("exports.db");
    let mut sqlite = ok.clone();
    sqlite[3].1 = format!("sqlite://{}", file.display());
    let (code, said) = online(&sqlite);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("does not exist yet"), "{said}");
    assert!(!file.exists());
    assert_eq!(std::fs::read_dir(sqlite_dir.path()).unwrap().count(), 0);
    sqlite[3].1 = format!(
        "sqlite://{}/no/such/dir/exports.db",
        sqlite_dir.path().display()
    );
    let (code, said) = online(&sqlite);
    assert_eq!(code, Some(78), "{said}");
    drop(role);
    mock.stop().await;
}

#[tokio::test]
async fn the_client_reads_each_accounts_fields_and_what_a_report_offers_it() {
    use rokt_export::api::{ApiClient, ApiError};
    use rokt_export::catalogue::Report;
    use rokt_export::config::{Config, Env};
    let mock = mock().await;
    let env = Env::default().with("ROKT_API_BASE_URL", &mock.base_url());
    let api_config =
        Config::load_api(std::path::Path::new("/nonexistent/jobs.toml"), &env).unwrap();
    let api = ApiClient::new(&api_config, mock.credentials()).unwrap();
    let accounts = api.accounts().await.unwrap();
    let au = accounts.iter().find(|a| a.account_id == AU).unwrap();
    assert_eq!(au.country.as_deref(), Some("AU"));
    assert_eq!(au.currency.as_deref(), Some("AUD"));
    assert_eq!(au.timezone.as_deref(), Some("Australia/Sydney"));
    assert_eq!(au.owner.as_deref(), Some("ads.2718281@example.com"));
    let offset = au.timezone_offset_minutes.unwrap();
    assert!(
        offset == 600 || offset == 660,
        "Sydney is UTC+10 or +11: {offset}"
    );

    let offer = api.help(AU, Report::Campaigns).await.unwrap();
    assert!(offer.has("campaign_objective") && offer.has("impressions"));
    assert!(!offer.has("cost_per_impression") && !offer.has("conversion_roas"));
    assert!(offer.metrics.iter().all(|m| m.description.is_some()));
    let offer = api.help(GB, Report::Campaigns).await.unwrap();
    assert!(!offer.has("campaign_objective"));
    let transactions = api.help(US, Report::Transactions).await.unwrap();
    assert_eq!(transactions.metrics.len(), 7);
    match api.help("999", Report::Campaigns).await {
        Err(ApiError::Status { status: 403, .. }) => {}
        other => panic!("{other:?}"),
    }
    mock.stop().await;
}
