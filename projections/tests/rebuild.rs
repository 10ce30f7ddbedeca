//! Rebuild: shadow generation, swap, reads during the rebuild, interruption and resume.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use projections::{RebuildOptions, RunOptions, rebuild, run_projectors};
use support::{ALL, Env, digest_all, wait_caught_up};
use tokio::sync::watch;

/// Live projectors catch up over a generated history; a rebuild of everything then gives
/// the very same rows, and the projectors carry on on the new generation.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rebuild_gives_the_rows_of_the_live_projectors() {
    let env = Env::new().await;
    env.history(6000, 7).await;
    let (stop, shutdown) = watch::channel(false);
    let runner = tokio::spawn(run_projectors(
        env.pool().clone(),
        env.store(),
        env.projections(),
        RunOptions::default(),
        shutdown,
    ));
    wait_caught_up(env.pool(), &env.store, ALL, Duration::from_secs(60)).await;
    let live = digest_all(env.pool()).await;
    assert!(live["catalog"]["product"].0 > 0 && live["orders"]["customer_order"].0 > 0, "{live:?}");

    let summary =
        rebuild(env.pool(), env.store(), &env.projections(), RebuildOptions::default()).await.expect("rebuild");
    assert_eq!(summary.projections.len(), 5);
    for p in &summary.projections {
        assert_eq!(p.generation, 2, "{p:?}");
        assert_eq!(p.replaced, 1);
    }
    let rebuilt = digest_all(env.pool()).await;
    assert_eq!(rebuilt, live, "a clean rebuild equals what the live projectors built");
    let schemas: Vec<String> =
        sqlx::query_scalar("select nspname::text from pg_namespace where nspname like 'rm\\_%' order by 1")
            .fetch_all(env.pool())
            .await
            .expect("schemas");
    assert_eq!(schemas.len(), 5, "old generations dropped: {schemas:?}");

    // The live projectors continue on the new generation.
    env.history(800, 8).await;
    wait_caught_up(env.pool(), &env.store, ALL, Duration::from_secs(60)).await;
    let _ = stop.send(true);
    runner.await.expect("runner").expect("projectors");
    let after = digest_all(env.pool()).await;
    assert!(after["catalog"]["product"].0 > live["catalog"]["product"].0);
    rebuild(env.pool(), env.store(), &env.projections(), RebuildOptions::default()).await.expect("rebuild again");
    assert_eq!(digest_all(env.pool()).await, after);
}

/// While a rebuild runs (and appends go on), readers of `read_model` always see complete
/// data; after the swap the rows equal those of the uninterrupted live projector.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_stay_complete_during_a_rebuild() {
    let env = Env::new().await;
    env.history(8000, 11).await;
    let (stop, shutdown) = watch::channel(false);
    let runner = tokio::spawn(run_projectors(
        env.pool().clone(),
        env.store(),
        env.projections(),
        RunOptions::default(),
        shutdown,
    ));
    wait_caught_up(env.pool(), &env.store, ALL, Duration::from_secs(60)).await;
    let listed: i64 =
        sqlx::query_scalar("select count(*) from read_model.product").fetch_one(env.pool()).await.expect("count");
    let orders: i64 = sqlx::query_scalar("select count(*) from read_model.customer_order")
        .fetch_one(env.pool())
        .await
        .expect("count");

    // Readers: counts never go down (appends only add products and orders).
    let reading = Arc::new(AtomicBool::new(true));
    let reads = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for _ in 0..2 {
        let (pool, reading, reads) = (env.pool().clone(), reading.clone(), reads.clone());
        readers.push(tokio::spawn(async move {
            while reading.load(Ordering::Relaxed) {
                let (products, orders_now, lines): (i64, i64, i64) = sqlx::query_as(
                    "select (select count(*) from read_model.product), (select count(*) from read_model.customer_order), \
                            (select count(*) from read_model.order_line)",
                )
                .fetch_one(&pool)
                .await
                .expect("read during rebuild");
                assert!(products >= listed, "products went from {listed} to {products} during the rebuild");
                assert!(orders_now >= orders, "orders went from {orders} to {orders_now} during the rebuild");
                assert!(lines >= orders_now, "every order has lines");
                reads.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }
    // Appends go on during the rebuild.
    let writer = {
        let store = env.store();
        let vault = env.vault.clone();
        tokio::spawn(async move {
            let mut config = projections::HistoryConfig::for_events(1500, 12);
            config.concurrency = 4;
            projections::generate_history(store, &vault, &config, |_| {}).await.expect("more history")
        })
    };
    let progress_calls = Arc::new(AtomicU64::new(0));
    let calls = progress_calls.clone();
    let options = RebuildOptions {
        batch_size: 500,
        progress: Some(Arc::new(move |_| {
            calls.fetch_add(1, Ordering::Relaxed);
        })),
        progress_every: Duration::from_millis(1),
    };
    let summary = rebuild(env.pool(), env.store(), &env.projections(), options).await.expect("rebuild");
    let more = writer.await.expect("writer");
    events::testing::contract::wait_visible(&env.store, more.last_position).await;
    wait_caught_up(env.pool(), &env.store, ALL, Duration::from_secs(60)).await;
    reading.store(false, Ordering::Relaxed);
    for reader in readers {
        reader.await.expect("reader saw complete data");
    }
    assert!(reads.load(Ordering::Relaxed) > 10, "readers ran during the rebuild");
    assert!(progress_calls.load(Ordering::Relaxed) > 2, "progress reported");
    assert!(summary.events > 0 && summary.events_per_s > 0.0);
    let _ = stop.send(true);
    runner.await.expect("runner").expect("projectors");

    // Uninterrupted reference: a fresh rebuild of the final log.
    let swapped = digest_all(env.pool()).await;
    rebuild(env.pool(), env.store(), &env.projections(), RebuildOptions::default()).await.expect("reference rebuild");
    assert_eq!(digest_all(env.pool()).await, swapped);
}

/// A rebuild interrupted half-way leaves the live generation untouched; the next run
/// resumes the shadow and finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_interrupted_rebuild_resumes() {
    let env = Env::new().await;
    env.history(6000, 21).await;
    let projections = env.projections();
    let (stop, shutdown) = watch::channel(false);
    let runner = tokio::spawn(run_projectors(
        env.pool().clone(),
        env.store(),
        projections.clone(),
        RunOptions::default(),
        shutdown,
    ));
    wait_caught_up(env.pool(), &env.store, ALL, Duration::from_secs(60)).await;
    let _ = stop.send(true);
    runner.await.expect("runner").expect("projectors");
    let live = digest_all(env.pool()).await;

    // Interrupt once some shadow pages are committed.
    let options = RebuildOptions { batch_size: 200, ..RebuildOptions::default() };
    let interrupted = tokio::spawn({
        let (pool, store, projections, options) =
            (env.pool().clone(), env.store(), projections.clone(), options.clone());
        async move { rebuild(&pool, store, &projections, options).await }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let progressed: i64 = sqlx::query_scalar(
            "select count(*) from projection.checkpoint where not live and events_processed > 0 and projection = 'orders'",
        )
        .fetch_one(env.pool())
        .await
        .expect("shadow");
        if progressed > 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the rebuild made no progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    interrupted.abort();
    assert!(interrupted.await.is_err_and(|e| e.is_cancelled()), "interrupted before it finished");
    assert_eq!(digest_all(env.pool()).await, live, "the live generation is untouched");
    let status = projections::status(env.pool(), &env.store, &projections).await.expect("status");
    let orders = status.projections.iter().find(|p| p.name == "orders").expect("orders");
    assert!(orders.rebuild.as_ref().is_some_and(|r| r.generation == 2), "{orders:?}");

    let summary = rebuild(env.pool(), env.store(), &projections, options).await.expect("resumed rebuild");
    let orders = summary.projections.iter().find(|p| p.name == "orders").expect("orders");
    assert!(orders.resumed_from.is_some(), "the shadow was resumed: {orders:?}");
    assert_eq!(orders.generation, 2);
    assert_eq!(digest_all(env.pool()).await, live);
}
