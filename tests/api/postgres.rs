//! The database path works from a clean clone: the harness gives each test its own database.

use crate::helpers::TestDb;

#[tokio::test]
async fn each_test_gets_its_own_database_and_it_is_dropped() {
    let db = TestDb::new().await;
    let pool = db.pool().await;
    let (current,): (String,) = sqlx::query_as("SELECT current_database()")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(current, db.name);
    sqlx::query("CREATE TABLE probe (id int PRIMARY KEY)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    let name = db.name.clone();
    let other = TestDb::new().await;
    assert_ne!(other.name, name);
    drop(db);
    let pool = other.pool().await;
    let (exists,): (bool,) =
        sqlx::query_as("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(!exists, "database {name} should have been dropped");
}
