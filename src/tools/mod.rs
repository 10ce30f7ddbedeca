//! Operator tools of the `agora` binary.

/// `agora account create`: staff accounts.
pub mod account;
