//! Catalogue: product search (from the search index), products by id (read model
//! `product`), categories with counts.

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use search::{ProductHit, ProductQuery, SearchResult, SortOrder};
use uuid::Uuid;

use super::accounts::Vendor;
use super::reviews::ReviewConnection;
use super::{request, shared};
use crate::consistency::Source;
use crate::error::Error;
use crate::loaders::{ProductKey, ReviewPageKey, VendorKey};
use crate::pagination::{CursorKind, Keyset, PageInfo, connection_cost, page_size, parse_id, split_page};
use crate::read_models::catalog::{self, ProductRow};

/// Search text beyond this many bytes is ignored (the search uses the first words anyway).
const MAX_TEXT_BYTES: usize = 1_000;
/// Values of a list filter (categories, brands) at most.
const MAX_FILTER_VALUES: usize = 100;
/// Reviews per page unless asked otherwise.
const DEFAULT_REVIEWS: usize = 10;

#[derive(Default)]
pub struct CatalogQuery;

#[Object]
impl CatalogQuery {
    /// Search the catalogue: free text (never query syntax), filters, sort, facet counts and
    /// highlights; Relay pagination with `first` (at most 100) and `after`.
    #[graphql(complexity = "20 + connection_cost(first, 20, child_complexity)")]
    async fn products(
        &self,
        ctx: &Context<'_>,
        query: Option<String>,
        filter: Option<ProductFilter>,
        #[graphql(default_with = "Some(ProductSort::Relevance)")] sort: Option<ProductSort>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<ProductSearchResult> {
        let request = request(ctx)?;
        let size = page_size(first, 20)?;
        let sort = sort.unwrap_or(ProductSort::Relevance);
        let filter = filter.map(search::ProductFilter::try_from).transpose()?.unwrap_or_default();
        let mut text = query.unwrap_or_default();
        if text.len() > MAX_TEXT_BYTES {
            let mut end = MAX_TEXT_BYTES;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        // Facets cost a pass over every match: only when asked for.
        let facets = ctx.look_ahead().field("facets").exists();
        request.consistency.ready(Source::SearchIndex).await?;
        let query = ProductQuery { text, filter, sort: sort.into(), first: size, after, facets };
        let result = shared(ctx)?.index.search_async(query).await.map_err(Error::from)?;
        Ok(ProductSearchResult::new(result))
    }

    /// A listed product.
    #[graphql(complexity = "5 + child_complexity")]
    async fn product(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Product>> {
        let id = parse_id("product", &id)?;
        let row = request(ctx)?.loader.load_one(ProductKey(id)).await?;
        match row {
            Some(row) if row.listed => Ok(Some(Product::from(row))),
            _ => Err(Error::NotFound("product").into()),
        }
    }

    /// Categories with listed products, by name.
    #[graphql(complexity = "5 + child_complexity")]
    async fn categories(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<CategoryCount>> {
        let request = request(ctx)?;
        request.consistency.ready(Source::Catalog).await?;
        let rows = catalog::categories(shared(ctx)?.read.pool()).await.map_err(Error::from)?;
        Ok(rows.into_iter().map(|(name, product_count)| CategoryCount { name, product_count }).collect())
    }
}

/// Filters of a product search; every one given must hold.
#[derive(Debug, Clone, Default, InputObject)]
pub struct ProductFilter {
    /// Any of these categories (exact names).
    pub categories: Option<Vec<String>>,
    /// Any of these brands (exact names).
    pub brands: Option<Vec<String>>,
    pub vendor_id: Option<async_graphql::ID>,
    /// Inclusive bounds, in cents.
    pub price_min_cents: Option<i64>,
    pub price_max_cents: Option<i64>,
    pub in_stock: Option<bool>,
    /// Average approved rating at least this (0 to 5).
    pub min_rating: Option<f64>,
}

impl TryFrom<ProductFilter> for search::ProductFilter {
    type Error = Error;

    fn try_from(filter: ProductFilter) -> Result<Self, Error> {
        let list = |name: &str, values: Option<Vec<String>>| -> Result<Vec<String>, Error> {
            let values = values.unwrap_or_default();
            if values.len() > MAX_FILTER_VALUES {
                return Err(Error::bad_input(format!("filter.{name} takes at most {MAX_FILTER_VALUES} values")));
            }
            Ok(values)
        };
        if let Some(rating) = filter.min_rating
            && !(0.0..=5.0).contains(&rating)
        {
            return Err(Error::bad_input(format!("filter.minRating must be between 0 and 5 (got {rating})")));
        }
        if let (Some(min), Some(max)) = (filter.price_min_cents, filter.price_max_cents)
            && min > max
        {
            return Err(Error::bad_input(format!(
                "filter.priceMinCents ({min}) is above filter.priceMaxCents ({max})"
            )));
        }
        Ok(search::ProductFilter {
            categories: list("categories", filter.categories)?,
            brands: list("brands", filter.brands)?,
            vendor_id: filter.vendor_id.map(|id| parse_id("vendor", &id)).transpose()?,
            price_min_cents: filter.price_min_cents,
            price_max_cents: filter.price_max_cents,
            in_stock: filter.in_stock,
            min_rating: filter.min_rating,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum ProductSort {
    Relevance,
    PriceAsc,
    PriceDesc,
    Newest,
    Rating,
}

impl From<ProductSort> for SortOrder {
    fn from(sort: ProductSort) -> Self {
        match sort {
            ProductSort::Relevance => SortOrder::Relevance,
            ProductSort::PriceAsc => SortOrder::PriceAsc,
            ProductSort::PriceDesc => SortOrder::PriceDesc,
            ProductSort::Newest => SortOrder::Newest,
            ProductSort::Rating => SortOrder::Rating,
        }
    }
}

/// One page of search results.
pub struct ProductSearchResult {
    result: SearchResult,
}

impl ProductSearchResult {
    fn new(result: SearchResult) -> Self {
        Self { result }
    }
}

#[Object]
impl ProductSearchResult {
    async fn edges(&self) -> Vec<ProductEdge> {
        self.result.hits.iter().map(ProductEdge::from_hit).collect()
    }

    async fn page_info(&self) -> PageInfo {
        let cursors: Vec<String> = self.result.hits.iter().map(|h| h.cursor.clone()).collect();
        PageInfo::new(&cursors, self.result.next_cursor.is_some())
    }

    /// Products matching the query and filters, over all pages.
    async fn total_count(&self) -> i64 {
        i64::try_from(self.result.total).unwrap_or(i64::MAX)
    }

    /// Counts over every matching product.
    async fn facets(&self) -> Facets {
        let facets = &self.result.facets;
        let count = |c: u64| i64::try_from(c).unwrap_or(i64::MAX);
        Facets {
            categories: facets
                .categories
                .iter()
                .map(|f| FacetCount { value: f.value.clone(), count: count(f.count) })
                .collect(),
            brands: facets
                .brands
                .iter()
                .map(|f| FacetCount { value: f.value.clone(), count: count(f.count) })
                .collect(),
            price_buckets: facets
                .price_buckets
                .iter()
                .map(|b| PriceBucket { min_cents: b.min_cents, max_cents: b.max_cents, count: count(b.count) })
                .collect(),
        }
    }
}

#[derive(SimpleObject)]
pub struct ProductEdge {
    pub cursor: String,
    pub node: Product,
    /// Where the words of the query matched (empty outside searches).
    pub highlights: Vec<Highlight>,
}

impl ProductEdge {
    fn from_hit(hit: &ProductHit) -> Self {
        let mut highlights = Vec::new();
        for (field, snippet) in [("title", &hit.title_snippet), ("description", &hit.description_snippet)] {
            if !snippet.highlights.is_empty() {
                highlights.push(Highlight {
                    field: field.to_owned(),
                    text: snippet.text.clone(),
                    html: snippet.to_html(),
                    matches: snippet.highlighted().into_iter().map(str::to_owned).collect(),
                });
            }
        }
        Self { cursor: hit.cursor.clone(), node: Product::from(hit), highlights }
    }
}

/// A highlighted snippet of one field of a product.
#[derive(SimpleObject)]
pub struct Highlight {
    /// `title` or `description`.
    pub field: String,
    /// The snippet as plain text.
    pub text: String,
    /// The snippet as HTML, matches in `<mark>`, everything else escaped.
    pub html: String,
    /// The matched pieces of the text.
    pub matches: Vec<String>,
}

#[derive(SimpleObject)]
pub struct Facets {
    /// Every category with matches, most matches first.
    pub categories: Vec<FacetCount>,
    /// The brands with most matches.
    pub brands: Vec<FacetCount>,
    pub price_buckets: Vec<PriceBucket>,
}

#[derive(SimpleObject)]
pub struct FacetCount {
    pub value: String,
    pub count: i64,
}

#[derive(SimpleObject)]
pub struct PriceBucket {
    pub min_cents: i64,
    /// Exclusive; null for the last bucket.
    pub max_cents: Option<i64>,
    pub count: i64,
}

#[derive(SimpleObject)]
pub struct CategoryCount {
    pub name: String,
    pub product_count: i64,
}

#[derive(SimpleObject)]
pub struct Rating {
    /// Average of approved reviews; null while there is none.
    pub average: Option<f64>,
    /// Approved reviews.
    pub count: i64,
}

/// A product, from a search hit or from the read model: the same fields either way.
#[derive(Debug, Clone)]
pub struct Product {
    pub id: Uuid,
    pub vendor_id: Uuid,
    pub title: String,
    pub description: String,
    pub category: String,
    pub brand: String,
    pub price_cents: i64,
    pub currency: String,
    pub stock: i64,
    pub in_stock: bool,
    pub listed: bool,
    pub rating_average: Option<f64>,
    pub rating_count: i64,
    pub listed_at: DateTime<Utc>,
}

impl From<&ProductHit> for Product {
    fn from(hit: &ProductHit) -> Self {
        let rating_count = i64::try_from(hit.rating_count).unwrap_or(i64::MAX);
        Self {
            id: hit.product_id,
            vendor_id: hit.vendor_id,
            title: hit.title.clone(),
            description: hit.description.clone(),
            category: hit.category.clone(),
            brand: hit.brand.clone(),
            price_cents: hit.price_cents,
            currency: hit.currency.clone(),
            stock: i64::from(hit.stock),
            in_stock: hit.in_stock,
            listed: true,
            rating_average: (rating_count > 0).then_some(hit.rating),
            rating_count,
            listed_at: hit.created_at,
        }
    }
}

impl From<ProductRow> for Product {
    fn from(row: ProductRow) -> Self {
        Self {
            id: row.product_id,
            vendor_id: row.vendor_id,
            title: row.title,
            description: row.description,
            category: row.category,
            brand: row.brand,
            price_cents: row.price_cents,
            currency: row.currency,
            stock: row.stock,
            in_stock: row.in_stock,
            listed: row.listed,
            rating_average: row.rating_avg,
            rating_count: row.rating_count,
            listed_at: row.created_at,
        }
    }
}

#[Object]
impl Product {
    async fn id(&self) -> ID {
        ID(self.id.to_string())
    }

    async fn title(&self) -> &str {
        &self.title
    }

    async fn description(&self) -> &str {
        &self.description
    }

    async fn category(&self) -> &str {
        &self.category
    }

    async fn brand(&self) -> &str {
        &self.brand
    }

    async fn price_cents(&self) -> i64 {
        self.price_cents
    }

    async fn currency(&self) -> &str {
        &self.currency
    }

    async fn stock(&self) -> i64 {
        self.stock
    }

    async fn in_stock(&self) -> bool {
        self.in_stock
    }

    /// False once the vendor delisted it (seen through old orders).
    async fn listed(&self) -> bool {
        self.listed
    }

    async fn listed_at(&self) -> DateTime<Utc> {
        self.listed_at
    }

    async fn rating(&self) -> Rating {
        Rating { average: self.rating_average, count: self.rating_count }
    }

    /// May be up to a second older than the read model without a `Consistency-Token`.
    async fn vendor(&self, ctx: &Context<'_>) -> async_graphql::Result<Vendor> {
        let request = request(ctx)?;
        if request.consistency.token().is_none()
            && let Some(row) = shared(ctx)?.read.recent_vendors().get(self.vendor_id)
        {
            return Ok(Vendor::from(row));
        }
        let row = request.loader.load_one(VendorKey(self.vendor_id)).await?;
        Ok(row.map_or_else(|| Vendor::unknown(self.vendor_id), Vendor::from))
    }

    /// Approved reviews, newest first.
    #[graphql(complexity = "connection_cost(first, DEFAULT_REVIEWS, child_complexity)")]
    async fn reviews(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<ReviewConnection> {
        let size = page_size(first, DEFAULT_REVIEWS)?;
        let after = Keyset::after(CursorKind::ProductReviews, after.as_deref())?;
        let rows = request(ctx)?
            .loader
            .load_one(ReviewPageKey { product_id: self.id, size, after })
            .await?
            .unwrap_or_default();
        let (rows, more) = split_page(rows, size);
        Ok(ReviewConnection::new(rows, more, CursorKind::ProductReviews, Some(self.rating_count)))
    }
}

/// A vendor's listed products, newest first (read model `product`).
pub(crate) async fn vendor_products(
    ctx: &Context<'_>,
    vendor_id: Uuid,
    first: Option<i32>,
    after: Option<String>,
    total: i64,
) -> async_graphql::Result<ProductConnection> {
    let size = page_size(first, 20)?;
    let after = Keyset::after(CursorKind::VendorProducts, after.as_deref())?;
    request(ctx)?.consistency.ready(Source::Catalog).await?;
    let rows = catalog::vendor_products(shared(ctx)?.read.pool(), vendor_id, crate::read_models::Page::of(size, after))
        .await
        .map_err(Error::from)?;
    let (rows, more) = split_page(rows, size);
    let edges: Vec<ProductEdge> = rows
        .into_iter()
        .map(|row| ProductEdge {
            cursor: Keyset::new(row.created_at, row.product_id).encode(CursorKind::VendorProducts),
            node: Product::from(row),
            highlights: Vec::new(),
        })
        .collect();
    let cursors: Vec<String> = edges.iter().map(|e| e.cursor.clone()).collect();
    Ok(ProductConnection { page_info: PageInfo::new(&cursors, more), edges, total_count: total })
}

#[derive(SimpleObject)]
pub struct ProductConnection {
    pub edges: Vec<ProductEdge>,
    pub page_info: PageInfo,
    pub total_count: i64,
}
