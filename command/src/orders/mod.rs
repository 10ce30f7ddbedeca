//! Carts and orders: the cart, checkout (one atomic append across cart, order, payment and
//! stock), cancellation, and the completion process.

pub mod decider;
pub mod handlers;
pub mod http;
pub mod reactions;
