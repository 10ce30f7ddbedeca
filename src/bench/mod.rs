//! `agora bench <workload>`: the fixed benchmark workloads of the README, run against a
//! fresh database (`agora_bench` on the configured server, dropped and recreated).

pub mod checkout;
mod graphql;
mod rebuild;
mod search;
mod store;

use std::time::Duration;

use anyhow::Context;
use serde_json::{Map, Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// 10,000 streams x 5 events, each event its own append with an expected version.
    Append,
    /// After `append`: rebuild 1,000 random streams from their events.
    Load,
    /// After `append`: read the whole log in order, in pages, as a projector does.
    Catchup,
    /// Generate a marketplace history of `--events` events, then rebuild every read model and
    /// the search index from it; then the live append-to-read-model lag.
    Rebuild,
    /// Through HTTP: buyers register, add 1-3 items, check out, for `--seconds` per client count.
    Checkout,
    /// Through HTTP: the GraphQL storefront mix (search with facets, product page with
    /// reviews, my orders with deliveries) over `--products` products (default 100,000), 1
    /// and 64 connections, `--seconds` per page and client count.
    Graphql,
    /// Index `--products` generated products from the log; 1,000 queries on the index and on
    /// PostgreSQL full-text search, 1 and 16 clients.
    Search,
}

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[arg(value_enum)]
    workload: Workload,

    /// One JSON object per result line.
    #[arg(long)]
    json: bool,

    /// Concurrent clients (repeat or comma-separate for several runs).
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 16])]
    clients: Vec<usize>,

    /// Streams of the `append` workload (each gets 5 events).
    #[arg(long, default_value_t = 10_000)]
    streams: usize,

    /// Database the benchmark owns; dropped and recreated at start.
    #[arg(long, default_value = "agora_bench")]
    bench_database: String,

    /// Events per page for `catchup`.
    #[arg(long, default_value_t = 1000)]
    page_size: usize,

    /// Duration of each `checkout` run, in seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,

    /// Events of the `rebuild` workload's history.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,

    /// Seed of generated data.
    #[arg(long, default_value_t = 1)]
    seed: u64,

    /// Products of the `search` workload.
    #[arg(long, default_value_t = 1_000_000)]
    products: usize,
}

pub async fn run(database_url: &str, args: BenchArgs) -> anyhow::Result<()> {
    let url = bench_url(database_url, &args.bench_database)?;
    let report = Report { json: Some(args.json) };
    match args.workload {
        Workload::Append => {
            for &clients in &args.clients {
                store::append(&url, clients, args.streams, &report).await?;
            }
        }
        Workload::Load | Workload::Catchup => {
            // Both read what `append` wrote: write it first, with 16 clients, unreported.
            store::append(&url, 16, args.streams, &Report::silent()).await?;
            if args.workload == Workload::Load {
                for &clients in &args.clients {
                    store::load(&url, clients, &report).await?;
                }
            } else {
                store::catchup(&url, args.page_size, &report).await?;
            }
        }
        Workload::Rebuild => rebuild::rebuild(&url, args.events, args.seed, &report).await?,
        Workload::Search => search::search(&url, args.products, &report).await?,
        Workload::Graphql => {
            let clients = if args.clients == [1, 16] { vec![1, 64] } else { args.clients.clone() };
            let products = if args.products == 1_000_000 { 100_000 } else { args.products };
            graphql::graphql(&url, products, &clients, args.seconds, &report).await?
        }
        Workload::Checkout => {
            let clients = if args.clients == [1, 16] { vec![1, 64] } else { args.clients.clone() };
            checkout::checkout(&url, &clients, args.seconds, &report).await?
        }
    }
    Ok(())
}

/// The configured server with the benchmark's own database name.
fn bench_url(database_url: &str, name: &str) -> anyhow::Result<String> {
    let mut url = url::Url::parse(database_url).context("DATABASE_URL is not a URL")?;
    url.set_path(&format!("/{name}"));
    Ok(url.to_string())
}

/// Prints results as text or JSON lines.
pub struct Report {
    json: Option<bool>,
}

impl Report {
    fn silent() -> Self {
        Self { json: None }
    }

    fn line(&self, text: String, figures: Value) {
        match self.json {
            Some(true) => println!("{figures}"),
            Some(false) => println!("{text}"),
            None => {}
        }
    }
}

/// Latency percentiles in milliseconds.
pub struct Latencies(Vec<Duration>);

impl Latencies {
    fn new(mut all: Vec<Duration>) -> Self {
        all.sort_unstable();
        Self(all)
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * (self.0.len() - 1) as f64).round() as usize;
        self.0[rank.min(self.0.len() - 1)].as_secs_f64() * 1000.0
    }

    fn figures(&self) -> Map<String, Value> {
        let mut map = Map::new();
        map.insert("p50_ms".into(), json!(round3(self.percentile_ms(50.0))));
        map.insert("p99_ms".into(), json!(round3(self.percentile_ms(99.0))));
        map
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
