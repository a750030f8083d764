//! Prometheus metrics (built in issue #6).
