//! All SQL: migrations, job tables, upserts, run records (built in issue #5).
