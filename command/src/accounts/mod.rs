//! Accounts: registration, sessions, profile changes, erasure (GDPR).

pub mod decider;
pub mod handlers;
pub mod http;
