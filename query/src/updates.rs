//! Which orders just changed: one task per process follows the log (from where it was when
//! the first subscription arrived) and announces, for every order, payment or delivery
//! event, the order it concerns and its log position. Subscriptions filter the
//! announcements for their order, wait for the read models to apply the event, and push.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use events::{EventStore, LogPosition, RecordedEvent};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::{OnceCell, broadcast, watch};
use uuid::Uuid;

use crate::error::Error;

/// Announcements a slow subscription may fall behind by before it is told it lagged.
const CAPACITY: usize = 4096;

/// "Order `order_id` changed at `position`."
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderChanged {
    pub order_id: Uuid,
    pub position: LogPosition,
}

/// The announcement hub of a process.
#[derive(Clone)]
pub struct OrderUpdates {
    shared: Arc<Hub>,
}

struct Hub {
    store: Arc<dyn EventStore>,
    /// Taken on shutdown: subscriptions then end.
    sender: Mutex<Option<broadcast::Sender<OrderChanged>>>,
    /// The last log position the follower has looked at.
    seen: watch::Sender<LogPosition>,
    started: OnceCell<()>,
    stop: watch::Sender<bool>,
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl OrderUpdates {
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        Self {
            shared: Arc::new(Hub {
                store,
                sender: Mutex::new(Some(broadcast::channel(CAPACITY).0)),
                seen: watch::channel(LogPosition::START).0,
                started: OnceCell::new(),
                stop: watch::channel(false).0,
            }),
        }
    }

    /// Listen to announcements; also the position up to which the follower has already
    /// looked (announcements up to it were made before this call).
    pub async fn subscribe(&self) -> Result<(broadcast::Receiver<OrderChanged>, LogPosition), Error> {
        self.shared
            .started
            .get_or_try_init(|| async {
                let head = self.shared.store.head().await?;
                self.shared.seen.send_replace(head);
                tokio::spawn(follow(Arc::downgrade(&self.shared), head, self.shared.stop.subscribe()));
                Ok::<(), Error>(())
            })
            .await?;
        let receiver = match self.shared.sender.lock() {
            Ok(sender) => sender.as_ref().map(broadcast::Sender::subscribe),
            Err(_) => None,
        };
        let receiver = receiver.ok_or_else(|| Error::Internal("the server is shutting down".into()))?;
        Ok((receiver, *self.shared.seen.borrow()))
    }

    /// End every subscription (server shutdown).
    pub fn shutdown(&self) {
        let _ = self.shared.stop.send(true);
        if let Ok(mut sender) = self.shared.sender.lock() {
            sender.take();
        }
    }
}

/// The order an event concerns, if it is about an order's state.
pub fn order_of(event: &RecordedEvent) -> Option<Uuid> {
    #[derive(Deserialize)]
    struct OrderRef {
        order_id: Uuid,
    }
    match event.stream_id.category() {
        // `order-<order id>`, `payment-<order id>`.
        "order" | "payment" => event.stream_id.uuid(),
        // Delivery events name their order.
        "delivery" => serde_json::from_str::<OrderRef>(&event.data).ok().map(|r| r.order_id),
        _ => None,
    }
}

async fn follow(hub: Weak<Hub>, from: LogPosition, mut stop: watch::Receiver<bool>) {
    let mut position = from;
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(store) = hub.upgrade().map(|h| h.store.clone()) else { return };
        let mut events = store.subscribe_all(position);
        drop(store);
        loop {
            let next = tokio::select! {
                next = events.next() => next,
                _ = stop.wait_for(|stopped| *stopped) => return,
            };
            let Some(next) = next else { break };
            let event = match next {
                Ok(event) => event,
                Err(error) => {
                    tracing::warn!(%error, retry_in_ms = backoff.as_millis() as u64, "order update follower lost the log");
                    break;
                }
            };
            backoff = Duration::from_millis(100);
            position = event.position;
            let Some(hub) = hub.upgrade() else { return };
            if let Some(order_id) = order_of(&event)
                && let Ok(sender) = hub.sender.lock()
                && let Some(sender) = sender.as_ref()
            {
                // No receiver is not an error: nobody is subscribed right now.
                let _ = sender.send(OrderChanged { order_id, position });
            }
            hub.seen.send_replace(position);
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

#[cfg(test)]
mod tests {
    use events::{EventMetadata, StreamId};

    use super::*;

    fn event(stream: StreamId, data: &str) -> RecordedEvent {
        RecordedEvent {
            position: LogPosition::new(1, 1),
            event_id: Uuid::now_v7(),
            stream_id: stream,
            stream_version: 1,
            event_type: "x.y".into(),
            schema_version: 1,
            data: data.into(),
            metadata: EventMetadata::default(),
            recorded_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn finds_the_order_of_order_payment_and_delivery_events() {
        let order = Uuid::now_v7();
        assert_eq!(order_of(&event(StreamId::new("order", order), "{}")), Some(order));
        assert_eq!(order_of(&event(StreamId::new("payment", order), "{}")), Some(order));
        let data = format!(r#"{{"delivery_id":"{}","order_id":"{order}","status":"in_transit"}}"#, Uuid::now_v7());
        assert_eq!(order_of(&event(StreamId::new("delivery", Uuid::now_v7()), &data)), Some(order));
        assert_eq!(order_of(&event(StreamId::new("product", order), "{}")), None);
        assert_eq!(order_of(&event(StreamId::new("delivery", order), "not json")), None);
    }
}
