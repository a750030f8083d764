//! `rokt-export demo`: the whole pipeline with nothing installed and no credentials.
//!
//! [`Demo::start`] starts the simulated Rokt API on a loopback port, points every job of the config
//! at it and opens the embedded SQLite file (or `DATABASE_URL` when set); [`Demo::run_job`] then runs
//! one job once over the most recent days. What to print is the command line's business
//! (`cli::demo`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{Days, NaiveDate, Utc};

use crate::api::{ApiClient, ApiError};
use crate::config::{Accounts, Config, ConfigError, DatabaseUrl, ENV_DATABASE_URL, Env, Job};
use crate::export::{self, Context, DayRange, NoProgress, RunError, RunRequest, RunResult};
use crate::mock::{MockConfig, MockServer};
use crate::store::{Store, StoreError, Trigger};

/// The jobs the demo uses when there is no config file: the shipped `jobs.toml`.
const SHIPPED_CONFIG: &str = include_str!("../jobs.toml");

/// Where the demo writes when `DATABASE_URL` is not set.
pub const DEMO_DATABASE_URL: &str = "sqlite://rokt-export.db";

/// What the demo runs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The config whose jobs run; the shipped example jobs when the file does not exist.
    pub config_path: PathBuf,
    /// How many recent days (today included) each job exports.
    pub days: u32,
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
    pub async fn start(env: &Env, options: &DemoOptions) -> Result<Demo, DemoError> {
        // The demo never talks to the real API, so ROKT_API_BASE_URL is ignored here on purpose.
        let env = Env::from_pairs(
            env.get(ENV_DATABASE_URL)
                .map(|u| (ENV_DATABASE_URL.to_owned(), u.to_owned())),
        );
        let shipped_config = !options.config_path.exists();
        let mut config = if shipped_config {
            Config::from_toml(Path::new("jobs.toml (built in)"), SHIPPED_CONFIG, &env)?
        } else {
            Config::load(&options.config_path, &env)?
        };
        if env.get(ENV_DATABASE_URL).is_none()
            && let Ok(url) = DatabaseUrl::parse(DEMO_DATABASE_URL)
        {
            // A constant known to parse (a unit test says so).
            config.database.url = url;
        }

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

async fn open_store(config: &Config) -> Result<Store, DemoError> {
    let failed = |source| DemoError::Store {
        url: config.database.url.to_string(),
        source,
    };
    let store = Store::connect(&config.database).await.map_err(failed)?;
    store.migrate().await.map_err(failed)?;
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_database_url_parses() {
        assert!(DatabaseUrl::parse(DEMO_DATABASE_URL).is_ok());
    }
}
