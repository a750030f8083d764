//! `rokt-export validate` on broken configs: exit 78 and a message naming the file, line and key.

use crate::helpers::{MINIMAL_JOB, config_file, run_binary, shipped_config};

/// Runs `validate` on `text` and returns (exit code, stderr).
fn validate(text: &str) -> (i32, String) {
    let (_dir, path) = config_file(text);
    let out = run_binary(&["--config", path.to_str().unwrap(), "validate"], &[]);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Asserts exit 78 and a problem line `jobs.toml:<line>:<col>: `<key>`: ...<needle>...`.
#[track_caller]
fn assert_problem(text: &str, line: usize, key: &str, needle: &str) {
    let (code, stderr) = validate(text);
    assert_eq!(code, 78, "expected exit 78 (EX_CONFIG); stderr:\n{stderr}");
    let found = stderr.lines().any(|l| {
        l.contains(&format!("jobs.toml:{line}:"))
            && l.contains(&format!("`{key}`"))
            && l.contains(needle)
    });
    assert!(
        found,
        "expected a problem at line {line} for `{key}` containing {needle:?}; stderr:\n{stderr}"
    );
}

fn job_with(extra: &str) -> String {
    format!(
        "[[jobs]]\nname = \"j\"\nschedule = \"15 5 * * *\"\naccounts = [\"1\"]\nreport = \"campaigns\"\nmetrics = [\"impressions\"]\n{extra}\n"
    )
}

fn generic_with(extra: &str) -> String {
    format!(
        "[[jobs]]\nname = \"g\"\nschedule = \"0 6 * * *\"\naccounts = [\"1\"]\nendpoint = \"/reporting/accounts/{{account_id}}/campaigns/breakdown\"\n{extra}\n"
    )
}

#[test]
fn the_shipped_config_validates_and_lists_fire_times() {
    let out = run_binary(
        &["--config", shipped_config().to_str().unwrap(), "validate"],
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for job in [
        "campaign_daily",
        "creative_daily",
        "campaign_breakdown_legacy",
    ] {
        assert!(stdout.contains(job), "{stdout}");
    }
    // Three fire times per job.
    let next_lines: Vec<&str> = stdout.lines().filter(|l| l.contains("next:")).collect();
    assert_eq!(next_lines.len(), 3, "{stdout}");
    for l in next_lines {
        assert_eq!(l.matches(" UTC").count(), 3, "{l}");
    }
}

#[test]
fn unknown_keys_are_named_with_a_suggestion() {
    assert_problem(
        &format!("[api]\nbase_urll = \"https://x\"\n{MINIMAL_JOB}"),
        2,
        "api.base_urll",
        "did you mean `base_url`",
    );
    assert_problem(
        &job_with("shedule = \"x\""),
        7,
        "jobs[0].shedule",
        "unknown key",
    );
    assert_problem(
        &format!("[extra]\n{MINIMAL_JOB}"),
        1,
        "extra",
        "valid keys are",
    );
}

#[test]
fn a_secret_pasted_into_the_file_is_never_echoed() {
    let text = format!(
        "[api]\napp_secret = \"hunter2-TOPSECRET\"\n[database]\nurl = \"postgres://u:pw-TOPSECRET@db/x\"\npassword = \"also-TOPSECRET\"\n{}",
        job_with("token = \"tok-TOPSECRET\"")
    );
    let (code, stderr) = validate(&text);
    assert_eq!(code, 78);
    assert!(!stderr.contains("TOPSECRET"), "a secret leaked:\n{stderr}");
    assert!(stderr.contains("`api.app_secret`"), "{stderr}");
    assert!(stderr.contains("ROKT_APP_SECRET"), "{stderr}");
    assert!(
        stderr.contains("`database.url`: contains a password"),
        "{stderr}"
    );
}

#[test]
fn bad_cron_expressions_are_rejected() {
    assert_problem(
        &job_with("").replace("15 5 * * *", "61 5 * * *"),
        3,
        "jobs[0].schedule",
        "not a valid cron",
    );
    assert_problem(
        &job_with("").replace("15 5 * * *", "5 * * *"),
        3,
        "jobs[0].schedule",
        "has 4 fields",
    );
    assert_problem(
        &job_with("").replace("15 5 * * *", "0 0 0 5 * * 2030"),
        3,
        "jobs[0].schedule",
        "has 7 fields",
    );
    assert_problem(
        &job_with("").replace("15 5 * * *", "0 0 31 2 *"),
        3,
        "jobs[0].schedule",
        "never fires",
    );
    // Six fields (seconds first) are fine.
    let (code, stderr) = validate(&job_with("").replace("15 5 * * *", "30 15 5 * * *"));
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn unknown_time_zones_are_rejected() {
    assert_problem(
        &format!("[defaults]\ntimezone = \"Mars/Olympus\"\n{MINIMAL_JOB}"),
        2,
        "defaults.timezone",
        "not a time zone",
    );
    assert_problem(
        &job_with("timezone = \"America/New_Yrok\""),
        7,
        "jobs[0].timezone",
        "did you mean \"America/New_York\"",
    );
}

#[test]
fn impossible_dates_are_rejected() {
    assert_problem(
        &format!("[defaults]\nstart_date = \"2025-02-30\"\n{MINIMAL_JOB}"),
        2,
        "defaults.start_date",
        "not a calendar date",
    );
    assert_problem(
        &job_with("start_date = \"2025-13-01\""),
        7,
        "jobs[0].start_date",
        "not a calendar date",
    );
    assert_problem(
        &job_with("start_date = 20250101"),
        7,
        "jobs[0].start_date",
        "expected a date",
    );
    // A TOML date literal is fine.
    assert_eq!(validate(&job_with("start_date = 2025-01-01")).0, 0);
}

#[test]
fn day_counts_out_of_range_are_rejected() {
    assert_problem(
        &job_with("window_days = 0"),
        7,
        "jobs[0].window_days",
        "from 1 to 31",
    );
    assert_problem(
        &job_with("window_days = 32"),
        7,
        "jobs[0].window_days",
        "from 1 to 31",
    );
    assert_problem(
        &job_with("lookback_days = -1"),
        7,
        "jobs[0].lookback_days",
        "from 0 to 365",
    );
    assert_problem(
        &format!("[defaults]\nlookback_days = 400\n{MINIMAL_JOB}"),
        2,
        "defaults.lookback_days",
        "from 0 to 365",
    );
    assert_problem(
        &format!("[api]\nmax_concurrent_requests = 0\n{MINIMAL_JOB}"),
        2,
        "api.max_concurrent_requests",
        "from 1 to 64",
    );
    assert_problem(
        &job_with("window_days = \"7\""),
        7,
        "jobs[0].window_days",
        "expected an integer, found a string",
    );
}

#[test]
fn empty_accounts_and_metrics_are_rejected() {
    assert_problem(
        &job_with("").replace("accounts = [\"1\"]", "accounts = []"),
        4,
        "jobs[0].accounts",
        "is empty",
    );
    assert_problem(
        &job_with("").replace("metrics = [\"impressions\"]", "metrics = []"),
        6,
        "jobs[0].metrics",
        "is empty",
    );
    assert_problem(
        &job_with("").replace("accounts = [\"1\"]", "accounts = \"3141592\""),
        4,
        "jobs[0].accounts",
        "write a list",
    );
    assert_problem(
        &job_with("").replace("accounts = [\"1\"]", "accounts = [\"1\", \"1\"]"),
        4,
        "jobs[0].accounts[1]",
        "listed twice",
    );
    // "all" and integer ids are fine.
    assert_eq!(
        validate(&job_with("").replace("accounts = [\"1\"]", "accounts = \"all\"")).0,
        0
    );
    assert_eq!(
        validate(&job_with("").replace("accounts = [\"1\"]", "accounts = [3141592]")).0,
        0
    );
}

#[test]
fn duplicate_job_and_table_names_are_rejected() {
    let twice = format!("{}{}", job_with(""), job_with(""));
    assert_problem(&twice, 9, "jobs[1].name", "already used by jobs[0]");
    let same_table = format!(
        "{}{}",
        job_with("table = \"t\""),
        job_with("table = \"t\"").replace("name = \"j\"", "name = \"k\"")
    );
    assert_problem(
        &same_table,
        14,
        "jobs[1].table",
        "already written by jobs[0]",
    );
}

#[test]
fn unsafe_table_names_are_rejected() {
    assert_problem(
        &job_with("table = \"Robert'); DROP TABLE x;--\""),
        7,
        "jobs[0].table",
        "not a safe SQL identifier",
    );
    assert_problem(
        &job_with("table = \"export_runs\""),
        7,
        "jobs[0].table",
        "the tool's own tables",
    );
    assert_problem(
        &job_with("").replace("name = \"j\"", "name = \"my-job\""),
        2,
        "jobs[0].table",
        "cannot be used as a table name",
    );
    assert_problem(
        &format!("[database]\nschema = \"a b\"\n{MINIMAL_JOB}"),
        2,
        "database.schema",
        "not a safe SQL identifier",
    );
}

#[test]
fn unknown_placeholders_are_rejected() {
    assert_problem(
        &generic_with("records = \"/data/items\"\nkey = [\"groupByValue\"]")
            .replace("{account_id}", "{acount_id}"),
        5,
        "jobs[0].endpoint",
        "did you mean `{account_id}`",
    );
    assert_problem(
        &generic_with(
            "records = \"/data/items\"\nkey = [\"groupByValue\"]\nquery = { dateStart = \"{start}\" }",
        ),
        8,
        "jobs[0].query.dateStart",
        "unknown placeholder `{start}`",
    );
}

#[test]
fn a_query_job_cannot_have_an_endpoint() {
    assert_problem(
        &job_with("endpoint = \"/x/{account_id}\""),
        7,
        "jobs[0].endpoint",
        "cannot be combined with `report`",
    );
    assert_problem(
        &generic_with("records = \"/data\"\nkey = [\"id\"]\nmetrics = [\"impressions\"]"),
        8,
        "jobs[0].metrics",
        "belongs to Query API jobs",
    );
}

#[test]
fn a_generic_job_needs_records_and_key() {
    assert_problem(
        &generic_with("key = [\"id\"]"),
        1,
        "jobs[0].records",
        "needs `records`",
    );
    assert_problem(
        &generic_with("records = \"/data/items\""),
        1,
        "jobs[0].key",
        "needs `key`",
    );
    assert_problem(
        &generic_with("records = \"data\"\nkey = [\"id\"]"),
        6,
        "jobs[0].records",
        "not a JSON pointer",
    );
    assert_problem(
        &generic_with("records = \"/d\"\nkey = []"),
        7,
        "jobs[0].key",
        "is empty",
    );
    assert_problem(
        &generic_with("records = \"/d\"\nkey = [\"id\"]\nbody = { a = 1 }"),
        8,
        "jobs[0].body",
        "only sent with method = \"POST\"",
    );
}

#[test]
fn a_job_needs_report_or_endpoint() {
    let text = "[[jobs]]\nname = \"j\"\nschedule = \"15 5 * * *\"\naccounts = [\"1\"]\n";
    assert_problem(text, 1, "jobs[0]", "needs either `report`");
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = format!(
        "[api]\nmax_retries = 99\n[defaults]\ntimezone = \"Nowhere/Land\"\n{}",
        job_with("window_days = 0\nbogus = 1").replace("campaigns", "campains")
    );
    let (code, stderr) = validate(&text);
    assert_eq!(code, 78);
    assert!(stderr.contains("has 5 problems"), "{stderr}");
}

#[test]
fn malformed_toml_names_the_line() {
    let (code, stderr) = validate("[api]\nbase_url = \"https://x\n");
    assert_eq!(code, 78);
    assert!(stderr.contains("jobs.toml:2:"), "{stderr}");
    assert!(stderr.contains("not valid TOML"), "{stderr}");
}

#[test]
fn a_missing_config_file_is_a_config_error() {
    let out = run_binary(&["--config", "/nonexistent/jobs.toml", "validate"], &[]);
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/jobs.toml"));
}

#[test]
fn environment_overrides_win_and_are_checked() {
    use rokt_export::config::{Backend, Config, Env};
    let (_dir, path) = config_file(&format!(
        "[api]\nbase_url = \"https://api.rokt.com\"\n[database]\nurl = \"sqlite://a.db\"\n{MINIMAL_JOB}"
    ));
    let env = Env::default()
        .with("DATABASE_URL", "postgres://rokt:pw@db/rokt")
        .with("ROKT_API_BASE_URL", "http://127.0.0.1:9999/");
    let config = Config::load(&path, &env).unwrap();
    assert_eq!(config.database.url.backend(), Backend::Postgres);
    assert_eq!(config.api.base_url, "http://127.0.0.1:9999");
    assert!(!format!("{config:?}").contains(":pw@"));

    let bad = Env::default().with("DATABASE_URL", "mysql://u:SECRETPW@x/y");
    let err = Config::load(&path, &bad).unwrap_err().to_string();
    assert!(err.contains("DATABASE_URL"), "{err}");
    assert!(!err.contains("SECRETPW"), "{err}");
}

#[test]
fn defaults_are_inherited_and_can_be_overridden() {
    use rokt_export::config::{Config, Env, JobKind};
    let text = format!(
        "[defaults]\ntimezone = \"Australia/Sydney\"\ncurrency = \"AUD\"\nlookback_days = 3\nwindow_days = 10\nstart_date = \"2025-06-01\"\n{}{}",
        job_with(""),
        job_with("timezone = \"UTC\"\nwindow_days = 2").replace("name = \"j\"", "name = \"k\"")
    );
    let (_dir, path) = config_file(&text);
    let config = Config::load(&path, &Env::default()).unwrap();
    let j = config.job("j").unwrap();
    assert_eq!(j.timezone.map(|z| z.name()), Some("Australia/Sydney"));
    assert_eq!(j.currency.as_deref(), Some("AUD"));
    assert_eq!((j.lookback_days, j.window_days), (3, 10));
    assert_eq!(j.start_date.unwrap().to_string(), "2025-06-01");
    let k = config.job("k").unwrap();
    assert_eq!(
        (k.timezone.map(|z| z.name()), k.window_days, k.lookback_days),
        (Some("UTC"), 2, 3)
    );
    assert!(matches!(k.kind, JobKind::Query(_)));
}

#[test]
fn placeholders_expand_in_generic_jobs() {
    use chrono::NaiveDate;
    use rokt_export::config::template::Values;
    use rokt_export::config::{Config, Env, JobKind};
    let text = generic_with(
        "method = \"POST\"\nrecords = \"\"\nkey = [\"id\"]\nquery = { from = \"{start_date}\", to = \"{end_date}\" }\nbody = { account = \"{account_id}\", tz = \"{timezone}\", n = 3, list = [\"{currency}\", true] }",
    );
    let (_dir, path) = config_file(&text);
    let config = Config::load(&path, &Env::default()).unwrap();
    let JobKind::Generic(g) = &config.jobs[0].kind else {
        panic!("generic job expected")
    };
    let values = Values {
        account_id: "a/b",
        start_date: NaiveDate::from_ymd_opt(2025, 3, 1).unwrap(),
        last_date: NaiveDate::from_ymd_opt(2025, 3, 31).unwrap(),
        timezone: "Europe/London",
        currency: "GBP",
    };
    assert_eq!(
        g.endpoint.expand_path(&values),
        "/reporting/accounts/a%2Fb/campaigns/breakdown"
    );
    let query: Vec<(String, String)> = g
        .query
        .iter()
        .map(|(k, t)| (k.clone(), t.expand(&values)))
        .collect();
    assert_eq!(
        query,
        [
            ("from".into(), "2025-03-01".into()),
            ("to".into(), "2025-04-01".into())
        ]
    );
    let body = g.body.as_ref().unwrap().expand(&values);
    assert_eq!(
        body,
        serde_json::json!({"account": "a/b", "tz": "Europe/London", "n": 3, "list": ["GBP", true]})
    );
}

#[test]
fn no_input_makes_the_parser_panic() {
    use rokt_export::config::{Config, Env};
    let samples = [
        "",
        "[[jobs]]",
        "jobs = 1",
        "jobs = [1, \"x\"]",
        "[api]\nmax_retries = 99999999999999999999",
        "[[jobs]]\naccounts = [[]]\nschedule = 5\nname = 7\nreport = []\nmetrics = [1, {a=1}]",
        "[[jobs]]\nname=\"x\"\nschedule=\"* * * * *\"\naccounts=[\"1\"]\nendpoint=\"/{\"\nquery=[1]\nbody=\"{x}\"\nrecords=1\nkey=\"id\"",
        "api = 3\ndatabase = []\nserver = \"x\"\ndefaults = 1.5",
        "[server]\nlisten = \"nope\"\nshutdown_grace_secs = -5",
    ];
    for text in samples {
        let err = Config::from_toml(std::path::Path::new("jobs.toml"), text, &Env::default());
        assert!(err.is_err(), "{text:?} should be rejected");
    }
}

/// README.md's configuration reference is generated from the key table (src/config/keys.rs): the
/// same keys in the same order, each with the table's default and meaning (ranges and allowed
/// words included), so the README cannot drift on any of them.
#[test]
fn the_readme_configuration_reference_matches_the_code() {
    use std::collections::BTreeMap;
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("<!-- config-reference:start -->")
        .expect("start marker");
    let end = readme
        .find("<!-- config-reference:end -->")
        .expect("end marker");
    let documented: Vec<&str> = readme[start..end]
        .lines()
        .filter(|l| l.starts_with("| `"))
        .collect();
    let key_of = |row: &str| row.split('`').nth(1).unwrap_or_default().to_owned();
    let expected = rokt_export::config::reference();
    let in_readme: BTreeMap<String, &str> = documented.iter().map(|r| (key_of(r), *r)).collect();
    let in_code: BTreeMap<String, String> = expected
        .iter()
        .map(|r| (r.key.clone(), r.to_string()))
        .collect();

    let mut differences = Vec::new();
    for (key, row) in &in_code {
        match in_readme.get(key) {
            None => differences.push(format!("missing from the README: {row}")),
            Some(readme_row) if readme_row != row => differences.push(format!(
                "`{key}` differs:\n    README: {readme_row}\n    code:   {row}"
            )),
            Some(_) => {}
        }
    }
    for key in in_readme.keys().filter(|k| !in_code.contains_key(*k)) {
        differences.push(format!(
            "the README documents `{key}`, which the code does not know"
        ));
    }
    if differences.is_empty() && documented.len() != expected.len() {
        differences.push("a key is documented twice".to_owned());
    }
    if differences.is_empty() {
        let order: Vec<String> = documented.iter().map(|r| key_of(r)).collect();
        let code_order: Vec<String> = expected.iter().map(|r| r.key.clone()).collect();
        if order != code_order {
            differences.push("the rows are in another order than the key table's".to_owned());
        }
    }
    let rows: Vec<String> = expected.iter().map(ToString::to_string).collect();
    assert!(
        differences.is_empty(),
        "README.md's configuration reference does not match src/config/keys.rs:\n  {}\n\n\
         The rows the code expects, to paste between the markers:\n{}",
        differences.join("\n  "),
        rows.join("\n")
    );
}

#[test]
fn a_query_jobs_key_names_its_own_dimensions_once_and_is_not_empty() {
    let dims = "dimensions = [\"campaign_id\", \"campaign_name\"]";
    // Line 7 holds `dimensions`, line 8 `key`.
    assert_problem(
        &job_with(&format!("{dims}\nkey = []")),
        8,
        "jobs[0].key",
        "is empty, which would keep one row per account and day",
    );
    assert_problem(
        &job_with(&format!("{dims}\nkey = [\"campaign_idd\"]")),
        8,
        "jobs[0].key[0]",
        "\"campaign_idd\" is not one of the job's dimensions (did you mean \"campaign_id\"?)",
    );
    assert_problem(
        &job_with(&format!("{dims}\nkey = [\"creative_id\"]")),
        8,
        "jobs[0].key[0]",
        "not one of the job's dimensions",
    );
    assert_problem(
        &job_with(&format!("{dims}\nkey = [\"campaign_id\", \"campaign_id\"]")),
        8,
        "jobs[0].key[1]",
        "\"campaign_id\" is listed twice",
    );
    // Without dimensions there is nothing to name: one row per account and day is the grain.
    let (code, stderr) = validate(&job_with("key = []"));
    assert_eq!(code, 0, "{stderr}");
    let (code, stderr) = validate(&job_with(&format!("{dims}\nkey = [\"campaign_id\"]")));
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn validate_shows_the_key_it_will_use_and_each_accounts_own_units() {
    let show = |text: &str| {
        let (_dir, path) = config_file(text);
        let out = run_binary(&["--config", path.to_str().unwrap(), "validate"], &[]);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let grain = show(&job_with(
        "dimensions = [\"campaign_id\", \"campaign_name\", \"creative_id\"]",
    ));
    let key_line = |out: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with("key "))
            .unwrap_or_else(|| panic!("no key line in {out}"))
            .trim()
            .to_owned()
    };
    assert_eq!(
        key_line(&grain),
        "key       account_id, date, campaign_id, creative_id (campaign_name last value wins: \
         not part of a row's identity)"
    );
    assert!(grain.contains("each account's own zone"), "{grain}");
    assert!(grain.contains("each account's own currency"), "{grain}");

    let named = show(&job_with(
        "dimensions = [\"campaign_id\", \"campaign_name\"]\nkey = [\"campaign_id\", \"campaign_name\"]\ntimezone = \"Europe/Berlin\"\ncurrency = \"EUR\"",
    ));
    assert_eq!(
        key_line(&named),
        "key       account_id, date, campaign_id, campaign_name"
    );
    assert!(!named.contains("each account's own"), "{named}");
    assert!(
        named.contains("Europe/Berlin") && named.contains("EUR"),
        "{named}"
    );
}
