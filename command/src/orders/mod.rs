//! Carts and orders: the cart, checkout (one atomic append across cart, order, payment and
//! stock) or, on stores without atomic multi-stream appends, the reserve path and the
//! `reservations` process that releases unclaimed holds; cancellation, and the completion
//! process.

pub mod decider;
pub mod handlers;
pub mod http;
pub mod reactions;
pub mod reservations;
pub mod reserve;
