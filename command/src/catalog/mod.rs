//! Catalogue: products listed by vendors, their details, price and stock.

pub mod decider;
pub mod handlers;
pub mod http;
