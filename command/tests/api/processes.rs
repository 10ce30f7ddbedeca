use chrono::Utc;
use events::EventStore;
use events::domain::accounts::Role;
use events::domain::catalog::ProductEvent;
use events::domain::deliveries::DeliveryEvent;
use events::domain::orders::OrderEvent;
use events::domain::payments::PaymentEvent;
use serde_json::json;
use uuid::Uuid;

use crate::support::TestApp;

fn order_stream(id: Uuid) -> events::StreamId {
    command::orders::handlers::order_stream(id)
}

fn last_stock(events: &[ProductEvent]) -> u32 {
    events
        .iter()
        .rev()
        .find_map(|e| match e {
            ProductEvent::Listed(l) => Some(l.stock),
            ProductEvent::StockReserved(r) => Some(r.stock),
            ProductEvent::StockReleased(r) => Some(r.stock),
            ProductEvent::StockHeld(h) => Some(h.stock),
            ProductEvent::HoldReleased(r) => Some(r.stock),
            ProductEvent::StockAdjusted(a) => Some(a.stock),
            _ => None,
        })
        .unwrap()
}

async fn order_with(app: &TestApp, token: &str, stock: i64) -> (Uuid, Uuid, String) {
    let (product, _) = app.product(stock, 1500).await;
    let (_, buyer) = app.account(Role::Buyer).await;
    app.add_to_cart(&buyer, product, 2).await.expect(200);
    let placed = app.checkout(&buyer, token).await;
    placed.expect(201);
    (placed.id(), product, buyer)
}

async fn track(app: &TestApp, carrier: &str, delivery: Uuid, status: &str) -> crate::support::Response {
    app.post(
        &format!("/api/v1/deliveries/{delivery}/tracking"),
        Some(carrier),
        json!({ "status": status, "location": "Lyon hub", "occurred_at": Utc::now().to_rfc3339() }),
    )
    .await
}

async fn an_authorised_payment_confirms_the_order_and_opens_a_delivery(app: TestApp) {
    let (order, _, _) = order_with(&app, "tok_visa", 5).await;
    app.run_processes().await;
    let events: Vec<OrderEvent> = app.stream(&order_stream(order)).await;
    assert!(
        matches!(&events[..], [OrderEvent::Placed(_), OrderEvent::Confirmed(c)] if c.authorization_id.starts_with("auth_"))
    );
    let delivery = command::deliveries::handlers::delivery_id_for(order);
    let delivery_events: Vec<DeliveryEvent> =
        app.stream(&command::deliveries::handlers::delivery_stream(delivery)).await;
    assert!(matches!(&delivery_events[..], [DeliveryEvent::Created(c)] if c.order_id == order));
    // Running the processes again (a restart replaying the log) changes nothing.
    let before = app.event_count().await;
    let trigger = app.store.read_all(events::LogPosition::START, 1000).await.unwrap();
    for reactor in command::reactors(&app.ctx) {
        for event in trigger.iter().filter(|e| reactor.wants(&e.event_type)) {
            reactor.react(event).await.unwrap();
        }
    }
    assert_eq!(app.event_count().await, before, "replayed reactions appended nothing");
    assert_eq!(app.gateway.charges(), 1);
}

async fn a_declined_payment_cancels_the_order_and_releases_the_stock(app: TestApp) {
    let (order, product, _) = order_with(&app, "tok_declined", 5).await;
    app.run_processes().await;
    let events: Vec<OrderEvent> = app.stream(&order_stream(order)).await;
    assert!(matches!(&events[..], [OrderEvent::Placed(_), OrderEvent::Cancelled(c)] if c.reason == "payment_declined"));
    let payment: Vec<PaymentEvent> = app.stream(&command::payments::handlers::payment_stream(order)).await;
    assert!(
        matches!(&payment[..], [PaymentEvent::Requested(_), PaymentEvent::Declined(d)] if d.reason == "card_declined")
    );
    let stock: Vec<ProductEvent> = app.stream(&command::catalog::handlers::product_stream(product)).await;
    assert_eq!(last_stock(&stock), 5, "the reserved units are back on the shelf");
    assert_eq!(app.gateway.charges(), 0);
}

async fn a_gateway_timeout_is_retried_without_charging_twice(app: TestApp) {
    let (order, _, _) = order_with(&app, "tok_timeout", 5).await;
    app.run_processes().await;
    let events: Vec<OrderEvent> = app.stream(&order_stream(order)).await;
    assert!(matches!(&events[..], [OrderEvent::Placed(_), OrderEvent::Confirmed(_)]), "{events:?}");
    assert_eq!(app.gateway.charges(), 1, "the timed-out attempt and its retry charged once");
}

async fn cancelling_releases_stock_and_refunds_a_paid_order(app: TestApp) {
    let (order, product, buyer) = order_with(&app, "tok_visa", 5).await;
    app.run_processes().await;
    let (_, stranger) = app.account(Role::Buyer).await;
    app.post(&format!("/api/v1/orders/{order}/cancel"), Some(&stranger), json!({}))
        .await
        .expect_problem(404, "not_found");
    let (_, vendor) = app.account(Role::Vendor).await;
    app.post(&format!("/api/v1/orders/{order}/cancel"), Some(&vendor), json!({}))
        .await
        .expect_problem(403, "forbidden");

    let cancelled = app.post(&format!("/api/v1/orders/{order}/cancel"), Some(&buyer), json!({})).await;
    cancelled.expect(200);
    assert_eq!(cancelled.body["status"], "cancelled");
    app.post(&format!("/api/v1/orders/{order}/cancel"), Some(&buyer), json!({})).await.expect(200);
    app.run_processes().await;

    let events: Vec<OrderEvent> = app.stream(&order_stream(order)).await;
    let kinds: Vec<&str> = events.iter().map(|e| events::DomainEvent::event_type(e)).collect();
    assert_eq!(kinds, ["order.placed", "order.confirmed", "order.cancelled", "order.refunded"]);
    let payment: Vec<PaymentEvent> = app.stream(&command::payments::handlers::payment_stream(order)).await;
    assert!(matches!(payment.last(), Some(PaymentEvent::Refunded(r)) if r.amount_cents == 3000));
    let stock: Vec<ProductEvent> = app.stream(&command::catalog::handlers::product_stream(product)).await;
    assert_eq!(last_stock(&stock), 5);
}

async fn carriers_track_deliveries_to_completion_and_then_buyers_review(app: TestApp) {
    let (order, product, buyer) = order_with(&app, "tok_visa", 5).await;
    app.run_processes().await;
    let delivery = command::deliveries::handlers::delivery_id_for(order);
    let (_, carrier) = app.account(Role::Carrier).await;
    let (_, other_carrier) = app.account(Role::Carrier).await;
    let (_, admin) = app.account(Role::Admin).await;

    let review_path = format!("/api/v1/products/{product}/reviews");
    app.post(&review_path, Some(&buyer), json!({ "rating": 5, "text": "Great" }))
        .await
        .expect_problem(403, "not_purchased");

    track(&app, &buyer, delivery, "picked_up").await.expect_problem(403, "forbidden");
    track(&app, &carrier, delivery, "picked_up").await.expect(200);
    track(&app, &other_carrier, delivery, "in_transit").await.expect_problem(403, "forbidden");
    app.post(&format!("/api/v1/orders/{order}/cancel"), Some(&buyer), json!({}))
        .await
        .expect_problem(409, "already_shipped");
    track(&app, &carrier, delivery, "out_for_delivery").await.expect(200);
    track(&app, &carrier, delivery, "delivered").await.expect(200);
    track(&app, &carrier, delivery, "in_transit").await.expect_problem(409, "delivery_finished");
    track(&app, &carrier, Uuid::now_v7(), "picked_up").await.expect_problem(404, "not_found");
    app.run_processes().await;

    let events: Vec<OrderEvent> = app.stream(&order_stream(order)).await;
    assert!(matches!(events.last(), Some(OrderEvent::Delivered(d)) if d.delivery_id == delivery));

    let review = app.post(&review_path, Some(&buyer), json!({ "rating": 4, "text": "Sturdy and quiet" })).await;
    review.expect(201);
    app.post(&review_path, Some(&buyer), json!({ "rating": 3, "text": "Again" }))
        .await
        .expect_problem(409, "already_reviewed");
    let moderation = format!("/api/v1/reviews/{}/moderation", review.id());
    app.post(&moderation, Some(&buyer), json!({ "decision": "approve" })).await.expect_problem(403, "forbidden");
    app.post(&moderation, Some(&admin), json!({ "decision": "reject" })).await.expect_problem(422, "validation_failed");
    app.post(&moderation, Some(&admin), json!({ "decision": "approve" })).await.expect(200);
    app.post(&moderation, Some(&admin), json!({ "decision": "reject", "reason": "late" }))
        .await
        .expect_problem(409, "already_moderated");
    app.post(&format!("/api/v1/reviews/{}/moderation", Uuid::now_v7()), Some(&admin), json!({ "decision": "approve" }))
        .await
        .expect_problem(404, "not_found");
}

async fn admins_cancel_after_shipping(app: TestApp) {
    let (order, _, _) = order_with(&app, "tok_visa", 5).await;
    app.run_processes().await;
    let (_, carrier) = app.account(Role::Carrier).await;
    let (_, admin) = app.account(Role::Admin).await;
    track(&app, &carrier, command::deliveries::handlers::delivery_id_for(order), "picked_up").await.expect(200);
    app.post(&format!("/api/v1/orders/{order}/cancel"), Some(&admin), json!({})).await.expect(200);
    app.run_processes().await;
    let events: Vec<OrderEvent> = app.stream(&order_stream(order)).await;
    assert!(matches!(events.last(), Some(OrderEvent::Refunded(_))));
}

// Each test on both kinds of store: atomic multi-stream appends, and appends in steps
// (`MULTI_STREAM_APPENDS=off`, as on KurrentDB).
crate::support::on_both_stores!(
    an_authorised_payment_confirms_the_order_and_opens_a_delivery,
    a_declined_payment_cancels_the_order_and_releases_the_stock,
    a_gateway_timeout_is_retried_without_charging_twice,
    cancelling_releases_stock_and_refunds_a_paid_order,
    carriers_track_deliveries_to_completion_and_then_buyers_review,
    admins_cancel_after_shipping,
);
