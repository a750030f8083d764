//! `rokt-export demo`: the whole pipeline with nothing installed and no credentials.
//!
//! [`Demo::start`] starts the simulated Rokt API on a loopback port, points every job of the config
//! at it and opens the demo's own database: the SQLite file [`DEMO_DATABASE_URL`], or the database
//! named with `--database`; never `DATABASE_URL` or the config's `[database] url`, which are where
//! real exports live. [`Demo::run_job`] then runs one job once over the most recent days. What to
//! print is the command line's business (`cli::demo`).
//!
//! The demo writes simulated numbers under the config's real account ids, so it refuses a database
//! that may hold real exports: one with runs that the demo did not start, or with tables but no
//! runs at all (see [`refusal`]). A database it refuses is left exactly as it was: it is read, not
//! migrated.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{Days, NaiveDate, Utc};

use crate::api::{ApiClient, ApiError};
use crate::config::{Accounts, Config, ConfigError, DatabaseUrl, Env, Job};
use crate::export::{self, Context, DayRange, NoProgress, RunError, RunRequest, RunResult};
use crate::mock::{MockConfig, MockServer};
use crate::store::{Contents, Store, StoreError, Trigger};

/// The jobs the demo uses when there is no config file: the shipped `jobs.toml`.
const SHIPPED_CONFIG: &str = include_str!("../jobs.toml");

/// Where the demo writes unless told otherwise: a file of its own, not the config's default
/// `rokt-export.db`, so that a first real export never lands beside the demo's numbers.
pub const DEMO_DATABASE_URL: &str = "sqlite://rokt-export-demo.db";

/// What the demo runs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The config whose jobs run; the shipped example jobs when the file does not exist.
    pub config_path: PathBuf,
    /// How many recent days (today included) each job exports.
    pub days: u32,
    /// The database to write to (`--database`); [`DEMO_DATABASE_URL`] when `None`.
    pub database: Option<String>,
}

/// Why the demo could not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot start the simulated Rokt API: {0}")]
    Mock(#[source] std::io::Error),
    #[error("cannot use the database {url}: {source}")]
    Store {
        url: String,
        #[source]
        source: StoreError,
    },
    #[error(transparent)]
    Api(#[from] ApiError),
    /// `--database` is not a database URL.
    #[error("--database: {0}")]
    BadUrl(String),
    /// The database may hold real exports: the demo does not write to it.
    #[error(
        "the demo does not write to {url}: {reason}. The demo loads simulated numbers under the \
         config's account ids, which would mix with real exports. Run it without --database (it \
         then writes to its own file, {file}) or name an empty database, or one only the demo used"
    )]
    NotADemoDatabase {
        url: String,
        reason: String,
        file: &'static str,
    },
}

/// A started demo: the simulated API, the database and the context the jobs run in.
pub struct Demo {
    ctx: Context,
    mock: MockServer,
    shipped_config: bool,
    from: NaiveDate,
    today: NaiveDate,
}

impl Demo {
    /// Loads the config (or the shipped one), starts the simulated API with the config's accounts
    /// and opens the database, migrations applied.
    pub async fn start(options: &DemoOptions) -> Result<Demo, DemoError> {
        // The demo never talks to the real API nor writes to the real database, so neither
        // ROKT_API_BASE_URL nor DATABASE_URL is read: the config sees an empty environment.
        let env = Env::default();
        let shipped_config = !options.config_path.exists();
        let mut config = if shipped_config {
            Config::from_toml(Path::new("jobs.toml (built in)"), SHIPPED_CONFIG, &env)?
        } else {
            Config::load(&options.config_path, &env)?
        };
        config.database.url =
            DatabaseUrl::parse(options.database.as_deref().unwrap_or(DEMO_DATABASE_URL))
                .map_err(DemoError::BadUrl)?;

        let today = Utc::now().date_naive();
        let mut accounts: Vec<String> = Vec::new();
        for job in &config.jobs {
            if let Accounts::List(ids) = &job.accounts {
                for id in ids {
                    if !accounts.contains(id) {
                        accounts.push(id.clone());
                    }
                }
            }
        }
        let mut mock_config = MockConfig {
            today,
            ..MockConfig::default()
        };
        if !accounts.is_empty() {
            mock_config.accounts = accounts;
        }
        let mock = MockServer::start(mock_config)
            .await
            .map_err(DemoError::Mock)?;
        config.api.base_url = mock.base_url();

        crate::tls::install_crypto_provider();
        let store = open_store(&config).await?;
        let api = ApiClient::new(&config.api, mock.credentials())?;
        let from = today
            .checked_sub_days(Days::new(u64::from(options.days.saturating_sub(1))))
            .unwrap_or(today);
        Ok(Demo {
            ctx: Context::new(Arc::new(config), api, store),
            mock,
            shipped_config,
            from,
            today,
        })
    }

    /// The config the jobs come from.
    pub fn config(&self) -> &Config {
        &self.ctx.config
    }

    /// True when the config file did not exist and the shipped example jobs are used.
    pub fn uses_shipped_config(&self) -> bool {
        self.shipped_config
    }

    /// Where the simulated API listens.
    pub fn api_url(&self) -> String {
        self.mock.base_url()
    }

    /// Runs `job` once over the demo's days; returns its result and the rows its table holds
    /// afterwards.
    pub async fn run_job(&self, job: &Job) -> (Result<RunResult, RunError>, i64) {
        let mut request = RunRequest::new(&job.name, Trigger::Demo);
        request.range = DayRange::Explicit {
            from: Some(self.from),
            to: Some(self.today),
        };
        let result = export::run_job(&self.ctx, &request, &NoProgress).await;
        let rows = self
            .ctx
            .store
            .table_row_count(&job.table)
            .await
            .unwrap_or(0);
        (result, rows)
    }

    /// Closes the database and stops the simulated API.
    pub async fn stop(self) {
        self.ctx.store.close().await;
        self.mock.stop().await;
    }
}

/// Connects, refuses a database that may hold real exports (before changing anything in it), and
/// migrates.
async fn open_store(config: &Config) -> Result<Store, DemoError> {
    let failed = |source| DemoError::Store {
        url: config.database.url.to_string(),
        source,
    };
    let store = Store::connect(&config.database).await.map_err(failed)?;
    let contents = match store.contents().await {
        Ok(contents) => contents,
        Err(e) => {
            store.close().await;
            return Err(failed(e));
        }
    };
    if let Some(reason) = refusal(&contents) {
        store.close().await;
        return Err(DemoError::NotADemoDatabase {
            url: config.database.url.to_string(),
            reason,
            file: DEMO_FILE,
        });
    }
    store.migrate().await.map_err(failed)?;
    Ok(store)
}

/// The demo's own file, as a person finds it.
pub const DEMO_FILE: &str = "rokt-export-demo.db";

/// Why the demo must not write to a database holding `contents`, if it must not: it has runs the
/// demo did not start, or tables (job tables, or anything else in the schema) but no run at all,
/// so nothing says they are the demo's.
pub fn refusal(contents: &Contents) -> Option<String> {
    if !contents.all_runs_are_demo_runs() {
        let others: Vec<String> = contents
            .runs_by_trigger
            .iter()
            .filter(|(t, _)| t != Trigger::Demo.as_str())
            .map(|(t, n)| format!("{n} `{t}`"))
            .collect();
        return Some(format!(
            "it holds runs the demo did not start ({})",
            others.join(", ")
        ));
    }
    if contents.runs() == 0 && !contents.tables.is_empty() {
        let mut shown: Vec<&str> = contents.tables.iter().take(5).map(String::as_str).collect();
        if contents.tables.len() > shown.len() {
            shown.push("...");
        }
        return Some(format!(
            "it holds tables ({}) but no runs, so nothing says they are the demo's",
            shown.join(", ")
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_demo_database_url_parses() {
        let url = DatabaseUrl::parse(DEMO_DATABASE_URL).unwrap();
        assert!(url.expose().ends_with(DEMO_FILE));
    }

    #[test]
    fn only_an_empty_database_or_one_of_demo_runs_is_the_demos() {
        let contents = |tables: &[&str], runs: &[(&str, u64)]| Contents {
            tables: tables.iter().map(|t| (*t).to_owned()).collect(),
            runs_by_trigger: runs.iter().map(|(t, n)| ((*t).to_owned(), *n)).collect(),
        };
        assert_eq!(refusal(&contents(&[], &[])), None, "empty");
        assert_eq!(
            refusal(&contents(&["campaign_daily"], &[("demo", 3)])),
            None
        );
        let mixed = refusal(&contents(&["t"], &[("demo", 3), ("run-now", 2)])).unwrap();
        assert!(mixed.contains("2 `run-now`"), "{mixed}");
        assert!(!mixed.contains("demo`"), "{mixed}");
        let real = refusal(&contents(&["t"], &[("schedule", 1)])).unwrap();
        assert!(real.contains("1 `schedule`"), "{real}");
        let no_runs = refusal(&contents(&["campaign_daily"], &[])).unwrap();
        assert!(
            no_runs.contains("campaign_daily") && no_runs.contains("no runs"),
            "{no_runs}"
        );
    }
}
