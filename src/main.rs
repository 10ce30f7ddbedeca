//! `agora`: one binary, several roles and tools. Parses the command line and hands over to
//! the libraries.

mod bench;
mod config;
mod database;
mod demo;
mod notify;
mod ops;
mod roles;
mod startup;
mod telemetry;
mod tools;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use config::Settings;
use startup::Roles;

/// mimalloc instead of glibc's malloc: many small, short-lived allocations per request
/// (JSON, GraphQL values, rows) on few cores; see README, "Benchmarks".
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "agora", version, about = "Event-sourced marketplace backend")]
struct Cli {
    #[command(flatten)]
    settings: Settings,

    /// Log lines for people (`pretty`) or for machines (`json`).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "pretty", global = true)]
    log_format: telemetry::LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Every role in one process on one port (the local default).
    Serve {
        /// Do not load the demo catalogue into an empty store.
        #[arg(long)]
        no_demo: bool,
    },
    /// The HTTP command API only.
    Command,
    /// The GraphQL API and this process's search index only.
    Query,
    /// Projectors and process managers only (one leader per projection across processes).
    Project,
    /// Create the database if missing, apply migrations, exit.
    Migrate,
    /// Rebuild read models and/or the product index from the log while live reads go on
    /// (shadow build, then an atomic swap).
    Rebuild(tools::operate::RebuildArgs),
    /// Per projection: checkpoint, head of the log, lag in events and seconds, leader, errors.
    Status {
        /// One JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Tell a stopped projection or process manager to skip one event (recorded, shown in status).
    Park {
        projection: String,
        event_id: uuid::Uuid,
        /// Why, for the record.
        #[arg(long)]
        reason: String,
    },
    /// Stop skipping a parked event.
    Unpark { projection: String, event_id: uuid::Uuid },
    /// Realistic data through the real command path.
    Seed(tools::seed::SeedArgs),
    /// Staff accounts.
    Account {
        #[command(subcommand)]
        command: tools::account::AccountCommand,
    },
    /// Bulk imports through the command path.
    Import {
        #[command(subcommand)]
        what: ImportCommand,
    },
    /// Run a built-in benchmark (see README, "Benchmarks").
    Bench(bench::BenchArgs),
}

#[derive(Debug, Subcommand)]
enum ImportCommand {
    /// A catalogue: one JSON object per line (title, description, category, brand,
    /// price_cents, currency, stock, vendor as an email or account id).
    Products {
        file: std::path::PathBuf,
        /// Lines imported at once.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    let outcome = run(cli).await;
    telemetry::shutdown();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One clear sentence (with its causes), no backtrace.
            eprintln!("agora: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = cli.settings;
    match cli.command {
        Command::Serve { no_demo } => startup::serve(settings, !no_demo).await,
        Command::Command => startup::run(settings, Roles::COMMAND, false).await,
        Command::Query => startup::run(settings, Roles::QUERY, false).await,
        Command::Project => startup::run(settings, Roles::PROJECT, false).await,
        Command::Migrate => {
            startup::migrate(&settings).await?;
            tracing::info!(database = %database::redacted(&settings.database_url), "migrations applied");
            Ok(())
        }
        Command::Rebuild(args) => tools::operate::rebuild(&settings, args).await,
        Command::Status { json } => tools::operate::status(&settings, json).await,
        Command::Park { projection, event_id, reason } => {
            tools::operate::park(&settings, &projection, event_id, &reason).await
        }
        Command::Unpark { projection, event_id } => tools::operate::unpark(&settings, &projection, event_id).await,
        Command::Seed(args) => tools::seed::run(&settings, args).await,
        Command::Account { command } => tools::account::run(&settings, command).await,
        Command::Import { what: ImportCommand::Products { file, concurrency } } => {
            let services = startup::services(&settings, &[0u8; 32]).await?;
            let summary = tools::import::import_products(services.ctx.clone(), &file, concurrency).await?;
            println!(
                "imported {} products ({} vendor accounts created), rejected {} lines",
                summary.imported,
                summary.vendors_created,
                summary.rejected.len()
            );
            for (line, reason) in &summary.rejected {
                println!("  line {line}: {reason}");
            }
            Ok(())
        }
        Command::Bench(args) => bench::run(&settings.database_url, args).await,
    }
}
