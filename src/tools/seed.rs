//! `agora seed`: a realistic marketplace of any size, through the real command path (the same
//! handlers HTTP requests reach), so events, read models, the search index and the process
//! managers see exactly what production traffic would produce.
//!
//! The catalogue and the shape of the orders follow `--seed`; account emails carry a run tag
//! so that seeding twice into one database adds data instead of failing on taken emails.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use events::domain::accounts::Role;
use futures_util::{StreamExt, TryStreamExt, stream};
use uuid::Uuid;

use crate::config::Settings;
use crate::demo::{list_product, place_order, register_account};
use crate::startup::{self, Services};
use crate::tools::progress::Progress;

/// The password of every seeded account (documented in README; never seed production).
pub const PASSWORD: &str = "agora-seed";

/// Requests in flight at once.
const CONCURRENCY: usize = 16;

#[derive(Debug, clap::Args)]
pub struct SeedArgs {
    /// Products to list (spread over the vendors).
    #[arg(long, default_value_t = 1_000)]
    pub products: u64,
    /// Accounts to register: one in ten a vendor (at least one), the others buyers.
    #[arg(long, default_value_t = 100)]
    pub accounts: u64,
    /// Orders to place (1-3 lines each, paid with the sandbox card).
    #[arg(long, default_value_t = 200)]
    pub orders: u64,
    /// Seed of the catalogue and order generators.
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
}

/// splitmix64: small, deterministic, good enough to pick products and quantities.
struct Picker(u64);

impl Picker {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

pub async fn run(settings: &Settings, args: SeedArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.accounts >= 2, "--accounts must be at least 2 (a vendor and a buyer)");
    let services = startup::services(settings, &[0u8; 32]).await?;
    let run = &Uuid::new_v4().simple().to_string()[..6];
    let vendors_wanted = (args.accounts / 10).max(1);
    let buyers_wanted = args.accounts - vendors_wanted;

    let mut bar = Progress::new("accounts", args.accounts);
    let done = AtomicU64::new(0);
    let register = |role: Role, n: u64| {
        let (services, done) = (&services, &done);
        async move {
            let (kind, name) = match role {
                Role::Vendor => ("vendor", format!("Seed Shop {n}")),
                _ => ("buyer", format!("Seed Buyer {n}")),
            };
            let email = format!("{kind}{n}-{run}@seed.agora.example");
            let id = register_account(services, role, &email, &name, PASSWORD).await?;
            done.fetch_add(1, Ordering::Relaxed);
            anyhow::Ok((id, name))
        }
    };
    let vendors: Vec<(Uuid, String)> = stream::iter((0..vendors_wanted).map(|n| register(Role::Vendor, n)))
        .buffered(CONCURRENCY)
        .inspect(|_| bar.set(done.load(Ordering::Relaxed)))
        .try_collect()
        .await?;
    let buyers: Vec<(Uuid, String)> = stream::iter((0..buyers_wanted).map(|n| register(Role::Buyer, n)))
        .buffered(CONCURRENCY)
        .inspect(|_| bar.set(done.load(Ordering::Relaxed)))
        .try_collect()
        .await?;
    bar.finish();

    let mut bar = Progress::new("products", args.products);
    let mut catalogue = search::catalog::CatalogGenerator::new(args.seed);
    let drafts: Vec<_> = (0..args.products).map(|_| catalogue.next_product()).collect();
    let products: Vec<Uuid> = stream::iter(drafts.iter().enumerate().map(|(n, draft)| {
        let (services, vendor) = (&services, vendors[n % vendors.len()].0);
        async move { list_product(services, vendor, draft).await }
    }))
    .buffered(CONCURRENCY)
    .inspect(|_| bar.inc(1))
    .try_collect()
    .await?;
    bar.finish();

    let stock: Vec<u32> = drafts.iter().map(|d| d.stock).collect();
    let (placed, refused) = orders(&services, &buyers, &products, stock, &args).await?;
    let head = services.store.head().await.map(|p| p.to_string()).unwrap_or_default();
    println!(
        "seeded {} vendors, {} buyers (password {PASSWORD:?}, emails *-{run}@seed.agora.example), {} products, \
         {placed} orders ({refused} refused: out of stock); log head {head}",
        vendors.len(),
        buyers.len(),
        products.len()
    );
    Ok(())
}

/// Orders of 1-3 lines by random buyers. One buyer has one cart, so each buyer's orders are
/// placed one after another; different buyers order concurrently.
async fn orders(
    services: &Services,
    buyers: &[(Uuid, String)],
    products: &[Uuid],
    mut stock: Vec<u32>,
    args: &SeedArgs,
) -> anyhow::Result<(u64, u64)> {
    if args.orders == 0 || products.is_empty() {
        return Ok((0, 0));
    }
    let mut picker = Picker(args.seed ^ 0x5EED);
    let mut per_buyer: Vec<Vec<Vec<(Uuid, u32)>>> = vec![Vec::new(); buyers.len()];
    for _ in 0..args.orders {
        let lines = 1 + picker.below(3);
        let mut order: Vec<(Uuid, u32)> = Vec::with_capacity(lines);
        for _ in 0..lines {
            // Buyers order what the shop shows in stock (a few tries, then whatever comes).
            let mut pick = picker.below(products.len());
            for _ in 0..8 {
                if stock[pick] > 0 {
                    break;
                }
                pick = picker.below(products.len());
            }
            let quantity = (1 + picker.below(2) as u32).min(stock[pick].max(1));
            stock[pick] = stock[pick].saturating_sub(quantity);
            if !order.iter().any(|(p, _)| *p == products[pick]) {
                order.push((products[pick], quantity));
            }
        }
        per_buyer[picker.below(buyers.len())].push(order);
    }
    let placed = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let mut bar = Progress::new("orders", args.orders);
    let results: Vec<anyhow::Result<()>> = stream::iter(buyers.iter().zip(per_buyer).map(|((buyer, name), orders)| {
        let (placed, refused) = (placed.clone(), refused.clone());
        async move {
            for lines in orders {
                match place_order(services, *buyer, name, &lines).await {
                    Ok(()) => placed.fetch_add(1, Ordering::Relaxed),
                    // A generated order may ask for more than is left: refused like any buyer's.
                    Err(command::CommandError::Refused(r)) if r.code == "out_of_stock" => {
                        refused.fetch_add(1, Ordering::Relaxed)
                    }
                    Err(e) => return Err(anyhow::anyhow!(e)).context("seed order"),
                };
            }
            Ok(())
        }
    }))
    .buffer_unordered(CONCURRENCY)
    .inspect(|_| bar.set(placed.load(Ordering::Relaxed) + refused.load(Ordering::Relaxed)))
    .collect()
    .await;
    bar.finish();
    results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    Ok((placed.load(Ordering::Relaxed), refused.load(Ordering::Relaxed)))
}
