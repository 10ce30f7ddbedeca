//! The history generator: deterministic for a seed, valid streams, population mode.

mod support;

use std::collections::BTreeMap;

use events::{EventStore, LogPosition};
use projections::{HistoryConfig, generate_history};
use support::Env;

/// (event id, stream, version, type) of every event, sorted by id.
async fn shape(env: &Env) -> Vec<(uuid::Uuid, String, u64, String)> {
    let mut all = Vec::new();
    let mut after = LogPosition::START;
    loop {
        let page = env.store.read_all(after, 5000).await.expect("read");
        let Some(last) = page.last() else { break };
        after = last.position;
        all.extend(page.into_iter().map(|e| (e.event_id, e.stream_id.to_string(), e.stream_version, e.event_type)));
    }
    all.sort();
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_seed_gives_the_same_events() {
    let (a, b) = (Env::new().await, Env::new().await);
    let first = a.history(4000, 99).await;
    let second = b.history(4000, 99).await;
    assert_eq!((first.events, first.appends, first.orders), (second.events, second.appends, second.orders));
    let shape_a = shape(&a).await;
    assert_eq!(shape_a.len() as u64, first.events);
    assert_eq!(shape_a, shape(&b).await, "same ids, streams, versions and types");
    let mut types: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, _, _, event_type) in &shape_a {
        *types.entry(event_type.as_str()).or_default() += 1;
    }
    for expected in [
        "account.registered",
        "email.claimed",
        "product.listed",
        "product.price_changed",
        "product.stock_adjusted",
        "product.stock_reserved",
        "cart.item_set",
        "cart.checked_out",
        "order.placed",
        "payment.requested",
        "payment.authorized",
        "order.confirmed",
        "delivery.created",
        "delivery.tracked",
        "order.delivered",
        "purchase.delivered",
        "review.submitted",
        "review.approved",
    ] {
        assert!(types.contains_key(expected), "no {expected} in {types:?}");
    }
    assert_eq!(types["order.placed"], first.orders);
    assert_eq!(types["cart.checked_out"], first.orders, "every order checks a cart out in the same append");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_population_history_settles_every_order() {
    let env = Env::new().await;
    let config = HistoryConfig::for_population(30, 40, 60, 5);
    let summary = generate_history(env.store(), &env.vault, &config, |_| {}).await.expect("history");
    assert_eq!(summary.orders, 60);
    events::testing::contract::wait_visible(&env.store, summary.last_position).await;
    let count = |t: &'static str| {
        let pool = env.pool().clone();
        async move {
            sqlx::query_scalar::<_, i64>("select count(*) from event_store.event where event_type = $1")
                .bind(t)
                .fetch_one(&pool)
                .await
                .expect("count")
        }
    };
    assert_eq!(count("order.placed").await, 60);
    let settled = count("order.delivered").await + count("order.cancelled").await
        + sqlx::query_scalar::<_, i64>(
            "select count(*) from event_store.event where event_type = 'delivery.tracked' and data::jsonb->>'status' = 'returned'",
        )
        .fetch_one(env.pool())
        .await
        .expect("returned");
    assert_eq!(settled, 60, "every order delivered, cancelled or returned");
    assert_eq!(count("review.submitted").await, count("review.approved").await + count("review.rejected").await);
    assert_eq!(count("account.registered").await as usize, summary.accounts);
}
