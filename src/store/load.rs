//! What a backend is handed to commit one window ([`Load`]) and what it reports back
//! ([`Written`]): the rows to send, the run record's figures, the account's state, and the rows
//! the answer no longer has ([`Vanished`]).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::fingerprint::Bound;
use super::runs::{Reset, StateUpdate};
use super::spec::{Prepared, Selection};
use super::table::Batch;

/// Everything a backend needs to commit one window.
pub(super) struct Load<'a> {
    pub run_id: i64,
    pub prepared: &'a Prepared<'a>,
    pub batch: &'a Batch,
    /// The `_row_hash` of every row of `batch`, by row number.
    pub hashes: &'a [Uuid],
    pub selection: &'a Selection,
    pub api_requests: u32,
    pub state: Option<&'a StateUpdate>,
    /// What the run noticed, for the run record.
    pub warnings: Option<&'a str>,
    /// The rows of the window's days the answer no longer has, to delete after the upsert.
    pub vanished: Option<Vanished<'a>>,
    /// `--reload`: the account's other rows and its state, to delete before the upsert.
    pub reset: Option<Reset<'a>>,
    pub now: DateTime<Utc>,
}

/// The stored rows a window replaces that its answer no longer has, to delete after the upsert:
/// within `scope`, those whose fingerprint is one of `candidates` (stored, and its key hash none
/// of the answer's: see `fingerprint::vanished`) and, with `unhashed`, those that have none. Only
/// made when there is something to delete: never an empty list without `unhashed`. Rows of the
/// answer carry a fingerprint with their key by then, which no candidate has.
pub(super) struct Vanished<'a> {
    pub scope: Vec<Bound<'a>>,
    pub candidates: Vec<u128>,
    pub unhashed: bool,
}

/// What a backend's commit did.
pub(super) struct Written {
    /// Rows inserted or changed.
    pub written: u64,
    /// Rows the answer no longer had.
    pub deleted: u64,
}
