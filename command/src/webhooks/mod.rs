//! Webhooks: admins register endpoints that receive integration events, and ask for a
//! delivery to be attempted again. Sending is the projections side's job.

pub mod decider;
pub mod handlers;
pub mod http;
