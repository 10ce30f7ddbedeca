//! `accounts`: account profiles (personal data opened with the key vault; "erased account"
//! after erasure) and vendor profiles (display name, listed products).

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use events::RecordedEvent;
use events::domain::accounts::{AccountEvent, Role};
use events::domain::catalog::ProductEvent;
use events::privacy::{KeyVault, Opened, Sealed};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::{ERASED_NAME, stream_uuid};
use crate::Result;
use crate::projection::Projection;

pub struct Accounts {
    vault: KeyVault,
}

impl Accounts {
    pub fn new(vault: KeyVault) -> Self {
        Self { vault }
    }
}

const DDL: &str = "
create table account (
    account_id     uuid primary key,
    role           text not null,
    -- Null once erased.
    email          text,
    name           text not null,
    erased         boolean not null,
    registered_at  timestamptz not null,
    updated_at     timestamptz not null
);
create table vendor (
    vendor_id      uuid primary key,
    display_name   text not null,
    product_count  bigint not null,
    erased         boolean not null,
    updated_at     timestamptz not null
) with (fillfactor = 70);
-- Internal: the vendor of each product, so a delisting (which names only the product) can
-- be counted.
create table vendor_product (
    product_id  uuid primary key,
    vendor_id   uuid not null,
    listed      boolean not null
);
";

const EVENT_TYPES: &[&str] = &[
    "account.registered",
    "account.name_changed",
    "account.email_changed",
    "account.erased",
    "product.listed",
    "product.delisted",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRow {
    pub account_id: Uuid,
    pub role: String,
    pub email: Option<String>,
    pub name: String,
    pub erased: bool,
    pub registered_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorRow {
    pub vendor_id: Uuid,
    pub display_name: String,
    pub product_count: i64,
    pub erased: bool,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VendorProduct {
    pub vendor_id: Uuid,
    pub listed: bool,
}

/// An event of this projection with its personal data opened (`None`: erased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountsEvent {
    Registered { account_id: Uuid, role: Role, email: Option<String>, name: Option<String> },
    NameChanged { account_id: Uuid, name: Option<String> },
    EmailChanged { account_id: Uuid, email: Option<String> },
    Erased { account_id: Uuid },
    ProductListed { product_id: Uuid, vendor_id: Uuid },
    ProductDelisted { product_id: Uuid },
}

/// The pure part.
#[derive(Debug, Default)]
pub struct AccountsChanges {
    pub accounts: HashMap<Uuid, AccountRow>,
    pub changed_accounts: BTreeSet<Uuid>,
    pub vendors: HashMap<Uuid, VendorRow>,
    pub changed_vendors: BTreeSet<Uuid>,
    pub products: HashMap<Uuid, VendorProduct>,
    pub changed_products: BTreeSet<Uuid>,
}

impl AccountsChanges {
    pub fn apply(&mut self, event: &AccountsEvent, at: DateTime<Utc>) {
        match event {
            AccountsEvent::Registered { account_id, role, email, name } => {
                let name = name.clone().unwrap_or_else(|| ERASED_NAME.to_owned());
                self.accounts.insert(
                    *account_id,
                    AccountRow {
                        account_id: *account_id,
                        role: role.as_str().to_owned(),
                        email: email.clone(),
                        name: name.clone(),
                        erased: false,
                        registered_at: at,
                        updated_at: at,
                    },
                );
                self.changed_accounts.insert(*account_id);
                if *role == Role::Vendor {
                    let vendor = self.vendor(*account_id, at);
                    vendor.display_name = name;
                }
            }
            AccountsEvent::NameChanged { account_id, name } => {
                let name = name.clone().unwrap_or_else(|| ERASED_NAME.to_owned());
                if let Some(account) = self.accounts.get_mut(account_id).filter(|a| !a.erased) {
                    account.name = name.clone();
                    account.updated_at = at;
                    self.changed_accounts.insert(*account_id);
                    if let Some(vendor) = self.vendors.get_mut(account_id) {
                        vendor.display_name = name;
                        vendor.updated_at = at;
                        self.changed_vendors.insert(*account_id);
                    }
                }
            }
            AccountsEvent::EmailChanged { account_id, email } => {
                if let Some(account) = self.accounts.get_mut(account_id).filter(|a| !a.erased) {
                    account.email = email.clone();
                    account.updated_at = at;
                    self.changed_accounts.insert(*account_id);
                }
            }
            AccountsEvent::Erased { account_id } => {
                if let Some(account) = self.accounts.get_mut(account_id) {
                    account.email = None;
                    account.name = ERASED_NAME.to_owned();
                    account.erased = true;
                    account.updated_at = at;
                    self.changed_accounts.insert(*account_id);
                }
                if let Some(vendor) = self.vendors.get_mut(account_id) {
                    vendor.display_name = ERASED_NAME.to_owned();
                    vendor.erased = true;
                    vendor.updated_at = at;
                    self.changed_vendors.insert(*account_id);
                }
            }
            AccountsEvent::ProductListed { product_id, vendor_id } => {
                let before = self.products.insert(*product_id, VendorProduct { vendor_id: *vendor_id, listed: true });
                self.changed_products.insert(*product_id);
                if let Some(VendorProduct { vendor_id: old, listed: true }) = before {
                    self.vendor(old, at).product_count -= 1;
                }
                self.vendor(*vendor_id, at).product_count += 1;
            }
            AccountsEvent::ProductDelisted { product_id } => {
                if let Some(product) = self.products.get_mut(product_id).filter(|p| p.listed) {
                    product.listed = false;
                    let vendor_id = product.vendor_id;
                    self.changed_products.insert(*product_id);
                    self.vendor(vendor_id, at).product_count -= 1;
                }
            }
        }
    }

    /// The vendor row (created when missing), marked changed.
    fn vendor(&mut self, vendor_id: Uuid, at: DateTime<Utc>) -> &mut VendorRow {
        self.changed_vendors.insert(vendor_id);
        let vendor = self.vendors.entry(vendor_id).or_insert_with(|| VendorRow {
            vendor_id,
            display_name: String::new(),
            product_count: 0,
            erased: false,
            updated_at: at,
        });
        vendor.updated_at = at;
        vendor
    }
}

impl Accounts {
    async fn open(&self, sealed: &Sealed) -> Result<Option<String>> {
        Ok(match self.vault.open(sealed).await? {
            Opened::Value(value) => Some(value),
            Opened::Erased => None,
        })
    }

    /// Decode a batch and open its personal data (the keys of the batch in one query).
    async fn decode(&self, events: &[RecordedEvent]) -> Result<Vec<(AccountsEvent, DateTime<Utc>)>> {
        let mut raw = Vec::with_capacity(events.len());
        let mut keys = BTreeSet::new();
        for event in events {
            if event.event_type.starts_with("product.") {
                raw.push((event, None, Some(event.decode::<ProductEvent>()?)));
            } else {
                let decoded = event.decode::<AccountEvent>()?;
                match &decoded {
                    AccountEvent::Registered(r) => {
                        keys.insert(r.email.key_id);
                        keys.insert(r.name.key_id);
                    }
                    AccountEvent::NameChanged(c) => {
                        keys.insert(c.name.key_id);
                    }
                    AccountEvent::EmailChanged(c) => {
                        keys.insert(c.email.key_id);
                    }
                    _ => {}
                }
                raw.push((event, Some(decoded), None));
            }
        }
        if !keys.is_empty() {
            self.vault.preload(&keys.into_iter().collect::<Vec<_>>()).await?;
        }
        let mut decoded = Vec::with_capacity(raw.len());
        for (event, account, product) in raw {
            let opened = match (account, product) {
                (Some(AccountEvent::Registered(r)), _) => AccountsEvent::Registered {
                    account_id: r.account_id,
                    role: r.role,
                    email: self.open(&r.email).await?,
                    name: self.open(&r.name).await?,
                },
                (Some(AccountEvent::NameChanged(c)), _) => {
                    AccountsEvent::NameChanged { account_id: stream_uuid(event)?, name: self.open(&c.name).await? }
                }
                (Some(AccountEvent::EmailChanged(c)), _) => {
                    AccountsEvent::EmailChanged { account_id: stream_uuid(event)?, email: self.open(&c.email).await? }
                }
                (Some(AccountEvent::Erased(e)), _) => AccountsEvent::Erased { account_id: e.account_id },
                (Some(AccountEvent::PasswordChanged(_)), _) => continue,
                (None, Some(ProductEvent::Listed(l))) => {
                    AccountsEvent::ProductListed { product_id: l.product_id, vendor_id: l.vendor_id }
                }
                (None, Some(ProductEvent::Delisted(d))) => AccountsEvent::ProductDelisted { product_id: d.product_id },
                _ => continue,
            };
            decoded.push((opened, event.recorded_at));
        }
        Ok(decoded)
    }
}

#[async_trait]
impl Projection for Accounts {
    fn name(&self) -> &'static str {
        "accounts"
    }

    fn version(&self) -> u32 {
        1
    }

    fn ddl(&self) -> &'static str {
        DDL
    }

    fn tables(&self) -> &'static [&'static str] {
        &["account", "vendor"]
    }

    fn event_types(&self) -> &'static [&'static str] {
        EVENT_TYPES
    }

    async fn apply(&self, conn: &mut PgConnection, events: &[RecordedEvent]) -> Result<()> {
        let decoded = self.decode(events).await?;
        let mut account_ids = BTreeSet::new();
        let mut product_ids = BTreeSet::new();
        let mut vendor_ids = BTreeSet::new();
        for (event, _) in &decoded {
            match event {
                AccountsEvent::Registered { account_id, .. }
                | AccountsEvent::NameChanged { account_id, .. }
                | AccountsEvent::EmailChanged { account_id, .. }
                | AccountsEvent::Erased { account_id } => {
                    account_ids.insert(*account_id);
                }
                AccountsEvent::ProductListed { product_id, vendor_id } => {
                    product_ids.insert(*product_id);
                    vendor_ids.insert(*vendor_id);
                }
                AccountsEvent::ProductDelisted { product_id } => {
                    product_ids.insert(*product_id);
                }
            }
        }
        let account_ids: Vec<Uuid> = account_ids.into_iter().collect();
        let products = sql::load_products(conn, &product_ids.into_iter().collect::<Vec<_>>()).await?;
        vendor_ids.extend(products.values().map(|p| p.vendor_id));
        vendor_ids.extend(account_ids.iter().copied());
        let mut changes = AccountsChanges {
            accounts: sql::load_accounts(conn, &account_ids).await?,
            vendors: sql::load_vendors(conn, &vendor_ids.into_iter().collect::<Vec<_>>()).await?,
            products,
            ..Default::default()
        };
        for (event, at) in &decoded {
            changes.apply(event, *at);
        }
        sql::save(conn, &changes).await?;
        for (event, _) in &decoded {
            if let AccountsEvent::Erased { account_id } = event {
                // The key is gone (or going): never open this account's data from the cache.
                self.vault.forget(*account_id);
            }
        }
        Ok(())
    }
}

mod sql {
    use super::*;

    fn account(row: PgRow) -> sqlx::Result<AccountRow> {
        Ok(AccountRow {
            account_id: row.try_get(0)?,
            role: row.try_get(1)?,
            email: row.try_get(2)?,
            name: row.try_get(3)?,
            erased: row.try_get(4)?,
            registered_at: row.try_get(5)?,
            updated_at: row.try_get(6)?,
        })
    }

    pub async fn load_accounts(conn: &mut PgConnection, ids: &[Uuid]) -> Result<HashMap<Uuid, AccountRow>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let rows = sqlx::query(
            "select account_id, role, email, name, erased, registered_at, updated_at \
               from account where account_id = any($1)",
        )
        .bind(ids)
        .try_map(account)
        .fetch_all(&mut *conn)
        .await?;
        Ok(rows.into_iter().map(|a| (a.account_id, a)).collect())
    }

    pub async fn load_vendors(conn: &mut PgConnection, ids: &[Uuid]) -> Result<HashMap<Uuid, VendorRow>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let rows: Vec<(Uuid, String, i64, bool, DateTime<Utc>)> = sqlx::query_as(
            "select vendor_id, display_name, product_count, erased, updated_at from vendor where vendor_id = any($1)",
        )
        .bind(ids)
        .fetch_all(&mut *conn)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(vendor_id, display_name, product_count, erased, updated_at)| {
                (vendor_id, VendorRow { vendor_id, display_name, product_count, erased, updated_at })
            })
            .collect())
    }

    pub async fn load_products(conn: &mut PgConnection, ids: &[Uuid]) -> Result<HashMap<Uuid, VendorProduct>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let rows: Vec<(Uuid, Uuid, bool)> =
            sqlx::query_as("select product_id, vendor_id, listed from vendor_product where product_id = any($1)")
                .bind(ids)
                .fetch_all(&mut *conn)
                .await?;
        Ok(rows.into_iter().map(|(p, vendor_id, listed)| (p, VendorProduct { vendor_id, listed })).collect())
    }

    pub async fn save(conn: &mut PgConnection, changes: &AccountsChanges) -> Result<()> {
        let accounts: Vec<&AccountRow> =
            changes.changed_accounts.iter().filter_map(|id| changes.accounts.get(id)).collect();
        if !accounts.is_empty() {
            sqlx::query(
                "insert into account (account_id, role, email, name, erased, registered_at, updated_at) \
                 select * from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bool[], \
                                      $6::timestamptz[], $7::timestamptz[]) \
                 on conflict (account_id) do update set role = excluded.role, email = excluded.email, \
                    name = excluded.name, erased = excluded.erased, registered_at = excluded.registered_at, \
                    updated_at = excluded.updated_at",
            )
            .bind(accounts.iter().map(|a| a.account_id).collect::<Vec<_>>())
            .bind(accounts.iter().map(|a| a.role.as_str()).collect::<Vec<_>>())
            .bind(accounts.iter().map(|a| a.email.as_deref()).collect::<Vec<_>>())
            .bind(accounts.iter().map(|a| a.name.as_str()).collect::<Vec<_>>())
            .bind(accounts.iter().map(|a| a.erased).collect::<Vec<_>>())
            .bind(accounts.iter().map(|a| a.registered_at).collect::<Vec<_>>())
            .bind(accounts.iter().map(|a| a.updated_at).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
        }
        let vendors: Vec<&VendorRow> =
            changes.changed_vendors.iter().filter_map(|id| changes.vendors.get(id)).collect();
        if !vendors.is_empty() {
            sqlx::query(
                "insert into vendor (vendor_id, display_name, product_count, erased, updated_at) \
                 select * from unnest($1::uuid[], $2::text[], $3::bigint[], $4::bool[], $5::timestamptz[]) \
                 on conflict (vendor_id) do update set display_name = excluded.display_name, \
                    product_count = excluded.product_count, erased = excluded.erased, updated_at = excluded.updated_at",
            )
            .bind(vendors.iter().map(|v| v.vendor_id).collect::<Vec<_>>())
            .bind(vendors.iter().map(|v| v.display_name.as_str()).collect::<Vec<_>>())
            .bind(vendors.iter().map(|v| v.product_count).collect::<Vec<_>>())
            .bind(vendors.iter().map(|v| v.erased).collect::<Vec<_>>())
            .bind(vendors.iter().map(|v| v.updated_at).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
        }
        let products: Vec<(Uuid, VendorProduct)> =
            changes.changed_products.iter().filter_map(|id| changes.products.get(id).map(|p| (*id, *p))).collect();
        if !products.is_empty() {
            sqlx::query(
                "insert into vendor_product (product_id, vendor_id, listed) \
                 select * from unnest($1::uuid[], $2::uuid[], $3::bool[]) \
                 on conflict (product_id) do update set vendor_id = excluded.vendor_id, listed = excluded.listed",
            )
            .bind(products.iter().map(|(id, _)| *id).collect::<Vec<_>>())
            .bind(products.iter().map(|(_, p)| p.vendor_id).collect::<Vec<_>>())
            .bind(products.iter().map(|(_, p)| p.listed).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read_models::testing::at;

    fn given(events: &[AccountsEvent]) -> AccountsChanges {
        let mut changes = AccountsChanges::default();
        for (i, event) in events.iter().enumerate() {
            changes.apply(event, at(i as u64 + 1));
        }
        changes
    }

    #[test]
    fn a_vendor_registers_lists_and_delists_products() {
        let (v, p1, p2) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let changes = given(&[
            AccountsEvent::Registered {
                account_id: v,
                role: Role::Vendor,
                email: Some("shop@example.com".into()),
                name: Some("Shop".into()),
            },
            AccountsEvent::ProductListed { product_id: p1, vendor_id: v },
            AccountsEvent::ProductListed { product_id: p2, vendor_id: v },
            AccountsEvent::ProductDelisted { product_id: p1 },
            AccountsEvent::ProductDelisted { product_id: p1 },
            AccountsEvent::NameChanged { account_id: v, name: Some("Shop & Co".into()) },
        ]);
        let account = &changes.accounts[&v];
        assert_eq!(
            (account.role.as_str(), account.name.as_str(), account.email.as_deref()),
            ("vendor", "Shop & Co", Some("shop@example.com"))
        );
        assert_eq!(account.registered_at, at(1));
        let vendor = &changes.vendors[&v];
        assert_eq!(
            (vendor.display_name.as_str(), vendor.product_count),
            ("Shop & Co", 1),
            "delisting twice counts once"
        );
    }

    #[test]
    fn an_erased_account_shows_as_erased_whatever_came_before() {
        let b = Uuid::now_v7();
        let changes = given(&[
            AccountsEvent::Registered {
                account_id: b,
                role: Role::Buyer,
                email: Some("b@example.com".into()),
                name: Some("Bea".into()),
            },
            AccountsEvent::Erased { account_id: b },
            AccountsEvent::NameChanged { account_id: b, name: Some("late".into()) },
        ]);
        let expected = AccountRow {
            account_id: b,
            role: "buyer".into(),
            email: None,
            name: ERASED_NAME.into(),
            erased: true,
            registered_at: at(1),
            updated_at: at(2),
        };
        assert_eq!(changes.accounts[&b], expected);
        assert!(!changes.vendors.contains_key(&b), "a buyer has no vendor profile");

        // Rebuilt after the key was destroyed: nothing opens, same final row.
        let rebuilt = given(&[
            AccountsEvent::Registered { account_id: b, role: Role::Buyer, email: None, name: None },
            AccountsEvent::Erased { account_id: b },
        ]);
        assert_eq!(rebuilt.accounts[&b], expected);
    }
}
