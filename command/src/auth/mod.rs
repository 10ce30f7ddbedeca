//! Passwords (argon2, hashed on a blocking thread) and role / ownership checks. Tokens are
//! `events::identity` (the query side verifies the same tokens).

mod password;

pub use events::identity::{Caller, TokenError, TokenKeys};
pub use password::{hash_password, verify_password};

use events::domain::accounts::Role;

use crate::error::CommandError;

/// Refuse unless the caller has one of `roles`.
pub fn require(caller: &Caller, roles: &[Role]) -> Result<(), CommandError> {
    if roles.contains(&caller.role) {
        Ok(())
    } else {
        let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        Err(CommandError::forbidden(format!(
            "this needs the role {}; you are a {}",
            names.join(" or "),
            caller.role.as_str()
        )))
    }
}
