//! Operator tools of the `agora` binary.

/// `agora account create`: staff accounts.
pub mod account;
/// `agora import products`: catalogue import through the command path.
pub mod import;
/// Progress bars on a terminal, log lines otherwise.
pub mod progress;
