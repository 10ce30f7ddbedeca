//! Products, as a pure decider: listing, details, price, stock, delisting; and the stock
//! reservations checkout makes.

use events::domain::accounts::Role;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use events::domain::catalog::{
    HoldReleaseReason, ProductDelisted, ProductDetailsChanged, ProductEvent, ProductHoldReleased, ProductListed,
    ProductPriceChanged, ProductStockAdjusted, ProductStockHeld, ProductStockReleased, ProductStockReserved,
    StockAdjustmentReason,
};
use events::identity::Caller;
use uuid::Uuid;

use crate::decider::Decider;
use crate::error::{Refusal, Refuse};
use crate::values::{Currency, Description, Label, PriceCents, StockDelta, StockLevel, Title};

/// A product on sale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub product_id: Uuid,
    pub vendor_id: Uuid,
    pub title: String,
    pub description: String,
    pub category: String,
    pub brand: String,
    pub price_cents: i64,
    pub currency: String,
    pub stock: u32,
    /// Reserve-path holds not yet released, by order id -> quantity. A claimed hold (its
    /// order was placed) stays here until the order gives the stock back.
    pub holds: BTreeMap<Uuid, u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Product {
    Unlisted,
    Listed(Listing),
    Delisted { product_id: Uuid, vendor_id: Uuid },
}

#[derive(Debug, Clone, PartialEq)]
pub enum ProductCommand {
    List {
        product_id: Uuid,
        vendor_id: Uuid,
        title: Title,
        description: Description,
        category: Label,
        brand: Label,
        price: PriceCents,
        currency: Currency,
        stock: StockLevel,
    },
    Change {
        by: Caller,
        title: Option<Title>,
        description: Option<Description>,
        category: Option<Label>,
        brand: Option<Label>,
        price: Option<PriceCents>,
        currency: Option<Currency>,
    },
    AdjustStock {
        by: Caller,
        delta: StockDelta,
        reason: StockAdjustmentReason,
    },
    Delist {
        by: Caller,
    },
    Reserve {
        order_id: Uuid,
        quantity: u32,
    },
    Release {
        order_id: Uuid,
        quantity: u32,
    },
    /// Set stock aside for a checkout that writes its order afterwards (the reserve path).
    Hold {
        order_id: Uuid,
        quantity: u32,
        expires_at: DateTime<Utc>,
    },
    /// Give back a hold no order claimed. Nothing happens if it was released already, so
    /// compensation and the reaper may both try.
    ReleaseHold {
        order_id: Uuid,
        reason: HoldReleaseReason,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProductError {
    AlreadyListed,
    NotFound,
    NotOwner,
    Delisted,
    InsufficientStock { available: u32 },
    OutOfStock { product_id: Uuid, available: u32, requested: u32 },
    Unavailable { product_id: Uuid },
}

impl Refuse for ProductError {
    fn refusal(&self) -> Refusal {
        let (status, code, message) = match self {
            ProductError::AlreadyListed => (409, "already_listed", "this product is already listed".to_owned()),
            ProductError::NotFound => (404, "not_found", "product was not found".to_owned()),
            ProductError::NotOwner => {
                (403, "forbidden", "only the vendor who listed this product (or an admin) can do this".to_owned())
            }
            ProductError::Delisted => (409, "product_delisted", "this product is no longer listed".to_owned()),
            ProductError::InsufficientStock { available } => {
                (409, "insufficient_stock", format!("stock cannot go below zero: {available} in stock"))
            }
            ProductError::OutOfStock { product_id, available, requested } => {
                (409, "out_of_stock", format!("product {product_id} has {available} in stock, {requested} requested"))
            }
            ProductError::Unavailable { product_id } => {
                (409, "product_unavailable", format!("product {product_id} is not for sale"))
            }
        };
        Refusal { status, code, message }
    }
}

pub struct ProductDecider;

fn owner_check(by: &Caller, vendor_id: Uuid, admin_allowed: bool) -> Result<(), ProductError> {
    if by.account_id == vendor_id || (admin_allowed && by.role == Role::Admin) {
        Ok(())
    } else {
        Err(ProductError::NotOwner)
    }
}

impl Decider for ProductDecider {
    type State = Product;
    type Command = ProductCommand;
    type Event = ProductEvent;
    type Error = ProductError;

    fn initial_state() -> Product {
        Product::Unlisted
    }

    fn evolve(state: Product, event: &ProductEvent) -> Product {
        match (state, event) {
            (_, ProductEvent::Listed(e)) => Product::Listed(Listing {
                product_id: e.product_id,
                vendor_id: e.vendor_id,
                title: e.title.clone(),
                description: e.description.clone(),
                category: e.category.clone(),
                brand: e.brand.clone(),
                price_cents: e.price_cents,
                currency: e.currency.clone(),
                stock: e.stock,
                holds: BTreeMap::new(),
            }),
            (Product::Listed(mut l), ProductEvent::DetailsChanged(e)) => {
                l.title = e.title.clone();
                l.description = e.description.clone();
                l.category = e.category.clone();
                l.brand = e.brand.clone();
                Product::Listed(l)
            }
            (Product::Listed(mut l), ProductEvent::PriceChanged(e)) => {
                l.price_cents = e.price_cents;
                l.currency = e.currency.clone();
                Product::Listed(l)
            }
            (Product::Listed(mut l), ProductEvent::StockAdjusted(ProductStockAdjusted { stock, .. }))
            | (Product::Listed(mut l), ProductEvent::StockReserved(ProductStockReserved { stock, .. })) => {
                l.stock = *stock;
                Product::Listed(l)
            }
            (Product::Listed(mut l), ProductEvent::StockReleased(ProductStockReleased { stock, order_id, .. }))
            | (Product::Listed(mut l), ProductEvent::HoldReleased(ProductHoldReleased { stock, order_id, .. })) => {
                l.stock = *stock;
                l.holds.remove(order_id);
                Product::Listed(l)
            }
            (Product::Listed(mut l), ProductEvent::StockHeld(held)) => {
                l.stock = held.stock;
                l.holds.insert(held.order_id, held.quantity);
                Product::Listed(l)
            }
            (Product::Listed(l), ProductEvent::Delisted(_)) => {
                Product::Delisted { product_id: l.product_id, vendor_id: l.vendor_id }
            }
            (state, _) => state,
        }
    }

    fn decide(command: &ProductCommand, state: &Product) -> Result<Vec<ProductEvent>, ProductError> {
        use ProductCommand as C;
        match (command, state) {
            (
                C::List { product_id, vendor_id, title, description, category, brand, price, currency, stock },
                Product::Unlisted,
            ) => Ok(vec![ProductEvent::Listed(ProductListed {
                product_id: *product_id,
                vendor_id: *vendor_id,
                title: title.to_string(),
                description: description.to_string(),
                category: category.to_string(),
                brand: brand.to_string(),
                price_cents: price.cents(),
                currency: currency.as_str().to_owned(),
                stock: stock.get(),
            })]),
            (C::List { .. }, _) => Err(ProductError::AlreadyListed),
            // Reservations and releases happen inside checkout and cancellation.
            (C::Reserve { .. }, Product::Unlisted)
            | (C::Release { .. }, Product::Unlisted)
            | (C::Hold { .. }, Product::Unlisted)
            | (C::ReleaseHold { .. }, Product::Unlisted) => Err(ProductError::NotFound),
            (C::Reserve { .. } | C::Hold { .. }, Product::Delisted { product_id, .. }) => {
                Err(ProductError::Unavailable { product_id: *product_id })
            }
            (C::Hold { order_id, .. }, Product::Listed(l)) if l.holds.contains_key(order_id) => Ok(vec![]),
            (C::Hold { order_id, quantity, expires_at }, Product::Listed(l)) => {
                if *quantity > l.stock {
                    return Err(ProductError::OutOfStock {
                        product_id: l.product_id,
                        available: l.stock,
                        requested: *quantity,
                    });
                }
                Ok(vec![ProductEvent::StockHeld(ProductStockHeld {
                    order_id: *order_id,
                    quantity: *quantity,
                    stock: l.stock - quantity,
                    expires_at: *expires_at,
                })])
            }
            // Delisting dropped the product's stock figures; nothing to give back.
            (C::ReleaseHold { .. }, Product::Delisted { .. }) => Ok(vec![]),
            (C::ReleaseHold { order_id, reason }, Product::Listed(l)) => match l.holds.get(order_id) {
                None => Ok(vec![]),
                Some(&quantity) => Ok(vec![ProductEvent::HoldReleased(ProductHoldReleased {
                    order_id: *order_id,
                    quantity,
                    stock: l.stock.saturating_add(quantity),
                    reason: *reason,
                })]),
            },
            (C::Reserve { order_id, quantity }, Product::Listed(l)) => {
                if *quantity > l.stock {
                    return Err(ProductError::OutOfStock {
                        product_id: l.product_id,
                        available: l.stock,
                        requested: *quantity,
                    });
                }
                Ok(vec![ProductEvent::StockReserved(ProductStockReserved {
                    order_id: *order_id,
                    quantity: *quantity,
                    stock: l.stock - quantity,
                })])
            }
            // Stock given back to a delisted product is recorded too: relisting is not a
            // feature, but the numbers must add up.
            (C::Release { .. }, Product::Delisted { .. }) => Ok(vec![]),
            (C::Release { order_id, quantity }, Product::Listed(l)) => {
                Ok(vec![ProductEvent::StockReleased(ProductStockReleased {
                    order_id: *order_id,
                    quantity: *quantity,
                    stock: l.stock.saturating_add(*quantity),
                })])
            }
            (_, Product::Unlisted) => Err(ProductError::NotFound),
            (C::Delist { by }, Product::Delisted { vendor_id, .. }) => {
                owner_check(by, *vendor_id, true).map(|()| vec![])
            }
            (_, Product::Delisted { .. }) => Err(ProductError::Delisted),
            (C::Change { by, title, description, category, brand, price, currency }, Product::Listed(l)) => {
                owner_check(by, l.vendor_id, false)?;
                let mut events = Vec::new();
                let details = ProductDetailsChanged {
                    title: title.as_ref().map_or_else(|| l.title.clone(), ToString::to_string),
                    description: description.as_ref().map_or_else(|| l.description.clone(), ToString::to_string),
                    category: category.as_ref().map_or_else(|| l.category.clone(), ToString::to_string),
                    brand: brand.as_ref().map_or_else(|| l.brand.clone(), ToString::to_string),
                };
                if (&details.title, &details.description, &details.category, &details.brand)
                    != (&l.title, &l.description, &l.category, &l.brand)
                {
                    events.push(ProductEvent::DetailsChanged(details));
                }
                let new_price = price.map_or(l.price_cents, PriceCents::cents);
                let new_currency = currency.map_or_else(|| l.currency.clone(), |c| c.as_str().to_owned());
                if new_price != l.price_cents || new_currency != l.currency {
                    events.push(ProductEvent::PriceChanged(ProductPriceChanged {
                        price_cents: new_price,
                        currency: new_currency,
                    }));
                }
                Ok(events)
            }
            (C::AdjustStock { by, delta, reason }, Product::Listed(l)) => {
                owner_check(by, l.vendor_id, false)?;
                let stock = i64::from(l.stock) + delta.get();
                if stock < 0 {
                    return Err(ProductError::InsufficientStock { available: l.stock });
                }
                let stock = u32::try_from(stock.min(i64::from(StockLevel::MAX))).unwrap_or(StockLevel::MAX);
                Ok(vec![ProductEvent::StockAdjusted(ProductStockAdjusted {
                    delta: delta.get(),
                    reason: *reason,
                    stock,
                })])
            }
            (C::Delist { by }, Product::Listed(l)) => {
                owner_check(by, l.vendor_id, true)?;
                Ok(vec![ProductEvent::Delisted(ProductDelisted { product_id: l.product_id })])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::Spec;

    fn vendor() -> Caller {
        Caller { account_id: Uuid::from_u128(1), role: Role::Vendor }
    }

    fn listed(stock: u32) -> ProductEvent {
        ProductEvent::Listed(ProductListed {
            product_id: Uuid::from_u128(9),
            vendor_id: vendor().account_id,
            title: "Oak desk".into(),
            description: "A desk".into(),
            category: "furniture".into(),
            brand: "Acme".into(),
            price_cents: 19900,
            currency: "EUR".into(),
            stock,
        })
    }

    fn list_command() -> ProductCommand {
        ProductCommand::List {
            product_id: Uuid::from_u128(9),
            vendor_id: vendor().account_id,
            title: Title::parse("Oak desk").unwrap(),
            description: Description::parse("A desk").unwrap(),
            category: Label::parse("furniture").unwrap(),
            brand: Label::parse("Acme").unwrap(),
            price: PriceCents::parse(19900).unwrap(),
            currency: Currency::parse("EUR").unwrap(),
            stock: StockLevel::parse(5).unwrap(),
        }
    }

    fn change() -> ProductCommand {
        ProductCommand::Change {
            by: vendor(),
            title: None,
            description: None,
            category: None,
            brand: None,
            price: None,
            currency: None,
        }
    }

    #[test]
    fn listing_a_product() {
        Spec::<ProductDecider>::given(Vec::<ProductEvent>::new()).when(list_command()).then([listed(5)]);
        Spec::<ProductDecider>::given([listed(5)]).when(list_command()).then_error(ProductError::AlreadyListed);
    }

    #[test]
    fn changing_details_and_price() {
        let command = match change() {
            ProductCommand::Change { by, .. } => ProductCommand::Change {
                by,
                title: Some(Title::parse("Walnut desk").unwrap()),
                description: None,
                category: None,
                brand: None,
                price: Some(PriceCents::parse(24900).unwrap()),
                currency: None,
            },
            other => other,
        };
        Spec::<ProductDecider>::given([listed(5)]).when(command).then([
            ProductEvent::DetailsChanged(ProductDetailsChanged {
                title: "Walnut desk".into(),
                description: "A desk".into(),
                category: "furniture".into(),
                brand: "Acme".into(),
            }),
            ProductEvent::PriceChanged(ProductPriceChanged { price_cents: 24900, currency: "EUR".into() }),
        ]);
        Spec::<ProductDecider>::given([listed(5)]).when(change()).then_nothing();
    }

    #[test]
    fn only_the_owner_changes_a_product() {
        let stranger = Caller { account_id: Uuid::from_u128(2), role: Role::Vendor };
        let admin = Caller { account_id: Uuid::from_u128(3), role: Role::Admin };
        let stranger_change = ProductCommand::Change {
            by: stranger,
            title: None,
            description: None,
            category: None,
            brand: None,
            price: None,
            currency: None,
        };
        Spec::<ProductDecider>::given([listed(5)]).when(stranger_change).then_error(ProductError::NotOwner);
        Spec::<ProductDecider>::given([listed(5)])
            .when(ProductCommand::AdjustStock {
                by: stranger,
                delta: StockDelta::parse(1).unwrap(),
                reason: StockAdjustmentReason::Restock,
            })
            .then_error(ProductError::NotOwner);
        Spec::<ProductDecider>::given([listed(5)])
            .when(ProductCommand::Delist { by: stranger })
            .then_error(ProductError::NotOwner);
        Spec::<ProductDecider>::given([listed(5)])
            .when(ProductCommand::Delist { by: admin })
            .then([ProductEvent::Delisted(ProductDelisted { product_id: Uuid::from_u128(9) })]);
    }

    #[test]
    fn stock_never_goes_negative() {
        Spec::<ProductDecider>::given([listed(5)])
            .when(ProductCommand::AdjustStock {
                by: vendor(),
                delta: StockDelta::parse(10).unwrap(),
                reason: StockAdjustmentReason::Restock,
            })
            .then([ProductEvent::StockAdjusted(ProductStockAdjusted {
                delta: 10,
                reason: StockAdjustmentReason::Restock,
                stock: 15,
            })]);
        Spec::<ProductDecider>::given([listed(5)])
            .when(ProductCommand::AdjustStock {
                by: vendor(),
                delta: StockDelta::parse(-6).unwrap(),
                reason: StockAdjustmentReason::Correction,
            })
            .then_error(ProductError::InsufficientStock { available: 5 });
        Spec::<ProductDecider>::given([listed(5)])
            .when(ProductCommand::AdjustStock {
                by: vendor(),
                delta: StockDelta::parse(-5).unwrap(),
                reason: StockAdjustmentReason::Correction,
            })
            .then([ProductEvent::StockAdjusted(ProductStockAdjusted {
                delta: -5,
                reason: StockAdjustmentReason::Correction,
                stock: 0,
            })]);
    }

    #[test]
    fn reservations_respect_stock() {
        let order = Uuid::from_u128(77);
        Spec::<ProductDecider>::given([listed(5)])
            .when(ProductCommand::Reserve { order_id: order, quantity: 5 })
            .then([ProductEvent::StockReserved(ProductStockReserved { order_id: order, quantity: 5, stock: 0 })]);
        Spec::<ProductDecider>::given([listed(5)])
            .when(ProductCommand::Reserve { order_id: order, quantity: 6 })
            .then_error(ProductError::OutOfStock { product_id: Uuid::from_u128(9), available: 5, requested: 6 });
        Spec::<ProductDecider>::given([
            listed(0),
            ProductEvent::StockReleased(ProductStockReleased { order_id: order, quantity: 2, stock: 2 }),
        ])
        .when(ProductCommand::Reserve { order_id: order, quantity: 2 })
        .then([ProductEvent::StockReserved(ProductStockReserved { order_id: order, quantity: 2, stock: 0 })]);
        Spec::<ProductDecider>::given([listed(1)])
            .when(ProductCommand::Release { order_id: order, quantity: 3 })
            .then([ProductEvent::StockReleased(ProductStockReleased { order_id: order, quantity: 3, stock: 4 })]);
    }

    #[test]
    fn delisted_products_cannot_be_sold_or_changed() {
        let delisted = ProductEvent::Delisted(ProductDelisted { product_id: Uuid::from_u128(9) });
        Spec::<ProductDecider>::given([listed(5), delisted.clone()])
            .when(ProductCommand::Reserve { order_id: Uuid::nil(), quantity: 1 })
            .then_error(ProductError::Unavailable { product_id: Uuid::from_u128(9) });
        Spec::<ProductDecider>::given([listed(5), delisted.clone()]).when(change()).then_error(ProductError::Delisted);
        Spec::<ProductDecider>::given([listed(5), delisted])
            .when(ProductCommand::Delist { by: vendor() })
            .then_nothing();
        Spec::<ProductDecider>::given(Vec::<ProductEvent>::new()).when(change()).then_error(ProductError::NotFound);
    }

    fn expiry() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn hold(quantity: u32) -> ProductCommand {
        ProductCommand::Hold { order_id: Uuid::from_u128(7), quantity, expires_at: expiry() }
    }

    fn held(quantity: u32, stock: u32) -> ProductEvent {
        ProductEvent::StockHeld(ProductStockHeld {
            order_id: Uuid::from_u128(7),
            quantity,
            stock,
            expires_at: expiry(),
        })
    }

    fn release_hold(reason: HoldReleaseReason) -> ProductCommand {
        ProductCommand::ReleaseHold { order_id: Uuid::from_u128(7), reason }
    }

    #[test]
    fn a_hold_takes_stock_and_never_oversells() {
        Spec::<ProductDecider>::given([listed(5)]).when(hold(2)).then([held(2, 3)]);
        Spec::<ProductDecider>::given([listed(5)]).when(hold(6)).then_error(ProductError::OutOfStock {
            product_id: Uuid::from_u128(9),
            available: 5,
            requested: 6,
        });
        Spec::<ProductDecider>::given([listed(5)]).when(hold(5)).then([held(5, 0)]);
    }

    #[test]
    fn holding_twice_for_the_same_order_holds_once() {
        // A retried checkout step must not take the stock a second time.
        Spec::<ProductDecider>::given([listed(5), held(2, 3)]).when(hold(2)).then_nothing();
    }

    #[test]
    fn releasing_a_hold_gives_its_stock_back_once() {
        let released = |reason| {
            ProductEvent::HoldReleased(ProductHoldReleased {
                order_id: Uuid::from_u128(7),
                quantity: 2,
                stock: 5,
                reason,
            })
        };
        Spec::<ProductDecider>::given([listed(5), held(2, 3)])
            .when(release_hold(HoldReleaseReason::Expired))
            .then([released(HoldReleaseReason::Expired)]);
        // Compensation and the reaper may both try: the second finds nothing to release.
        Spec::<ProductDecider>::given([listed(5), held(2, 3), released(HoldReleaseReason::Compensated)])
            .when(release_hold(HoldReleaseReason::Expired))
            .then_nothing();
        Spec::<ProductDecider>::given([listed(5)]).when(release_hold(HoldReleaseReason::Compensated)).then_nothing();
    }

    #[test]
    fn a_hold_given_back_by_its_cancelled_order_is_gone() {
        let cancelled =
            ProductEvent::StockReleased(ProductStockReleased { order_id: Uuid::from_u128(7), quantity: 2, stock: 5 });
        Spec::<ProductDecider>::given([listed(5), held(2, 3), cancelled])
            .when(release_hold(HoldReleaseReason::Expired))
            .then_nothing();
    }

    #[test]
    fn holds_on_missing_or_delisted_products_are_refused() {
        Spec::<ProductDecider>::given(Vec::<ProductEvent>::new()).when(hold(1)).then_error(ProductError::NotFound);
        let delisted = ProductEvent::Delisted(ProductDelisted { product_id: Uuid::from_u128(9) });
        Spec::<ProductDecider>::given([listed(5), delisted])
            .when(hold(1))
            .then_error(ProductError::Unavailable { product_id: Uuid::from_u128(9) });
    }
}
