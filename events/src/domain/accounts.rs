//! Accounts: registration, profile changes, erasure; and the email registry that keeps
//! emails unique (stream `email-<digest>`).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::domain_events;
use crate::privacy::Sealed;

/// Stream category of accounts: `account-<account id>`.
pub const ACCOUNT_CATEGORY: &str = "account";
/// Stream category of the email registry: `email-<digest of the normalised email>`.
pub const EMAIL_CATEGORY: &str = "email";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Buyer,
    Vendor,
    Carrier,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Buyer => "buyer",
            Role::Vendor => "vendor",
            Role::Carrier => "carrier",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "buyer" => Some(Role::Buyer),
            "vendor" => Some(Role::Vendor),
            "carrier" => Some(Role::Carrier),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRegistered {
    pub account_id: Uuid,
    pub role: Role,
    pub email: Sealed,
    pub name: Sealed,
    /// Argon2id PHC string.
    pub password_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountNameChanged {
    pub name: Sealed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountEmailChanged {
    pub email: Sealed,
    /// Registry stream of the email given up, so it can be released.
    pub previous_email_stream: String,
    pub email_stream: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountPasswordChanged {
    pub password_hash: String,
}

/// The account is closed and its personal-data key destroyed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountErased {
    pub account_id: Uuid,
}

domain_events! {
    /// Events of an account stream.
    pub enum AccountEvent {
        "account.registered" v 2 => Registered(AccountRegistered),
        "account.name_changed" v 1 => NameChanged(AccountNameChanged),
        "account.email_changed" v 1 => EmailChanged(AccountEmailChanged),
        "account.password_changed" v 1 => PasswordChanged(AccountPasswordChanged),
        "account.erased" v 1 => Erased(AccountErased),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailClaimed {
    pub account_id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailReleased {
    pub account_id: Uuid,
}

domain_events! {
    /// Events of an email registry stream: who holds this email now.
    pub enum EmailEvent {
        "email.claimed" v 1 => Claimed(EmailClaimed),
        "email.released" v 1 => Released(EmailReleased),
    }
}
