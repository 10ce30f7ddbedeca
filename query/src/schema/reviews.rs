//! Reviews: a product's approved reviews (through `Product.reviews`) and the admins'
//! moderation queue of pending reviews.

use async_graphql::{Context, Enum, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::catalog::Product;
use super::{request, shared};
use crate::consistency::Source;
use crate::error::Error;
use crate::loaders::ProductKey;
use crate::pagination::{CursorKind, Keyset, PageInfo, connection_cost, page_size, split_page};
use crate::read_models::Page;
use crate::read_models::reviews::{self, ReviewRow};

#[derive(Default)]
pub struct ReviewsQuery;

#[Object]
impl ReviewsQuery {
    /// Reviews waiting for moderation, oldest first (admins only).
    #[graphql(complexity = "connection_cost(first, 20, child_complexity)")]
    async fn moderation_queue(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<ReviewConnection> {
        let request = request(ctx)?;
        request.viewer.require_admin()?;
        let size = page_size(first, 20)?;
        let after = Keyset::after(CursorKind::ModerationQueue, after.as_deref())?;
        request.consistency.ready(Source::Reviews).await?;
        let rows = reviews::pending_page(shared(ctx)?.read.pool(), Page::of(size, after)).await.map_err(Error::from)?;
        let (rows, more) = split_page(rows, size);
        Ok(ReviewConnection::new(rows, more, CursorKind::ModerationQueue, None))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum ReviewStatus {
    Pending,
    Approved,
    Rejected,
}

pub struct ReviewConnection {
    edges: Vec<ReviewEdge>,
    page_info: PageInfo,
    /// Known without a query (a product's approved reviews); else counted when asked.
    total: Option<i64>,
}

impl ReviewConnection {
    pub fn new(rows: Vec<ReviewRow>, more: bool, kind: CursorKind, total: Option<i64>) -> Self {
        // The moderation queue is sorted oldest first, product reviews newest first: the
        // cursor is the same key either way, and its kind keeps the lists apart.
        let edges: Vec<ReviewEdge> = rows
            .into_iter()
            .map(|row| ReviewEdge {
                cursor: Keyset::new(row.submitted_at, row.review_id).encode(kind),
                node: Review(row),
            })
            .collect();
        let cursors: Vec<String> = edges.iter().map(|e| e.cursor.clone()).collect();
        Self { page_info: PageInfo::new(&cursors, more), edges, total }
    }
}

#[Object]
impl ReviewConnection {
    async fn edges(&self) -> &[ReviewEdge] {
        &self.edges
    }

    async fn page_info(&self) -> &PageInfo {
        &self.page_info
    }

    async fn total_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        match self.total {
            Some(total) => Ok(total),
            None => Ok(reviews::pending_count(shared(ctx)?.read.pool()).await.map_err(Error::from)?),
        }
    }
}

#[derive(SimpleObject)]
pub struct ReviewEdge {
    pub cursor: String,
    pub node: Review,
}

pub struct Review(ReviewRow);

#[Object]
impl Review {
    async fn id(&self) -> ID {
        ID(self.0.review_id.to_string())
    }

    /// 1 to 5.
    async fn rating(&self) -> i32 {
        i32::from(self.0.rating)
    }

    async fn text(&self) -> &str {
        &self.0.text
    }

    async fn status(&self) -> ReviewStatus {
        match self.0.status.as_str() {
            "approved" => ReviewStatus::Approved,
            "rejected" => ReviewStatus::Rejected,
            _ => ReviewStatus::Pending,
        }
    }

    async fn submitted_at(&self) -> DateTime<Utc> {
        self.0.submitted_at
    }

    async fn moderated_at(&self) -> Option<DateTime<Utc>> {
        self.0.moderated_at
    }

    async fn product(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Product>> {
        Ok(request(ctx)?.loader.load_one(ProductKey(self.0.product_id)).await?.map(Product::from))
    }
}
