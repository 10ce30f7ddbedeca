//! The payment gateway: a trait for real providers and a built-in sandbox.
//!
//! Every call carries its own idempotency key (the order id for an authorisation), so a call
//! retried after a timeout never charges twice: the provider answers the retry with the
//! result of the first call.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeRequest {
    /// Same key, same result, one charge.
    pub idempotency_key: String,
    pub amount_cents: i64,
    pub currency: String,
    pub payment_token: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    pub idempotency_key: String,
    pub authorization_id: String,
    pub amount_cents: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// The provider said no; final.
    #[error("declined: {0}")]
    Declined(String),
    /// No answer in time; the call may or may not have happened. Retry with the same key.
    #[error("the payment provider did not answer in time")]
    Timeout,
    #[error("the payment provider is unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait PaymentGateway: Send + Sync + 'static {
    /// Authorise an amount; `Ok` carries the provider's authorisation id.
    async fn authorize(&self, request: AuthorizeRequest) -> Result<String, GatewayError>;
    /// Refund an authorisation; `Ok` carries the refund id.
    async fn refund(&self, request: RefundRequest) -> Result<String, GatewayError>;
}

/// Deterministic test tokens, like a real provider's sandbox:
/// - `tok_visa` (and any other `tok_...`): authorised;
/// - `tok_declined`: declined (`card_declined`);
/// - `tok_timeout`: the first attempt charges but times out before answering; a retry with
///   the same idempotency key gets the original authorisation (one charge in all).
#[derive(Debug, Default)]
pub struct SandboxGateway {
    state: Mutex<SandboxState>,
    /// How long a `tok_timeout` call waits before timing out.
    pub timeout: Duration,
}

#[derive(Debug, Default)]
struct SandboxState {
    /// Idempotency key -> authorisation id.
    authorizations: HashMap<String, String>,
    refunds: HashMap<String, String>,
    /// Idempotency keys whose first call already timed out.
    timed_out: std::collections::HashSet<String>,
    charges: u64,
}

impl SandboxGateway {
    pub fn new() -> Self {
        Self { state: Mutex::default(), timeout: Duration::from_millis(50) }
    }

    /// Charges actually made (tests check that retries do not add any).
    pub fn charges(&self) -> u64 {
        self.state.lock().map(|s| s.charges).unwrap_or(0)
    }

    fn next_id(prefix: &str) -> String {
        format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
    }
}

#[async_trait]
impl PaymentGateway for SandboxGateway {
    async fn authorize(&self, request: AuthorizeRequest) -> Result<String, GatewayError> {
        if request.payment_token == "tok_declined" {
            return Err(GatewayError::Declined("card_declined".into()));
        }
        if !request.payment_token.starts_with("tok_") {
            return Err(GatewayError::Declined("invalid_payment_token".into()));
        }
        let first_timeout = {
            let mut state =
                self.state.lock().map_err(|_| GatewayError::Unavailable("sandbox state poisoned".into()))?;
            if let Some(existing) = state.authorizations.get(&request.idempotency_key) {
                return Ok(existing.clone());
            }
            let id = Self::next_id("auth");
            state.authorizations.insert(request.idempotency_key.clone(), id);
            state.charges += 1;
            request.payment_token == "tok_timeout" && state.timed_out.insert(request.idempotency_key.clone())
        };
        if first_timeout {
            // Charged, but the answer never arrives.
            tokio::time::sleep(self.timeout).await;
            return Err(GatewayError::Timeout);
        }
        let state = self.state.lock().map_err(|_| GatewayError::Unavailable("sandbox state poisoned".into()))?;
        state.authorizations.get(&request.idempotency_key).cloned().ok_or(GatewayError::Timeout)
    }

    async fn refund(&self, request: RefundRequest) -> Result<String, GatewayError> {
        let mut state = self.state.lock().map_err(|_| GatewayError::Unavailable("sandbox state poisoned".into()))?;
        let id = state.refunds.entry(request.idempotency_key).or_insert_with(|| Self::next_id("re")).clone();
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(token: &str, key: &str) -> AuthorizeRequest {
        AuthorizeRequest {
            idempotency_key: key.into(),
            amount_cents: 100,
            currency: "EUR".into(),
            payment_token: token.into(),
        }
    }

    #[tokio::test]
    async fn sandbox_tokens_behave_as_documented() {
        let gateway = SandboxGateway::new();
        let auth = gateway.authorize(request("tok_visa", "order-1")).await.expect("authorised");
        assert_eq!(gateway.authorize(request("tok_visa", "order-1")).await, Ok(auth), "same key, same answer");
        assert_eq!(gateway.charges(), 1);
        assert_eq!(
            gateway.authorize(request("tok_declined", "order-2")).await,
            Err(GatewayError::Declined("card_declined".into()))
        );
        assert_eq!(gateway.authorize(request("tok_timeout", "order-3")).await, Err(GatewayError::Timeout));
        let retried = gateway.authorize(request("tok_timeout", "order-3")).await.expect("retry succeeds");
        assert!(retried.starts_with("auth_"));
        assert_eq!(gateway.charges(), 2, "the timed-out call charged once, its retry did not charge again");
    }
}
