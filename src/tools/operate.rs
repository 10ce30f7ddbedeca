//! Operator tools over the projections: `agora rebuild`, `agora status`, `agora park` and
//! `agora unpark`.
//!
//! They run beside live processes: a rebuild builds shadow generations (read models) and a new
//! index generation (search) while live reads keep using the old ones, then swaps them in.

use std::sync::{Arc, Mutex};

use anyhow::{Context as _, bail};
use serde::Serialize;
use uuid::Uuid;

use crate::config::Settings;
use crate::startup::{self, Services};
use crate::tools::progress::Progress;

/// The name `agora rebuild` and `agora status` use for this process's product index.
pub const SEARCH: &str = "search";

#[derive(Debug, clap::Args)]
pub struct RebuildArgs {
    /// Projections to rebuild (see `agora status`), and/or `search` for the product index in
    /// INDEX_DIR.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub projections: Vec<String>,
    /// Every read model and the product index.
    #[arg(long)]
    pub all: bool,
    /// Events per page read from the log and per shadow transaction.
    #[arg(long, default_value_t = 10_000)]
    pub batch_size: usize,
}

async fn connect(settings: &Settings) -> anyhow::Result<(Services, Vec<projections::SharedProjection>)> {
    // Tools never issue tokens: the key only has to exist.
    let services = startup::services(settings, &[0u8; 32]).await?;
    projections::migrate(&services.pool).await.context("projections migrations")?;
    let all = projections::all_projections(services.vault.clone());
    Ok((services, all))
}

fn known_names(all: &[projections::SharedProjection]) -> String {
    let mut names: Vec<&str> = all.iter().map(|p| p.name()).collect();
    names.push(SEARCH);
    names.join(", ")
}

pub async fn rebuild(settings: &Settings, args: RebuildArgs) -> anyhow::Result<()> {
    let (services, all) = connect(settings).await?;
    let (chosen, search): (Vec<_>, bool) = if args.all {
        (all.clone(), true)
    } else {
        let mut chosen = Vec::new();
        for name in &args.projections {
            match all.iter().find(|p| p.name() == name) {
                Some(projection) => chosen.push(projection.clone()),
                None if name == SEARCH => {}
                None => bail!("there is no projection named {name:?}; known: {}", known_names(&all)),
            }
        }
        (chosen, args.projections.iter().any(|n| n == SEARCH))
    };

    if !chosen.is_empty() {
        let bar = Arc::new(Mutex::new(Progress::new("events", 0)));
        let shown = bar.clone();
        let options = projections::RebuildOptions {
            batch_size: args.batch_size,
            progress: Some(Arc::new(move |p: projections::Progress| {
                if let Ok(mut bar) = shown.lock() {
                    bar.set_total(p.events_total);
                    bar.set(p.events_done);
                }
            })),
            ..Default::default()
        };
        let summary = projections::rebuild(&services.pool, services.store(), &chosen, options).await;
        if let Ok(bar) = Arc::try_unwrap(bar).map(|m| m.into_inner()) {
            bar.map(Progress::finish).ok();
        }
        println!("{}", summary.context("rebuild")?);
    }

    if search {
        let mut bar = Progress::new("events", 0);
        let report = search::rebuild(services.store(), &settings.index_dir, |done, total| {
            bar.set_total(total);
            bar.set(done);
        })
        .await
        .with_context(|| format!("rebuild of the product index in {}", settings.index_dir.display()))?;
        bar.finish();
        println!(
            "rebuilt search (generation {}, {} products) in {:.1} s: {} events, {:.0} events/s; \
             query processes on {} switch to it within a second",
            report.generation,
            report.products,
            report.elapsed.as_secs_f64(),
            report.events,
            report.events as f64 / report.elapsed.as_secs_f64().max(1e-9),
            settings.index_dir.display()
        );
    }
    Ok(())
}

/// The product index of this machine, as `agora status` shows it.
#[derive(Debug, Serialize)]
struct IndexStatus {
    name: &'static str,
    directory: String,
    generation: u64,
    products: u64,
    checkpoint: events::LogPosition,
}

#[derive(Debug, Serialize)]
struct FullStatus {
    #[serde(flatten)]
    projections: projections::Status,
    /// The product index in INDEX_DIR, if this machine has one.
    search: Option<IndexStatus>,
}

pub async fn status(settings: &Settings, json: bool) -> anyhow::Result<()> {
    let (services, all) = connect(settings).await?;
    let status = projections::status(&services.pool, &*services.store, &all).await.context("status")?;
    let search = if settings.index_dir.exists() {
        search::ProductIndex::open(&settings.index_dir).ok().map(|index| IndexStatus {
            name: SEARCH,
            directory: settings.index_dir.display().to_string(),
            generation: index.generation(),
            products: index.num_products(),
            checkpoint: index.checkpoint(),
        })
    } else {
        None
    };
    let full = FullStatus { projections: status, search };
    if json {
        println!("{}", serde_json::to_string_pretty(&full)?);
        return Ok(());
    }
    print!("{}", table(&full));
    Ok(())
}

fn table(full: &FullStatus) -> String {
    use std::fmt::Write as _;
    let status = &full.projections;
    let mut out = String::new();
    let _ =
        writeln!(out, "head of log: {}   (checked {})", status.head, status.checked_at.format("%Y-%m-%d %H:%M:%S UTC"));
    let _ = writeln!(
        out,
        "{:<24} {:<10} {:>4} {:>22} {:>10} {:>9}  {}",
        "NAME", "KIND", "GEN", "CHECKPOINT", "LAG EVENTS", "LAG S", "LEADER / STATE"
    );
    for p in &status.projections {
        let mut state = match &p.leader {
            Some(leader) => format!("pid {} ({})", leader.pid, leader.client_addr.as_deref().unwrap_or("local")),
            None => "no leader".to_owned(),
        };
        if p.needs_rebuild {
            state.push_str(", needs rebuild");
        }
        if let Some(shadow) = &p.rebuild {
            let running = if shadow.running { "running" } else { "interrupted" };
            let _ = write!(state, ", rebuild g{} at {} ({running})", shadow.generation, shadow.checkpoint);
        }
        if let Some(error) = &p.error {
            let _ = write!(
                state,
                ", STOPPED at {} v{} ({}) after {} attempts: {}",
                error.stream_id, error.stream_version, error.event_id, error.attempts, error.error
            );
        }
        if !p.parked.is_empty() {
            let _ = write!(state, ", {} parked", p.parked.len());
        }
        let generation = p.live_generation.map(|g| g.to_string()).unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "{:<24} {:<10} {:>4} {:>22} {:>10} {:>9.1}  {}",
            p.name,
            p.kind,
            generation,
            p.checkpoint.to_string(),
            p.lag_events,
            p.lag_seconds,
            state
        );
    }
    match &full.search {
        Some(index) => {
            let _ = writeln!(
                out,
                "{:<24} {:<10} {:>4} {:>22} {:>10} {:>9}  {} products in {}",
                index.name,
                "index",
                index.generation,
                index.checkpoint.to_string(),
                "-",
                "-",
                index.products,
                index.directory
            );
        }
        None => {
            let _ = writeln!(out, "{SEARCH:<24} {:<10} (no index in INDEX_DIR on this machine)", "index");
        }
    }
    out
}

pub async fn park(settings: &Settings, projection: &str, event_id: Uuid, reason: &str) -> anyhow::Result<()> {
    check_name(projection)?;
    let (services, _) = connect(settings).await?;
    let parked = projections::park(&services.pool, projection, event_id, reason).await.context("park")?;
    println!(
        "parked {} v{} ({}) for {}: {} skips it from now on",
        parked.stream_id, parked.stream_version, parked.event_type, parked.projection, parked.projection
    );
    Ok(())
}

pub async fn unpark(settings: &Settings, projection: &str, event_id: Uuid) -> anyhow::Result<()> {
    check_name(projection)?;
    let (services, _) = connect(settings).await?;
    if projections::unpark(&services.pool, projection, event_id).await.context("unpark")? {
        println!("unparked {event_id} for {projection}; rebuild {projection} to apply it");
    } else {
        println!("{event_id} was not parked for {projection}");
    }
    Ok(())
}

/// Projections and reactors (process managers) can be parked; `projections::park` checks the
/// name against the checkpoints. The product index has no parking: it skips nothing it can
/// apply and is rebuilt instead.
fn check_name(name: &str) -> anyhow::Result<()> {
    if name == SEARCH {
        bail!("the product index cannot park events; rebuild it with `agora rebuild search`");
    }
    Ok(())
}
