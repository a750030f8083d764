//! Which accounts a run reads, and in which time zone and currency each one's report is asked.
//!
//! A job that sets neither `timezone` nor `currency` (nor inherits them from `[defaults]`) reads
//! each account in its own `accountTimezone` and `accountCurrencyCode`, as One Platform shows it.
//! Those come from `GET /v1/query/accounts`, asked at most once per [`MAX_AGE`] and shared by
//! every run of the process ([`Directory`]). A table must not mix two zones or currencies for one
//! account (a day would mean two things and a sum would add two currencies): [`check_units`]
//! refuses a run that would, naming both and the ways out.

use std::sync::Arc;
use std::time::Duration;

use chrono_tz::Tz;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::{Context, RunError};
use crate::api::{Account, ApiClient, ApiError};
use crate::config::{Accounts, Job, JobKind};
use crate::store::{AccountState, StoreError};

/// How long the accounts list is reused: runs that fire together share one request, and a zone
/// or currency Rokt changes is picked up within this.
const MAX_AGE: Duration = Duration::from_secs(300);

/// One account of a run and how its report is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub id: String,
    pub zone: Tz,
    pub currency: String,
    /// Whether the zone and currency are the account's own (the job sets neither), for messages.
    pub own: bool,
}

/// The accounts the credentials can read, cached for [`MAX_AGE`], one request at a time.
#[derive(Debug, Default)]
pub(crate) struct Directory {
    cached: Mutex<Option<(Instant, Arc<Vec<Account>>)>>,
}

impl Directory {
    /// The accounts list, from the cache when it is fresh.
    pub async fn get(&self, api: &ApiClient) -> Result<Arc<Vec<Account>>, ApiError> {
        let mut cached = self.cached.lock().await;
        if let Some((at, list)) = cached.as_ref()
            && at.elapsed() < MAX_AGE
        {
            return Ok(Arc::clone(list));
        }
        let list = Arc::new(api.accounts().await?);
        *cached = Some((Instant::now(), Arc::clone(&list)));
        Ok(list)
    }
}

/// The accounts a run reads (the job's list, or every account the credentials see, narrowed by
/// `--account`), each with its report zone and currency, or why it cannot be read.
pub(crate) async fn targets(
    ctx: &Context,
    job: &Job,
    only: &[String],
) -> Result<Vec<(String, Result<Target, String>)>, RunError> {
    let needs_directory =
        matches!(job.accounts, Accounts::All) || job.timezone.is_none() || job.currency.is_none();
    let directory = if needs_directory {
        Some(ctx.shared.accounts.get(&ctx.api).await?)
    } else {
        None
    };
    let listed: Vec<String> = match (&job.accounts, &directory) {
        (Accounts::List(ids), _) => ids.clone(),
        (Accounts::All, Some(all)) => all.iter().map(|a| a.account_id.clone()).collect(),
        (Accounts::All, None) => Vec::new(),
    };
    for a in only {
        if !listed.contains(a) {
            return Err(RunError::UnknownAccount {
                job: job.name.clone(),
                account: a.clone(),
                listed: listed.join(", "),
            });
        }
    }
    Ok(listed
        .into_iter()
        .filter(|a| only.is_empty() || only.contains(a))
        .map(|id| {
            let found = directory
                .as_deref()
                .and_then(|all| all.iter().find(|a| a.account_id == id));
            let target = target(job, &id, found);
            (id, target)
        })
        .collect())
}

/// How `id` is read: the job's zone and currency, or the account's own where the job sets none.
fn target(job: &Job, id: &str, account: Option<&Account>) -> Result<Target, String> {
    let own = job.timezone.is_none() || job.currency.is_none();
    let missing = |what: &str, key: &str| {
        format!(
            "account {id}: the job sets no `{key}`, so each account is read in its own {what}, \
             but GET /v1/query/accounts {}; set `{key}` on the job (or in [defaults])",
            match account {
                None => "does not list this account for these credentials".to_owned(),
                Some(_) => format!("gives no usable {what} for it"),
            }
        )
    };
    let zone = match job.timezone {
        Some(tz) => tz,
        None => account
            .and_then(|a| a.timezone.as_deref())
            .and_then(|name| name.parse::<Tz>().ok())
            .ok_or_else(|| missing("time zone", "timezone"))?,
    };
    let currency = match &job.currency {
        Some(c) => c.clone(),
        None => account
            .and_then(|a| a.currency.as_deref())
            .filter(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()))
            .map(str::to_owned)
            .ok_or_else(|| missing("currency", "currency"))?,
    };
    Ok(Target {
        id: id.to_owned(),
        zone,
        currency,
        own,
    })
}

/// Refuses to read `target` into a table that holds its rows in another zone or currency: from
/// the account's state, or, for rows loaded before the state recorded them, from the table's own
/// `timezone` and `currency` columns. `Err` holds the message (a configuration problem).
pub(crate) async fn check_units(
    ctx: &Context,
    job: &Job,
    target: &Target,
    state: &AccountState,
) -> Result<Result<(), String>, StoreError> {
    let stored: Vec<(String, String)> = match (&state.timezone, &state.currency) {
        (Some(zone), Some(currency)) => vec![(zone.clone(), currency.clone())],
        _ => match job.kind {
            JobKind::Query(_) => ctx.store.table_units(&job.table, &target.id).await?,
            // A generic table has no such columns; its state records them from now on.
            JobKind::Generic(_) => Vec::new(),
        },
    };
    let wanted = (target.zone.name().to_owned(), target.currency.clone());
    let Some(other) = stored.into_iter().find(|units| *units != wanted) else {
        return Ok(Ok(()));
    };
    let how = if target.own {
        " (the account's own: the job sets no `timezone`/`currency`)"
    } else {
        ""
    };
    Ok(Err(format!(
        "account {}: table {} holds rows read in {} and {}, but this run would read {} and {}{how}; \
         one table mixing two zones or currencies would give two meanings of a day and sums of two \
         currencies. Keep reading as before by setting `timezone = \"{}\"` and `currency = \"{}\"` \
         on the job, give the job another `table`, or replace this account's rows: \
         `rokt-export run-now {} --reload --from YYYY-MM-DD`",
        target.id, job.table, other.0, other.1, wanted.0, wanted.1, other.0, other.1, job.name,
    )))
}
