//! The core tables' migrations, embedded in the binary: `migrations/postgres` and
//! `migrations/sqlite`, each file a [`sqlx::migrate::Migration`] (version and description from its
//! name, checksum of its text, as `sqlx migrate` computes them).
//!
//! Listed here rather than with `sqlx::migrate!`: the macro needs sqlx's `macros` feature, which
//! compiles sqlx and its drivers (the bundled SQLite's C code included) a second time, for the build
//! host. A unit test keeps the lists equal to the files.

use std::borrow::Cow;

use futures_util::future::BoxFuture;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};

/// A migration: version, description (the file name's words), SQL.
type Embedded = (i64, &'static str, &'static str);

const POSTGRES: &[Embedded] = &[
    (
        20261129000001,
        "core tables",
        include_str!("../../migrations/postgres/20261129000001_core_tables.sql"),
    ),
    (
        20261201000001,
        "replace and units",
        include_str!("../../migrations/postgres/20261201000001_replace_and_units.sql"),
    ),
    (
        20261201000002,
        "export checks",
        include_str!("../../migrations/postgres/20261201000002_export_checks.sql"),
    ),
];

const SQLITE: &[Embedded] = &[
    (
        20261129000001,
        "core tables",
        include_str!("../../migrations/sqlite/20261129000001_core_tables.sql"),
    ),
    (
        20261201000001,
        "replace and units",
        include_str!("../../migrations/sqlite/20261201000001_replace_and_units.sql"),
    ),
    (
        20261201000002,
        "export checks",
        include_str!("../../migrations/sqlite/20261201000002_export_checks.sql"),
    ),
];

/// A list of embedded migrations as sqlx reads a migrations folder.
#[derive(Debug)]
struct Source(&'static [Embedded]);

impl MigrationSource<'static> for Source {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async move {
            Ok(self
                .0
                .iter()
                .map(|(version, description, sql)| {
                    Migration::new(
                        *version,
                        Cow::Borrowed(*description),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// The Postgres migrations.
pub(super) async fn postgres() -> Result<Migrator, sqlx::migrate::MigrateError> {
    Migrator::new(Source(POSTGRES)).await
}

/// The SQLite migrations.
pub(super) async fn sqlite() -> Result<Migrator, sqlx::migrate::MigrateError> {
    Migrator::new(Source(SQLITE)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(version, description)` of every file in a migrations folder, as sqlx names them.
    fn files(folder: &str) -> Vec<(i64, String)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(folder);
        let mut found: Vec<(i64, String)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter_map(|name| {
                let stem = name.strip_suffix(".sql")?;
                let (version, words) = stem.split_once('_')?;
                Some((version.parse().ok()?, words.replace('_', " ")))
            })
            .collect();
        found.sort();
        found
    }

    #[test]
    fn every_migration_file_is_embedded_under_its_name() {
        for (folder, list) in [
            ("migrations/postgres", POSTGRES),
            ("migrations/sqlite", SQLITE),
        ] {
            let embedded: Vec<(i64, String)> =
                list.iter().map(|(v, d, _)| (*v, (*d).to_owned())).collect();
            assert_eq!(embedded, files(folder), "{folder}");
        }
    }
}
