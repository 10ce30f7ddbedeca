//! A seeded, deterministic generator of realistic product catalogues, and of query
//! workloads over them.
//!
//! Products read like a real shop's: `"Nordvik Arcis 4821 Wireless Noise-Cancelling
//! Headphones"`, with a description of several sentences. Categories, product types,
//! brands, adjectives, materials and colours are drawn with Zipf-like weights, so term
//! frequencies are skewed as in real text (a few words everywhere, a long tail of rare ones).
//! Model numbers are uniform, so brand + series + model names one product or very few,
//! which is what "find the product despite a typo" needs.
//!
//! The same seed gives the same catalogue on every machine and run.

mod vocabulary;
mod workload;

use events::domain::catalog::ProductListed;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use vocabulary::{BENEFITS, BRANDS, CATEGORIES, CLOSINGS, COLORS, SERIES_HEADS, SERIES_TAILS};
pub use workload::{QueryKind, WorkloadQuery, query_workload};

/// The fields of a product a vendor lists (the shape of an `agora import` line and of
/// `ProductListed` without the ids).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProductDraft {
    pub title: String,
    pub description: String,
    pub category: String,
    pub brand: String,
    pub price_cents: i64,
    pub currency: String,
    pub stock: u32,
}

impl ProductDraft {
    pub fn into_listed(self, product_id: Uuid, vendor_id: Uuid) -> ProductListed {
        ProductListed {
            product_id,
            vendor_id,
            title: self.title,
            description: self.description,
            category: self.category,
            brand: self.brand,
            price_cents: self.price_cents,
            currency: self.currency,
            stock: self.stock,
        }
    }
}

/// Every category name the generator uses, most common first.
pub fn categories() -> impl Iterator<Item = &'static str> {
    CATEGORIES.iter().map(|c| c.name)
}

/// Samples an index in `0..n` with probability proportional to `1 / (rank + 1)^s`.
#[derive(Debug, Clone)]
struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Self {
        let mut total = 0.0;
        let cumulative = (0..n.max(1))
            .map(|rank| {
                total += 1.0 / ((rank + 1) as f64).powf(s);
                total
            })
            .collect();
        Self { cumulative }
    }

    fn sample(&self, rng: &mut impl Rng) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(1.0);
        let x = rng.random::<f64>() * total;
        self.cumulative.partition_point(|&c| c <= x).min(self.cumulative.len() - 1)
    }
}

fn pick<'a, T>(items: &'a [T], zipf: &Zipf, rng: &mut impl Rng) -> &'a T {
    &items[zipf.sample(rng).min(items.len() - 1)]
}

/// An endless, deterministic stream of product drafts.
#[derive(Debug, Clone)]
pub struct CatalogGenerator {
    rng: StdRng,
    categories: Zipf,
    /// Per category: indexes into `BRANDS` (a category has its own brand ranking).
    brands: Vec<Vec<usize>>,
    brand_rank: Zipf,
    /// Per brand: its product lines (series names).
    series: Vec<Vec<String>>,
    series_rank: Zipf,
    short: [Zipf; 16],
}

impl CatalogGenerator {
    pub fn new(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let brands = CATEGORIES
            .iter()
            .map(|_| {
                let mut chosen: Vec<usize> = Vec::new();
                while chosen.len() < 24 {
                    let b = rng.random_range(0..BRANDS.len());
                    if !chosen.contains(&b) {
                        chosen.push(b);
                    }
                }
                chosen
            })
            .collect();
        let series = BRANDS
            .iter()
            .map(|_| {
                (0..30)
                    .map(|_| {
                        let head = SERIES_HEADS[rng.random_range(0..SERIES_HEADS.len())];
                        let tail = SERIES_TAILS[rng.random_range(0..SERIES_TAILS.len())];
                        format!("{head}{tail}")
                    })
                    .collect()
            })
            .collect();
        Self {
            rng,
            categories: Zipf::new(CATEGORIES.len(), 0.8),
            brands,
            brand_rank: Zipf::new(24, 1.0),
            series,
            series_rank: Zipf::new(30, 0.9),
            short: std::array::from_fn(|n| Zipf::new(n.max(1), 1.0)),
        }
    }

    fn zipf_for(&self, len: usize) -> Zipf {
        self.short.get(len).cloned().unwrap_or_else(|| Zipf::new(len, 1.0))
    }

    /// The next product.
    pub fn next_product(&mut self) -> ProductDraft {
        let category = &CATEGORIES[self.categories.sample(&mut self.rng)];
        let rng = &mut self.rng;
        let (product_type, base_price) = *pick(category.types, &self.short[category.types.len()], rng);
        let brand_index = self.brands[category_index(category.name)][self.brand_rank.sample(rng)];
        let brand = BRANDS[brand_index];
        let series = self.series[brand_index][self.series_rank.sample(rng)].clone();
        let model = rng.random_range(100..10_000u32);
        let adjectives = &self.short[category.adjectives.len().min(15)];
        let adjective = *pick(category.adjectives, adjectives, rng);
        let second = *pick(category.adjectives, adjectives, rng);
        let finish = if category.materials.is_empty() || rng.random_bool(0.4) {
            *pick(COLORS, &Zipf::new(COLORS.len(), 1.0), rng)
        } else {
            *pick(category.materials, &self.short[category.materials.len().min(15)], rng)
        };

        // "Brand Series Model [Adjective] [Finish] Type": shoppers' words at the end, as shops write them.
        let mut title = format!("{brand} {series} {model}");
        if rng.random_bool(0.85) {
            title.push(' ');
            title.push_str(adjective);
        }
        if second != adjective && rng.random_bool(0.25) {
            title.push(' ');
            title.push_str(second);
        }
        if rng.random_bool(0.5) {
            title.push(' ');
            title.push_str(finish);
        }
        title.push(' ');
        title.push_str(product_type);

        let description = self.description(category, product_type, brand, &series, adjective, finish);
        let rng = &mut self.rng;
        // Log-normal-ish spread around the type's typical price, ending in .99 or .00.
        let factor = (rng.random::<f64>() * 1.6 - 0.6).exp();
        let euros = (f64::from(base_price) * factor).max(3.0);
        let price_cents =
            if rng.random_bool(0.7) { (euros.round() as i64) * 100 - 1 } else { (euros.round() as i64) * 100 };
        let stock = if rng.random_bool(0.08) { 0 } else { (1.0 / rng.random::<f64>().max(0.002)).min(500.0) as u32 };
        ProductDraft {
            title,
            description,
            category: category.name.to_owned(),
            brand: brand.to_owned(),
            price_cents,
            currency: "EUR".to_owned(),
            stock,
        }
    }

    fn description(
        &mut self,
        category: &vocabulary::Category,
        product_type: &str,
        brand: &str,
        series: &str,
        adjective: &str,
        finish: &str,
    ) -> String {
        let features = self.zipf_for(category.features.len());
        let uses = self.zipf_for(category.uses.len());
        let types = self.zipf_for(category.types.len());
        let benefits = self.zipf_for(BENEFITS.len());
        let rng = &mut self.rng;
        let thing = product_type.to_lowercase();
        let adjective = adjective.to_lowercase();
        let article = if adjective.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
        let mut sentences = vec![format!(
            "The {brand} {series} is {article} {adjective} {thing} made for {}.",
            pick(category.uses, &uses, rng)
        )];
        let first = *pick(category.features, &features, rng);
        let second = *pick(category.features, &features, rng);
        if first == second {
            sentences.push(format!("It comes with {first}."));
        } else {
            sentences.push(format!("It comes with {first} and {second}."));
        }
        if rng.random_bool(0.7) {
            sentences.push(format!("Finished in {}, it {}.", finish.to_lowercase(), pick(BENEFITS, &benefits, rng)));
        }
        if rng.random_bool(0.5) {
            let other = pick(category.types, &types, rng).0.to_lowercase();
            if other != thing {
                sentences.push(format!("Pairs well with our {other} for a matching set."));
            }
        }
        if rng.random_bool(0.4) {
            sentences.push(format!(
                "Weighs {} g and measures {} x {} cm.",
                rng.random_range(80..9000),
                rng.random_range(5..120),
                rng.random_range(5..90)
            ));
        }
        sentences.push(CLOSINGS[rng.random_range(0..CLOSINGS.len())].to_owned());
        sentences.join(" ")
    }

    /// A deterministic id for the next product (v4-shaped, from the generator's stream).
    pub fn id(&mut self) -> Uuid {
        uuid::Builder::from_random_bytes(self.rng.random()).into_uuid()
    }
}

impl Iterator for CatalogGenerator {
    type Item = ProductDraft;

    fn next(&mut self) -> Option<ProductDraft> {
        Some(self.next_product())
    }
}

fn category_index(name: &str) -> usize {
    CATEGORIES.iter().position(|c| c.name == name).unwrap_or(0)
}

/// `count` listed products with deterministic product ids, spread over `vendors` vendor ids
/// (also deterministic; the busiest vendors list the most).
pub fn listed_products(seed: u64, count: usize, vendors: usize) -> impl Iterator<Item = ProductListed> {
    let mut ids = StdRng::seed_from_u64(seed ^ 0x05ee_d1d5);
    let vendor_ids: Vec<Uuid> =
        (0..vendors.max(1)).map(|_| uuid::Builder::from_random_bytes(ids.random()).into_uuid()).collect();
    let vendor_rank = Zipf::new(vendor_ids.len(), 0.7);
    let mut generator = CatalogGenerator::new(seed);
    (0..count).map(move |_| {
        let draft: ProductDraft = generator.next_product();
        let product_id = uuid::Builder::from_random_bytes(ids.random()).into_uuid();
        let vendor_id = vendor_ids[vendor_rank.sample(&mut ids)];
        draft.into_listed(product_id, vendor_id)
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn same_seed_same_catalogue() {
        let a: Vec<ProductListed> = listed_products(7, 200, 10).collect();
        let b: Vec<ProductListed> = listed_products(7, 200, 10).collect();
        let c: Vec<ProductListed> = listed_products(8, 200, 10).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn products_look_real_and_terms_are_skewed() {
        let mut generator = CatalogGenerator::new(1);
        let products: Vec<ProductDraft> = (0..5000).map(|_| generator.next_product()).collect();
        for p in &products[..20] {
            assert!(p.title.split(' ').count() >= 4, "{}", p.title);
            assert!(p.description.len() > 60, "{}", p.description);
            assert!(p.price_cents > 0 && p.currency == "EUR");
        }
        let mut frequency: HashMap<String, usize> = HashMap::new();
        for p in &products {
            for word in p.title.split(' ').chain(p.description.split(' ')) {
                *frequency.entry(word.to_lowercase()).or_default() += 1;
            }
        }
        let mut counts: Vec<usize> = frequency.into_values().collect();
        counts.sort_unstable_by(|a, b| b.cmp(a));
        // A head of very common words and a long tail of rare ones.
        assert!(counts.len() > 2000, "vocabulary of {} words", counts.len());
        assert!(counts[0] > 50 * counts[counts.len() / 2], "{} vs {}", counts[0], counts[counts.len() / 2]);
        assert!(products.iter().any(|p| p.stock == 0) && products.iter().any(|p| p.stock > 10));
    }
}
