//! The integration reactors against real services: the JetStream relay against a
//! `nats-server` started by the test, webhooks against an HTTP receiver on loopback,
//! notifications through a channel that records what it is given.

#[path = "../support/mod.rs"]
mod support;

mod market;
mod notifications;
mod relay;
mod webhooks;
