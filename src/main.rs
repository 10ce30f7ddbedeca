//! `agora`: one binary, several roles and tools. Parses the command line and hands over to
//! the libraries.

mod bench;
mod database;
mod telemetry;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "agora", version, about = "Event-sourced marketplace backend")]
struct Cli {
    /// Event store and read models.
    #[arg(long, env = "DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/agora", global = true)]
    database_url: String,

    /// Log lines for people (`pretty`) or for machines (`json`).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "pretty", global = true)]
    log_format: telemetry::LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the database if missing, apply migrations, exit.
    Migrate,
    /// Run a built-in benchmark (see README, "Benchmarks").
    Bench(bench::BenchArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One clear sentence (with its causes), no backtrace.
            eprintln!("agora: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Migrate => migrate(&cli.database_url).await,
        Command::Bench(args) => bench::run(&cli.database_url, args).await,
    }
}

async fn migrate(url: &str) -> anyhow::Result<()> {
    database::ensure_database(url).await?;
    let pool = database::connect(url, 2).await?;
    events::postgres::migrate(&pool).await?;
    tracing::info!(database = %database::redacted(url), "migrations applied");
    Ok(())
}
