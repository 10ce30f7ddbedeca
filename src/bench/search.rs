//! `search` workload: index N generated products from the log, run 1,000 realistic queries
//! on the index (1 and 16 clients, facet counts on), then the same queries on PostgreSQL
//! full-text search over the same products, and compare speed and quality.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::search::catalog::{QueryKind, WorkloadQuery, listed_products, query_workload};
use ::search::{ProductIndex, ProductQuery, SortOrder};
use anyhow::Context;
use events::domain::catalog::{PRODUCT_CATEGORY, ProductEvent, ProductListed};
use events::{
    AppendRequest, EventMetadata, EventStore, ExpectedVersion, NewEvent, PgEventStore, PgStoreOptions, StreamId,
};
use futures_util::{StreamExt, TryStreamExt};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use super::{Latencies, Report, round1, round3};
use crate::database;

const CATALOGUE_SEED: u64 = 20_260_501;
const WORKLOAD_SEED: u64 = 7;
const QUERIES: usize = 1_000;
const CONCURRENT: usize = 16;
/// Products kept aside to draw queries from.
const SAMPLE: usize = 4_000;
/// Products per append request (one stream each) while loading the log.
const APPEND_BATCH: usize = 1_000;

/// What one engine returned for one query: the titles of the top 5 and their ids.
struct Answer {
    ids: Vec<Uuid>,
    titles: Vec<String>,
}

pub async fn search(url: &str, products: usize, report: &Report) -> anyhow::Result<()> {
    database::recreate_database(url).await?;
    let pool = database::connect(url, CONCURRENT as u32 + 4).await?;
    events::postgres::migrate(&pool).await?;
    let store: Arc<dyn EventStore> = Arc::new(PgEventStore::new(pool.clone(), PgStoreOptions::default()));

    tracing::info!(products, "generating the catalogue and writing it to the log and to the full-text table");
    let catalogue: Vec<ProductListed> = listed_products(CATALOGUE_SEED, products, (products / 200).max(10)).collect();
    let stride = (products / SAMPLE).max(1);
    let sample: Vec<ProductListed> = catalogue.iter().step_by(stride).cloned().collect();
    load_log(&store, &catalogue).await?;
    load_fulltext(&pool, &catalogue).await?;
    drop(catalogue);

    // Index build: the real path, a rebuild from the start of the log.
    let dir = scratch_dir();
    let started = Instant::now();
    let rebuilt = ::search::rebuild(store.clone(), &dir, |_, _| {}).await?;
    let seconds = started.elapsed().as_secs_f64();
    let index_bytes = dir_size(&dir)?;
    let rate = rebuilt.products as f64 / seconds;
    report.line(
        format!(
            "search   build: {} products from {} events in {seconds:.1} s: {rate:.0} products/s, index {:.1} MB",
            rebuilt.products,
            rebuilt.events,
            index_bytes as f64 / 1e6
        ),
        json!({
            "workload": "search", "phase": "build", "products": rebuilt.products, "events": rebuilt.events,
            "seconds": round1(seconds), "products_per_s": rate.round(), "index_mb": round1(index_bytes as f64 / 1e6),
        }),
    );

    let index = ProductIndex::open(&dir)?;
    let workload = Arc::new(query_workload(WORKLOAD_SEED, &sample, QUERIES));
    let mut qps = Vec::new();
    for clients in [1, CONCURRENT] {
        let index = index.clone();
        let run = run_concurrently(workload.clone(), clients, move |q: &WorkloadQuery| tantivy_query(&index, &q.query))
            .await?;
        qps.push(run.report("tantivy", clients, products, &workload, report));
    }
    for (i, clients) in [1, CONCURRENT].into_iter().enumerate() {
        let pool = pool.clone();
        let run = run_concurrently_async(workload.clone(), clients, move |q: WorkloadQuery| {
            let pool = pool.clone();
            async move { postgres_query(&pool, &q).await }
        })
        .await?;
        let pg = run.report("postgres", clients, products, &workload, report);
        let ratio = qps[i] / pg;
        report.line(
            format!("search   clients={clients:<3} tantivy / PostgreSQL FTS queries per second: {ratio:.1} x"),
            json!({ "workload": "search", "phase": "ratio", "clients": clients, "products": products, "qps_ratio": round1(ratio) }),
        );
    }
    drop(index);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn scratch_dir() -> PathBuf {
    std::env::temp_dir().join(format!("agora-bench-search-{}", std::process::id()))
}

fn dir_size(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() { dir_size(&entry.path())? } else { meta.len() };
    }
    Ok(total)
}

/// Every product as a `product.listed` event of its own stream, many streams per append.
async fn load_log(store: &Arc<dyn EventStore>, catalogue: &[ProductListed]) -> anyhow::Result<()> {
    let requests: Vec<AppendRequest> = catalogue
        .chunks(APPEND_BATCH)
        .map(|chunk| {
            chunk.iter().fold(AppendRequest::new(), |request, product| {
                request.stream(
                    StreamId::new(PRODUCT_CATEGORY, product.product_id),
                    ExpectedVersion::NoStream,
                    vec![NewEvent::from_domain(&ProductEvent::from(product.clone()), EventMetadata::default())],
                )
            })
        })
        .collect();
    let appended = futures_util::stream::iter(requests)
        .map(|request| {
            let store = store.clone();
            async move { store.append(request).await }
        })
        .buffer_unordered(2)
        .try_fold(events::LogPosition::START, |last, appended| async move { Ok(last.max(appended.position())) })
        .await?;
    // Visible to log readers once every older transaction has ended (invariant 4).
    let last = appended;
    while store.head().await? < last {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// The same products in a table with a weighted tsvector (title A, description B) and a GIN
/// index: the PostgreSQL full-text search the index is compared with.
async fn load_fulltext(pool: &PgPool, catalogue: &[ProductListed]) -> anyhow::Result<()> {
    sqlx::raw_sql(
        "create table bench_product (
             product_id uuid primary key,
             title text not null,
             description text not null,
             category text not null,
             brand text not null,
             price_cents bigint not null,
             stock integer not null,
             listed_order bigint not null,
             document tsvector generated always as (
                 setweight(to_tsvector('english', title), 'A') || setweight(to_tsvector('english', description), 'B')
             ) stored
         )",
    )
    .execute(pool)
    .await?;
    for (n, chunk) in catalogue.chunks(5_000).enumerate() {
        let column = |f: fn(&ProductListed) -> String| chunk.iter().map(f).collect::<Vec<String>>();
        sqlx::query(
            "insert into bench_product (product_id, title, description, category, brand, price_cents, stock, listed_order)
             select * from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[], $7::int4[], $8::int8[])",
        )
        .bind(chunk.iter().map(|p| p.product_id).collect::<Vec<Uuid>>())
        .bind(column(|p| p.title.clone()))
        .bind(column(|p| p.description.clone()))
        .bind(column(|p| p.category.clone()))
        .bind(column(|p| p.brand.clone()))
        .bind(chunk.iter().map(|p| p.price_cents).collect::<Vec<i64>>())
        .bind(chunk.iter().map(|p| p.stock as i32).collect::<Vec<i32>>())
        .bind((0..chunk.len()).map(|i| (n * 5_000 + i) as i64).collect::<Vec<i64>>())
        .execute(pool)
        .await?;
    }
    sqlx::raw_sql("create index bench_product_document on bench_product using gin (document); analyze bench_product")
        .execute(pool)
        .await?;
    Ok(())
}

fn tantivy_query(index: &ProductIndex, query: &ProductQuery) -> anyhow::Result<Answer> {
    let result = index.search(query)?;
    let top = result.hits.iter().take(5);
    Ok(Answer { ids: top.clone().map(|h| h.product_id).collect(), titles: top.map(|h| h.title.clone()).collect() })
}

/// The same query as PostgreSQL full-text search: every word (`plainto_tsquery`), the last
/// word as a prefix (`:*`) for queries being typed, the same filters and sort, top 10.
async fn postgres_query(pool: &PgPool, q: &WorkloadQuery) -> anyhow::Result<Answer> {
    let words = q.words();
    let (full, prefix) = match (q.kind, words.split_last()) {
        (QueryKind::Prefix, Some((last, rest))) => (rest.join(" "), Some(last.clone())),
        _ => (words.join(" "), None),
    };
    let tsquery = match &prefix {
        Some(_) if full.is_empty() => "to_tsquery('english', $2 || ':*')",
        Some(_) => "(plainto_tsquery('english', $1) && to_tsquery('english', $2 || ':*'))",
        None => "plainto_tsquery('english', $1)",
    };
    let order = match q.query.sort {
        SortOrder::PriceAsc => "price_cents, product_id",
        SortOrder::PriceDesc => "price_cents desc, product_id",
        SortOrder::Newest => "listed_order desc",
        SortOrder::Rating | SortOrder::Relevance => "ts_rank(document, q.query) desc, product_id",
    };
    let sql = format!(
        "select product_id, title from bench_product, (select {tsquery} as query) q
          where document @@ q.query
            and (cardinality($3::text[]) = 0 or category = any($3))
            and ($4::bool is null or (stock > 0) = $4)
            and ($5::int8 is null or price_cents <= $5)
          order by {order} limit 10"
    );
    let filter = &q.query.filter;
    let rows: Vec<(Uuid, String)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(full)
        .bind(prefix.unwrap_or_default())
        .bind(&filter.categories)
        .bind(filter.in_stock)
        .bind(filter.price_max_cents)
        .fetch_all(pool)
        .await?;
    let top = rows.into_iter().take(5);
    let (ids, titles) = top.unzip();
    Ok(Answer { ids, titles })
}

struct Run {
    seconds: f64,
    latencies: Latencies,
    answers: Vec<Answer>,
}

impl Run {
    /// Print speed and quality; the queries per second.
    fn report(
        &self,
        engine: &str,
        clients: usize,
        products: usize,
        workload: &[WorkloadQuery],
        report: &Report,
    ) -> f64 {
        let qps = workload.len() as f64 / self.seconds;
        let (quality, typo_recall) = quality(workload, &self.answers);
        let mut figures = json!({
            "workload": "search", "engine": engine, "clients": clients, "products": products,
            "queries": workload.len(), "facets": engine == "tantivy", "seconds": round3(self.seconds),
            "queries_per_s": qps.round(), "quality_top5_all_words": round3(quality), "typo_recall_top5": round3(typo_recall),
        });
        if let Some(object) = figures.as_object_mut() {
            object.extend(self.latencies.figures());
        }
        report.line(
            format!(
                "search   {engine:<8} clients={clients:<3} {} queries in {:.2} s: {qps:.0} queries/s, p50 {:.3} ms, p99 {:.3} ms; top-5 titles with every word {:.3}, typo recall {:.3}",
                workload.len(),
                self.seconds,
                self.latencies.percentile_ms(50.0),
                self.latencies.percentile_ms(99.0),
                quality,
                typo_recall
            ),
            figures,
        );
        qps
    }
}

/// Share of non-typo queries whose top-5 titles (at least one) all contain every query word;
/// share of typo queries with the intended product in the top 5.
fn quality(workload: &[WorkloadQuery], answers: &[Answer]) -> (f64, f64) {
    let (mut words_ok, mut words_n, mut typo_ok, mut typo_n) = (0, 0, 0, 0);
    for (q, answer) in workload.iter().zip(answers) {
        if q.kind == QueryKind::Typo {
            typo_n += 1;
            typo_ok += usize::from(q.intended.is_some_and(|id| answer.ids.contains(&id)));
        } else {
            words_n += 1;
            words_ok +=
                usize::from(!answer.titles.is_empty() && answer.titles.iter().all(|t| q.title_has_every_word(t)));
        }
    }
    let share = |ok: usize, n: usize| if n == 0 { 0.0 } else { ok as f64 / n as f64 };
    (share(words_ok, words_n), share(typo_ok, typo_n))
}

/// Run every query once on `clients` OS threads (the search API is synchronous CPU work),
/// query `i` on thread `i % clients`; answers in workload order.
async fn run_concurrently<F>(workload: Arc<Vec<WorkloadQuery>>, clients: usize, query: F) -> anyhow::Result<Run>
where
    F: Fn(&WorkloadQuery) -> anyhow::Result<Answer> + Send + Sync + 'static,
{
    tokio::task::spawn_blocking(move || {
        let query = Arc::new(query);
        // Warm-up: the first 100 queries once, untimed (page cache, lazily built state).
        for q in workload.iter().take(100) {
            query(q)?;
        }
        let started = Instant::now();
        let threads: Vec<_> = (0..clients)
            .map(|client| {
                let (workload, query) = (workload.clone(), query.clone());
                std::thread::spawn(move || -> anyhow::Result<Vec<(usize, Duration, Answer)>> {
                    let mut out = Vec::new();
                    for i in (client..workload.len()).step_by(clients) {
                        let t = Instant::now();
                        let answer = query(&workload[i])?;
                        out.push((i, t.elapsed(), answer));
                    }
                    Ok(out)
                })
            })
            .collect();
        let mut results = Vec::new();
        for thread in threads {
            results.extend(thread.join().map_err(|_| anyhow::anyhow!("query thread panicked"))??);
        }
        let seconds = started.elapsed().as_secs_f64();
        Ok(collect(results, seconds))
    })
    .await?
}

/// As `run_concurrently`, for async queries on `clients` tasks.
async fn run_concurrently_async<F, Fut>(
    workload: Arc<Vec<WorkloadQuery>>,
    clients: usize,
    query: F,
) -> anyhow::Result<Run>
where
    F: Fn(WorkloadQuery) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = anyhow::Result<Answer>> + Send,
{
    for q in workload.iter().take(100) {
        query(q.clone()).await?;
    }
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let (workload, query) = (workload.clone(), query.clone());
            tokio::spawn(async move {
                let mut out = Vec::new();
                for i in (client..workload.len()).step_by(clients) {
                    let t = Instant::now();
                    let answer = query(workload[i].clone())
                        .await
                        .with_context(|| format!("query {:?}", workload[i].query.text))?;
                    out.push((i, t.elapsed(), answer));
                }
                anyhow::Ok(out)
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.extend(task.await??);
    }
    Ok(collect(results, started.elapsed().as_secs_f64()))
}

fn collect(mut results: Vec<(usize, Duration, Answer)>, seconds: f64) -> Run {
    results.sort_by_key(|r| r.0);
    let latencies = Latencies::new(results.iter().map(|r| r.1).collect());
    Run { seconds, latencies, answers: results.into_iter().map(|r| r.2).collect() }
}
