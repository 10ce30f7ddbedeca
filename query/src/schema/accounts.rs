//! Accounts: the caller's own account (`me`) with its orders, and vendor profiles with their
//! products and, for the vendor itself, its sales figures.

use async_graphql::{Context, Enum, ID, Object, SimpleObject};
use events::domain::accounts::Role as AccountRole;
use uuid::Uuid;

use super::catalog::{ProductConnection, vendor_products};
use super::orders::{OrderConnection, orders_of};
use super::{request, shared};
use crate::consistency::Source;
use crate::error::Error;
use crate::loaders::{AccountKey, VendorKey};
use crate::pagination::{connection_cost, parse_id};
use crate::read_models::accounts::{AccountRow, VendorRow};
use crate::read_models::orders::{self, OrderScope};

#[derive(Default)]
pub struct AccountsQuery;

#[Object]
impl AccountsQuery {
    /// The caller's account (needs a token).
    #[graphql(complexity = "5 + child_complexity")]
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Account>> {
        let request = request(ctx)?;
        let caller = request.viewer.caller()?;
        let row = request.loader.load_one(AccountKey(caller.account_id)).await?;
        // Not yet projected, or erased: nobody to show.
        Ok(row.filter(|r| !r.erased).map(|row| Account { row, role: caller.role }))
    }

    /// A vendor's public profile.
    #[graphql(complexity = "5 + child_complexity")]
    async fn vendor(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Vendor>> {
        let id = parse_id("vendor", &id)?;
        match request(ctx)?.loader.load_one(VendorKey(id)).await? {
            Some(row) => Ok(Some(Vendor::from(row))),
            None => Err(Error::NotFound("vendor").into()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum Role {
    Buyer,
    Vendor,
    Carrier,
    Admin,
}

impl From<AccountRole> for Role {
    fn from(role: AccountRole) -> Self {
        match role {
            AccountRole::Buyer => Role::Buyer,
            AccountRole::Vendor => Role::Vendor,
            AccountRole::Carrier => Role::Carrier,
            AccountRole::Admin => Role::Admin,
        }
    }
}

/// The caller's own account.
pub struct Account {
    row: AccountRow,
    role: AccountRole,
}

#[Object]
impl Account {
    async fn id(&self) -> ID {
        ID(self.row.account_id.to_string())
    }

    async fn email(&self) -> &str {
        self.row.email.as_deref().unwrap_or_default()
    }

    async fn name(&self) -> &str {
        &self.row.name
    }

    async fn role(&self) -> Role {
        Role::from(AccountRole::parse(&self.row.role).unwrap_or(self.role))
    }

    async fn registered_at(&self) -> chrono::DateTime<chrono::Utc> {
        self.row.registered_at
    }

    /// A buyer's orders; for a vendor, the orders with its products (its lines only); for
    /// an admin, every order. Most recent first.
    #[graphql(complexity = "connection_cost(first, 20, child_complexity)")]
    async fn orders(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<OrderConnection> {
        let id = self.row.account_id;
        let scope = match self.role {
            AccountRole::Buyer => Some(OrderScope::Buyer(id)),
            AccountRole::Vendor => Some(OrderScope::Vendor(id)),
            AccountRole::Admin => Some(OrderScope::All),
            AccountRole::Carrier => None,
        };
        orders_of(ctx, scope, first, after).await
    }
}

/// A vendor's public profile.
pub struct Vendor {
    id: Uuid,
    name: String,
    product_count: i64,
}

impl Vendor {
    /// A vendor the accounts read model does not know (yet).
    pub fn unknown(id: Uuid) -> Self {
        Self { id, name: "unknown vendor".into(), product_count: 0 }
    }
}

impl From<VendorRow> for Vendor {
    fn from(row: VendorRow) -> Self {
        Self { id: row.vendor_id, name: row.display_name, product_count: row.product_count }
    }
}

#[Object]
impl Vendor {
    async fn id(&self) -> ID {
        ID(self.id.to_string())
    }

    async fn name(&self) -> &str {
        &self.name
    }

    /// Listed products.
    async fn product_count(&self) -> i64 {
        self.product_count
    }

    /// Listed products, newest first.
    #[graphql(complexity = "connection_cost(first, 20, child_complexity)")]
    async fn products(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<ProductConnection> {
        vendor_products(ctx, self.id, first, after, self.product_count).await
    }

    /// Sales figures per currency: confirmed orders, units and revenue (cancelled and
    /// refunded orders taken out). Only the vendor itself and admins may see them.
    #[graphql(complexity = "5 + child_complexity")]
    async fn sales(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Vec<VendorSales>>> {
        let request = request(ctx)?;
        request.viewer.caller()?;
        if !request.viewer.is_self_or_admin(self.id) {
            return Err(Error::Forbidden("only the vendor itself may see its sales figures".into()).into());
        }
        request.consistency.ready(Source::Orders).await?;
        let rows = orders::vendor_sales(shared(ctx)?.read.pool(), self.id).await.map_err(Error::from)?;
        Ok(Some(
            rows.into_iter()
                .map(|r| VendorSales {
                    currency: r.currency,
                    orders: r.orders,
                    units: r.units,
                    revenue_cents: r.revenue_cents,
                })
                .collect(),
        ))
    }
}

#[derive(SimpleObject)]
pub struct VendorSales {
    pub currency: String,
    /// Confirmed orders with at least one of the vendor's products.
    pub orders: i64,
    pub units: i64,
    pub revenue_cents: i64,
}
