//! Deliveries: opened for confirmed orders (fulfilment process), tracked by carriers.

pub mod decider;
pub mod handlers;
pub mod http;
