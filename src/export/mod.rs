//! One run of one job: windows, fetch, load (built in issue #5).
