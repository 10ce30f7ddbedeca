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
use events::LogPosition;
use events::domain::accounts::Role;
use events::identity::Caller;
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
    register_account(services, role, email, name, PASSWORD).await
}

/// Register an account through the command path; its id.
pub async fn register_account(
    services: &Services,
    role: Role,
    email: &str,
    name: &str,
    password: &str,
) -> anyhow::Result<Uuid> {
    let registration = Registration {
        email: value(Email::parse(email), "email")?,
        password: value(Password::parse(password), "password")?,
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
        products.push(list_product(services, vendors[n % vendors.len()], &catalogue.next_product()).await?);
    }

    // One order, so that "my orders" has something to show.
    place_order(services, buyer, "Bea Buyer", &[(products[0], 1), (products[1], 1)])
        .await
        .map_err(|e| anyhow::anyhow!("demo checkout: {e}"))?;
    tracing::info!(vendors = vendors.len(), products = products.len(), "demo marketplace loaded");
    Ok(true)
}

/// List a generated product for `vendor` through the command path; its id.
pub async fn list_product(
    services: &Services,
    vendor: Uuid,
    draft: &search::catalog::ProductDraft,
) -> anyhow::Result<Uuid> {
    let product = NewProduct {
        title: value(Title::parse(&draft.title), "title")?,
        description: value(Description::parse(&draft.description), "description")?,
        category: value(Label::parse(&draft.category), "category")?,
        brand: value(Label::parse(&draft.brand), "brand")?,
        price: value(PriceCents::parse(draft.price_cents), "price")?,
        currency: value(Currency::parse(&draft.currency), "currency")?,
        stock: value(StockLevel::parse(i64::from(draft.stock)), "stock")?,
    };
    let meta = Meta::new(Some(Caller { account_id: vendor, role: Role::Vendor }), Uuid::now_v7());
    let accepted =
        list(&services.ctx, vendor, product, &meta, None).await.map_err(|e| anyhow::anyhow!("product: {e}"))?;
    accepted
        .body
        .get("id")
        .and_then(|id| id.as_str())
        .and_then(|id| Uuid::parse_str(id).ok())
        .context("listing returned no id")
}

/// Fill `buyer`'s cart and check out with the sandbox card that is always authorised.
pub async fn place_order(
    services: &Services,
    buyer: Uuid,
    name: &str,
    lines: &[(Uuid, u32)],
) -> Result<(), command::CommandError> {
    let caller = Caller { account_id: buyer, role: Role::Buyer };
    let meta = Meta::new(Some(caller), Uuid::now_v7());
    for (product, quantity) in lines {
        set_cart_item(&services.ctx, caller, *product, *quantity, &meta).await?;
    }
    let order = CheckoutOrder {
        shipping_address: Address {
            name: name.into(),
            line1: "12 Rue des Lilas".into(),
            line2: None,
            city: "Lyon".into(),
            postal_code: "69001".into(),
            country: "FR".into(),
        },
        payment_token: PaymentToken::parse("tok_visa").map_err(command::CommandError::internal)?,
    };
    checkout(&services.ctx, caller, order, &meta, None).await.map(|_| ())
}
