//! Rebuild while serving: searches keep answering, the switch is atomic, the result equals a
//! fresh build, and an interrupted rebuild resumes.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use events::testing::TestDatabase;
use events::testing::contract::wait_visible;
use events::{EventStore, LogPosition};
use search::catalog::listed_products;
use search::{CommitPolicy, Indexer, ProductIndex, ProductQuery, RebuildOptions, SearchError, SortOrder};
use tokio::sync::{Notify, oneshot};

const QUERIES: [&str; 5] = ["", "wireless ", "lamp", "oak desk ", "headphnes "];

fn small_steps() -> RebuildOptions {
    RebuildOptions { commit: CommitPolicy { max_events: 100, ..CommitPolicy::bulk() }, page_size: 50 }
}

/// An index built in memory from the whole log, the reference for "equals a fresh build".
async fn fresh_build(store: &Arc<dyn EventStore>) -> ProductIndex {
    let index = ProductIndex::in_memory().unwrap();
    let mut indexer = Indexer::open(&index, CommitPolicy::live()).unwrap();
    let mut after = LogPosition::START;
    loop {
        let page = store.read_all(after, 500).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.position;
        for event in &page {
            indexer.apply(event).unwrap();
        }
    }
    indexer.commit().unwrap();
    index
}

/// Every result of `text`, by price, with totals and facets.
fn everything(index: &ProductIndex, text: &str) -> (Vec<uuid::Uuid>, u64, search::Facets) {
    let mut query = ProductQuery { text: text.into(), sort: SortOrder::PriceAsc, first: 100, ..Default::default() };
    let mut ids = Vec::new();
    let first = index.search(&query).unwrap();
    let (total, facets) = (first.total, first.facets.clone());
    let mut page = first;
    loop {
        ids.extend(page.hits.iter().map(|h| h.product_id));
        let Some(cursor) = page.next_cursor.take() else { break };
        query.after = Some(cursor);
        page = index.search(&query).unwrap();
    }
    (ids, total, facets)
}

fn assert_same(index: &ProductIndex, fresh: &ProductIndex) {
    assert_eq!(index.num_products(), fresh.num_products());
    for text in QUERIES {
        assert_eq!(everything(index, text), everything(fresh, text), "{text:?}");
    }
}

async fn seed(store: &Arc<dyn EventStore>, count: usize) -> LogPosition {
    let products: Vec<_> = listed_products(5, count, 10).collect();
    let mut last = LogPosition::START;
    for chunk in products.chunks(100) {
        last = last.max(append_listings(store, chunk).await);
    }
    for (i, p) in products.iter().enumerate().step_by(4) {
        last = last.max(append(store, product_stream(p.product_id), &price_changed(100 + i as i64)).await);
    }
    wait_visible(store.as_ref(), last).await;
    last
}

async fn rebuild_retrying(store: &Arc<dyn EventStore>, root: &std::path::Path) -> search::RebuildReport {
    // A blocking step of an aborted rebuild may still hold the writer for a moment.
    for _ in 0..100 {
        match search::rebuild_with(store.clone(), root, small_steps(), |_, _| {}).await {
            Err(SearchError::Locked(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
            other => return other.unwrap(),
        }
    }
    panic!("generation stayed locked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn searches_keep_answering_during_a_rebuild_and_the_switch_equals_a_fresh_build() {
    let db = TestDatabase::with_event_store().await;
    let store = pg_store(&db).await;
    let seeded = seed(&store, 400).await;

    let dir = tempfile::tempdir().unwrap();
    let index = ProductIndex::open(dir.path()).unwrap();
    assert_eq!(index.generation(), 1);
    let (stop, stopped) = oneshot::channel::<()>();
    let runner = tokio::spawn(search::run(store.clone(), index.clone(), async move {
        let _ = stopped.await;
    }));
    wait_indexed(&index, seeded).await;
    let before = index.num_products();
    assert!(before > 300);

    // Searchers hammer the index for the whole rebuild.
    let done = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let searcher = {
        let (index, done, answered) = (index.clone(), done.clone(), answered.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                for text in QUERIES {
                    let result = index.search(&ProductQuery::text(text)).expect("search during rebuild");
                    assert!(result.total > 0, "{text:?} found nothing during the rebuild");
                }
                answered.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    // The log keeps moving during the rebuild.
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            let products: Vec<_> = listed_products(6, 30, 3).collect();
            let mut last = LogPosition::START;
            for p in &products {
                last = last.max(append_listings(&store, std::slice::from_ref(p)).await);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            last
        })
    };
    let progress = Arc::new(AtomicU64::new(0));
    let seen = progress.clone();
    let report = search::rebuild_with(store.clone(), dir.path(), small_steps(), move |done, total| {
        assert!(done <= total, "{done} of {total}");
        seen.store(done, Ordering::Relaxed);
    })
    .await
    .unwrap();
    assert_eq!((report.generation, report.replaced, report.resumed_from), (2, Some(1), None));
    assert_eq!(progress.load(Ordering::Relaxed), report.events);
    assert!(!search::generation_dir(dir.path(), 1).exists(), "old generation removed");

    let last = writer.await.unwrap();
    wait_visible(store.as_ref(), last).await;
    // The serving index notices the switch, and its indexer follows the new generation.
    index.reload().unwrap();
    assert_eq!(index.generation(), 2);
    wait_indexed(&index, last).await;
    done.store(true, Ordering::Relaxed);
    searcher.join().expect("searches kept answering");
    assert!(answered.load(Ordering::Relaxed) > 0);

    let fresh = fresh_build(&store).await;
    assert_eq!(index.num_products(), before + 30);
    assert_same(&index, &fresh);

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), runner).await.unwrap().unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_rebuild_leaves_the_live_index_untouched_and_resumes() {
    let db = TestDatabase::with_event_store().await;
    let store = pg_store(&db).await;
    let seeded = seed(&store, 300).await;

    let dir = tempfile::tempdir().unwrap();
    // The live generation, built once.
    let first = search::rebuild_with(store.clone(), dir.path(), small_steps(), |_, _| {}).await.unwrap();
    assert_eq!((first.generation, first.replaced), (1, None));
    let index = ProductIndex::open(dir.path()).unwrap();
    assert_eq!(index.checkpoint(), seeded);
    let live_before = everything(&index, "wireless ");

    // Interrupt a second rebuild part-way.
    let halfway = Arc::new(Notify::new());
    let signal = halfway.clone();
    let interrupted = search::rebuild_with(store.clone(), dir.path(), small_steps(), move |done, _| {
        if done >= 250 {
            signal.notify_one();
        }
    });
    tokio::select! {
        result = interrupted => panic!("rebuild finished before the interruption: {result:?}"),
        _ = halfway.notified() => {}
    }
    index.reload().unwrap();
    assert_eq!(index.generation(), 1, "live generation still live");
    assert_eq!(everything(&index, "wireless "), live_before);
    assert!(search::generation_dir(dir.path(), 2).exists(), "unfinished generation kept for resuming");

    let resumed = rebuild_retrying(&store, dir.path()).await;
    assert_eq!(resumed.generation, 2);
    assert!(resumed.resumed_from.is_some_and(|p| p > LogPosition::START), "{resumed:?}");
    assert_eq!(resumed.checkpoint, seeded);
    index.reload().unwrap();
    assert_eq!(index.generation(), 2);
    assert_same(&index, &fresh_build(&store).await);
}
