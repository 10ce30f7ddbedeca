//! Reaching PostgreSQL: creating the database if it is missing, pools, and errors a person
//! can act on.

use std::str::FromStr;

use anyhow::{Context, bail};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgPool};

/// A URL without its password, for messages and logs.
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

fn unreachable(url: &str, error: &sqlx::Error) -> anyhow::Error {
    anyhow::anyhow!(
        "cannot reach PostgreSQL at {} ({}). Start PostgreSQL (for example `pg_ctlcluster 15 main start`) \
         or point DATABASE_URL at a running server",
        redacted(url),
        short_reason(error)
    )
}

fn short_reason(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::Database(db) => db.message().to_owned(),
        other => other.to_string(),
    }
}

fn database_name(options: &PgConnectOptions) -> String {
    options.get_database().unwrap_or("postgres").to_owned()
}

/// Make sure the database of `url` exists, creating it if PostgreSQL says it does not.
pub async fn ensure_database(url: &str) -> anyhow::Result<()> {
    let options = PgConnectOptions::from_str(url)
        .with_context(|| format!("DATABASE_URL is not a PostgreSQL URL: {}", redacted(url)))?;
    match options.connect().await {
        Ok(conn) => {
            let _ = conn.close().await;
            Ok(())
        }
        Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("3D000") => {
            let name = database_name(&options);
            let mut admin = options.clone().database("postgres").connect().await.map_err(|e| unreachable(url, &e))?;
            let created = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("create database {}", quote_ident(&name))))
                .execute(&mut admin)
                .await;
            match created {
                Ok(_) => tracing::info!(database = %name, "created database"),
                // Created concurrently by another process: fine.
                Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("42P04") => {}
                Err(error) => bail!("cannot create database {name}: {}", short_reason(&error)),
            }
            let _ = admin.close().await;
            Ok(())
        }
        Err(error) => Err(unreachable(url, &error)),
    }
}

/// Drop (if present) and create the database of `url`: for benchmarks.
pub async fn recreate_database(url: &str) -> anyhow::Result<()> {
    let options =
        PgConnectOptions::from_str(url).with_context(|| format!("not a PostgreSQL URL: {}", redacted(url)))?;
    let name = quote_ident(&database_name(&options));
    let mut admin = options.clone().database("postgres").connect().await.map_err(|e| unreachable(url, &e))?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("drop database if exists {name} with (force)")))
        .execute(&mut admin)
        .await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("create database {name}"))).execute(&mut admin).await?;
    let _ = admin.close().await;
    Ok(())
}

/// A pool for `url` (which must exist), checked with one connection so that a wrong URL
/// fails here with a clear message.
pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    let options =
        events::postgres::connect_options(url).with_context(|| format!("not a PostgreSQL URL: {}", redacted(url)))?;
    events::postgres::pool_options(max_connections).connect_with(options).await.map_err(|e| unreachable(url, &e))
}

/// `"name"` with embedded quotes doubled: a safe SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(redacted("postgres://agora:s3cret@db:5432/agora"), "postgres://agora:***@db:5432/agora");
        assert_eq!(redacted("postgres://postgres@127.0.0.1:5432/agora"), "postgres://postgres@127.0.0.1:5432/agora");
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("agora"), "\"agora\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
