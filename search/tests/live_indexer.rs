//! The live indexer against a real PostgreSQL event store.

mod common;

use std::time::Duration;

use common::*;
use events::testing::TestDatabase;
use events::testing::contract::wait_visible;
use search::{ProductIndex, ProductQuery, SortOrder};
use tokio::sync::oneshot;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_indexer_follows_the_log_and_stops_on_shutdown() {
    let db = TestDatabase::with_event_store().await;
    let store = pg_store(&db).await;
    let catalogue = fixed_catalogue();
    let listed_at = append_listings(&store, &catalogue[..5]).await;

    let dir = tempfile::tempdir().unwrap();
    let index = ProductIndex::open(dir.path()).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let runner = tokio::spawn(search::run(store.clone(), index.clone(), async move {
        let _ = stopped.await;
    }));

    // Catch-up from the start of the log.
    wait_visible(store.as_ref(), listed_at).await;
    wait_indexed(&index, listed_at).await;
    assert_eq!(index.num_products(), 5);
    assert_eq!(ids(&index, &ProductQuery::text("wireless keyboard ")), [1, 5]);

    // Live: new listings, an update, a delisting, a review; other families are skipped.
    let mut last = append_listings(&store, &catalogue[5..]).await;
    let id = Uuid::from_u128;
    last = last.max(append(&store, product_stream(id(9)), &price_changed(1_234)).await);
    last = last.max(append(&store, product_stream(id(1)), &delisted(id(1))).await);
    let review = Uuid::now_v7();
    last = last.max(append(&store, review_stream(review), &review_submitted(review, id(4), 2)).await);
    last = last.max(append(&store, review_stream(review), &review_approved(review, id(4), 2)).await);
    let noise = events::AppendRequest::new().stream(
        events::StreamId::new("test", Uuid::now_v7()),
        events::ExpectedVersion::Any,
        vec![events::testing::contract::event("noise")],
    );
    last = last.max(store.append(noise).await.unwrap().position());
    wait_visible(store.as_ref(), last).await;
    wait_indexed(&index, last).await;

    assert_eq!(index.num_products(), 9);
    assert_eq!(ids(&index, &ProductQuery::text("wireless keyboard ")), [5], "delisted product gone");
    assert_eq!(index.product(id(9)).unwrap().unwrap().price_cents, 1_234);
    let lamp = index.product(id(4)).unwrap().unwrap();
    assert_eq!((lamp.rating, lamp.rating_count), (2.0, 1));
    let cheapest = index.search(&ProductQuery { sort: SortOrder::PriceAsc, first: 1, ..Default::default() }).unwrap();
    assert_eq!(cheapest.hits[0].product_id, id(9));

    // Shutdown commits and returns; a new runner resumes from the checkpoint.
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), runner).await.unwrap().unwrap().unwrap();
    let checkpoint = index.checkpoint();
    assert_eq!(checkpoint, last);
    drop(index);

    let reopened = ProductIndex::open(dir.path()).unwrap();
    assert_eq!(reopened.checkpoint(), checkpoint);
    assert_eq!(reopened.num_products(), 9);
    let (stop, stopped) = oneshot::channel::<()>();
    let runner = tokio::spawn(search::run(store.clone(), reopened.clone(), async move {
        let _ = stopped.await;
    }));
    let more = append(&store, product_stream(id(9)), &price_changed(999)).await;
    wait_visible(store.as_ref(), more).await;
    wait_indexed(&reopened, more).await;
    assert_eq!(reopened.product(id(9)).unwrap().unwrap().price_cents, 999);
    assert_eq!(reopened.num_products(), 9, "nothing applied twice");
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), runner).await.unwrap().unwrap().unwrap();
}
