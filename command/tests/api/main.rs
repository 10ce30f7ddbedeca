//! The command API end to end: real HTTP, real PostgreSQL, one throwaway database per test.

mod accounts;
mod bad_input;
mod catalog;
mod checkout;
mod privacy;
mod processes;
mod reserve;
mod support;
mod two_processes;
mod webhooks;
