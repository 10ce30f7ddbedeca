//! The demo marketplace `agora serve` loads into an empty store: a few shops with a realistic
//! catalogue, staff and buyer accounts, and an order — all through the real command path,
//! so every read model and the search index are built from the log like any other data.

use anyhow::Context as _;
use command::accounts::handlers::{Registration, register};
use command::catalog::handlers::{NewProduct, list};
use command::handling::Meta;
use command::orders::handlers::{CheckoutOrder, checkout, set_cart_item};
use command::values::{
    Address, Currency, Description, Email, Label, Password, PaymentToken, PersonName, PriceCents, StockLevel, Title,
};
use events::domain::accounts::Role;
use events::identity::Caller;
use events::{EventStore, LogPosition};
use uuid::Uuid;

use crate::startup::Services;

/// The password of every demo account (documented in README; never use demo data in production).
pub const PASSWORD: &str = "agora-demo";

const SHOPS: [&str; 5] = ["Northwind Home", "Atelier Lumen", "Cedar & Pine", "Volt Electronics", "Trail & Summit"];
const PRODUCTS: usize = 240;

fn value<T>(parsed: Result<T, String>, what: &str) -> anyhow::Result<T> {
    parsed.map_err(|e| anyhow::anyhow!("demo {what} {e}"))
}

async fn account(services: &Services, role: Role, email: &str, name: &str) -> anyhow::Result<Uuid> {
    let registration = Registration {
        email: value(Email::parse(email), "email")?,
        password: value(Password::parse(PASSWORD), "password")?,
        name: value(PersonName::parse(name), "name")?,
        role,
    };
    let accepted = register(&services.ctx, registration, &Meta::new(None, Uuid::now_v7()), None)
        .await
        .map_err(|e| anyhow::anyhow!("demo account {email}: {e}"))?;
    accepted
        .body
        .get("id")
        .and_then(|id| id.as_str())
        .and_then(|id| Uuid::parse_str(id).ok())
        .context("demo account without id")
}

/// Load the demo marketplace if the event store is empty. Returns whether it did.
pub async fn load_if_empty(services: &Services) -> anyhow::Result<bool> {
    if services.store.head().await? != LogPosition::START {
        return Ok(false);
    }
    tracing::info!("the store is empty: loading the demo marketplace (disable with --no-demo)");
    account(services, Role::Admin, "admin@agora.example", "Ada Admin").await?;
    account(services, Role::Carrier, "carrier@agora.example", "Swift Parcel").await?;
    let buyer = account(services, Role::Buyer, "buyer@agora.example", "Bea Buyer").await?;
    let mut vendors = Vec::new();
    for (n, shop) in SHOPS.iter().enumerate() {
        vendors.push(account(services, Role::Vendor, &format!("vendor{}@agora.example", n + 1), shop).await?);
    }

    let mut catalogue = search::catalog::CatalogGenerator::new(2026);
    let mut products = Vec::with_capacity(PRODUCTS);
    for n in 0..PRODUCTS {
        let draft = catalogue.next_product();
        let product = NewProduct {
            title: value(Title::parse(&draft.title), "title")?,
            description: value(Description::parse(&draft.description), "description")?,
            category: value(Label::parse(&draft.category), "category")?,
            brand: value(Label::parse(&draft.brand), "brand")?,
            price: value(PriceCents::parse(draft.price_cents), "price")?,
            currency: value(Currency::parse(&draft.currency), "currency")?,
            stock: value(StockLevel::parse(i64::from(draft.stock)), "stock")?,
        };
        let vendor = vendors[n % vendors.len()];
        let meta = Meta::new(Some(Caller { account_id: vendor, role: Role::Vendor }), Uuid::now_v7());
        let accepted = list(&services.ctx, vendor, product, &meta, None)
            .await
            .map_err(|e| anyhow::anyhow!("demo product: {e}"))?;
        if let Some(id) = accepted.body.get("id").and_then(|id| id.as_str()).and_then(|id| Uuid::parse_str(id).ok()) {
            products.push(id);
        }
    }

    // One order, so that "my orders" has something to show.
    let caller = Caller { account_id: buyer, role: Role::Buyer };
    let meta = Meta::new(Some(caller), Uuid::now_v7());
    for product in products.iter().take(2) {
        set_cart_item(&services.ctx, caller, *product, 1, &meta)
            .await
            .map_err(|e| anyhow::anyhow!("demo cart: {e}"))?;
    }
    let order = CheckoutOrder {
        shipping_address: Address {
            name: "Bea Buyer".into(),
            line1: "12 Rue des Lilas".into(),
            line2: None,
            city: "Lyon".into(),
            postal_code: "69001".into(),
            country: "FR".into(),
        },
        payment_token: value(PaymentToken::parse("tok_visa"), "payment token")?,
    };
    checkout(&services.ctx, caller, order, &meta, None).await.map_err(|e| anyhow::anyhow!("demo checkout: {e}"))?;
    tracing::info!(vendors = vendors.len(), products = products.len(), "demo marketplace loaded");
    Ok(true)
}
