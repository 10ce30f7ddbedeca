//! Configuration: one clap struct, every option also an environment variable
//! (CONTRACT.md, "Configuration").

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EventStoreKind {
    Postgres,
    Eventstoredb,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    On,
    Off,
}

/// Settings shared by every role and tool.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// Event store and read models. Without `sslmode`, a loopback server is reached without TLS.
    #[arg(long, env = "DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/agora", global = true,
          value_parser = plain_on_loopback)]
    pub database_url: String,

    /// Read models for the query role (e.g. a read replica). Defaults to DATABASE_URL.
    #[arg(long, env = "READ_DATABASE_URL", global = true, value_parser = plain_on_loopback)]
    pub read_database_url: Option<String>,

    /// `postgres` or `eventstoredb`.
    #[arg(long, env = "EVENT_STORE", value_enum, default_value = "postgres", global = true)]
    pub event_store: EventStoreKind,

    /// EventStoreDB/KurrentDB URL when EVENT_STORE=eventstoredb, e.g. esdb://127.0.0.1:2113?tls=false.
    #[arg(long, env = "EVENTSTORE_URL", global = true)]
    pub eventstore_url: Option<String>,

    /// `off` makes the PostgreSQL store report no atomic multi-stream appends, so checkout
    /// takes the reserve / compensate path that KurrentDB needs (to run that path here).
    #[arg(long, env = "MULTI_STREAM_APPENDS", value_enum, default_value = "on", global = true)]
    pub multi_stream_appends: Switch,

    /// On the reserve checkout path: how long stock holds wait for their order before the
    /// `reservations` process releases them, in seconds.
    #[arg(long, env = "CHECKOUT_HOLD_SECONDS", default_value_t = 60, global = true,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub checkout_hold_seconds: u64,

    /// Test hook: a named point where command handling stops dead (crash tests only).
    #[arg(long, env = "AGORA_FAIL_POINT", hide = true, global = true)]
    pub fail_point: Option<String>,

    /// Directory of the tantivy product index (query roles).
    #[arg(long, env = "INDEX_DIR", default_value = "./data/index", global = true)]
    pub index_dir: PathBuf,

    /// HTTP listen address.
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:8080", global = true)]
    pub listen_addr: SocketAddr,

    /// HMAC key of access tokens (at least 32 bytes). Required by the `command` and `query`
    /// roles; `serve` makes up one for the session if unset, and says so.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true, global = true)]
    pub jwt_secret: Option<SecretString>,

    /// Lifetime of access tokens, in hours.
    #[arg(long, env = "TOKEN_TTL_HOURS", default_value_t = 24, global = true)]
    pub token_ttl_hours: i64,

    /// Database connections per process.
    #[arg(long, env = "DB_POOL_SIZE", default_value_t = 16, global = true)]
    pub db_pool_size: u32,

    /// How long a GraphQL request with a Consistency-Token waits for the read models, in ms.
    #[arg(long, env = "CONSISTENCY_WAIT_MS", default_value_t = 2000, global = true)]
    pub consistency_wait_ms: u64,

    /// `/readyz` of a query role fails when projections lag the log by more than this, in seconds.
    #[arg(long, env = "READY_MAX_LAG_SECONDS", default_value_t = 30, global = true)]
    pub ready_max_lag_seconds: u64,

    /// How long shutdown waits for in-flight requests, in seconds.
    #[arg(long, env = "SHUTDOWN_GRACE_SECONDS", default_value_t = 20, global = true)]
    pub shutdown_grace_seconds: u64,

    /// NATS server of the integration-event relay, e.g. nats://127.0.0.1:4222. Unset: the
    /// relay does not run (project roles).
    #[arg(long, env = "NATS_URL", global = true)]
    pub nats_url: Option<String>,

    /// JetStream stream the relay publishes to (created if missing, capturing `<prefix>.>`).
    #[arg(long, env = "NATS_STREAM", default_value = "AGORA", global = true, value_parser = stream_name)]
    pub nats_stream: String,

    /// First token(s) of every integration-event subject: `<prefix>.order.placed`.
    #[arg(long, env = "NATS_SUBJECT_PREFIX", default_value = "agora", global = true, value_parser = subject_prefix)]
    pub nats_subject_prefix: String,

    /// Attempts per webhook delivery before it is marked failed (replayable).
    #[arg(long, env = "WEBHOOK_MAX_ATTEMPTS", default_value_t = 5, global = true,
          value_parser = clap::value_parser!(u32).range(1..=50))]
    pub webhook_max_attempts: u32,

    /// Delay before the second webhook attempt, in ms; doubles after each failure
    /// (20 s: 5 attempts span about 5 minutes).
    #[arg(long, env = "WEBHOOK_BACKOFF_MS", default_value_t = 20_000, global = true)]
    pub webhook_backoff_ms: u64,

    /// Timeout of one webhook request, in ms.
    #[arg(long, env = "WEBHOOK_TIMEOUT_MS", default_value_t = 10_000, global = true,
          value_parser = clap::value_parser!(u64).range(100..=300_000))]
    pub webhook_timeout_ms: u64,

    /// SMTP server for notifications, e.g. smtp://user:pass@mail.example.com:587?tls=required
    /// or smtps://...; unset: notifications are written to the log.
    #[arg(long, env = "SMTP_URL", hide_env_values = true, global = true)]
    pub smtp_url: Option<SecretString>,

    /// Sender of notification emails.
    #[arg(long, env = "NOTIFY_FROM", default_value = "Agora <no-reply@agora.localhost>", global = true)]
    pub notify_from: String,

    /// Events older than this (in hours) notify nobody, so replaying the log never mails
    /// people about old orders.
    #[arg(long, env = "NOTIFY_MAX_AGE_HOURS", default_value_t = 72, global = true)]
    pub notify_max_age_hours: u64,
}

/// A JetStream stream name: letters, digits, `-` and `_`.
fn stream_name(name: &str) -> Result<String, String> {
    if !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(name.to_owned())
    } else {
        Err("use 1 to 64 letters, digits, '-' or '_'".to_owned())
    }
}

/// Subject tokens separated by '.', without wildcards or spaces.
fn subject_prefix(prefix: &str) -> Result<String, String> {
    let valid = !prefix.is_empty()
        && prefix.len() <= 100
        && prefix.split('.').all(|token| {
            !token.is_empty() && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if valid {
        Ok(prefix.to_owned())
    } else {
        Err("use dot-separated tokens of letters, digits, '-' or '_', e.g. agora or acme.agora".to_owned())
    }
}

/// A PostgreSQL URL on a loopback host without an `sslmode` gets `sslmode=disable`.
///
/// libpq's default (`prefer`) negotiates TLS whenever the server offers it, and on one machine
/// that protects nothing while it costs a third of the append and rebuild throughput
/// (measured: rebuild 28.8k -> 43.5k events/s). Any other host keeps the default, and an
/// explicit `sslmode` is always kept.
fn plain_on_loopback(url: &str) -> Result<String, String> {
    let Ok(mut parsed) = url::Url::parse(url) else { return Ok(url.to_owned()) };
    // `postgres:` is not a special scheme to the URL parser: its host stays text.
    let loopback = match parsed.host() {
        Some(url::Host::Domain(name)) => {
            name == "localhost"
                || name
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if !loopback || parsed.query_pairs().any(|(key, _)| key == "sslmode" || key == "ssl-mode") {
        return Ok(url.to_owned());
    }
    parsed.query_pairs_mut().append_pair("sslmode", "disable");
    Ok(parsed.to_string())
}

/// Parses nothing but defaults (and the environment): for tools that run roles in-process.
#[derive(clap::Parser)]
struct Defaults {
    #[command(flatten)]
    settings: Settings,
}

impl Settings {
    /// Default settings for another database (benchmarks run their own server in-process).
    pub fn for_database(url: &str) -> Settings {
        use clap::Parser;
        let mut settings = Defaults::parse_from(["agora"]).settings;
        settings.database_url = url.to_owned();
        settings.read_database_url = None;
        settings
    }

    pub fn read_database_url(&self) -> &str {
        self.read_database_url.as_deref().unwrap_or(&self.database_url)
    }

    pub fn consistency_wait(&self) -> Duration {
        Duration::from_millis(self.consistency_wait_ms)
    }

    pub fn checkout_hold(&self) -> Duration {
        Duration::from_secs(self.checkout_hold_seconds)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_seconds)
    }

    pub fn webhook_options(&self) -> projections::integration::WebhookOptions {
        projections::integration::WebhookOptions {
            max_attempts: self.webhook_max_attempts,
            backoff: Duration::from_millis(self.webhook_backoff_ms),
            timeout: Duration::from_millis(self.webhook_timeout_ms),
            ..Default::default()
        }
    }

    pub fn notification_options(&self) -> projections::integration::NotificationOptions {
        projections::integration::NotificationOptions {
            max_age: Duration::from_secs(self.notify_max_age_hours.saturating_mul(3600)),
            ..Default::default()
        }
    }

    /// The relay's settings, when NATS_URL is set.
    pub fn relay(&self) -> Option<projections::integration::RelayConfig> {
        let url = self.nats_url.as_deref().map(str::trim).filter(|u| !u.is_empty())?;
        let mut config = projections::integration::RelayConfig::new(url);
        config.stream = self.nats_stream.clone();
        config.subject_prefix = self.nats_subject_prefix.clone();
        Some(config)
    }

    /// The token key: the configured secret, or (when `generate` is set, for `serve`) a
    /// random one that lives as long as the process.
    pub fn jwt_secret(&self, generate: bool) -> anyhow::Result<Vec<u8>> {
        match &self.jwt_secret {
            Some(secret) if secret.expose_secret().len() >= 32 => Ok(secret.expose_secret().as_bytes().to_vec()),
            Some(_) => anyhow::bail!("JWT_SECRET must be at least 32 bytes long"),
            None if generate => {
                tracing::warn!(
                    "JWT_SECRET is not set: using a random key for this process; tokens will not survive a restart"
                );
                Ok((0..48).map(|_| rand::random::<u8>()).collect())
            }
            None => anyhow::bail!(
                "JWT_SECRET is required for this role (at least 32 bytes), e.g. JWT_SECRET=$(openssl rand -hex 32)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{plain_on_loopback, stream_name, subject_prefix};

    #[test]
    fn nats_names_are_checked() {
        assert!(stream_name("AGORA").is_ok() && stream_name("agora-prod_1").is_ok());
        assert!(stream_name("").is_err() && stream_name("a.b").is_err() && stream_name("a b").is_err());
        assert!(subject_prefix("agora").is_ok() && subject_prefix("acme.agora").is_ok());
        for bad in ["", "a..b", "agora.>", "a.*", ".a", "a b"] {
            assert!(subject_prefix(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn loopback_urls_skip_tls_unless_told_otherwise() {
        let plain = |url: &str| plain_on_loopback(url).unwrap();
        assert_eq!(
            plain("postgres://postgres@127.0.0.1:5432/agora"),
            "postgres://postgres@127.0.0.1:5432/agora?sslmode=disable"
        );
        assert_eq!(
            plain("postgres://u@localhost/agora?application_name=x"),
            "postgres://u@localhost/agora?application_name=x&sslmode=disable"
        );
        assert_eq!(plain("postgres://u@[::1]/agora"), "postgres://u@[::1]/agora?sslmode=disable");
        assert_eq!(
            plain("postgres://u@127.0.0.1/agora?sslmode=require"),
            "postgres://u@127.0.0.1/agora?sslmode=require"
        );
        assert_eq!(plain("postgres://u:p@db.internal:5432/agora"), "postgres://u:p@db.internal:5432/agora");
    }
}
