//! The JetStream relay: every integration event, published in log order to
//! `<prefix>.<type>` (e.g. `agora.order.placed`) on stream `<NATS_STREAM>`.
//!
//! The reactor runtime moves the checkpoint only after `react` returned, and `react` returns
//! only after JetStream acknowledged the message (stored). If the broker is down, the publish
//! fails, the reaction is retried with backoff from the same event, and the lag shows in
//! `agora status` and `agora_projection_lag_*`; nothing is skipped. A crash between the ack
//! and the checkpoint publishes the event again: the `Nats-Msg-Id` header (the event id) makes
//! JetStream drop it within the stream's duplicate window (2 minutes here), and consumers can
//! de-duplicate by the envelope's `id` beyond it.

use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::stream::Config as StreamConfig;
use async_trait::async_trait;
use events::RecordedEvent;
use events::integration::{IntegrationEvent, SOURCE_TYPES};
use events::reactor::{ReactionError, Reactor};
use tokio::sync::Mutex;

/// Where and how to publish.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// `nats://host:port`.
    pub url: String,
    /// JetStream stream name; created (capturing `<prefix>.>`) if missing.
    pub stream: String,
    /// First token of every subject.
    pub subject_prefix: String,
    /// How long to wait for a connection and for each publish ack.
    pub timeout: Duration,
    /// JetStream's de-duplication window for `Nats-Msg-Id`.
    pub duplicate_window: Duration,
}

impl RelayConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            stream: "AGORA".to_owned(),
            subject_prefix: "agora".to_owned(),
            timeout: Duration::from_secs(5),
            duplicate_window: Duration::from_secs(120),
        }
    }

    /// The subject an integration event type is published on.
    pub fn subject(&self, event_type: &str) -> String {
        format!("{}.{event_type}", self.subject_prefix)
    }
}

/// The relay reactor (`integration_relay`).
pub struct NatsRelay {
    config: RelayConfig,
    /// Connected JetStream context; dropped after an error so the next attempt starts clean
    /// (and re-creates the stream if someone deleted it).
    context: Mutex<Option<jetstream::Context>>,
}

impl NatsRelay {
    pub fn new(config: RelayConfig) -> Self {
        Self { config, context: Mutex::new(None) }
    }

    async fn connect(&self) -> Result<jetstream::Context, String> {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(self.config.timeout)
            .name("agora-relay")
            .connect(self.config.url.as_str())
            .await
            .map_err(|e| format!("cannot connect to NATS at {}: {e}", self.config.url))?;
        let mut context = jetstream::new(client);
        context.set_timeout(self.config.timeout);
        let stream = StreamConfig {
            name: self.config.stream.clone(),
            subjects: vec![format!("{}.>", self.config.subject_prefix)],
            duplicate_window: self.config.duplicate_window,
            ..Default::default()
        };
        context
            .get_or_create_stream(stream)
            .await
            .map_err(|e| format!("cannot create or find JetStream stream {}: {e}", self.config.stream))?;
        tracing::info!(url = %self.config.url, stream = %self.config.stream, "relay connected to NATS JetStream");
        Ok(context)
    }

    async fn publish(&self, event: &IntegrationEvent) -> Result<bool, String> {
        let mut guard = self.context.lock().await;
        let context = match guard.as_ref() {
            Some(context) => context.clone(),
            None => {
                let context = self.connect().await?;
                *guard = Some(context.clone());
                context
            }
        };
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, event.id.to_string().as_str());
        headers.insert("Agora-Schema-Version", event.schema_version.to_string().as_str());
        let subject = self.config.subject(&event.event_type);
        let result = async {
            let ack = context
                .publish_with_headers(subject.clone(), headers, event.to_json().into())
                .await
                .map_err(|e| format!("publish to {subject}: {e}"))?;
            ack.await.map_err(|e| format!("no ack for {subject}: {e}"))
        }
        .await;
        match result {
            Ok(ack) => Ok(ack.duplicate),
            Err(error) => {
                *guard = None;
                Err(error)
            }
        }
    }
}

#[async_trait]
impl Reactor for NatsRelay {
    fn name(&self) -> &'static str {
        "integration_relay"
    }

    fn wants(&self, event_type: &str) -> bool {
        SOURCE_TYPES.contains(&event_type)
    }

    async fn react(&self, event: &RecordedEvent) -> Result<(), ReactionError> {
        let public = match IntegrationEvent::from_recorded(event) {
            Ok(Some(public)) => public,
            Ok(None) => return Ok(()),
            Err(error) => return Err(ReactionError::Fatal(error.to_string())),
        };
        match self.publish(&public).await {
            Ok(duplicate) => {
                metrics::counter!("agora_integration_published_total", "duplicate" => if duplicate { "true" } else { "false" })
                    .increment(1);
                Ok(())
            }
            Err(error) => {
                metrics::counter!("agora_integration_publish_errors_total").increment(1);
                Err(ReactionError::Retry(error))
            }
        }
    }
}
