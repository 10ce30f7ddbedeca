//! The KurrentDB (EventStoreDB) store, through the official `kurrentdb` client.
//!
//! What maps directly: streams and expected versions (Agora's version n is KurrentDB's
//! revision n-1), event ids (KurrentDB ignores a repeated id at the same expected version),
//! the global log (`$all`, ordered by commit then prepare position: Agora's `LogPosition`).
//!
//! What does not:
//! - **No atomic multi-stream append**: the client has none, so `capabilities()` says so and
//!   an append naming several streams with events is refused. Checkout then takes the
//!   reserve path (`command::orders::reserve`).
//! - **Idempotency records** are events in a stream per key, written after the append they
//!   belong to, not in one transaction with it (`transactional_idempotency: false`).
//! - `$all` also holds KurrentDB's own events (`$`-prefixed) and those records: the log this
//!   store exposes leaves them out.
//!
//! Verified without a server only (see README, "KurrentDB"): the mapping layer has unit
//! tests; the contract suite runs against a server when `EVENTSTORE_URL` is set.

pub mod mapping;

use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use kurrentdb::{
    AppendToStreamOptions, Client, ReadAllOptions, ReadStreamOptions, StreamPosition, SubscribeToAllOptions,
};
use sha2::Digest;

use self::mapping::{IDEMPOTENCY_EVENT_TYPE, IDEMPOTENCY_STREAM_PREFIX, KurrentUrl, RawRecorded};
use crate::envelope::{NewEvent, RecordedEvent, StreamId};
use crate::position::LogPosition;
use crate::store::{
    AppendRequest, Appended, AppendedEvent, Capabilities, EventStore, EventStream, Result, StoreError, StoredResponse,
};

/// Why the store could not start: one sentence naming the URL without credentials.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConnectError(pub String);

/// The KurrentDB event store.
#[derive(Clone)]
pub struct KurrentStore {
    client: Client,
}

impl KurrentStore {
    /// Parse the URL, connect, and check the server answers (a one-event read of `$all`)
    /// within `timeout`, so a wrong URL, an unreachable server or refused credentials stop
    /// start-up with one clear error.
    pub async fn connect(url: &str, timeout: Duration) -> std::result::Result<Self, ConnectError> {
        install_crypto_provider();
        let KurrentUrl { settings, redacted } = mapping::parse_url(url).map_err(ConnectError)?;
        let client = Client::new(settings)
            .map_err(|e| ConnectError(format!("cannot create a KurrentDB client for {redacted}: {e}")))?;
        let store = KurrentStore { client };
        let probe = async {
            let options = ReadAllOptions::default().position(StreamPosition::End).backwards().max_count(1);
            let mut read = store.client.read_all(&options).await?;
            read.next().await.map(|_| ())
        };
        match tokio::time::timeout(timeout, probe).await {
            Ok(Ok(())) => Ok(store),
            Ok(Err(kurrentdb::Error::AccessDenied)) => Err(ConnectError(format!(
                "KurrentDB at {redacted} refused the credentials in EVENTSTORE_URL (access denied)"
            ))),
            Ok(Err(
                error @ (kurrentdb::Error::GrpcConnectionError(_)
                | kurrentdb::Error::ConnectionClosed
                | kurrentdb::Error::DeadlineExceeded),
            )) => Err(ConnectError(format!(
                "cannot reach KurrentDB at {redacted} (EVENTSTORE_URL): is the server running there, and does `tls=` \
                 match its setting? ({error})"
            ))),
            Ok(Err(error)) => Err(ConnectError(format!("cannot use KurrentDB at {redacted}: {error}"))),
            Err(_) => Err(ConnectError(format!(
                "KurrentDB at {redacted} did not answer within {} s: is it running, and is `tls` in EVENTSTORE_URL right?",
                timeout.as_secs()
            ))),
        }
    }

    /// Events of `$all` after `after`, Agora's only, up to `limit`; `None` when the server
    /// has nothing after `after`.
    async fn read_page(&self, after: LogPosition, limit: usize) -> Result<Vec<RecordedEvent>> {
        let mut from = after;
        loop {
            let start = if from.is_start() {
                StreamPosition::Start
            } else {
                StreamPosition::Position(mapping::kurrent_position(from))
            };
            let options = ReadAllOptions::default().position(start).forwards().max_count(limit.max(1) + 1);
            let mut read = self.client.read_all(&options).await.map_err(|e| mapping::store_error(e, None))?;
            let mut page = Vec::new();
            let mut raw_count = 0;
            let mut last_raw = from;
            while let Some(resolved) = read.next().await.map_err(|e| mapping::store_error(e, None))? {
                let Some(event) = resolved.event.as_ref() else { continue };
                let position = LogPosition::new(event.position.commit, event.position.prepare);
                // Reading from a position includes the event at it.
                if position <= from {
                    continue;
                }
                raw_count += 1;
                last_raw = position;
                if mapping::is_internal(event.stream_id(), &event.event_type) {
                    continue;
                }
                page.push(mapping::recorded(RawRecorded::from(event))?);
                if page.len() == limit {
                    return Ok(page);
                }
            }
            // A page of only internal events: keep going until Agora events or the end.
            if !page.is_empty() || raw_count == 0 {
                return Ok(page);
            }
            from = last_raw;
        }
    }

    fn idempotency_stream(key: &str) -> StreamId {
        let digest = sha2::Sha256::digest(key.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        StreamId::from_raw(format!("{IDEMPOTENCY_STREAM_PREFIX}{hex}"))
    }
}

/// rustls needs one process-wide crypto provider; sqlx already brings `ring`, so use it
/// here too. A provider installed earlier stays.
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The idempotency record as stored in its stream.
#[derive(serde::Serialize, serde::Deserialize)]
struct IdempotencyEvent {
    request_hash: String,
    response_status: u16,
    response_body: serde_json::Value,
    position: LogPosition,
}

#[async_trait]
impl EventStore for KurrentStore {
    fn capabilities(&self) -> Capabilities {
        Capabilities { atomic_multi_stream: false, transactional_idempotency: false }
    }

    async fn append(&self, request: AppendRequest) -> Result<Appended> {
        request.validate()?;
        let with_events: Vec<_> = request.streams.iter().filter(|s| !s.events.is_empty()).collect();
        if with_events.len() != 1 || request.streams.len() != 1 {
            return Err(StoreError::InvalidAppend(
                "KurrentDB cannot append several streams atomically: one stream per append".into(),
            ));
        }
        let stream = with_events[0];
        let data = stream.events.iter().map(mapping::event_data).collect::<Result<Vec<_>>>()?;
        let options = AppendToStreamOptions::default().stream_state(mapping::stream_state(stream.expected));
        let written = match self.client.append_to_stream(stream.stream_id.as_str(), &options, data).await {
            Ok(written) => written,
            Err(error @ kurrentdb::Error::WrongExpectedVersion { .. }) => {
                // A replay of events already in the stream (same ids) is not a conflict.
                if let Some(earlier) = self.earlier_append(&stream.stream_id, &stream.events).await? {
                    return Ok(Appended { events: earlier, replayed: true });
                }
                return Err(mapping::store_error(error, Some((&stream.stream_id, stream.expected))));
            }
            Err(error) => return Err(mapping::store_error(error, Some((&stream.stream_id, stream.expected)))),
        };
        // Read the events back for their exact `$all` positions (the write result has the
        // last one only) and to tell an idempotent replay at the same version from new events.
        let count = stream.events.len() as u64;
        let first_version = written.next_expected_version + 2 - count;
        let read = self.read_stream(&stream.stream_id, first_version).await?;
        let events: Vec<AppendedEvent> = read
            .iter()
            .take(stream.events.len())
            .map(|e| AppendedEvent {
                event_id: e.event_id,
                stream_id: e.stream_id.clone(),
                stream_version: e.stream_version,
                position: e.position,
            })
            .collect();
        if events.iter().map(|e| e.event_id).ne(stream.events.iter().map(|e| e.event_id)) {
            return Err(StoreError::Backend("the appended events could not be read back in order".into()));
        }
        let appended = Appended { events, replayed: false };
        if let Some(record) = &request.idempotency {
            let body = IdempotencyEvent {
                request_hash: record.request_hash.clone(),
                response_status: record.response_status,
                response_body: record.response_body.clone(),
                position: appended.position(),
            };
            let event = NewEvent {
                event_id: crate::ids::derived("idempotency", &[record.key.as_bytes()]),
                event_type: IDEMPOTENCY_EVENT_TYPE.to_owned(),
                schema_version: 1,
                data: serde_json::to_string(&body).map_err(|e| StoreError::Backend(Box::new(e)))?,
                metadata: Default::default(),
            };
            let options = AppendToStreamOptions::default().stream_state(kurrentdb::StreamState::NoStream);
            let key_stream = Self::idempotency_stream(&record.key);
            match self.client.append_to_stream(key_stream.as_str(), &options, mapping::event_data(&event)?).await {
                Ok(_) => {}
                // A concurrent request stored the key first. Our events are already in the log,
                // so report them as appended (never as not appended: a caller would then undo
                // work that stands, e.g. release the stock of a placed order). Both requests
                // took effect: the documented limit of idempotency on this store.
                Err(kurrentdb::Error::WrongExpectedVersion { .. }) => {
                    tracing::warn!(key = %record.key, "idempotency key stored concurrently by another request");
                }
                Err(error) => return Err(mapping::store_error(error, None)),
            }
        }
        Ok(appended)
    }

    async fn read_stream(&self, stream: &StreamId, from_version: u64) -> Result<Vec<RecordedEvent>> {
        let from = from_version.max(1) - 1;
        let options =
            ReadStreamOptions::default().position(StreamPosition::Position(from)).forwards().max_count(usize::MAX);
        let mut read = match self.client.read_stream(stream.as_str(), &options).await {
            Ok(read) => read,
            Err(kurrentdb::Error::ResourceNotFound) => return Ok(vec![]),
            Err(error) => return Err(mapping::store_error(error, None)),
        };
        let mut events = Vec::new();
        loop {
            match read.next().await {
                Ok(Some(resolved)) => {
                    if let Some(event) = resolved.event.as_ref() {
                        events.push(mapping::recorded(RawRecorded::from(event))?);
                    }
                }
                Ok(None) | Err(kurrentdb::Error::ResourceNotFound) => return Ok(events),
                Err(error) => return Err(mapping::store_error(error, None)),
            }
        }
    }

    async fn read_all(&self, after: LogPosition, limit: usize) -> Result<Vec<RecordedEvent>> {
        self.read_page(after, limit).await
    }

    fn subscribe_all(&self, after: LogPosition) -> EventStream {
        let client = self.client.clone();
        let start = if after.is_start() {
            StreamPosition::Start
        } else {
            StreamPosition::Position(mapping::kurrent_position(after))
        };
        let options = SubscribeToAllOptions::default().position(start);
        let stream = futures_util::stream::unfold(Some((client, options, None)), move |state| async move {
            let (client, options, subscription) = state?;
            let mut subscription = match subscription {
                Some(subscription) => subscription,
                None => client.subscribe_to_all(&options).await,
            };
            loop {
                match subscription.next().await {
                    Ok(resolved) => {
                        let Some(event) = resolved.event.as_ref() else { continue };
                        let position = LogPosition::new(event.position.commit, event.position.prepare);
                        if position <= after || mapping::is_internal(event.stream_id(), &event.event_type) {
                            continue;
                        }
                        let item = mapping::recorded(RawRecorded::from(event));
                        let next = if item.is_ok() { Some((client, options, Some(subscription))) } else { None };
                        return Some((item, next));
                    }
                    // Errors are yielded and end the stream (the trait's contract).
                    Err(error) => return Some((Err(mapping::store_error(error, None)), None)),
                }
            }
        });
        stream.boxed()
    }

    async fn head(&self) -> Result<LogPosition> {
        let mut before = StreamPosition::End;
        loop {
            let options = ReadAllOptions::default().position(before).backwards().max_count(100);
            let mut read = self.client.read_all(&options).await.map_err(|e| mapping::store_error(e, None))?;
            let mut last_seen = None;
            while let Some(resolved) = read.next().await.map_err(|e| mapping::store_error(e, None))? {
                let Some(event) = resolved.event.as_ref() else { continue };
                if !mapping::is_internal(event.stream_id(), &event.event_type) {
                    return Ok(LogPosition::new(event.position.commit, event.position.prepare));
                }
                last_seen = Some(event.position);
            }
            match last_seen {
                // Backwards from a position includes it; step below it.
                Some(position) if position.prepare > 0 || position.commit > 0 => {
                    let below = LogPosition::new(position.commit, position.prepare.saturating_sub(1));
                    before = StreamPosition::Position(mapping::kurrent_position(below));
                }
                _ => return Ok(LogPosition::START),
            }
        }
    }

    async fn idempotent_response(&self, key: &str) -> Result<Option<StoredResponse>> {
        let records = self.read_stream(&Self::idempotency_stream(key), 1).await?;
        let Some(first) = records.first() else { return Ok(None) };
        let stored: IdempotencyEvent =
            serde_json::from_str(&first.data).map_err(|e| StoreError::Backend(Box::new(e)))?;
        Ok(Some(StoredResponse {
            request_hash: stored.request_hash,
            response_status: stored.response_status,
            response_body: stored.response_body,
            position: stored.position,
        }))
    }
}

impl KurrentStore {
    /// Where events with these ids were appended before, if they all were.
    async fn earlier_append(&self, stream: &StreamId, events: &[NewEvent]) -> Result<Option<Vec<AppendedEvent>>> {
        let recorded = self.read_stream(stream, 1).await?;
        let found: Option<Vec<AppendedEvent>> = events
            .iter()
            .map(|wanted| {
                recorded.iter().find(|e| e.event_id == wanted.event_id).map(|e| AppendedEvent {
                    event_id: e.event_id,
                    stream_id: e.stream_id.clone(),
                    stream_version: e.stream_version,
                    position: e.position,
                })
            })
            .collect();
        Ok(found)
    }
}
