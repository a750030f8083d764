//! `rokt-export demo`: runs every job once against the built-in simulated Rokt API and prints what
//! landed and a query to try.

use std::fmt::Write as _;
use std::path::Path;

use super::DemoArgs;
use super::exit::Exit;
use crate::config::{Backend, Config, ENV_DATABASE_URL, Env};
use crate::demo::{DEMO_FILE, Demo, DemoOptions};

pub(super) async fn demo(path: &Path, env: &Env, args: &DemoArgs) -> Result<(), Exit> {
    if args.database.is_none() && env.get(ENV_DATABASE_URL).is_some() {
        eprintln!(
            "note: the demo does not use {ENV_DATABASE_URL}; it writes to its own file, {DEMO_FILE} \
             (--database URL names another database for it)"
        );
    }
    let options = DemoOptions {
        config_path: path.to_owned(),
        days: args.days,
        database: args.database.clone(),
    };
    let demo = Demo::start(&options).await?;
    if demo.uses_shipped_config() {
        eprintln!(
            "note: {} not found; using the shipped example jobs",
            path.display()
        );
    }
    println!("simulated Rokt API on {}", demo.api_url());
    println!("database: {}", demo.config().database.url);

    let mut outcome = Ok(());
    let mut landed = String::new();
    for job in &demo.config().jobs {
        let (result, rows) = demo.run_job(job).await;
        if let Err(e) = super::summary::report(demo.config(), result, super::summary::Detail::Line)
        {
            // Said now, beside the job it is about; the demo goes on with the other jobs.
            if let Some(message) = e.message() {
                eprintln!(
                    "error: {}",
                    crate::telemetry::sanitize_message(message, super::summary::MAX_ERROR_CHARS)
                );
            }
            if outcome.is_ok() {
                outcome = Err(Exit::quietly(e.code()));
            }
        }
        let _ = writeln!(
            landed,
            "  {:<28} {rows:>8} rows",
            super::qualified(demo.config(), &job.table)
        );
    }
    let query = sample_query(demo.config());
    demo.stop().await;

    println!();
    println!("what landed:");
    print!("{landed}");
    println!();
    println!("try it:");
    println!("{query}");
    outcome
}

/// A query worth running against the first Query API job's table.
fn sample_query(config: &Config) -> String {
    let job = config
        .jobs
        .iter()
        .find(|j| matches!(j.kind, crate::config::JobKind::Query(_)));
    let Some(job) = job else {
        return format!(
            "  SELECT * FROM {} LIMIT 10;",
            config
                .jobs
                .first()
                .map_or("export_runs".into(), |j| super::qualified(config, &j.table))
        );
    };
    let crate::config::JobKind::Query(q) = &job.kind else {
        return String::new();
    };
    let table = super::qualified(config, &job.table);
    let dims = if q.dimensions.is_empty() {
        "account_id".to_owned()
    } else {
        q.dimensions.join(", ")
    };
    let sums: Vec<String> = q
        .metrics
        .iter()
        .take(3)
        .map(|m| format!("sum({m}) AS {m}"))
        .collect();
    let open = match config.database.url.backend() {
        Backend::Sqlite => format!(
            "  sqlite3 {}",
            config
                .database
                .url
                .expose()
                .trim_start_matches("sqlite://")
                .trim_start_matches("sqlite:")
        ),
        Backend::Postgres => format!("  psql \"{}\"", config.database.url.redacted()),
    };
    let order = q
        .metrics
        .first()
        .map_or("1".to_owned(), |m| format!("{m} DESC"));
    format!(
        "{open}\n  SELECT {dims}, {} FROM {table} GROUP BY {dims} ORDER BY {order} LIMIT 10;",
        sums.join(", ")
    )
}
