//! Reviews: submitted by buyers who received the product, moderated by admins.

pub mod decider;
pub mod handlers;
pub mod http;
