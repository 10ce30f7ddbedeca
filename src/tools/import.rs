//! `agora import products <file.jsonl>`: a vendor catalogue, one JSON object per line,
//! through the real command path (events, then projections and the search index). Bad lines
//! are reported with their line numbers and skipped; they never stop the import.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use command::Context;
use command::accounts::decider::{Account, AccountDecider, EmailDecider, EmailRegistration};
use command::accounts::handlers::{Registration, account_stream, email_stream, register};
use command::catalog::http::ProductRequest;
use command::handling::{Meta, load};
use command::values::{Email, Password, PersonName};
use events::domain::accounts::Role;
use serde::Deserialize;
use tokio::io::AsyncBufReadExt;
use tokio::sync::Mutex;
use uuid::Uuid;

use super::progress::Progress;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    title: String,
    description: String,
    category: String,
    brand: String,
    price_cents: i64,
    currency: String,
    stock: i64,
    /// The vendor: an account id, or an email (the vendor account is created if missing).
    vendor: String,
}

/// What happened to an import.
#[derive(Debug, Default)]
pub struct Summary {
    pub imported: u64,
    pub vendors_created: u64,
    /// Line number (1-based) and reason.
    pub rejected: Vec<(u64, String)>,
}

/// Vendor accounts by the text that named them, resolved once.
#[derive(Default)]
struct Vendors {
    known: HashMap<String, Result<Uuid, String>>,
    created: u64,
}

async fn resolve_vendor(ctx: &Context, vendors: &Mutex<Vendors>, name: &str) -> Result<Uuid, String> {
    let mut vendors = vendors.lock().await;
    if let Some(known) = vendors.known.get(name) {
        return known.clone();
    }
    let resolved = match Uuid::parse_str(name.trim()) {
        Ok(id) => match load::<AccountDecider>(&*ctx.store, &account_stream(id)).await.map(|l| l.state) {
            Ok(Account::Active { role: Role::Vendor, .. }) => Ok(id),
            Ok(Account::Active { .. }) => Err(format!("account {id} is not a vendor")),
            Ok(_) => Err(format!("no vendor account {id}")),
            Err(e) => Err(e.to_string()),
        },
        Err(_) => {
            let email = Email::parse(name).map_err(|e| format!("vendor {e}, or a vendor account id"))?;
            match load::<EmailDecider>(&*ctx.store, &email_stream(&email)).await.map(|l| l.state) {
                Ok(EmailRegistration::Claimed { account_id }) => {
                    match load::<AccountDecider>(&*ctx.store, &account_stream(account_id)).await.map(|l| l.state) {
                        Ok(Account::Active { role: Role::Vendor, .. }) => Ok(account_id),
                        Ok(_) => Err(format!("{} belongs to an account that is not a vendor", email.as_str())),
                        Err(e) => Err(e.to_string()),
                    }
                }
                Ok(EmailRegistration::Free) => {
                    // A new vendor: a random password (the vendor sets one by changing it).
                    let password: String = (0..24).map(|_| char::from(b'a' + rand::random_range(0..26u8))).collect();
                    let shop = email.as_str().split('@').next().unwrap_or("vendor").to_owned();
                    let registration = Registration {
                        email,
                        password: Password::parse(&password).map_err(|e| e.to_string())?,
                        name: PersonName::parse(&shop).map_err(|e| e.to_string())?,
                        role: Role::Vendor,
                    };
                    match register(ctx, registration, &Meta::new(None, Uuid::now_v7()), None).await {
                        Ok(accepted) => {
                            vendors.created += 1;
                            accepted
                                .body
                                .get("id")
                                .and_then(|id| id.as_str())
                                .and_then(|id| Uuid::parse_str(id).ok())
                                .ok_or_else(|| "registration returned no id".to_owned())
                        }
                        Err(e) => Err(e.to_string()),
                    }
                }
                Err(e) => Err(e.to_string()),
            }
        }
    };
    vendors.known.insert(name.to_owned(), resolved.clone());
    resolved
}

async fn import_line(ctx: &Context, vendors: &Mutex<Vendors>, text: &str) -> Result<(), String> {
    let line: Line = serde_json::from_str(text).map_err(|e| format!("not a product: {e}"))?;
    let request = ProductRequest {
        title: line.title,
        description: line.description,
        category: line.category,
        brand: line.brand,
        price_cents: line.price_cents,
        currency: line.currency,
        stock: line.stock,
    };
    let product = request.parse().map_err(|e| {
        let fields: Vec<String> = e.errors.iter().map(|f| format!("{} {}", f.field, f.message)).collect();
        if fields.is_empty() { e.detail } else { fields.join("; ") }
    })?;
    let vendor = resolve_vendor(ctx, vendors, &line.vendor).await?;
    command::catalog::handlers::list(ctx, vendor, product, &Meta::new(None, Uuid::now_v7()), None)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Import every line of `path`; `concurrency` lines in flight.
pub async fn import_products(ctx: Arc<Context>, path: &Path, concurrency: usize) -> anyhow::Result<Summary> {
    let file = tokio::fs::File::open(path).await.with_context(|| format!("cannot open {}", path.display()))?;
    let total = tokio::fs::metadata(path).await.map(|m| m.len()).unwrap_or(0);
    let mut lines = tokio::io::BufReader::new(file).lines();
    let vendors = Arc::new(Mutex::new(Vendors::default()));
    let mut progress = Progress::new("bytes", total);
    let mut summary = Summary::default();
    let mut in_flight = tokio::task::JoinSet::new();
    let (mut number, mut bytes) = (0u64, 0u64);
    loop {
        let next = lines.next_line().await.with_context(|| format!("reading {}", path.display()));
        let line = match next {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(error) => {
                summary.rejected.push((number + 1, format!("{error:#}")));
                break;
            }
        };
        number += 1;
        bytes += line.len() as u64 + 1;
        progress.set(bytes);
        if line.trim().is_empty() {
            continue;
        }
        while in_flight.len() >= concurrency.max(1) {
            if let Some(done) = in_flight.join_next().await {
                record(&mut summary, done);
            }
        }
        let (ctx, vendors) = (ctx.clone(), vendors.clone());
        in_flight.spawn(async move { (number, import_line(&ctx, &vendors, &line).await) });
    }
    while let Some(done) = in_flight.join_next().await {
        record(&mut summary, done);
    }
    progress.finish();
    summary.vendors_created = vendors.lock().await.created;
    summary.rejected.sort();
    Ok(summary)
}

fn record(summary: &mut Summary, done: Result<(u64, Result<(), String>), tokio::task::JoinError>) {
    match done {
        Ok((_, Ok(()))) => summary.imported += 1,
        Ok((line, Err(reason))) => summary.rejected.push((line, reason)),
        Err(error) => summary.rejected.push((0, format!("import task failed: {error}"))),
    }
}
