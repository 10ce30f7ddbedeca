//! Who is acting: the bearer tokens both API sides accept.
//!
//! The command side issues tokens at login; the query side only verifies them. Both need the
//! same claims and the same key, so they live here, at the bottom of the crate graph.

use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::accounts::Role;

/// The claims of an Agora access token (HS256 JWT).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The account id.
    pub sub: Uuid,
    pub role: Role,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expires at, seconds since the epoch.
    pub exp: i64,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub account_id: Uuid,
    pub role: Role,
}

impl Caller {
    /// The `actor` written into event metadata.
    pub fn actor(&self) -> String {
        self.account_id.to_string()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the access token has expired, log in again")]
    Expired,
    #[error("the access token is not valid")]
    Invalid,
}

/// Issues and verifies tokens with one HMAC secret.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    lifetime: Duration,
}

impl TokenKeys {
    pub fn new(secret: &[u8], lifetime: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            lifetime,
        }
    }

    /// A token for `caller`, valid from `now` for the configured lifetime.
    pub fn issue(&self, caller: Caller, now: DateTime<Utc>) -> Result<(String, DateTime<Utc>), TokenError> {
        let expires_at = now + self.lifetime;
        let claims =
            Claims { sub: caller.account_id, role: caller.role, iat: now.timestamp(), exp: expires_at.timestamp() };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|_| TokenError::Invalid)?;
        Ok((token, expires_at))
    }

    /// The caller a token names, if the signature and expiry check out.
    pub fn verify(&self, token: &str) -> Result<Caller, TokenError> {
        match jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation) {
            Ok(data) => Ok(Caller { account_id: data.claims.sub, role: data.claims.role }),
            Err(error) if matches!(error.kind(), jsonwebtoken::errors::ErrorKind::ExpiredSignature) => {
                Err(TokenError::Expired)
            }
            Err(_) => Err(TokenError::Invalid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_verify_and_forged_or_expired_ones_do_not() {
        let keys = TokenKeys::new(b"a secret of at least thirty-two bytes!", Duration::hours(1));
        let caller = Caller { account_id: Uuid::now_v7(), role: Role::Vendor };
        let (token, expires_at) = keys.issue(caller, Utc::now()).expect("issue");
        assert!(expires_at > Utc::now());
        assert_eq!(keys.verify(&token), Ok(caller));

        let other = TokenKeys::new(b"another secret of thirty-two bytes!!!", Duration::hours(1));
        let (forged, _) = other.issue(caller, Utc::now()).expect("issue");
        assert_eq!(keys.verify(&forged), Err(TokenError::Invalid));
        assert_eq!(keys.verify("not.a.token"), Err(TokenError::Invalid));
        assert_eq!(keys.verify(""), Err(TokenError::Invalid));

        let (old, _) = keys.issue(caller, Utc::now() - Duration::hours(2)).expect("issue");
        assert_eq!(keys.verify(&old), Err(TokenError::Expired));
    }
}
