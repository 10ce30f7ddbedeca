//! Event store workloads: `append`, `load`, `catchup`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use events::{
    AppendRequest, EventMetadata, EventStore, ExpectedVersion, LogPosition, NewEvent, PgEventStore, PgStoreOptions,
    StreamId,
};
use futures_util::TryStreamExt;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use super::{Latencies, Report, round1};
use crate::database;

/// A ~300-byte event document, like a product update.
fn payload(rng: &mut impl Rng, stream: usize, round: usize) -> String {
    const WORDS: [&str; 12] = [
        "wireless", "keyboard", "oak", "desk", "lamp", "organic", "cotton", "shirt", "steel", "kettle", "hiking",
        "boots",
    ];
    let title: Vec<&str> = (0..3).map(|_| WORDS[rng.random_range(0..WORDS.len())]).collect();
    let description: Vec<&str> = (0..14).map(|_| WORDS[rng.random_range(0..WORDS.len())]).collect();
    json!({
        "product_id": Uuid::from_u128(stream as u128),
        "title": title.join(" "),
        "description": description.join(" "),
        "category": "home",
        "brand": "Acme",
        "price_cents": rng.random_range(100..100_000),
        "currency": "EUR",
        "stock": rng.random_range(0..500),
        "revision": round,
    })
    .to_string()
}

fn new_event(rng: &mut impl Rng, stream: usize, round: usize) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: if round == 0 { "bench.created" } else { "bench.updated" }.to_owned(),
        schema_version: 1,
        data: payload(rng, stream, round),
        metadata: EventMetadata {
            correlation_id: Some(Uuid::now_v7()),
            causation_id: None,
            actor: Some("bench".to_owned()),
        },
    }
}

async fn fresh_store(url: &str, pool_size: u32) -> anyhow::Result<(PgPool, PgEventStore)> {
    database::recreate_database(url).await?;
    let pool = database::connect(url, pool_size).await?;
    events::postgres::migrate(&pool).await?;
    let store = PgEventStore::new(pool.clone(), PgStoreOptions::default());
    Ok((pool, store))
}

/// 10,000 streams x (1 created + 4 updated), every event its own append with an expected
/// version, streams split between `clients` concurrent clients.
pub async fn append(url: &str, clients: usize, streams: usize, report: &Report) -> anyhow::Result<()> {
    let clients = clients.max(1);
    let (pool, store) = fresh_store(url, clients as u32 + 2).await?;
    let store = Arc::new(store);
    let ids: Vec<StreamId> = (0..streams).map(|_| StreamId::new("bench", Uuid::now_v7())).collect();
    // Every client's requests are made before the clock starts: the benchmark measures
    // appends, not JSON generation.
    let mut work: Vec<Vec<AppendRequest>> = (0..clients)
        .map(|client| {
            let mut rng = rand::rngs::StdRng::seed_from_u64(client as u64);
            let mine: Vec<usize> = (client..ids.len()).step_by(clients).collect();
            (0..5)
                .flat_map(|round| mine.iter().map(move |&i| (round, i)))
                .map(|(round, i)| {
                    AppendRequest::new().stream(
                        ids[i].clone(),
                        ExpectedVersion::at(round as u64),
                        vec![new_event(&mut rng, i, round)],
                    )
                })
                .collect()
        })
        .collect();
    warm_up(&store, clients).await?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for requests in work.drain(..) {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(requests.len());
            for request in requests {
                let t = Instant::now();
                store.append(request).await?;
                latencies.push(t.elapsed());
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    let seconds = started.elapsed().as_secs_f64();
    let events = all.len();
    let latencies = Latencies::new(all);
    let rate = events as f64 / seconds;
    analyze(&pool).await?;
    let mut figures = json!({
        "workload": "append", "clients": clients, "events": events,
        "seconds": round1(seconds * 10.0) / 10.0, "events_per_s": rate.round(),
    });
    extend(&mut figures, latencies.figures());
    report.line(
        format!(
            "append   clients={clients:<3} events={events} in {seconds:.2} s: {:.0} events/s, p50 {:.3} ms, p99 {:.3} ms",
            rate,
            latencies.percentile_ms(50.0),
            latencies.percentile_ms(99.0)
        ),
        figures,
    );
    Ok(())
}

/// Open the store's connections before the clock starts (each client holds one).
async fn warm_up(store: &Arc<PgEventStore>, clients: usize) -> anyhow::Result<()> {
    let barrier = Arc::new(tokio::sync::Barrier::new(clients));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (store, barrier) = (store.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store.head().await
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// Planner statistics after a bulk load (the benchmark machine runs without autovacuum).
async fn analyze(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::raw_sql("analyze event_store.event").execute(pool).await?;
    Ok(())
}

fn extend(figures: &mut Value, more: serde_json::Map<String, Value>) {
    if let Some(object) = figures.as_object_mut() {
        object.extend(more);
    }
}

/// Rebuild 1,000 random streams from their events, through the store; then the same
/// streams with one raw query each, as the reference.
pub async fn load(url: &str, clients: usize, report: &Report) -> anyhow::Result<()> {
    let clients = clients.max(1);
    let pool = database::connect(url, clients as u32 + 2).await?;
    let store = Arc::new(PgEventStore::new(pool.clone(), PgStoreOptions::default()));
    let mut streams: Vec<String> =
        sqlx::query_scalar("select stream_id from event_store.event where stream_version = 1").fetch_all(&pool).await?;
    streams.shuffle(&mut rand::rngs::StdRng::seed_from_u64(7));
    streams.truncate(1000);
    let streams = Arc::new(streams);
    warm_up(&store, clients).await?;

    let (store_seconds, store_latencies) = run_clients(clients, streams.clone(), {
        let store = store.clone();
        move |_client: usize, stream: String| {
            let store = store.clone();
            async move {
                let events = store.read_stream(&StreamId::from_raw(stream), 1).await?;
                // "Rebuild the state": fold the documents into one.
                let mut state = serde_json::Map::new();
                for event in &events {
                    if let Value::Object(fields) = serde_json::from_str::<Value>(&event.data)? {
                        state.extend(fields);
                    }
                }
                anyhow::ensure!(
                    events.len() == 5 && !state.is_empty(),
                    "stream {} has {} events",
                    events[0].stream_id,
                    events.len()
                );
                Ok(())
            }
        }
    })
    .await?;
    // The reference: one query per stream on a connection of the client's own, no pool.
    let raw_pool = events::postgres::ConnectionPool::new(
        events::postgres::connect_options(url)?,
        clients as u32,
        Duration::from_secs(5),
    );
    let mut leases = Vec::new();
    for _ in 0..clients {
        leases.push(raw_pool.acquire().await?);
    }
    let leases: Vec<_> = leases.into_iter().map(|l| Arc::new(tokio::sync::Mutex::new(l))).collect();
    let (raw_seconds, _) = run_clients(clients, streams.clone(), {
        move |client: usize, stream: String| {
            let lease = leases[client].clone();
            async move {
                let mut conn = lease.lock().await;
                let rows = sqlx::query("select * from event_store.event where stream_id = $1 order by stream_version")
                    .bind(stream)
                    .fetch_all(&mut **conn)
                    .await?;
                anyhow::ensure!(rows.len() == 5, "reference read found {} rows", rows.len());
                Ok(())
            }
        }
    })
    .await?;
    let rate = streams.len() as f64 / store_seconds;
    let reference = streams.len() as f64 / raw_seconds;
    let mut figures = json!({
        "workload": "load", "clients": clients, "streams": streams.len(), "seconds": store_seconds,
        "streams_per_s": rate.round(), "raw_streams_per_s": reference.round(),
        "ratio_to_raw": (rate / reference * 100.0).round() / 100.0,
    });
    extend(&mut figures, store_latencies.figures());
    report.line(
        format!(
            "load     clients={clients:<3} streams={} : {:.0} streams/s (raw query {:.0}/s, ratio {:.2}), p50 {:.3} ms, p99 {:.3} ms",
            streams.len(),
            rate,
            reference,
            rate / reference,
            store_latencies.percentile_ms(50.0),
            store_latencies.percentile_ms(99.0)
        ),
        figures,
    );
    Ok(())
}

/// Run `work` once per stream, streams split between `clients` tasks; total seconds and
/// per-call latencies.
async fn run_clients<F, Fut>(clients: usize, streams: Arc<Vec<String>>, work: F) -> anyhow::Result<(f64, Latencies)>
where
    F: Fn(usize, String) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..clients {
        let (streams, work) = (streams.clone(), work.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            for stream in streams.iter().skip(client).step_by(clients) {
                let t = Instant::now();
                work(client, stream.clone()).await?;
                latencies.push(t.elapsed());
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut all: Vec<Duration> = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    Ok((started.elapsed().as_secs_f64(), Latencies::new(all)))
}

/// Read the whole log from the start, page by page, as a projector catching up does; then
/// one raw streaming query over the same rows, as the reference.
pub async fn catchup(url: &str, page_size: usize, report: &Report) -> anyhow::Result<()> {
    let pool = database::connect(url, 4).await?;
    let store = PgEventStore::new(pool.clone(), PgStoreOptions::default());
    let started = Instant::now();
    let mut after = LogPosition::START;
    let mut events = 0usize;
    loop {
        let page = store.read_all(after, page_size).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        events += page.len();
    }
    let seconds = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let raw = sqlx::query_as::<_, (i64, i64, Uuid, String, i64, String, i32, String)>(
        "select transaction_id, position, event_id, stream_id, stream_version, event_type, schema_version, data::text \
           from event_store.event order by transaction_id, position",
    )
    .fetch(&pool)
    .try_fold(0usize, |n, _| async move { Ok(n + 1) })
    .await?;
    let raw_seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(raw == events, "catch-up read {events} events, the raw query {raw}");

    let rate = events as f64 / seconds;
    let reference = raw as f64 / raw_seconds;
    let figures = json!({
        "workload": "catchup", "clients": 1, "events": events, "page_size": page_size, "seconds": seconds,
        "events_per_s": rate.round(), "raw_events_per_s": reference.round(),
        "ratio_to_raw": (rate / reference * 100.0).round() / 100.0,
    });
    report.line(
        format!("catchup  page={page_size} events={events} in {seconds:.2} s: {rate:.0} events/s (one raw query {reference:.0}/s)"),
        figures,
    );
    Ok(())
}
