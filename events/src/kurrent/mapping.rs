//! Pure conversions between Agora's envelope and KurrentDB's: expected versions, event data
//! and metadata, positions, errors, URLs. No I/O, so every one is unit-tested without a
//! server.

use chrono::{DateTime, Utc};
use kurrentdb::{CurrentRevision, StreamState};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::envelope::{EventMetadata, NewEvent, RecordedEvent, StreamId};
use crate::position::LogPosition;
use crate::store::{ExpectedVersion, StoreError};

/// Agora counts stream versions from 1 (0 = empty stream); KurrentDB counts revisions from 0.
pub fn stream_state(expected: ExpectedVersion) -> StreamState {
    match expected {
        ExpectedVersion::Any => StreamState::Any,
        ExpectedVersion::NoStream | ExpectedVersion::Exact(0) => StreamState::NoStream,
        ExpectedVersion::Exact(version) => StreamState::StreamRevision(version - 1),
    }
}

/// The version a stream is at, from KurrentDB's view of it.
pub fn current_version(current: CurrentRevision) -> u64 {
    match current {
        CurrentRevision::NoStream => 0,
        CurrentRevision::Current(revision) => revision + 1,
    }
}

/// What Agora keeps in an event's custom metadata on KurrentDB (its data stays the JSON
/// document itself, so server-side projections and the UI can read it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMetadata {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
}

/// An event ready for `append_to_stream`: its id is the idempotency key KurrentDB checks.
pub fn event_data(event: &NewEvent) -> Result<kurrentdb::EventData, StoreError> {
    let data = serde_json::value::RawValue::from_string(event.data.clone())
        .map_err(|e| StoreError::InvalidAppend(format!("event {} is not JSON: {e}", event.event_id)))?;
    let metadata = StoredMetadata {
        schema_version: event.schema_version,
        correlation_id: event.metadata.correlation_id,
        causation_id: event.metadata.causation_id,
        actor: event.metadata.actor.clone(),
    };
    kurrentdb::EventData::json(&event.event_type, &data)
        .and_then(|data| data.metadata_as_json(&metadata))
        .map(|data| data.id(event.event_id))
        .map_err(|e| StoreError::InvalidAppend(format!("event {} cannot be encoded: {e}", event.event_id)))
}

/// The parts of a KurrentDB recorded event Agora reads (its stream name is not public to
/// build, so tests pass parts).
pub struct RawRecorded<'a> {
    pub stream: &'a str,
    pub id: Uuid,
    pub revision: u64,
    pub event_type: &'a str,
    pub data: &'a [u8],
    pub custom_metadata: &'a [u8],
    pub commit: u64,
    pub prepare: u64,
    pub created: DateTime<Utc>,
}

impl<'a> From<&'a kurrentdb::RecordedEvent> for RawRecorded<'a> {
    fn from(event: &'a kurrentdb::RecordedEvent) -> Self {
        RawRecorded {
            stream: event.stream_id(),
            id: event.id,
            revision: event.revision,
            event_type: &event.event_type,
            data: &event.data,
            custom_metadata: &event.custom_metadata,
            commit: event.position.commit,
            prepare: event.position.prepare,
            created: event.created,
        }
    }
}

/// A KurrentDB event as Agora's `RecordedEvent`. Events written by other tools (no Agora
/// metadata) read as schema version 1 with empty metadata.
pub fn recorded(raw: RawRecorded<'_>) -> Result<RecordedEvent, StoreError> {
    let data = String::from_utf8(raw.data.to_vec())
        .map_err(|_| StoreError::Backend(format!("event {} in {} is not UTF-8 JSON", raw.id, raw.stream).into()))?;
    let stored = if raw.custom_metadata.is_empty() {
        None
    } else {
        serde_json::from_slice::<StoredMetadata>(raw.custom_metadata).ok()
    };
    Ok(RecordedEvent {
        position: LogPosition::new(raw.commit, raw.prepare),
        event_id: raw.id,
        stream_id: StreamId::from_raw(raw.stream),
        stream_version: raw.revision + 1,
        event_type: raw.event_type.to_owned(),
        schema_version: stored.as_ref().map_or(1, |m| m.schema_version),
        data,
        metadata: stored
            .map(|m| EventMetadata { correlation_id: m.correlation_id, causation_id: m.causation_id, actor: m.actor })
            .unwrap_or_default(),
        recorded_at: raw.created,
    })
}

/// The `$all` position of Agora's log position (both are commit, then prepare).
pub fn kurrent_position(position: LogPosition) -> kurrentdb::Position {
    kurrentdb::Position { commit: position.commit(), prepare: position.prepare() }
}

/// Streams and event types that are not Agora's domain events: KurrentDB's own (`$`) and
/// Agora's bookkeeping on this store (idempotency records).
pub fn is_internal(stream: &str, event_type: &str) -> bool {
    stream.starts_with('$') || event_type.starts_with('$') || stream.starts_with(IDEMPOTENCY_STREAM_PREFIX)
}

/// Idempotency records live in one stream per key: `agora.idempotency-<sha256 of key>`.
pub const IDEMPOTENCY_STREAM_PREFIX: &str = "agora.idempotency-";
/// Event type of an idempotency record.
pub const IDEMPOTENCY_EVENT_TYPE: &str = "agora.idempotency_recorded";

/// The store error of a KurrentDB error; `stream` and `expected` name the append, if any.
pub fn store_error(error: kurrentdb::Error, append: Option<(&StreamId, ExpectedVersion)>) -> StoreError {
    use kurrentdb::Error as E;
    match (error, append) {
        (E::WrongExpectedVersion { current, .. }, Some((stream, expected))) => {
            StoreError::Conflict { stream: stream.clone(), expected, actual: current_version(current) }
        }
        (
            error @ (E::ConnectionClosed
            | E::GrpcConnectionError(_)
            | E::DeadlineExceeded
            | E::NotLeaderException(_)
            | E::ServerError(_)),
            _,
        ) => StoreError::Unavailable(Box::new(error)),
        (E::Grpc { code, message }, _)
            if matches!(code, tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Aborted) =>
        {
            StoreError::Unavailable(format!("grpc {code:?}: {message}").into())
        }
        (error, _) => StoreError::Backend(Box::new(error)),
    }
}

/// A KurrentDB connection URL, checked; `redacted` is safe to print (no credentials).
#[derive(Debug, Clone)]
pub struct KurrentUrl {
    pub settings: kurrentdb::ClientSettings,
    pub redacted: String,
}

/// Parse `EVENTSTORE_URL`. Errors are one sentence that names the URL without credentials.
pub fn parse_url(url: &str) -> Result<KurrentUrl, String> {
    let redacted = redact(url);
    let scheme = url.split_once("://").map(|(scheme, _)| scheme.to_ascii_lowercase());
    let known = ["esdb", "esdb+discover", "kurrentdb", "kurrentdb+discover", "kdb", "kdb+discover"];
    match scheme {
        Some(scheme) if known.contains(&scheme.as_str()) => {}
        _ => {
            return Err(format!(
                "EVENTSTORE_URL {redacted:?} is not a KurrentDB/EventStoreDB URL: expected esdb://host:2113 \
                 (or kurrentdb://), e.g. esdb://127.0.0.1:2113?tls=false"
            ));
        }
    }
    let settings = url
        .parse::<kurrentdb::ClientSettings>()
        // The client's parse error repeats the whole URL, credentials included.
        .map_err(|e| {
            let reason = e.to_string().replace(url, &redacted);
            format!("EVENTSTORE_URL {redacted:?} is not a valid KurrentDB connection string: {reason}")
        })?;
    Ok(KurrentUrl { settings, redacted })
}

/// The URL with any `user:password@` removed.
pub fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, tail) = rest.find(['/', '?']).map_or((rest, ""), |i| rest.split_at(i));
            let hosts = authority.rsplit_once('@').map_or(authority, |(_, hosts)| hosts);
            let redacted = if hosts.len() == authority.len() { String::new() } else { "***@".to_owned() };
            format!("{scheme}://{redacted}{hosts}{tail}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_event() -> NewEvent {
        NewEvent {
            event_id: Uuid::from_u128(42),
            event_type: "product.listed".into(),
            schema_version: 3,
            data: r#"{"title":"Oak desk","stock":5}"#.into(),
            metadata: EventMetadata {
                correlation_id: Some(Uuid::from_u128(1)),
                causation_id: Some(Uuid::from_u128(2)),
                actor: Some("vendor:7".into()),
            },
        }
    }

    #[test]
    fn expected_versions_map_to_stream_states() {
        assert_eq!(stream_state(ExpectedVersion::Any), StreamState::Any);
        assert_eq!(stream_state(ExpectedVersion::NoStream), StreamState::NoStream);
        assert_eq!(stream_state(ExpectedVersion::Exact(0)), StreamState::NoStream);
        // Agora's version 1 is KurrentDB's revision 0.
        assert_eq!(stream_state(ExpectedVersion::Exact(1)), StreamState::StreamRevision(0));
        assert_eq!(stream_state(ExpectedVersion::Exact(10)), StreamState::StreamRevision(9));
        assert_eq!(current_version(CurrentRevision::NoStream), 0);
        assert_eq!(current_version(CurrentRevision::Current(0)), 1);
        assert_eq!(current_version(CurrentRevision::Current(9)), 10);
    }

    #[test]
    fn event_data_carries_type_json_and_metadata() {
        let event = new_event();
        let data = event_data(&event).expect("encode");
        // EventData's fields are private; its Debug output shows what goes on the wire.
        let shown = format!("{data:?}");
        assert!(shown.contains("product.listed"), "{shown}");
        assert!(shown.contains("application/json"), "{shown}");
        assert!(shown.contains(&Uuid::from_u128(42).to_string()), "{shown}");
        let mut bad = new_event();
        bad.data = "not json".into();
        assert!(matches!(event_data(&bad), Err(StoreError::InvalidAppend(_))));
    }

    #[test]
    fn recorded_events_round_trip_data_and_metadata() {
        let event = new_event();
        let stored = StoredMetadata {
            schema_version: event.schema_version,
            correlation_id: event.metadata.correlation_id,
            causation_id: event.metadata.causation_id,
            actor: event.metadata.actor.clone(),
        };
        let custom = serde_json::to_vec(&stored).unwrap();
        let created = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let recorded = recorded(RawRecorded {
            stream: "product-9",
            id: event.event_id,
            revision: 4,
            event_type: &event.event_type,
            data: event.data.as_bytes(),
            custom_metadata: &custom,
            commit: 1_000,
            prepare: 990,
            created,
        })
        .expect("decode");
        assert_eq!(recorded.stream_id, StreamId::from_raw("product-9"));
        assert_eq!(recorded.stream_version, 5);
        assert_eq!(recorded.position, LogPosition::new(1_000, 990));
        assert_eq!((recorded.schema_version, &recorded.data, &recorded.metadata), (3, &event.data, &event.metadata));
        assert_eq!(recorded.recorded_at, created);
    }

    #[test]
    fn foreign_events_read_as_version_one_and_bad_bytes_are_an_error() {
        let raw = |data: &'static [u8], custom: &'static [u8]| RawRecorded {
            stream: "legacy",
            id: Uuid::from_u128(5),
            revision: 0,
            event_type: "legacy.thing",
            data,
            custom_metadata: custom,
            commit: 1,
            prepare: 1,
            created: Utc::now(),
        };
        let foreign = recorded(raw(b"{}", b"")).expect("foreign event");
        assert_eq!((foreign.schema_version, foreign.metadata.clone()), (1, EventMetadata::default()));
        assert_eq!(recorded(raw(b"{}", b"not json")).expect("odd metadata").schema_version, 1);
        assert!(matches!(recorded(raw(&[0xff, 0xfe], b"")), Err(StoreError::Backend(_))));
    }

    #[test]
    fn positions_keep_commit_then_prepare_order_and_print_as_tokens() {
        let a = LogPosition::new(500, 480);
        let b = LogPosition::new(500, 490);
        let c = LogPosition::new(620, 10);
        assert!(a < b && b < c);
        let k = kurrent_position(c);
        assert_eq!((k.commit, k.prepare), (620, 10));
        // The same token format as on PostgreSQL: printable, parseable, comparable.
        assert_eq!(c.to_string(), "620.10");
        assert_eq!("620.10".parse::<LogPosition>(), Ok(c));
    }

    #[test]
    fn system_and_bookkeeping_events_are_internal() {
        assert!(is_internal("$stats-127.0.0.1:2113", "$statsCollected"));
        assert!(is_internal("$$product-1", "$metadata"));
        assert!(is_internal("product-1", "$>"));
        assert!(is_internal("agora.idempotency-abc", IDEMPOTENCY_EVENT_TYPE));
        assert!(!is_internal("product-1", "product.listed"));
    }

    #[test]
    fn errors_map_to_conflicts_unavailable_and_backend() {
        let stream = StreamId::from_raw("order-1");
        let conflict = store_error(
            kurrentdb::Error::WrongExpectedVersion {
                expected: StreamState::NoStream,
                current: CurrentRevision::Current(2),
            },
            Some((&stream, ExpectedVersion::NoStream)),
        );
        assert!(
            matches!(&conflict, StoreError::Conflict { stream: s, expected: ExpectedVersion::NoStream, actual: 3 } if *s == stream),
            "{conflict:?}"
        );
        assert!(store_error(kurrentdb::Error::ConnectionClosed, None).is_retryable());
        assert!(store_error(kurrentdb::Error::DeadlineExceeded, None).is_retryable());
        let unavailable =
            kurrentdb::Error::Grpc { code: tonic::Code::Unavailable, message: "connection refused".into() };
        assert!(store_error(unavailable, None).is_retryable());
        let denied = store_error(kurrentdb::Error::AccessDenied, None);
        assert!(matches!(denied, StoreError::Backend(_)) && !denied.is_retryable());
    }

    #[test]
    fn urls_are_checked_and_never_printed_with_credentials() {
        assert!(parse_url("esdb://127.0.0.1:2113?tls=false").is_ok());
        assert!(parse_url("kurrentdb://admin:changeit@db1:2113,db2:2113?tls=true").is_ok());
        assert!(parse_url("esdb+discover://cluster.example.com:2113").is_ok());
        let wrong_scheme = parse_url("postgres://admin:changeit@db:5432/agora").unwrap_err();
        assert!(wrong_scheme.contains("postgres://***@db:5432/agora") && !wrong_scheme.contains("changeit"));
        let garbage = parse_url("esdb://admin:secret@:::notaport?tls=maybe").unwrap_err();
        assert!(garbage.contains("EVENTSTORE_URL") && !garbage.contains("secret"), "{garbage}");
        assert_eq!(redact("esdb://u:p@h:2113?tls=false"), "esdb://***@h:2113?tls=false");
        assert_eq!(redact("esdb://h:2113"), "esdb://h:2113");
    }
}
