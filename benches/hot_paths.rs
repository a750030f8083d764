//! Micro-benchmarks of the hot pure code: an API answer to typed rows, and window planning.
//!
//! Run: `cargo bench --bench hot_paths`. The input is a 31-day window of 1,000 rows a day shaped like
//! the simulated API's campaign/creative report.

use chrono::NaiveDate;
use chrono_tz::Tz;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rokt_export::config::{QueryJob, Report};
use rokt_export::export::plan::{self, Window};
use rokt_export::export::query;
use std::fmt::Write as _;
use std::hint::black_box;

fn body(days: u32, per_day: u32) -> String {
    let mut out = String::from("{\"data\":[");
    let start = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default();
    for d in 0..days {
        let day = start + chrono::Days::new(u64::from(d));
        for r in 0..per_day {
            if d > 0 || r > 0 {
                out.push(',');
            }
            let _ = write!(
                out,
                r#"{{"campaign_id":"{c}","campaign_name":"Spring \"Mega\" Sale 🚀 #{c}","creative_id":"{r}","creative_name":"Crème\tbrûlée {r}","impressions":{i},"referrals":{f},"gross_cost":{g}.{m:02},"net_cost":{n}.5,"acquisitions":{a},"conversions":{a},"conversion_value":{g}.25,"cpa":12.345678,"datetime":"{day}T00:00:00Z"}}"#,
                c = 7_000_000 + r / 5,
                i = 1000 + r * 7 + d,
                f = 30 + r % 17,
                g = 100 + r % 97,
                m = r % 100,
                n = 90 + r % 89,
                a = r % 7,
            );
        }
    }
    out.push_str("],\"accountId\":\"1\",\"queryTimeMs\":12}");
    out
}

fn job() -> QueryJob {
    QueryJob::new(
        Report::Campaigns,
        [
            "campaign_id",
            "campaign_name",
            "creative_id",
            "creative_name",
        ]
        .map(String::from)
        .to_vec(),
        [
            "impressions",
            "referrals",
            "gross_cost",
            "net_cost",
            "acquisitions",
            "conversions",
            "conversion_value",
            "cpa",
        ]
        .map(String::from)
        .to_vec(),
    )
}

fn parse(c: &mut Criterion) {
    let body = body(31, 1000);
    let job = job();
    let mut group = c.benchmark_group("query_rows");
    group.throughput(Throughput::Elements(31_000));
    group.bench_function("31 days x 1000 rows", |b| {
        b.iter(|| query::parse_answer(black_box(body.as_bytes()), &job, "1", Tz::UTC, "USD"))
    });
    group.finish();
}

fn planning(c: &mut Criterion) {
    let start = NaiveDate::from_ymd_opt(2020, 1, 1).unwrap_or_default();
    let last = NaiveDate::from_ymd_opt(2025, 12, 31).unwrap_or_default();
    c.bench_function("split six years into 31-day windows", |b| {
        b.iter(|| plan::split(black_box(Window { start, last }), 31))
    });
}

criterion_group!(benches, parse, planning);
criterion_main!(benches);
