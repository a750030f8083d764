//! Issue 19's operational hardening: the demo never touches a database it did not create, the
//! SQLite file is private, catalogue names are quoted, and a `--run-now` does not leave runs
//! `running` behind.

use rokt_export::config::{DatabaseConfig, DatabaseUrl};
use rokt_export::store::{ColumnSpec, ColumnType, Store, TableSpec};
use sqlx::{Connection, PgConnection};

use crate::helpers::TestDb;

fn spec(key: &[&str]) -> TableSpec {
    TableSpec {
        table: "campaign_daily".into(),
        columns: vec![
            ColumnSpec::new("account_id", ColumnType::Text),
            ColumnSpec::new("date", ColumnType::Date),
            ColumnSpec::new("campaign_id", ColumnType::Text),
            ColumnSpec::new("impressions", ColumnType::Numeric),
        ],
        key: key.iter().map(|k| (*k).to_owned()).collect(),
    }
}

#[tokio::test]
async fn widening_a_key_whose_constraint_name_holds_a_double_quote_works() {
    let db = TestDb::new().await;
    let config = DatabaseConfig {
        url: DatabaseUrl::parse(&db.url).unwrap(),
        schema: "rokt".into(),
    };
    let store = Store::connect(&config).await.unwrap();
    store.migrate().await.unwrap();
    store
        .ensure_table(&spec(&["account_id", "date"]))
        .await
        .unwrap();
    // Someone renamed the primary key by hand; the name read back from the catalogue must be
    // quoted as an identifier, its `"` doubled.
    let mut conn = PgConnection::connect(&db.url).await.unwrap();
    sqlx::query(
        r#"ALTER TABLE rokt.campaign_daily RENAME CONSTRAINT campaign_daily_pkey TO "pk ""x"" ; --""#,
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let changes = store
        .ensure_table(&spec(&["account_id", "date", "campaign_id"]))
        .await
        .unwrap();
    assert!(changes.key_widened);
    let (key,): (String,) = sqlx::query_as(
        "SELECT string_agg(a.attname, ',' ORDER BY a.attnum) FROM pg_index i \
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
         WHERE i.indrelid = 'rokt.campaign_daily'::regclass AND i.indisprimary",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(key, "account_id,date,campaign_id");
    store.close().await;
}

#[cfg(unix)]
#[tokio::test]
async fn the_sqlite_file_is_created_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("new.db");
    let config = DatabaseConfig {
        url: DatabaseUrl::parse(&format!("sqlite://{}", file.display())).unwrap(),
        schema: "rokt".into(),
    };
    let store = Store::connect(&config).await.unwrap();
    store.migrate().await.unwrap();
    store.close().await;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let entry = entry.unwrap();
        let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}: {mode:o}", entry.path().display());
    }
}
