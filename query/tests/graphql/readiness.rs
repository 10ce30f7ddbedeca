//! Readiness: a query process is ready while its read models and index keep up with the log.

use std::time::Duration;

use events::domain::accounts::Role;

use crate::support::Stack;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_while_caught_up_and_not_once_a_source_falls_behind() {
    let stack = Stack::start().await;
    let (_, vendor) = stack.account(Role::Vendor).await;
    stack.list(&vendor, "Rattan basket", "home", 2_400, 3).await;
    stack.caught_up().await;
    query::readiness::check(&stack.api, &stack.store, Duration::from_secs(1)).await.expect("ready when caught up");
    let lags = query::readiness::lags(&stack.api, &stack.store).await.expect("lags");
    assert_eq!(lags.len(), 6);
    assert!(lags.iter().all(|l| l.behind.is_zero()), "{lags:?}");

    stack.stop_background().await;
    stack.list(&vendor, "Seagrass rug", "home", 9_900, 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reason = query::readiness::check(&stack.api, &stack.store, Duration::from_millis(100))
        .await
        .expect_err("behind by more than the lag");
    for source in ["catalog", "accounts", "orders", "deliveries", "reviews", "search_index"] {
        assert!(reason.contains(source), "{reason}");
    }
    // A generous bound still passes.
    query::readiness::check(&stack.api, &stack.store, Duration::from_secs(60)).await.expect("within a minute");
}
