mod support;
use support::Env;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scratch() {
    let env = Env::new().await;
    let mode = std::env::var("SCRATCH_MODE").unwrap_or_default();
    if mode.contains("async") {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("alter database {} set synchronous_commit = off", env.db.name())))
            .execute(env.pool())
            .await
            .unwrap();
    }
    let store = events::PgEventStore::new(
        sqlx::postgres::PgPoolOptions::new().max_connections(32).connect(env.db.url()).await.unwrap(),
        events::PgStoreOptions::default(),
    );
    let mut config = projections::HistoryConfig::for_events(30_000, 1);
    config.concurrency = std::env::var("SCRATCH_CONC").ok().and_then(|c| c.parse().ok()).unwrap_or(16);
    let t = std::time::Instant::now();
    let s = projections::generate_history(std::sync::Arc::new(store), &env.vault, &config, |_| {}).await.unwrap();
    eprintln!(
        "mode {mode} conc {} : {} events {} appends in {:.2}s",
        config.concurrency,
        s.events,
        s.appends,
        t.elapsed().as_secs_f64()
    );
}
