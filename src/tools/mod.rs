//! Operator tools of the `agora` binary.

/// `agora account create`: staff accounts.
pub mod account;
/// `agora import products`: catalogue import through the command path.
pub mod import;
/// `agora rebuild`, `agora status`, `agora park`, `agora unpark`.
pub mod operate;
/// Progress bars on a terminal, log lines otherwise.
pub mod progress;
/// `agora seed`: realistic data of any size through the command path.
pub mod seed;
