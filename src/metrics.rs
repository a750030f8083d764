//! Prometheus metrics of the daemon: one registry, the functions that record into it, and its
//! encoding in the Prometheus text format (what `/metrics` serves).
//!
//! Names follow Prometheus conventions: the `rokt_export_` prefix, base units in the name
//! (`_seconds`), `_total` on counters. Every job's series exist from the start (at zero), so a
//! dashboard or an alert on `rate(...)` works before the first run. The registry is built once per
//! daemon and passed around explicitly; there is no global registry.

use std::sync::atomic::AtomicU64;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::api::{ApiClient, LatencyHistogram};
/// How a verification after a run ended: the `outcome` label of `rokt_export_verify_runs_total`.
use crate::verify::Outcome as VerifyOutcome;

/// The `Content-Type` of [`Metrics::encode`]'s output (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds (seconds) of the run duration histogram: runs take from seconds (an unchanged
/// day) to an hour or more (a first backfill of many accounts).
const RUN_DURATION_BUCKETS_SECS: [f64; 12] = [
    0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// How one run of a job ended, the `outcome` label of `rokt_export_runs_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunOutcome {
    /// Every window succeeded.
    Succeeded,
    /// A window failed, or the run could not start (database or API down, bad credentials).
    Failed,
    /// Another process (a replica, a `--run-now`) held the job's lock; this run did nothing.
    Skipped,
    /// The daemon stopped and the run did not finish within the grace period.
    Abandoned,
}

impl RunOutcome {
    /// Every outcome, to create each job's series at zero.
    pub const ALL: [RunOutcome; 4] = [
        RunOutcome::Succeeded,
        RunOutcome::Failed,
        RunOutcome::Skipped,
        RunOutcome::Abandoned,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Succeeded => "succeeded",
            RunOutcome::Failed => "failed",
            RunOutcome::Skipped => "skipped",
            RunOutcome::Abandoned => "abandoned",
        }
    }
}

/// What a run did to its table, for the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunCounts {
    pub rows_written: u64,
    pub rows_deleted: u64,
    /// Windows whose answer had no rows for days that hold rows.
    pub empty_answers: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct JobLabels {
    job: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RunLabels {
    job: String,
    outcome: &'static str,
}

/// The daemon's metrics. Recording is lock-free (atomics); encoding takes a consistent-enough
/// snapshot for Prometheus.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    runs: Family<RunLabels, Counter>,
    rows_written: Family<JobLabels, Counter>,
    rows_deleted: Family<JobLabels, Counter>,
    empty_answers: Family<JobLabels, Counter>,
    run_duration: Family<JobLabels, Histogram, fn() -> Histogram>,
    last_success: Family<JobLabels, Gauge<f64, AtomicU64>>,
    skipped_overlaps: Family<JobLabels, Counter>,
    verify_runs: Family<RunLabels, Counter>,
    verify_mismatched_days: Family<JobLabels, Gauge>,
    verify_last: Family<JobLabels, Gauge<f64, AtomicU64>>,
}

fn run_duration_histogram() -> Histogram {
    Histogram::new(RUN_DURATION_BUCKETS_SECS)
}

impl Metrics {
    /// A registry with the run metrics, each job's series created at zero.
    pub fn new<'a>(jobs: impl IntoIterator<Item = &'a str>) -> Metrics {
        let mut registry = Registry::default();
        let runs = Family::<RunLabels, Counter>::default();
        registry.register(
            "rokt_export_runs",
            "Runs of a job by outcome (succeeded, failed, skipped: another process held the job's lock, abandoned: cut off by a shutdown)",
            runs.clone(),
        );
        let rows_written = Family::<JobLabels, Counter>::default();
        registry.register(
            "rokt_export_rows_written",
            "Rows inserted or changed in a job's table (unchanged re-read rows are not counted)",
            rows_written.clone(),
        );
        let rows_deleted = Family::<JobLabels, Counter>::default();
        registry.register(
            "rokt_export_rows_deleted",
            "Rows deleted from a job's table because a re-read answer no longer had them",
            rows_deleted.clone(),
        );
        let empty_answers = Family::<JobLabels, Counter>::default();
        registry.register(
            "rokt_export_empty_answers",
            "Windows whose answer had no rows for days that hold rows (the rows were kept)",
            empty_answers.clone(),
        );
        let run_duration = Family::<JobLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            run_duration_histogram,
        );
        registry.register_with_unit(
            "rokt_export_run_duration",
            "Wall time of a run of a job, from its firing to its last window",
            Unit::Seconds,
            run_duration.clone(),
        );
        let last_success = Family::<JobLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "rokt_export_last_success_timestamp_seconds",
            "Unix time at which a run of the job last finished with every window succeeded",
            last_success.clone(),
        );
        let skipped_overlaps = Family::<JobLabels, Counter>::default();
        registry.register(
            "rokt_export_skipped_overlaps",
            "Firings skipped because the previous run of the same job was still running in this process",
            skipped_overlaps.clone(),
        );
        let verify_runs = Family::<RunLabels, Counter>::default();
        registry.register(
            "rokt_export_verify_runs",
            "Verifications after a run of a job with verify = true, by outcome (clean: every day matches the API's totals, mismatched: a day differs, failed: an account could not be verified)",
            verify_runs.clone(),
        );
        let verify_mismatched_days = Family::<JobLabels, Gauge>::default();
        registry.register(
            "rokt_export_verify_mismatched_days",
            "Account-days whose table sums differed from the API's totals in the job's latest verification in this process",
            verify_mismatched_days.clone(),
        );
        let verify_last = Family::<JobLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "rokt_export_verify_last_timestamp_seconds",
            "Unix time of the job's latest verification in this process that compared its days (with two replicas, the newest one's rokt_export_verify_mismatched_days is the current one)",
            verify_last.clone(),
        );
        let metrics = Metrics {
            registry,
            runs,
            rows_written,
            rows_deleted,
            empty_answers,
            run_duration,
            last_success,
            skipped_overlaps,
            verify_runs,
            verify_mismatched_days,
            verify_last,
        };
        for job in jobs {
            let labels = JobLabels {
                job: job.to_owned(),
            };
            for outcome in RunOutcome::ALL {
                let _ = metrics.runs.get_or_create(&RunLabels {
                    job: job.to_owned(),
                    outcome: outcome.as_str(),
                });
            }
            let _ = metrics.rows_written.get_or_create(&labels);
            let _ = metrics.rows_deleted.get_or_create(&labels);
            let _ = metrics.empty_answers.get_or_create(&labels);
            let _ = metrics.run_duration.get_or_create(&labels);
            let _ = metrics.skipped_overlaps.get_or_create(&labels);
        }
        metrics
    }

    /// Records the end of one run.
    pub fn run_finished(
        &self,
        job: &str,
        outcome: RunOutcome,
        counts: RunCounts,
        duration: std::time::Duration,
    ) {
        let labels = JobLabels {
            job: job.to_owned(),
        };
        self.runs
            .get_or_create(&RunLabels {
                job: job.to_owned(),
                outcome: outcome.as_str(),
            })
            .inc();
        self.rows_written
            .get_or_create(&labels)
            .inc_by(counts.rows_written);
        self.rows_deleted
            .get_or_create(&labels)
            .inc_by(counts.rows_deleted);
        self.empty_answers
            .get_or_create(&labels)
            .inc_by(counts.empty_answers);
        self.run_duration
            .get_or_create(&labels)
            .observe(duration.as_secs_f64());
        if outcome == RunOutcome::Succeeded {
            let now = chrono::Utc::now();
            // Milliseconds are plenty for "time since last success" and exact in an f64.
            let secs = now.timestamp_millis() as f64 / 1000.0;
            self.last_success.get_or_create(&labels).set(secs);
        }
    }

    /// Creates the verification series of `job` at zero (a job with `verify = true`), so that an
    /// alert on `increase(...)` works before its first verification.
    pub fn expect_verification(&self, job: &str) {
        for outcome in VerifyOutcome::ALL {
            let _ = self.verify_runs.get_or_create(&RunLabels {
                job: job.to_owned(),
                outcome: outcome.as_str(),
            });
        }
    }

    /// Records a verification after a run: its outcome and, when it compared days (it did not
    /// fail before), the days that differed.
    pub fn verification_finished(
        &self,
        job: &str,
        outcome: VerifyOutcome,
        days_differ: Option<u64>,
    ) {
        self.verify_runs
            .get_or_create(&RunLabels {
                job: job.to_owned(),
                outcome: outcome.as_str(),
            })
            .inc();
        if let Some(days) = days_differ {
            let labels = JobLabels {
                job: job.to_owned(),
            };
            self.verify_mismatched_days
                .get_or_create(&labels)
                .set(i64::try_from(days).unwrap_or(i64::MAX));
            let secs = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
            self.verify_last.get_or_create(&labels).set(secs);
        }
    }

    /// Records a firing skipped because the job's previous run was still running.
    pub fn overlap_skipped(&self, job: &str) {
        self.skipped_overlaps
            .get_or_create(&JobLabels {
                job: job.to_owned(),
            })
            .inc();
    }

    /// Adds the API client's counters, read from [`ApiClient::stats`] at every scrape.
    pub fn register_api(&mut self, api: ApiClient) {
        self.registry
            .register_collector(Box::new(ApiCollector { api }));
    }

    /// Every metric in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an encoder error would mean a bug in a collector,
        // and a partial page is still more useful to a scraper than none.
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            tracing::warn!(error = %e, "encoding the metrics failed; the page is incomplete");
        }
        out
    }
}

/// Encodes the API client's own counters at scrape time (no second set of counters to keep
/// in step).
#[derive(Debug)]
struct ApiCollector {
    api: ApiClient,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

impl Collector for ApiCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = self.api.stats();

        let mut requests = encoder.encode_descriptor(
            "rokt_export_api_requests",
            "HTTP requests to the Rokt API (token requests excluded) by response status; status=\"error\" when no answer came (timeout, refused, reset)",
            None,
            MetricType::Counter,
        )?;
        let by_status = stats
            .requests_by_status
            .iter()
            .map(|(status, n)| (status.to_string(), *n))
            .chain(std::iter::once((
                "error".to_owned(),
                stats.transport_errors,
            )));
        for (status, n) in by_status {
            requests
                .encode_family(&StatusLabels { status })?
                .encode_counter::<NoLabelSet, _, u64>(&n, None)?;
        }

        let latency = encoder.encode_descriptor(
            "rokt_export_api_request_duration",
            "Latency of HTTP requests to the Rokt API, answered or not",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        // The encoder wants per-bucket counts; the client keeps cumulative ones.
        let mut previous = 0;
        let buckets: Vec<(f64, u64)> = stats
            .latency
            .buckets
            .iter()
            .map(|(le, cumulative)| {
                let n = cumulative.saturating_sub(previous);
                previous = *cumulative;
                (*le, n)
            })
            .collect();
        encode_histogram(latency, &stats.latency, &buckets)?;

        let retries = encoder.encode_descriptor(
            "rokt_export_api_retries",
            "Requests to the Rokt API retried after a 429, a 5xx or a transport error",
            None,
            MetricType::Counter,
        )?;
        encode_counter(retries, stats.retries)?;

        let renewals = encoder.encode_descriptor(
            "rokt_export_token_renewals",
            "Access tokens obtained from the token endpoint",
            None,
            MetricType::Counter,
        )?;
        encode_counter(renewals, stats.token_renewals)
    }
}

fn encode_counter(mut encoder: MetricEncoder<'_>, value: u64) -> Result<(), std::fmt::Error> {
    encoder.encode_counter::<NoLabelSet, _, u64>(&value, None)
}

fn encode_histogram(
    mut encoder: MetricEncoder<'_>,
    histogram: &LatencyHistogram,
    buckets: &[(f64, u64)],
) -> Result<(), std::fmt::Error> {
    encoder.encode_histogram::<NoLabelSet>(histogram.sum_secs, histogram.count, buckets, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn every_jobs_series_exist_at_zero_before_any_run() {
        let m = Metrics::new(["a", "b"]);
        let text = m.encode();
        assert!(text.contains("rokt_export_runs_total{job=\"a\",outcome=\"succeeded\"} 0"));
        assert!(text.contains("rokt_export_runs_total{job=\"b\",outcome=\"skipped\"} 0"));
        assert!(text.contains("rokt_export_skipped_overlaps_total{job=\"a\"} 0"));
        assert!(text.contains("rokt_export_rows_written_total{job=\"b\"} 0"));
        assert!(text.contains("rokt_export_rows_deleted_total{job=\"b\"} 0"));
        assert!(text.contains("rokt_export_run_duration_seconds_count{job=\"a\"} 0"));
        // No success yet: no timestamp rather than a misleading 1970.
        assert!(!text.contains("rokt_export_last_success_timestamp_seconds{"));
    }

    #[test]
    fn a_finished_run_is_counted_with_its_rows_duration_and_success_time() {
        let m = Metrics::new(["a"]);
        let counts = RunCounts {
            rows_written: 42,
            rows_deleted: 5,
            empty_answers: 1,
        };
        m.run_finished(
            "a",
            RunOutcome::Succeeded,
            counts,
            Duration::from_millis(700),
        );
        m.run_finished(
            "a",
            RunOutcome::Failed,
            RunCounts::default(),
            Duration::from_secs(3),
        );
        m.overlap_skipped("a");
        let text = m.encode();
        assert!(text.contains("rokt_export_runs_total{job=\"a\",outcome=\"succeeded\"} 1"));
        assert!(text.contains("rokt_export_runs_total{job=\"a\",outcome=\"failed\"} 1"));
        assert!(text.contains("rokt_export_rows_written_total{job=\"a\"} 42"));
        assert!(text.contains("rokt_export_rows_deleted_total{job=\"a\"} 5"));
        assert!(text.contains("rokt_export_empty_answers_total{job=\"a\"} 1"));
        assert!(text.contains("rokt_export_skipped_overlaps_total{job=\"a\"} 1"));
        assert!(text.contains("rokt_export_run_duration_seconds_bucket{job=\"a\",le=\"1\"} 1"));
        assert!(text.contains("rokt_export_run_duration_seconds_count{job=\"a\"} 2"));
        assert!(text.contains("rokt_export_last_success_timestamp_seconds{job=\"a\"} 1"));
    }

    #[test]
    fn verifications_are_counted_and_the_latest_sets_the_gauge() {
        let m = Metrics::new(["a", "b"]);
        m.expect_verification("a");
        let text = m.encode();
        assert!(text.contains("rokt_export_verify_runs_total{job=\"a\",outcome=\"mismatched\"} 0"));
        assert!(
            !text.contains("rokt_export_verify_runs_total{job=\"b\""),
            "b does not verify"
        );
        assert!(
            !text.contains("rokt_export_verify_mismatched_days{"),
            "none yet"
        );
        m.verification_finished("a", VerifyOutcome::Mismatched, Some(3));
        m.verification_finished("a", VerifyOutcome::Failed, None);
        let text = m.encode();
        assert!(text.contains("rokt_export_verify_runs_total{job=\"a\",outcome=\"mismatched\"} 1"));
        assert!(text.contains("rokt_export_verify_runs_total{job=\"a\",outcome=\"failed\"} 1"));
        assert!(
            text.contains("rokt_export_verify_mismatched_days{job=\"a\"} 3"),
            "{text}"
        );
        assert!(text.contains("rokt_export_verify_last_timestamp_seconds{job=\"a\"} 1"));
        m.verification_finished("a", VerifyOutcome::Clean, Some(0));
        assert!(
            m.encode()
                .contains("rokt_export_verify_mismatched_days{job=\"a\"} 0")
        );
    }
}
