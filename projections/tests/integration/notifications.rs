//! Notifications: the right people get the right messages, rendered from templates with
//! their names; an erased account gets nothing, even what was queued before the erasure;
//! events older than the age limit notify nobody.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use events::domain::accounts::Role;
use events::domain::deliveries::TrackingStatus;
use projections::integration::{
    Channel, ChannelError, Message, NotificationOptions, Notifier, in_order, run_notification_sender,
};
use projections::{RunOptions, run_reactor};
use tokio::sync::watch;
use uuid::Uuid;

use super::market::{Market, eventually};
use super::support::{Env, checkpoint};

/// A channel that keeps what it is asked to send (the SMTP channel lives in the binary).
#[derive(Default)]
struct Outbox {
    sent: Mutex<Vec<Message>>,
}

#[async_trait]
impl Channel for Outbox {
    fn name(&self) -> &'static str {
        "test"
    }

    async fn send(&self, message: &Message) -> Result<(), ChannelError> {
        self.sent.lock().unwrap().push(message.clone());
        Ok(())
    }
}

fn run_options() -> RunOptions {
    in_order(RunOptions {
        standby_retry: Duration::from_millis(200),
        min_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(400),
        ..RunOptions::default()
    })
}

async fn states(pool: &sqlx::PgPool, recipient: Uuid) -> Vec<(String, String)> {
    sqlx::query_as(
        "select template, state from integration.notification where recipient_id = $1 order by created_at, template",
    )
    .bind(recipient)
    .fetch_all(pool)
    .await
    .expect("notifications")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buyers_and_vendors_are_notified_and_erased_accounts_never() {
    let env = Env::new().await;
    let mut market = Market::new(&env.store, &env.vault);
    let vendor = market.account(Role::Vendor, "Vera").await;
    let buyer = market.account(Role::Buyer, "Bob").await;
    let leaver = market.account(Role::Buyer, "Lea").await;
    let kettle = market.product(vendor, "Kettle").await;
    let lamp = market.product(vendor, "Lamp").await;
    let order = market.order(buyer, vendor, kettle).await;
    market.confirm(order).await;
    market.track(order, TrackingStatus::OutForDelivery).await;
    // Lea orders, then erases her account before her order is confirmed and shipped.
    let lea_order = market.order(leaver, vendor, lamp).await;
    market.erase(leaver).await;
    market.confirm(lea_order).await;
    market.track(lea_order, TrackingStatus::PickedUp).await;
    market.visible().await;

    let (stop, shutdown) = watch::channel(false);
    let options = NotificationOptions {
        backoff: Duration::from_millis(100),
        poll: Duration::from_millis(50),
        ..Default::default()
    };
    let notifier = Arc::new(Notifier::new(env.pool().clone(), env.vault.clone(), options.clone()));
    let reactor = tokio::spawn(run_reactor(env.pool().clone(), env.store(), notifier, run_options(), shutdown.clone()));
    let channel = Arc::new(Outbox::default());
    let sender = tokio::spawn(run_notification_sender(
        env.pool().clone(),
        env.vault.clone(),
        channel.clone(),
        options,
        shutdown.clone(),
    ));

    let head = market.last;
    eventually(Duration::from_secs(30), "the notifier catches up", || async {
        (checkpoint(env.pool(), "notifications").await >= Some(head)).then_some(())
    })
    .await;
    eventually(Duration::from_secs(30), "every notification settles", || async {
        let pending: i64 = sqlx::query_scalar("select count(*) from integration.notification where state = 'pending'")
            .fetch_one(env.pool())
            .await
            .unwrap();
        (pending == 0).then_some(())
    })
    .await;

    let sent = channel.sent.lock().unwrap().clone();
    let to = |id: Uuid| sent.iter().filter(|m| m.recipient_id == id).cloned().collect::<Vec<_>>();
    let bob = to(buyer);
    assert_eq!(bob.len(), 2, "{bob:#?}");
    assert_eq!(bob[0].to_email, "bob@example.test");
    assert!(bob[0].subject.ends_with("is confirmed"), "{}", bob[0].subject);
    assert!(bob[0].body.starts_with("Hello Bob,") && bob[0].body.contains("19.99 EUR"), "{}", bob[0].body);
    assert!(bob[1].subject.ends_with("out for delivery"), "{}", bob[1].subject);
    assert!(bob[1].body.contains("Lyon hub"), "{}", bob[1].body);
    let vera = to(vendor);
    assert_eq!(vera.len(), 2, "a new-order message per order: {vera:#?}");
    assert!(vera.iter().all(|m| m.subject.starts_with("New order") && m.body.starts_with("Hello Vera,")));
    assert!(vera[0].body.contains("1 x Kettle (19.99 EUR)"), "{}", vera[0].body);

    // Lea: nothing sent, everything for her recorded as skipped.
    assert!(to(leaver).is_empty(), "an erased account receives nothing");
    let lea = states(env.pool(), leaver).await;
    assert_eq!(lea.len(), 2, "{lea:?}");
    assert!(lea.iter().all(|(_, state)| state == "skipped"), "{lea:?}");
    assert_eq!(
        states(env.pool(), buyer).await.iter().map(|(_, s)| s.as_str()).collect::<Vec<_>>(),
        vec!["sent", "sent"]
    );

    stop.send(true).unwrap();
    reactor.await.unwrap().unwrap();
    sender.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_events_notify_nobody() {
    let env = Env::new().await;
    let mut market = Market::new(&env.store, &env.vault);
    let vendor = market.account(Role::Vendor, "Vera").await;
    let buyer = market.account(Role::Buyer, "Bob").await;
    let kettle = market.product(vendor, "Kettle").await;
    let order = market.order(buyer, vendor, kettle).await;
    market.confirm(order).await;
    market.visible().await;
    // Make the events a week old, as after restoring a backup or resetting the checkpoint.
    sqlx::query("update event_store.event set recorded_at = recorded_at - interval '7 days'")
        .execute(env.pool())
        .await
        .expect("age the log");

    let (stop, shutdown) = watch::channel(false);
    let notifier = Arc::new(Notifier::new(env.pool().clone(), env.vault.clone(), NotificationOptions::default()));
    let reactor = tokio::spawn(run_reactor(env.pool().clone(), env.store(), notifier, run_options(), shutdown));
    let head = market.last;
    eventually(Duration::from_secs(30), "the notifier catches up", || async {
        (checkpoint(env.pool(), "notifications").await >= Some(head)).then_some(())
    })
    .await;
    let queued: i64 =
        sqlx::query_scalar("select count(*) from integration.notification").fetch_one(env.pool()).await.unwrap();
    assert_eq!(queued, 0, "nothing queued for events older than NOTIFY_MAX_AGE_HOURS");
    stop.send(true).unwrap();
    reactor.await.unwrap().unwrap();
}
