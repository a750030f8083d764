//! The daemon: health, readiness and metrics endpoints (built in issue #6).
