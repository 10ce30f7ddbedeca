//! Command handling: load the streams a command needs, decide, append with expected
//! versions; on a conflict, load again and decide again, a bounded number of times.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use events::privacy::KeyVault;
use events::{
    AppendRequest, Appended, DomainEvent, EventMetadata, EventStore, ExpectedVersion, IdempotencyRecord, LogPosition,
    NewEvent, StreamId,
};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::aggregates::AggregateCache;
use crate::auth::{Caller, TokenKeys};
use crate::decider::Decider;
use crate::error::{CommandError, Refuse, Result, refused};
use crate::payments::PaymentGateway;

/// Everything a handler may use: the store, the personal-data keys, token keys, the payment
/// gateway and the clock.
#[derive(Clone)]
pub struct Context {
    pub store: Arc<dyn EventStore>,
    pub vault: KeyVault,
    pub tokens: TokenKeys,
    pub gateway: Arc<dyn PaymentGateway>,
    pub clock: fn() -> DateTime<Utc>,
    /// Attempts per command when appends conflict.
    pub attempts: u32,
    /// How long a reserve-path checkout's stock holds wait for their order before the
    /// `reservations` process releases them (`CHECKOUT_HOLD_SECONDS`).
    pub checkout_hold: Duration,
    /// A named point where the command path stops dead, for crash tests of a real process
    /// (`AGORA_FAIL_POINT`; see `orders::reserve`). `None` in production.
    pub fail_point: Option<String>,
    /// Aggregate states this process has read or written (see [`crate::aggregates`]).
    pub aggregates: AggregateCache,
}

impl Context {
    pub fn new(
        store: Arc<dyn EventStore>,
        vault: KeyVault,
        tokens: TokenKeys,
        gateway: Arc<dyn PaymentGateway>,
    ) -> Self {
        Self {
            store,
            vault,
            tokens,
            gateway,
            clock: Utc::now,
            attempts: 12,
            checkout_hold: Duration::from_secs(60),
            fail_point: None,
            aggregates: AggregateCache::default(),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }
}

/// Who sent a command and which user action it belongs to: written into every event.
#[derive(Debug, Clone)]
pub struct Meta {
    pub caller: Option<Caller>,
    /// The request id: shared by everything one user action causes.
    pub correlation_id: Uuid,
    /// This command.
    pub causation_id: Uuid,
}

impl Meta {
    pub fn new(caller: Option<Caller>, correlation_id: Uuid) -> Self {
        Self { caller, correlation_id, causation_id: Uuid::now_v7() }
    }

    /// For commands issued by a process manager in reaction to an event.
    pub fn system(process: &str, trigger: &events::RecordedEvent) -> SystemMeta {
        SystemMeta {
            actor: format!("system:{process}"),
            correlation_id: trigger.metadata.correlation_id.unwrap_or(trigger.event_id),
            causation_id: trigger.event_id,
        }
    }

    pub fn metadata(&self) -> EventMetadata {
        EventMetadata {
            correlation_id: Some(self.correlation_id),
            causation_id: Some(self.causation_id),
            actor: Some(self.caller.map_or_else(|| "anonymous".to_owned(), |c| c.actor())),
        }
    }
}

/// Metadata of events a process manager appends.
#[derive(Debug, Clone)]
pub struct SystemMeta {
    pub actor: String,
    pub correlation_id: Uuid,
    pub causation_id: Uuid,
}

impl SystemMeta {
    pub fn metadata(&self) -> EventMetadata {
        EventMetadata {
            correlation_id: Some(self.correlation_id),
            causation_id: Some(self.causation_id),
            actor: Some(self.actor.clone()),
        }
    }
}

/// An aggregate's state as of its last event.
#[derive(Debug, Clone)]
pub struct Loaded<S> {
    pub state: S,
    /// Version of the last event (0: no events).
    pub version: u64,
    /// Log position of the last event.
    pub position: Option<LogPosition>,
}

impl<S> Loaded<S> {
    pub fn expected(&self) -> ExpectedVersion {
        ExpectedVersion::at(self.version)
    }
}

/// Read and fold one stream.
pub async fn load<D>(store: &dyn EventStore, stream: &StreamId) -> Result<Loaded<D::State>>
where
    D: Decider,
    D::Event: DomainEvent,
{
    let recorded = store.read_stream(stream, 1).await?;
    fold_recorded::<D>(&recorded)
}

/// The current state of an aggregate: the cached one brought up to date with the events
/// appended since (one small read), or the whole stream read and folded. Kept in the cache.
pub async fn load_current<D>(ctx: &Context, stream: &StreamId) -> Result<Loaded<D::State>>
where
    D: Decider,
    D::Event: DomainEvent,
    D::State: Clone + Send + Sync + 'static,
{
    let loaded = match ctx.aggregates.get::<D::State>(stream) {
        Some(mut loaded) => {
            for event in ctx.store.read_stream(stream, loaded.version + 1).await? {
                loaded.state = D::evolve(loaded.state, &event.decode::<D::Event>()?);
                loaded.version = event.stream_version;
                loaded.position = Some(event.position);
            }
            loaded
        }
        None => load::<D>(&*ctx.store, stream).await?,
    };
    ctx.aggregates.put(stream, loaded.clone());
    Ok(loaded)
}

/// Decide `command` on an aggregate. On its cached state when that decides events to
/// append: the append expects the cached version, so a state that is stale (another
/// process appended since) conflicts instead of deciding wrongly, and the retry comes here
/// with the entry forgotten. A refusal or "nothing to do" is an answer without an append,
/// so it is only given on the current state.
pub async fn decide_on<D>(
    ctx: &Context,
    stream: &StreamId,
    command: &D::Command,
) -> Result<(Loaded<D::State>, Vec<D::Event>)>
where
    D: Decider,
    D::Event: DomainEvent,
    D::State: Clone + Send + Sync + 'static,
    D::Error: Refuse,
{
    if let Some(cached) = ctx.aggregates.get::<D::State>(stream)
        && let Ok(events) = D::decide(command, &cached.state)
        && !events.is_empty()
    {
        return Ok((cached, events));
    }
    let loaded = load_current::<D>(ctx, stream).await?;
    let events = D::decide(command, &loaded.state).map_err(refused)?;
    Ok((loaded, events))
}

/// After `events`, decided on `loaded`, were appended: cache the state they lead to. A
/// replay, or an append that is not exactly the next versions, caches nothing.
pub fn remember<D>(ctx: &Context, stream: &StreamId, loaded: Loaded<D::State>, events: &[D::Event], appended: &Appended)
where
    D: Decider,
    D::State: Clone + Send + Sync + 'static,
{
    let version = appended.version_of(stream);
    if appended.replayed || version != Some(loaded.version + events.len() as u64) {
        ctx.aggregates.forget(stream);
        return;
    }
    let position = appended.events.iter().filter(|e| &e.stream_id == stream).map(|e| e.position).max();
    let state = events.iter().fold(loaded.state, D::evolve);
    ctx.aggregates.put(stream, Loaded { state, version: loaded.version + events.len() as u64, position });
}

/// Fold events already read (e.g. by `read_streams`) into an aggregate's state.
pub fn fold_recorded<D>(recorded: &[events::RecordedEvent]) -> Result<Loaded<D::State>>
where
    D: Decider,
    D::Event: DomainEvent,
{
    let mut state = D::initial_state();
    for event in recorded {
        state = D::evolve(state, &event.decode::<D::Event>()?);
    }
    Ok(Loaded {
        state,
        version: recorded.last().map_or(0, |e| e.stream_version),
        position: recorded.last().map(|e| e.position),
    })
}

/// Typed events as new events with one metadata.
pub fn new_events<E: DomainEvent>(events: &[E], metadata: &EventMetadata) -> Vec<NewEvent> {
    events.iter().map(|e| NewEvent::from_domain(e, metadata.clone())).collect()
}

/// Events a process manager appends in reaction to `trigger`: their ids derive from the
/// trigger's id and `step`, so the same reaction replayed appends nothing new.
pub fn reaction_events<E: DomainEvent>(
    trigger: &events::RecordedEvent,
    step: &str,
    events: &[E],
    meta: &SystemMeta,
) -> Vec<NewEvent> {
    events
        .iter()
        .enumerate()
        .map(|(n, e)| {
            NewEvent::from_domain_with_id(events::ids::reaction_event(trigger.event_id, step, n), e, meta.metadata())
        })
        .collect()
}

/// How a process manager's step failed, in the terms of its runtime.
pub fn reaction_error(error: CommandError) -> events::reactor::ReactionError {
    use events::reactor::ReactionError;
    match error {
        CommandError::Conflict | CommandError::Unavailable(_) | CommandError::IdempotencyKeyTaken => {
            ReactionError::Retry(error.to_string())
        }
        other => ReactionError::Fatal(other.to_string()),
    }
}

/// Bounded retries of a command whose append conflicted: see [`retrying!`](crate::retrying).
pub struct Retry {
    tries: u32,
    max: u32,
}

impl Retry {
    pub fn new(ctx: &Context) -> Self {
        Self { tries: 0, max: ctx.attempts.max(1) }
    }

    /// `Some` when `result` is final; `None` (after a short random pause, so that racing
    /// commands spread out) when it conflicted and another attempt is allowed.
    pub async fn settle<T>(&mut self, result: Result<T>) -> Option<Result<T>> {
        self.tries += 1;
        match result {
            Err(CommandError::Conflict) if self.tries < self.max => {
                metrics::counter!("agora_command_conflicts_total").increment(1);
                let jitter = rand::random_range(0..=(2u64 << self.tries.min(6)));
                tokio::time::sleep(Duration::from_millis(jitter)).await;
                None
            }
            other => Some(other),
        }
    }
}

/// Run a block (load, decide, append) until it does not conflict, at most `ctx.attempts`
/// times: `retrying!(ctx, { ... })` evaluates to the block's last `Result`.
///
/// A macro rather than a function taking an async closure: futures of async closures that
/// borrow are not provably `Send` for every lifetime, which axum handlers need.
#[macro_export]
macro_rules! retrying {
    ($ctx:expr, $body:block) => {{
        let mut retry = $crate::handling::Retry::new($ctx);
        loop {
            let result: $crate::error::Result<_> = async $body.await;
            if let Some(outcome) = retry.settle(result).await {
                break outcome;
            }
        }
    }};
}

/// The idempotency key of a request, already scoped to its caller, and its request digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    pub key: String,
    pub request_hash: String,
}

impl Idempotency {
    pub fn record(&self, status: u16, body: &Map<String, Value>) -> IdempotencyRecord {
        IdempotencyRecord {
            key: self.key.clone(),
            request_hash: self.request_hash.clone(),
            response_status: status,
            response_body: Value::Object(body.clone()),
        }
    }
}

/// A command that was carried out: the response, and the log position to wait for.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    /// 201 for something created, 200 otherwise.
    pub status: u16,
    /// The response body without the consistency token (`id` and command-specific fields).
    pub body: Map<String, Value>,
    pub position: LogPosition,
}

impl Accepted {
    pub fn new(status: u16, id: impl ToString, position: LogPosition) -> Self {
        let mut body = Map::new();
        body.insert("id".into(), Value::String(id.to_string()));
        Self { status, body, position }
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.body.insert(key.into(), value.into());
        self
    }
}

/// Build the body first, append with it as the idempotency record, then return it with the
/// position the append reached.
pub async fn append_accepted(
    ctx: &Context,
    request: AppendRequest,
    status: u16,
    body: Map<String, Value>,
    idempotency: Option<&Idempotency>,
) -> Result<Accepted> {
    let request = match idempotency {
        Some(idempotency) => request.idempotent(idempotency.record(status, &body)),
        None => request,
    };
    let appended: Appended = ctx.store.append(request).await?;
    Ok(Accepted { status, body, position: appended.position() })
}

/// Append a request that may name several streams, on any store. Where the store appends
/// several streams atomically this is one append. Elsewhere (KurrentDB, or
/// `MULTI_STREAM_APPENDS=off`) it is one append per stream, in the request's order, with
/// `last` appended last.
///
/// Callers make the steps safe to repeat: `last` is the stream their retry decides from (so
/// a retry after a conflict or a crash between steps redoes what is missing), and what
/// comes before it decides nothing twice (deciders that answer "nothing to do" once applied,
/// event ids derived from the trigger). The idempotency record goes with the final append.
pub async fn append_steps(ctx: &Context, request: AppendRequest, last: &StreamId) -> Result<Appended> {
    if ctx.store.capabilities().atomic_multi_stream || request.streams.len() < 2 {
        return Ok(ctx.store.append(request).await?);
    }
    let AppendRequest { mut streams, idempotency } = request;
    if let Some(at) = streams.iter().position(|s| &s.stream_id == last) {
        let gate = streams.remove(at);
        streams.push(gate);
    }
    streams.retain(|s| !s.events.is_empty());
    let count = streams.len();
    let mut appended = Appended { events: Vec::new(), replayed: true };
    for (n, stream) in streams.into_iter().enumerate() {
        let mut step = AppendRequest::new().stream(stream.stream_id, stream.expected, stream.events);
        if n + 1 == count {
            step.idempotency = idempotency.clone();
        }
        let done = ctx.store.append(step).await?;
        appended.replayed &= done.replayed;
        appended.events.extend(done.events);
    }
    Ok(appended)
}

/// A response body with just the `id` (the consistency token is added when responding).
pub fn id_body(id: impl ToString) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("id".into(), Value::String(id.to_string()));
    body
}

/// The whole cycle for a command on one aggregate: load, decide, append with the expected
/// version, retry on conflict. `body` builds the response from the decided events (it is
/// stored with them when an idempotency key is given). A decision with no events appends
/// nothing and answers 200.
pub async fn execute<D>(
    ctx: &Context,
    stream: &StreamId,
    command: &D::Command,
    metadata: &EventMetadata,
    status: u16,
    idempotency: Option<&Idempotency>,
    body: impl Fn(&[D::Event]) -> Map<String, Value>,
) -> Result<Accepted>
where
    D: Decider,
    D::Event: DomainEvent,
    D::State: Clone + Send + Sync + 'static,
    D::Error: Refuse,
{
    crate::retrying!(ctx, {
        let (loaded, events) = decide_on::<D>(ctx, stream, command).await?;
        if events.is_empty() {
            return Ok(Accepted { status: 200, body: body(&events), position: unchanged(ctx, loaded.position).await? });
        }
        let request = AppendRequest::new().stream(stream.clone(), loaded.expected(), new_events(&events, metadata));
        let response = body(&events);
        let request = match idempotency {
            Some(idempotency) => request.idempotent(idempotency.record(status, &response)),
            None => request,
        };
        match ctx.store.append(request).await {
            Ok(appended) => {
                let position = appended.position();
                remember::<D>(ctx, stream, loaded, &events, &appended);
                Ok(Accepted { status, body: response, position })
            }
            Err(error) => {
                ctx.aggregates.forget(stream);
                Err(error.into())
            }
        }
    })
}

/// Where a command that changed nothing leaves the client: the last event of the stream it
/// looked at (or the head of the log).
pub async fn unchanged(ctx: &Context, position: Option<LogPosition>) -> Result<LogPosition> {
    match position {
        Some(position) => Ok(position),
        None => Ok(ctx.store.head().await?),
    }
}
