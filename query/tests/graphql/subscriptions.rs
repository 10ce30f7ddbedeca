//! `orderUpdated` over a real WebSocket speaking graphql-transport-ws.

use std::time::Duration;

use events::domain::accounts::Role;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::Stack;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const SUBSCRIPTION: &str = "subscription($id: ID!) { orderUpdated(orderId: $id) {
  id status payment { state } delivery { status history { status location } } } }";

/// A graphql-transport-ws client.
struct Client {
    socket: Socket,
}

impl Client {
    /// Connect and initialise with `payload`; `Err` with the server's close reason if it
    /// refuses the connection.
    async fn connect(stack: &Stack, payload: Value) -> Result<Client, String> {
        let url = format!("{}/graphql/ws", stack.base.replace("http://", "ws://"));
        let mut request = url.into_client_request().expect("request");
        request.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().unwrap());
        let (socket, response) = tokio_tungstenite::connect_async(request).await.expect("websocket connect");
        assert_eq!(
            response.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok()),
            Some("graphql-transport-ws")
        );
        let mut client = Client { socket };
        client.send(json!({ "type": "connection_init", "payload": payload })).await;
        match client.receive().await {
            Some(message) if message["type"] == "connection_ack" => Ok(client),
            other => Err(format!("{other:?}")),
        }
    }

    async fn send(&mut self, message: Value) {
        self.socket.send(Message::Text(message.to_string().into())).await.expect("send");
    }

    /// The next protocol message (pings answered on the way); `None` once closed.
    async fn receive(&mut self) -> Option<Value> {
        loop {
            let next =
                tokio::time::timeout(Duration::from_secs(20), self.socket.next()).await.expect("a message within 20 s");
            match next {
                Some(Ok(Message::Text(text))) => {
                    let message: Value = serde_json::from_str(&text).expect("JSON message");
                    if message["type"] == "ping" {
                        self.send(json!({ "type": "pong" })).await;
                        continue;
                    }
                    return Some(message);
                }
                Some(Ok(Message::Close(frame))) => {
                    return Some(json!({ "type": "closed", "reason": frame.map(|f| f.reason.to_string()) }));
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }

    async fn subscribe(&mut self, id: &str, order: uuid::Uuid) {
        self.send(json!({ "id": id, "type": "subscribe", "payload": { "query": SUBSCRIPTION, "variables": { "id": order } } }))
            .await;
    }

    /// The next pushed order of subscription `id`.
    async fn next_order(&mut self, id: &str) -> Value {
        loop {
            let message = self.receive().await.expect("connection open");
            if message["id"] != id {
                continue;
            }
            assert_eq!(message["type"], "next", "{message}");
            assert!(message["payload"].get("errors").is_none(), "{message}");
            return message["payload"]["data"]["orderUpdated"].clone();
        }
    }

    /// The error code a subscription ends with.
    async fn error_code(&mut self, id: &str) -> String {
        loop {
            let message = self.receive().await.expect("connection open");
            if message["id"] != id {
                continue;
            }
            let errors = match message["type"].as_str() {
                Some("error") => message["payload"].clone(),
                Some("next") => message["payload"]["errors"].clone(),
                _ => panic!("expected an error, got {message}"),
            };
            return errors[0]["extensions"]["code"].as_str().unwrap_or("<none>").to_owned();
        }
    }
}

fn tracking(order: &Value) -> Vec<String> {
    order["delivery"]["history"]
        .as_array()
        .map(|h| h.iter().map(|e| e["status"].as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_updated_pushes_each_change_of_the_order_to_its_owner_only() {
    // The payment process starts only once the client listens, so every change is seen.
    let stack = Stack::start_with(crate::support::Options { reactors: false, ..Default::default() }).await;
    let (_, vendor) = stack.account(Role::Vendor).await;
    let (product, _) = stack.list(&vendor, "Ceramic planter", "garden", 2_900, 20).await;
    let (_, buyer) = stack.account(Role::Buyer).await;
    let (_, carrier) = stack.account(Role::Carrier).await;
    let (order, position) = stack.order(&buyer, &[(product, 2)]).await;

    let mut client =
        Client::connect(&stack, json!({ "Authorization": format!("Bearer {buyer}"), "consistencyToken": position }))
            .await
            .expect("connection accepted");
    client.subscribe("1", order).await;
    let now = client.next_order("1").await;
    assert_eq!(now["id"], order.to_string());
    assert_eq!(now["status"], "PLACED");
    assert_eq!(now["delivery"], Value::Null);

    // Payment, confirmation, delivery opened: pushed as they reach the read models.
    stack.start_reactors();
    let mut pushes = vec![now];
    while pushes.last().unwrap()["status"] != "CONFIRMED" || pushes.last().unwrap()["delivery"].is_null() {
        pushes.push(client.next_order("1").await);
        assert!(pushes.len() < 10, "too many pushes: {pushes:#?}");
    }
    assert!(pushes.iter().any(|p| p["payment"]["state"] == "AUTHORIZED"), "{pushes:#?}");
    assert_eq!(pushes.last().unwrap()["delivery"]["status"], "CREATED");

    // Each tracking event: a push showing it. A change made just before (the read models
    // may still be settling the confirmation) can push once more first, showing what was
    // already there and nothing else.
    let mut before: Vec<&str> = Vec::new();
    for (status, location, expected) in [
        ("picked_up", "Depot", vec!["PICKED_UP"]),
        ("in_transit", "Hub", vec!["PICKED_UP", "IN_TRANSIT"]),
        ("out_for_delivery", "Van", vec!["PICKED_UP", "IN_TRANSIT", "OUT_FOR_DELIVERY"]),
    ] {
        stack.track(&carrier, order, status, location).await;
        let mut pushed = client.next_order("1").await;
        for _ in 0..3 {
            if tracking(&pushed) != before {
                break;
            }
            pushed = client.next_order("1").await;
        }
        assert_eq!(tracking(&pushed), expected, "{pushed}");
        before = expected;
        assert_eq!(pushed["delivery"]["history"].as_array().unwrap().last().unwrap()["location"], location);
    }
    stack.track(&carrier, order, "delivered", "Front door").await;
    let mut last = client.next_order("1").await;
    assert_eq!(last["delivery"]["status"], "DELIVERED");
    // The completion process then marks the order delivered: one more change, one more push.
    while last["status"] != "DELIVERED" {
        last = client.next_order("1").await;
    }

    // Someone else's order: not found, like in queries.
    let (_, other) = stack.account(Role::Buyer).await;
    let mut stranger =
        Client::connect(&stack, json!({ "Authorization": format!("Bearer {other}") })).await.expect("accepted");
    stranger.subscribe("7", order).await;
    assert_eq!(stranger.error_code("7").await, "NOT_FOUND");
    let mut admin_client = {
        let (_, admin) = stack.account(Role::Admin).await;
        Client::connect(&stack, json!({ "token": admin })).await.expect("accepted")
    };
    admin_client.subscribe("8", order).await;
    assert_eq!(admin_client.error_code("8").await, "NOT_FOUND", "pushes go to the owner only");
    // Without a token: unauthenticated; with a bad one: the connection is refused.
    let mut anonymous = Client::connect(&stack, json!({})).await.expect("accepted");
    anonymous.subscribe("9", order).await;
    assert_eq!(anonymous.error_code("9").await, "UNAUTHENTICATED");
    let refused = Client::connect(&stack, json!({ "Authorization": "Bearer not-a-token" })).await;
    assert!(refused.is_err(), "a bad token is refused at connection_init");
    let mut client2 =
        Client::connect(&stack, json!({ "Authorization": format!("Bearer {buyer}") })).await.expect("accepted");
    client2.subscribe("2", uuid::Uuid::now_v7()).await;
    assert_eq!(client2.error_code("2").await, "NOT_FOUND");

    // Shutdown ends the subscription cleanly.
    stack.api.shutdown();
    loop {
        match client.receive().await {
            Some(message) if message["type"] == "complete" && message["id"] == "1" => break,
            Some(message) if message["type"] == "next" => continue,
            other => panic!("expected the subscription to complete, got {other:?}"),
        }
    }
}
