//! Payments: the gateway (trait + sandbox), the payment decider, and the payment process
//! manager that authorises checkouts and refunds cancellations.

pub mod decider;
pub mod gateway;
pub mod handlers;

pub use gateway::{AuthorizeRequest, GatewayError, PaymentGateway, RefundRequest, SandboxGateway};
