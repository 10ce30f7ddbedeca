//! Who is asking: the caller named by the bearer token (the same JWT the command API issues),
//! and the access rules every resolver applies through it.

use events::domain::accounts::Role;
use events::identity::{Caller, TokenError, TokenKeys};
use uuid::Uuid;

use crate::error::Error;

/// The caller of one request (or of one WebSocket connection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Viewer {
    /// No token: sees the catalogue only.
    Anonymous,
    Caller(Caller),
    /// A token was sent but is not valid. Public fields still answer; fields that need a
    /// caller say why the token was refused.
    Refused(TokenError),
}

impl Viewer {
    /// From an `Authorization` header value (`Bearer <token>`), if any.
    pub fn from_authorization(tokens: &TokenKeys, header: Option<&str>) -> Viewer {
        let Some(header) = header.map(str::trim).filter(|h| !h.is_empty()) else {
            return Viewer::Anonymous;
        };
        let token = match header.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => return Viewer::Refused(TokenError::Invalid),
        };
        match tokens.verify(token) {
            Ok(caller) => Viewer::Caller(caller),
            Err(error) => Viewer::Refused(error),
        }
    }

    /// The caller, or `UNAUTHENTICATED`.
    pub fn caller(&self) -> Result<Caller, Error> {
        match self {
            Viewer::Caller(caller) => Ok(*caller),
            Viewer::Anonymous => {
                Err(Error::Unauthenticated("this field needs an access token (Authorization: Bearer <token>)".into()))
            }
            Viewer::Refused(reason) => Err(Error::Unauthenticated(reason.to_string())),
        }
    }

    pub fn is_admin(&self) -> bool {
        matches!(self, Viewer::Caller(Caller { role: Role::Admin, .. }))
    }

    /// The account id if the caller is this account or an admin: for data only an account
    /// itself (and staff) may see.
    pub fn is_self_or_admin(&self, account_id: Uuid) -> bool {
        match self {
            Viewer::Caller(caller) => caller.role == Role::Admin || caller.account_id == account_id,
            _ => false,
        }
    }

    /// `FORBIDDEN` unless the caller is an admin (`UNAUTHENTICATED` without a caller).
    pub fn require_admin(&self) -> Result<Caller, Error> {
        let caller = self.caller()?;
        if caller.role == Role::Admin { Ok(caller) } else { Err(Error::Forbidden("only admins may see this".into())) }
    }
}

/// What part of an order a caller may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderAccess {
    /// The buyer or an admin: everything.
    Full,
    /// A vendor with products in the order: its own lines only, and totals over them.
    VendorLines(Uuid),
}

/// The order access rule: a buyer sees its own orders, a vendor the orders containing its
/// products (only those lines), an admin every order. `None` means "not found" for this
/// caller, so others' order ids reveal nothing.
pub fn order_access(caller: &Caller, buyer_id: Option<Uuid>, line_vendors: &[Uuid]) -> Option<OrderAccess> {
    match caller.role {
        Role::Admin => Some(OrderAccess::Full),
        Role::Buyer if buyer_id == Some(caller.account_id) => Some(OrderAccess::Full),
        Role::Vendor if line_vendors.contains(&caller.account_id) => Some(OrderAccess::VendorLines(caller.account_id)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::new(b"a test secret of at least thirty-two bytes", chrono::Duration::hours(1))
    }

    #[test]
    fn reads_bearer_tokens_and_refuses_bad_ones() {
        let keys = keys();
        let caller = Caller { account_id: Uuid::now_v7(), role: Role::Buyer };
        let (token, _) = keys.issue(caller, chrono::Utc::now()).expect("issue");
        assert_eq!(Viewer::from_authorization(&keys, Some(&format!("Bearer {token}"))), Viewer::Caller(caller));
        assert_eq!(Viewer::from_authorization(&keys, Some(&format!("bearer  {token} "))), Viewer::Caller(caller));
        assert_eq!(Viewer::from_authorization(&keys, None), Viewer::Anonymous);
        assert_eq!(Viewer::from_authorization(&keys, Some("  ")), Viewer::Anonymous);
        assert_eq!(Viewer::from_authorization(&keys, Some(&token)), Viewer::Refused(TokenError::Invalid));
        assert_eq!(Viewer::from_authorization(&keys, Some("Basic abc")), Viewer::Refused(TokenError::Invalid));
        assert_eq!(Viewer::from_authorization(&keys, Some("Bearer x.y.z")), Viewer::Refused(TokenError::Invalid));
        assert!(matches!(Viewer::Anonymous.caller(), Err(Error::Unauthenticated(_))));
        assert!(matches!(Viewer::Caller(caller).require_admin(), Err(Error::Forbidden(_))));
    }

    #[test]
    fn order_access_follows_the_rules() {
        let buyer = Caller { account_id: Uuid::now_v7(), role: Role::Buyer };
        let vendor = Caller { account_id: Uuid::now_v7(), role: Role::Vendor };
        let admin = Caller { account_id: Uuid::now_v7(), role: Role::Admin };
        let carrier = Caller { account_id: Uuid::now_v7(), role: Role::Carrier };
        let other_vendor = Uuid::now_v7();
        let lines = [vendor.account_id, other_vendor];
        assert_eq!(order_access(&buyer, Some(buyer.account_id), &lines), Some(OrderAccess::Full));
        assert_eq!(order_access(&buyer, Some(Uuid::now_v7()), &lines), None);
        assert_eq!(
            order_access(&vendor, Some(buyer.account_id), &lines),
            Some(OrderAccess::VendorLines(vendor.account_id))
        );
        assert_eq!(order_access(&vendor, Some(buyer.account_id), &[other_vendor]), None);
        assert_eq!(order_access(&admin, Some(buyer.account_id), &[]), Some(OrderAccess::Full));
        assert_eq!(order_access(&carrier, Some(buyer.account_id), &lines), None);
        // A buyer id that is also a vendor id in lines does not make a buyer a vendor.
        assert_eq!(order_access(&buyer, Some(Uuid::now_v7()), &[buyer.account_id]), None);
    }
}
