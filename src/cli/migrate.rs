//! `rokt-export migrate`: applies the core-table migrations, then creates or widens every Query
//! API job's table (a generic job's table follows the API's fields, so it is made by its first run).

use std::path::Path;

use super::exit::Exit;
use crate::config::{Env, JobKind};

pub(super) async fn migrate(path: &Path, env: &Env) -> Result<(), Exit> {
    let config = super::load_config(path, env)?;
    let store = super::open_store(&config).await?;
    let mut failed = false;
    for job in &config.jobs {
        match &job.kind {
            JobKind::Query(q) => match crate::export::ensure_table(
                &store,
                &crate::export::query::table_spec(&job.table, q),
            )
            .await
            {
                Ok(c) if c.created => println!("{}: created table {}", job.name, job.table),
                Ok(c) if c.added.is_empty() => {
                    println!("{}: table {} is up to date", job.name, job.table)
                }
                Ok(c) => println!(
                    "{}: table {} has new columns: {}",
                    job.name,
                    job.table,
                    c.added.join(", ")
                ),
                Err(e) => {
                    eprintln!(
                        "error: {}: cannot create or alter table {}: {}",
                        job.name,
                        job.table,
                        crate::telemetry::sanitize(&e.to_string(), super::summary::MAX_ERROR_CHARS)
                    );
                    failed = true;
                }
            },
            JobKind::Generic(_) => println!(
                "{}: table {} is created on the first run (its columns follow the API's fields)",
                job.name, job.table
            ),
        }
    }
    store.close().await;
    if failed {
        return Err(Exit::quietly(super::exit::RUN_FAILED));
    }
    println!("migrations applied to {}", config.database.url);
    Ok(())
}
