//! Index and checkpoint agree after a crash mid-commit: the documents are exactly the
//! effect of the events up to the checkpoint in the last commit's payload.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use events::domain::catalog::ProductEvent;
use events::{LogPosition, RecordedEvent};
use search::{CommitPolicy, Indexer, ProductFilter, ProductIndex, ProductQuery};
use uuid::Uuid;

const CHILD_ENV: &str = "AGORA_SEARCH_CRASH_CHILD_DIR";

/// The `n`-th event (from 1) of an endless synthetic log mixing listings, price changes,
/// approved reviews and delistings.
fn event(n: u64) -> RecordedEvent {
    let product = |k: u64| Uuid::from_u128(u128::from(k));
    match n % 6 {
        // Price change of the product listed two events ago.
        3 => recorded(n, product_stream(product(n - 2)), &price_changed(n as i64)),
        // A review of the product listed three events ago.
        4 => {
            let review = Uuid::from_u128(1 << 100 | u128::from(n));
            recorded(n, review_stream(review), &review_approved(review, product(n - 3), (n % 5 + 1) as u8))
        }
        // Delist every other product listed five events ago.
        0 if n.is_multiple_of(12) => recorded(n, product_stream(product(n - 5)), &delisted(product(n - 5))),
        _ => {
            let listed = listed(
                u128::from(n),
                &format!("Crash Test Product {n}"),
                "Made to be indexed.",
                "Test",
                "Acme",
                100,
                1,
            );
            recorded(n, product_stream(product(n)), &ProductEvent::from(listed))
        }
    }
}

/// What the index must hold after events `1..=last`: id -> (price, ratings).
fn model(last: u64) -> BTreeMap<Uuid, (i64, u64)> {
    let mut products: BTreeMap<Uuid, (i64, u64)> = BTreeMap::new();
    let product = |k: u64| Uuid::from_u128(u128::from(k));
    for n in 1..=last {
        match n % 6 {
            3 => {
                if let Some(p) = products.get_mut(&product(n - 2)) {
                    *p = (n as i64, p.1);
                }
            }
            4 => {
                if let Some(p) = products.get_mut(&product(n - 3)) {
                    p.1 += 1;
                }
            }
            0 if n % 12 == 0 => {
                products.remove(&product(n - 5));
            }
            _ => {
                products.insert(product(n), (100, 0));
            }
        }
    }
    products
}

/// Every document of the index: id -> (price, ratings).
fn contents(index: &ProductIndex) -> BTreeMap<Uuid, (i64, u64)> {
    let mut found = BTreeMap::new();
    let mut query = ProductQuery { first: 100, filter: ProductFilter::default(), ..Default::default() };
    loop {
        let page = index.search(&query).unwrap();
        for hit in &page.hits {
            found.insert(hit.product_id, (hit.price_cents, hit.rating_count));
        }
        match page.next_cursor {
            Some(cursor) => query.after = Some(cursor),
            None => return found,
        }
    }
}

fn assert_agrees(dir: &Path) -> u64 {
    let index = ProductIndex::open(dir).unwrap();
    let checkpoint = index.checkpoint();
    assert_eq!(checkpoint.commit(), checkpoint.prepare());
    let last = checkpoint.commit();
    assert_eq!(contents(&index), model(last), "documents disagree with checkpoint {checkpoint}");
    last
}

#[test]
fn writer_dropped_between_add_and_commit_loses_only_the_uncommitted_batch() {
    let dir = tempfile::tempdir().unwrap();
    {
        let index = ProductIndex::open(dir.path()).unwrap();
        let mut indexer = Indexer::open(&index, CommitPolicy::live()).unwrap();
        for n in 1..=120 {
            indexer.apply(&event(n)).unwrap();
        }
        indexer.commit().unwrap();
        for n in 121..=200 {
            indexer.apply(&event(n)).unwrap();
        }
        // Documents added, never committed: the writer goes away as in a crash.
        drop(indexer);
    }
    assert_eq!(assert_agrees(dir.path()), 120);

    // A new indexer resumes from the checkpoint and catches up.
    let index = ProductIndex::open(dir.path()).unwrap();
    let mut indexer = Indexer::open(&index, CommitPolicy::live()).unwrap();
    assert_eq!(indexer.position(), LogPosition::new(120, 120));
    for n in 1..=240 {
        indexer.apply(&event(n)).unwrap(); // already applied events are skipped
    }
    indexer.commit().unwrap();
    drop(indexer);
    drop(index);
    assert_eq!(assert_agrees(dir.path()), 240);
}

/// The child: index the synthetic log from the checkpoint, committing often, until killed.
fn child(dir: &Path) {
    let index = ProductIndex::open(dir).unwrap();
    let policy = CommitPolicy { max_events: 37, ..CommitPolicy::live() };
    let mut indexer = Indexer::open(&index, policy).unwrap();
    let mut n = indexer.position().commit();
    loop {
        n += 1;
        indexer.apply(&event(n)).unwrap();
        if indexer.commit_due(false) {
            indexer.commit().unwrap();
        }
    }
}

#[test]
fn killed_indexer_process_leaves_index_and_checkpoint_in_agreement() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(Path::new(&dir));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Created here, so parent and child never race to create the first generation.
    drop(ProductIndex::open(dir.path()).unwrap());
    let mut last = 0;
    // Kill it at different moments; every restart resumes from the checkpoint.
    for (round, wait_ms) in [700u64, 1_100, 900].into_iter().enumerate() {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "killed_indexer_process_leaves_index_and_checkpoint_in_agreement", "--nocapture"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Wait until it has committed something past the last round, then a bit more.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            std::thread::sleep(Duration::from_millis(50));
            let progressed = ProductIndex::open(dir.path()).map(|i| i.checkpoint().commit() > last).unwrap_or(false);
            if progressed {
                break;
            }
            assert!(Instant::now() < deadline, "child made no progress in round {round}");
            assert!(child.try_wait().unwrap().is_none(), "child exited on its own");
        }
        std::thread::sleep(Duration::from_millis(wait_ms));
        child.kill().unwrap(); // SIGKILL: no destructor, no commit, mid-batch
        child.wait().unwrap();
        let now = assert_agrees(dir.path());
        assert!(now > last, "round {round}: checkpoint did not advance");
        last = now;
    }
}
