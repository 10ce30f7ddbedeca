//! Carts, orders and checkout, as pure deciders.

use std::collections::{BTreeMap, HashMap};

use events::domain::accounts::Role;
use events::domain::catalog::ProductEvent;
use events::domain::orders::{
    CartCheckedOut, CartEvent, CartItemRemoved, CartItemSet, OrderCancelled, OrderCheckoutExpired, OrderConfirmed,
    OrderDelivered, OrderEvent, OrderLine, OrderPlaced, OrderRefunded, PurchaseDelivered, PurchaseEvent,
};
use events::domain::payments::{PaymentEvent, PaymentRequested};
use events::identity::Caller;
use events::privacy::Sealed;
use uuid::Uuid;

use crate::catalog::decider::{Product, ProductCommand, ProductDecider, ProductError};
use crate::decider::Decider;
use crate::error::{Refusal, Refuse};

// ---------------------------------------------------------------- cart

/// A buyer's cart: quantity per product.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cart {
    pub items: BTreeMap<Uuid, u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CartCommand {
    /// 0 removes the product.
    SetItem {
        product_id: Uuid,
        quantity: u32,
    },
    CheckOut {
        order_id: Uuid,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CartError {
    TooManyItems,
    Empty,
}

impl Refuse for CartError {
    fn refusal(&self) -> Refusal {
        match self {
            CartError::TooManyItems => Refusal {
                status: 409,
                code: "cart_full",
                message: format!("a cart holds at most {} different products", Cart::MAX_ITEMS),
            },
            CartError::Empty => Refusal { status: 409, code: "cart_empty", message: "the cart is empty".into() },
        }
    }
}

impl Cart {
    pub const MAX_ITEMS: usize = 100;
}

pub struct CartDecider;

impl Decider for CartDecider {
    type State = Cart;
    type Command = CartCommand;
    type Event = CartEvent;
    type Error = CartError;

    fn initial_state() -> Cart {
        Cart::default()
    }

    fn evolve(mut cart: Cart, event: &CartEvent) -> Cart {
        match event {
            CartEvent::ItemSet(e) => {
                cart.items.insert(e.product_id, e.quantity);
            }
            CartEvent::ItemRemoved(e) => {
                cart.items.remove(&e.product_id);
            }
            CartEvent::CheckedOut(_) => cart.items.clear(),
        }
        cart
    }

    fn decide(command: &CartCommand, cart: &Cart) -> Result<Vec<CartEvent>, CartError> {
        match command {
            CartCommand::SetItem { product_id, quantity: 0 } => Ok(if cart.items.contains_key(product_id) {
                vec![CartEvent::ItemRemoved(CartItemRemoved { product_id: *product_id })]
            } else {
                vec![]
            }),
            CartCommand::SetItem { product_id, quantity } => match cart.items.get(product_id) {
                Some(current) if current == quantity => Ok(vec![]),
                None if cart.items.len() >= Cart::MAX_ITEMS => Err(CartError::TooManyItems),
                _ => Ok(vec![CartEvent::ItemSet(CartItemSet { product_id: *product_id, quantity: *quantity })]),
            },
            CartCommand::CheckOut { .. } if cart.items.is_empty() => Err(CartError::Empty),
            CartCommand::CheckOut { order_id } => {
                Ok(vec![CartEvent::CheckedOut(CartCheckedOut { order_id: *order_id })])
            }
        }
    }
}

// ---------------------------------------------------------------- order

/// What an order is, from the moment it is placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderInfo {
    pub order_id: Uuid,
    pub buyer_id: Uuid,
    pub lines: Vec<OrderLine>,
    pub currency: String,
    pub total_cents: i64,
    pub shipping_address: Sealed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Order {
    NotPlaced,
    /// Waiting for the payment.
    Placed(OrderInfo),
    Confirmed {
        info: OrderInfo,
        authorization_id: String,
    },
    Cancelled {
        info: OrderInfo,
        reason: String,
        refunded: bool,
    },
    Delivered {
        info: OrderInfo,
        delivery_id: Uuid,
    },
    /// A reserve-path checkout that did not write its order in time: the order can never be
    /// placed, and its stock holds are released.
    Expired,
}

impl Order {
    pub fn info(&self) -> Option<&OrderInfo> {
        match self {
            Order::NotPlaced | Order::Expired => None,
            Order::Placed(info)
            | Order::Confirmed { info, .. }
            | Order::Cancelled { info, .. }
            | Order::Delivered { info, .. } => Some(info),
        }
    }

    pub fn status(&self) -> &'static str {
        match self {
            Order::NotPlaced => "not_placed",
            Order::Placed(_) => "placed",
            Order::Confirmed { .. } => "confirmed",
            Order::Cancelled { refunded: false, .. } => "cancelled",
            Order::Cancelled { refunded: true, .. } => "refunded",
            Order::Delivered { .. } => "delivered",
            Order::Expired => "expired",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderCommand {
    Place(OrderInfo),
    Confirm {
        authorization_id: String,
    },
    /// `shipped`: the delivery has had tracking events (a carrier has it).
    Cancel {
        by: Caller,
        reason: String,
        shipped: bool,
    },
    MarkDelivered {
        delivery_id: Uuid,
    },
    RecordRefund {
        refund_id: String,
        amount_cents: i64,
    },
    /// Close a reserve-path checkout whose order was not written before its holds expired.
    Expire {
        order_id: Uuid,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderError {
    AlreadyPlaced,
    NotFound,
    Cancelled,
    AlreadyShipped,
    NotCancellable { status: &'static str },
    NotRefundable { status: &'static str },
    CheckoutExpired,
}

impl Refuse for OrderError {
    fn refusal(&self) -> Refusal {
        let (status, code, message) = match self {
            OrderError::AlreadyPlaced => (409, "already_placed", "this order was already placed".to_owned()),
            OrderError::NotFound => (404, "not_found", "order was not found".to_owned()),
            OrderError::Cancelled => (409, "order_cancelled", "this order was cancelled".to_owned()),
            OrderError::AlreadyShipped => (
                409,
                "already_shipped",
                "this order has shipped and can no longer be cancelled by the buyer".to_owned(),
            ),
            OrderError::NotCancellable { status } => {
                (409, "order_not_cancellable", format!("an order that is {status} cannot be cancelled"))
            }
            OrderError::NotRefundable { status } => {
                (409, "order_not_refundable", format!("an order that is {status} cannot be refunded"))
            }
            OrderError::CheckoutExpired => (
                409,
                "checkout_expired",
                "this checkout took too long and its stock was released: please check out again".to_owned(),
            ),
        };
        Refusal { status, code, message }
    }
}

pub struct OrderDecider;

impl Decider for OrderDecider {
    type State = Order;
    type Command = OrderCommand;
    type Event = OrderEvent;
    type Error = OrderError;

    fn initial_state() -> Order {
        Order::NotPlaced
    }

    fn evolve(state: Order, event: &OrderEvent) -> Order {
        match (state, event) {
            (_, OrderEvent::Placed(e)) => Order::Placed(OrderInfo {
                order_id: e.order_id,
                buyer_id: e.buyer_id,
                lines: e.lines.clone(),
                currency: e.currency.clone(),
                total_cents: e.total_cents,
                shipping_address: e.shipping_address.clone(),
            }),
            (Order::Placed(info), OrderEvent::Confirmed(e)) => {
                Order::Confirmed { info, authorization_id: e.authorization_id.clone() }
            }
            (Order::Placed(info) | Order::Confirmed { info, .. }, OrderEvent::Cancelled(e)) => {
                Order::Cancelled { info, reason: e.reason.clone(), refunded: false }
            }
            (Order::Confirmed { info, .. }, OrderEvent::Delivered(e)) => {
                Order::Delivered { info, delivery_id: e.delivery_id }
            }
            (Order::Cancelled { info, reason, .. }, OrderEvent::Refunded(_)) => {
                Order::Cancelled { info, reason, refunded: true }
            }
            (Order::NotPlaced, OrderEvent::CheckoutExpired(_)) => Order::Expired,
            (state, _) => state,
        }
    }

    fn decide(command: &OrderCommand, state: &Order) -> Result<Vec<OrderEvent>, OrderError> {
        use OrderCommand as C;
        match (command, state) {
            (C::Expire { order_id }, Order::NotPlaced) => {
                Ok(vec![OrderEvent::CheckoutExpired(OrderCheckoutExpired { order_id: *order_id })])
            }
            (C::Expire { .. }, Order::Expired) => Ok(vec![]),
            (C::Expire { .. }, _) => Err(OrderError::AlreadyPlaced),
            (C::Place(_), Order::Expired) => Err(OrderError::CheckoutExpired),
            (C::Place(info), Order::NotPlaced) => Ok(vec![OrderEvent::Placed(OrderPlaced {
                order_id: info.order_id,
                buyer_id: info.buyer_id,
                lines: info.lines.clone(),
                currency: info.currency.clone(),
                total_cents: info.total_cents,
                shipping_address: info.shipping_address.clone(),
            })]),
            (C::Place(_), _) => Err(OrderError::AlreadyPlaced),
            (_, Order::NotPlaced | Order::Expired) => Err(OrderError::NotFound),

            (C::Confirm { authorization_id }, Order::Placed(_)) => {
                Ok(vec![OrderEvent::Confirmed(OrderConfirmed { authorization_id: authorization_id.clone() })])
            }
            (C::Confirm { .. }, Order::Cancelled { .. }) => Err(OrderError::Cancelled),
            (C::Confirm { .. }, _) => Ok(vec![]),

            (
                C::Cancel { by, .. },
                Order::Placed(info)
                | Order::Confirmed { info, .. }
                | Order::Delivered { info, .. }
                | Order::Cancelled { info, .. },
            ) if by.role != Role::Admin && by.account_id != info.buyer_id => {
                // Someone else's order: as if it did not exist.
                Err(OrderError::NotFound)
            }
            (C::Cancel { .. }, Order::Cancelled { .. }) => Ok(vec![]),
            (C::Cancel { .. }, Order::Delivered { .. }) => Err(OrderError::NotCancellable { status: "delivered" }),
            (C::Cancel { by, shipped: true, .. }, _) if by.role != Role::Admin => Err(OrderError::AlreadyShipped),
            (C::Cancel { reason, .. }, Order::Placed(info) | Order::Confirmed { info, .. }) => {
                Ok(vec![OrderEvent::Cancelled(OrderCancelled { reason: reason.clone(), released: info.lines.clone() })])
            }

            (C::MarkDelivered { delivery_id }, Order::Confirmed { .. }) => {
                Ok(vec![OrderEvent::Delivered(OrderDelivered { delivery_id: *delivery_id })])
            }
            // Delivered already, or cancelled while on its way: nothing to record.
            (C::MarkDelivered { .. }, _) => Ok(vec![]),

            (C::RecordRefund { refund_id, amount_cents }, Order::Cancelled { refunded: false, .. }) => {
                Ok(vec![OrderEvent::Refunded(OrderRefunded {
                    amount_cents: *amount_cents,
                    refund_id: refund_id.clone(),
                })])
            }
            (C::RecordRefund { .. }, Order::Cancelled { refunded: true, .. }) => Ok(vec![]),
            (C::RecordRefund { .. }, state) => Err(OrderError::NotRefundable { status: state.status() }),
        }
    }
}

// ---------------------------------------------------------------- purchases

/// The products a buyer has received (the review rules read this).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Purchases {
    pub orders: std::collections::BTreeSet<Uuid>,
    pub products: std::collections::BTreeSet<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PurchaseCommand {
    RecordDelivered { order_id: Uuid, product_ids: Vec<Uuid> },
}

pub struct PurchasesDecider;

impl Decider for PurchasesDecider {
    type State = Purchases;
    type Command = PurchaseCommand;
    type Event = PurchaseEvent;
    type Error = std::convert::Infallible;

    fn initial_state() -> Purchases {
        Purchases::default()
    }

    fn evolve(mut state: Purchases, event: &PurchaseEvent) -> Purchases {
        let PurchaseEvent::Delivered(e) = event;
        state.orders.insert(e.order_id);
        state.products.extend(e.product_ids.iter().copied());
        state
    }

    fn decide(command: &PurchaseCommand, state: &Purchases) -> Result<Vec<PurchaseEvent>, std::convert::Infallible> {
        let PurchaseCommand::RecordDelivered { order_id, product_ids } = command;
        Ok(if state.orders.contains(order_id) {
            vec![]
        } else {
            vec![PurchaseEvent::Delivered(PurchaseDelivered { order_id: *order_id, product_ids: product_ids.clone() })]
        })
    }
}

// ---------------------------------------------------------------- checkout

/// Everything checkout decides from: the cart, the current state of every product in it,
/// and what the handler prepared (ids, the sealed address, the payment token).
#[derive(Debug)]
pub struct CheckoutInput<'a> {
    pub order_id: Uuid,
    pub buyer_id: Uuid,
    pub cart: &'a Cart,
    pub products: &'a HashMap<Uuid, Product>,
    pub shipping_address: Sealed,
    pub payment_token: String,
}

/// The events of every stream a checkout touches, appended together.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckoutDecision {
    pub cart: Vec<CartEvent>,
    pub order: Vec<OrderEvent>,
    pub payment: Vec<PaymentEvent>,
    /// Stock reservations, per product.
    pub stock: Vec<(Uuid, Vec<ProductEvent>)>,
    pub total_cents: i64,
    pub currency: String,
}

impl CheckoutDecision {
    /// The lines of the order placed.
    pub fn order_lines(&self) -> impl Iterator<Item = &OrderLine> {
        self.order.iter().flat_map(|event| match event {
            OrderEvent::Placed(placed) => placed.lines.as_slice(),
            _ => &[],
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckoutError {
    Cart(CartError),
    Product(ProductError),
    MixedCurrencies,
}

impl Refuse for CheckoutError {
    fn refusal(&self) -> Refusal {
        match self {
            CheckoutError::Cart(e) => e.refusal(),
            CheckoutError::Product(ProductError::NotFound) => Refusal {
                status: 409,
                code: "product_unavailable",
                message: "a product in the cart no longer exists".into(),
            },
            CheckoutError::Product(e) => e.refusal(),
            CheckoutError::MixedCurrencies => Refusal {
                status: 409,
                code: "mixed_currencies",
                message: "the cart holds products priced in different currencies: check them out separately".into(),
            },
        }
    }
}

/// Check out a cart: every line reserves its stock (none may be oversold), the order is
/// placed at today's prices, the payment is requested and the cart is emptied — all or
/// nothing.
pub fn decide_checkout(input: &CheckoutInput<'_>) -> Result<CheckoutDecision, CheckoutError> {
    let cart = CartDecider::decide(&CartCommand::CheckOut { order_id: input.order_id }, input.cart)
        .map_err(CheckoutError::Cart)?;
    let mut lines = Vec::with_capacity(input.cart.items.len());
    let mut stock = Vec::with_capacity(input.cart.items.len());
    let mut currency: Option<&str> = None;
    for (&product_id, &quantity) in &input.cart.items {
        let product = input.products.get(&product_id).unwrap_or(&Product::Unlisted);
        let reserved = ProductDecider::decide(&ProductCommand::Reserve { order_id: input.order_id, quantity }, product)
            .map_err(|e| match e {
                ProductError::NotFound => ProductError::Unavailable { product_id },
                other => other,
            })
            .map_err(CheckoutError::Product)?;
        let Product::Listed(listing) = product else {
            return Err(CheckoutError::Product(ProductError::Unavailable { product_id }));
        };
        match currency {
            Some(c) if c != listing.currency => return Err(CheckoutError::MixedCurrencies),
            _ => currency = Some(&listing.currency),
        }
        lines.push(OrderLine {
            product_id,
            vendor_id: listing.vendor_id,
            title: listing.title.clone(),
            quantity,
            unit_price_cents: listing.price_cents,
        });
        stock.push((product_id, reserved));
    }
    let currency = currency.unwrap_or("EUR").to_owned();
    let total_cents = lines.iter().map(OrderLine::total_cents).sum();
    let info = OrderInfo {
        order_id: input.order_id,
        buyer_id: input.buyer_id,
        lines,
        currency: currency.clone(),
        total_cents,
        shipping_address: input.shipping_address.clone(),
    };
    let order = OrderDecider::decide(&OrderCommand::Place(info), &Order::NotPlaced).map_err(|_| {
        CheckoutError::Cart(CartError::Empty) // unreachable: a fresh order id is never placed
    })?;
    let payment = vec![PaymentEvent::Requested(PaymentRequested {
        order_id: input.order_id,
        buyer_id: input.buyer_id,
        amount_cents: total_cents,
        currency: currency.clone(),
        payment_token: input.payment_token.clone(),
    })];
    Ok(CheckoutDecision { cart, order, payment, stock, total_cents, currency })
}

#[cfg(test)]
mod tests {
    use events::domain::catalog::{ProductListed, ProductStockReserved};

    use super::*;
    use crate::decider::Spec;

    fn sealed() -> Sealed {
        Sealed { key_id: Uuid::nil(), nonce: "n".into(), ciphertext: "c".into() }
    }

    fn buyer() -> Caller {
        Caller { account_id: Uuid::from_u128(10), role: Role::Buyer }
    }

    fn line(product: u128, quantity: u32, price: i64) -> OrderLine {
        OrderLine {
            product_id: Uuid::from_u128(product),
            vendor_id: Uuid::from_u128(1),
            title: format!("p{product}"),
            quantity,
            unit_price_cents: price,
        }
    }

    fn info() -> OrderInfo {
        OrderInfo {
            order_id: Uuid::from_u128(100),
            buyer_id: buyer().account_id,
            lines: vec![line(1, 2, 500)],
            currency: "EUR".into(),
            total_cents: 1000,
            shipping_address: sealed(),
        }
    }

    fn placed() -> OrderEvent {
        OrderDecider::decide(&OrderCommand::Place(info()), &Order::NotPlaced).unwrap().remove(0)
    }

    fn confirmed() -> OrderEvent {
        OrderEvent::Confirmed(OrderConfirmed { authorization_id: "auth_1".into() })
    }

    fn cancelled() -> OrderEvent {
        OrderEvent::Cancelled(OrderCancelled { reason: "buyer_request".into(), released: info().lines })
    }

    #[test]
    fn cart_items_are_set_changed_and_removed() {
        let p = Uuid::from_u128(1);
        Spec::<CartDecider>::given(Vec::<CartEvent>::new())
            .when(CartCommand::SetItem { product_id: p, quantity: 2 })
            .then([CartEvent::ItemSet(CartItemSet { product_id: p, quantity: 2 })]);
        let set = CartEvent::ItemSet(CartItemSet { product_id: p, quantity: 2 });
        Spec::<CartDecider>::given([set.clone()])
            .when(CartCommand::SetItem { product_id: p, quantity: 2 })
            .then_nothing();
        Spec::<CartDecider>::given([set.clone()])
            .when(CartCommand::SetItem { product_id: p, quantity: 0 })
            .then([CartEvent::ItemRemoved(CartItemRemoved { product_id: p })]);
        Spec::<CartDecider>::given(Vec::<CartEvent>::new())
            .when(CartCommand::SetItem { product_id: p, quantity: 0 })
            .then_nothing();
        Spec::<CartDecider>::given([set, CartEvent::CheckedOut(CartCheckedOut { order_id: Uuid::nil() })])
            .when(CartCommand::CheckOut { order_id: Uuid::from_u128(5) })
            .then_error(CartError::Empty);
    }

    #[test]
    fn a_cart_has_a_size_limit() {
        let full: Vec<CartEvent> = (0..Cart::MAX_ITEMS as u128)
            .map(|i| CartEvent::ItemSet(CartItemSet { product_id: Uuid::from_u128(i + 1), quantity: 1 }))
            .collect();
        Spec::<CartDecider>::given(full.clone())
            .when(CartCommand::SetItem { product_id: Uuid::from_u128(9999), quantity: 1 })
            .then_error(CartError::TooManyItems);
        Spec::<CartDecider>::given(full)
            .when(CartCommand::SetItem { product_id: Uuid::from_u128(1), quantity: 3 })
            .then([CartEvent::ItemSet(CartItemSet { product_id: Uuid::from_u128(1), quantity: 3 })]);
    }

    #[test]
    fn an_order_is_confirmed_by_its_payment() {
        Spec::<OrderDecider>::given([placed()])
            .when(OrderCommand::Confirm { authorization_id: "auth_1".into() })
            .then([confirmed()]);
        Spec::<OrderDecider>::given([placed(), confirmed()])
            .when(OrderCommand::Confirm { authorization_id: "auth_1".into() })
            .then_nothing();
        Spec::<OrderDecider>::given([placed(), cancelled()])
            .when(OrderCommand::Confirm { authorization_id: "auth_1".into() })
            .then_error(OrderError::Cancelled);
        Spec::<OrderDecider>::given(Vec::<OrderEvent>::new())
            .when(OrderCommand::Confirm { authorization_id: "a".into() })
            .then_error(OrderError::NotFound);
        Spec::<OrderDecider>::given([placed()]).when(OrderCommand::Place(info())).then_error(OrderError::AlreadyPlaced);
    }

    #[test]
    fn buyers_cancel_their_own_orders_before_shipping() {
        let cancel = |by: Caller, shipped: bool| OrderCommand::Cancel { by, reason: "buyer_request".into(), shipped };
        Spec::<OrderDecider>::given([placed()]).when(cancel(buyer(), false)).then([cancelled()]);
        Spec::<OrderDecider>::given([placed(), confirmed()]).when(cancel(buyer(), false)).then([cancelled()]);
        Spec::<OrderDecider>::given([placed(), confirmed()])
            .when(cancel(buyer(), true))
            .then_error(OrderError::AlreadyShipped);
        let stranger = Caller { account_id: Uuid::from_u128(11), role: Role::Buyer };
        Spec::<OrderDecider>::given([placed()]).when(cancel(stranger, false)).then_error(OrderError::NotFound);
        Spec::<OrderDecider>::given([placed(), cancelled()]).when(cancel(buyer(), false)).then_nothing();
        let delivered = OrderEvent::Delivered(OrderDelivered { delivery_id: Uuid::from_u128(7) });
        Spec::<OrderDecider>::given([placed(), confirmed(), delivered])
            .when(cancel(buyer(), true))
            .then_error(OrderError::NotCancellable { status: "delivered" });
    }

    #[test]
    fn admins_cancel_any_order_even_after_shipping() {
        let admin = Caller { account_id: Uuid::from_u128(99), role: Role::Admin };
        Spec::<OrderDecider>::given([placed(), confirmed()])
            .when(OrderCommand::Cancel { by: admin, reason: "buyer_request".into(), shipped: true })
            .then([cancelled()]);
    }

    #[test]
    fn delivery_and_refunds() {
        let delivery_id = Uuid::from_u128(7);
        Spec::<OrderDecider>::given([placed(), confirmed()])
            .when(OrderCommand::MarkDelivered { delivery_id })
            .then([OrderEvent::Delivered(OrderDelivered { delivery_id })]);
        Spec::<OrderDecider>::given([placed(), cancelled()])
            .when(OrderCommand::MarkDelivered { delivery_id })
            .then_nothing();
        let refund = OrderCommand::RecordRefund { refund_id: "re_1".into(), amount_cents: 1000 };
        Spec::<OrderDecider>::given([placed(), cancelled()])
            .when(refund.clone())
            .then([OrderEvent::Refunded(OrderRefunded { amount_cents: 1000, refund_id: "re_1".into() })]);
        Spec::<OrderDecider>::given([placed(), confirmed()])
            .when(refund)
            .then_error(OrderError::NotRefundable { status: "confirmed" });
    }

    #[test]
    fn purchases_are_recorded_once_per_order() {
        let order = Uuid::from_u128(100);
        let recorded =
            PurchaseEvent::Delivered(PurchaseDelivered { order_id: order, product_ids: vec![Uuid::from_u128(1)] });
        Spec::<PurchasesDecider>::given(Vec::<PurchaseEvent>::new())
            .when(PurchaseCommand::RecordDelivered { order_id: order, product_ids: vec![Uuid::from_u128(1)] })
            .then([recorded.clone()]);
        Spec::<PurchasesDecider>::given([recorded])
            .when(PurchaseCommand::RecordDelivered { order_id: order, product_ids: vec![Uuid::from_u128(1)] })
            .then_nothing();
    }

    fn product(id: u128, price: i64, currency: &str, stock: u32) -> Product {
        ProductDecider::fold(&[ProductEvent::Listed(ProductListed {
            product_id: Uuid::from_u128(id),
            vendor_id: Uuid::from_u128(1),
            title: format!("p{id}"),
            description: "d".into(),
            category: "c".into(),
            brand: "b".into(),
            price_cents: price,
            currency: currency.into(),
            stock,
        })])
    }

    fn cart(items: &[(u128, u32)]) -> Cart {
        Cart { items: items.iter().map(|(p, q)| (Uuid::from_u128(*p), *q)).collect() }
    }

    #[test]
    fn checkout_reserves_stock_places_the_order_and_requests_payment() {
        let products: HashMap<Uuid, Product> =
            [(Uuid::from_u128(1), product(1, 500, "EUR", 3)), (Uuid::from_u128(2), product(2, 250, "EUR", 10))].into();
        let cart = cart(&[(1, 2), (2, 4)]);
        let input = CheckoutInput {
            order_id: Uuid::from_u128(100),
            buyer_id: buyer().account_id,
            cart: &cart,
            products: &products,
            shipping_address: sealed(),
            payment_token: "tok_visa".into(),
        };
        let decision = decide_checkout(&input).expect("accepted");
        assert_eq!(decision.total_cents, 2 * 500 + 4 * 250);
        assert_eq!(decision.cart, vec![CartEvent::CheckedOut(CartCheckedOut { order_id: Uuid::from_u128(100) })]);
        assert_eq!(
            decision.stock,
            vec![
                (
                    Uuid::from_u128(1),
                    vec![ProductEvent::StockReserved(ProductStockReserved {
                        order_id: Uuid::from_u128(100),
                        quantity: 2,
                        stock: 1
                    })]
                ),
                (
                    Uuid::from_u128(2),
                    vec![ProductEvent::StockReserved(ProductStockReserved {
                        order_id: Uuid::from_u128(100),
                        quantity: 4,
                        stock: 6
                    })]
                ),
            ]
        );
        match &decision.order[..] {
            [OrderEvent::Placed(placed)] => {
                assert_eq!(placed.lines.len(), 2);
                assert_eq!(placed.lines[0].unit_price_cents, 500, "price at the time of checkout");
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(&decision.payment[..], [PaymentEvent::Requested(r)] if r.amount_cents == 2000 && r.payment_token == "tok_visa")
        );
    }

    #[test]
    fn checkout_refusals() {
        let base = |products: &HashMap<Uuid, Product>, cart: &Cart| {
            decide_checkout(&CheckoutInput {
                order_id: Uuid::from_u128(100),
                buyer_id: buyer().account_id,
                cart,
                products,
                shipping_address: sealed(),
                payment_token: "tok_visa".into(),
            })
        };
        let products: HashMap<Uuid, Product> =
            [(Uuid::from_u128(1), product(1, 500, "EUR", 3)), (Uuid::from_u128(3), product(3, 500, "USD", 3))].into();
        assert_eq!(base(&products, &cart(&[])), Err(CheckoutError::Cart(CartError::Empty)));
        assert_eq!(
            base(&products, &cart(&[(1, 4)])),
            Err(CheckoutError::Product(ProductError::OutOfStock {
                product_id: Uuid::from_u128(1),
                available: 3,
                requested: 4
            }))
        );
        assert_eq!(
            base(&products, &cart(&[(2, 1)])),
            Err(CheckoutError::Product(ProductError::Unavailable { product_id: Uuid::from_u128(2) }))
        );
        assert_eq!(base(&products, &cart(&[(1, 1), (3, 1)])), Err(CheckoutError::MixedCurrencies));
    }

    fn expire() -> OrderCommand {
        OrderCommand::Expire { order_id: Uuid::from_u128(100) }
    }

    fn expired() -> OrderEvent {
        OrderEvent::CheckoutExpired(OrderCheckoutExpired { order_id: Uuid::from_u128(100) })
    }

    #[test]
    fn an_unclaimed_checkout_expires_and_can_no_longer_be_placed() {
        Spec::<OrderDecider>::given(Vec::<OrderEvent>::new()).when(expire()).then([expired()]);
        Spec::<OrderDecider>::given([expired()]).when(expire()).then_nothing();
        Spec::<OrderDecider>::given([expired()])
            .when(OrderCommand::Place(info()))
            .then_error(OrderError::CheckoutExpired);
        assert_eq!(OrderDecider::fold(&[expired()]).status(), "expired");
    }

    #[test]
    fn a_placed_order_has_claimed_its_holds_and_does_not_expire() {
        Spec::<OrderDecider>::given([placed()]).when(expire()).then_error(OrderError::AlreadyPlaced);
        Spec::<OrderDecider>::given([placed(), cancelled()]).when(expire()).then_error(OrderError::AlreadyPlaced);
    }
}
