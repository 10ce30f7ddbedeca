//! Validated values: everything that crosses the HTTP boundary is parsed into one of these
//! ("parse, don't validate"), so deciders never see an invalid email, a negative price or
//! a 10 MB title.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One field that failed validation, in words a person understands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Collects field errors so a request gets every complaint at once, not one per try.
#[derive(Debug, Default)]
pub struct Validator {
    errors: Vec<FieldError>,
}

/// The request failed validation: every field error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} field(s) failed validation", .0.len())]
pub struct Invalid(pub Vec<FieldError>);

impl Validator {
    /// Record the outcome of parsing one field; `Some` when it is valid.
    pub fn check<T>(&mut self, field: &str, parsed: Result<T, String>) -> Option<T> {
        match parsed {
            Ok(value) => Some(value),
            Err(message) => {
                self.errors.push(FieldError { field: field.to_owned(), message });
                None
            }
        }
    }

    /// Like `check`, for optional fields: `None` stays `None`.
    pub fn check_opt<T, I>(
        &mut self,
        field: &str,
        input: Option<I>,
        parse: impl FnOnce(I) -> Result<T, String>,
    ) -> Option<Option<T>> {
        match input {
            None => Some(None),
            Some(input) => self.check(field, parse(input)).map(Some),
        }
    }

    pub fn fail(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError { field: field.to_owned(), message: message.into() });
    }

    pub fn finish(self) -> Result<(), Invalid> {
        if self.errors.is_empty() { Ok(()) } else { Err(Invalid(self.errors)) }
    }
}

/// Trimmed text of `min..=max` characters without control characters (newlines and tabs
/// allowed where `multiline`).
fn text(input: &str, min: usize, max: usize, multiline: bool) -> Result<String, String> {
    let trimmed = input.trim();
    let len = trimmed.chars().count();
    if len < min {
        return Err(if min == 1 {
            "must not be empty".to_owned()
        } else {
            format!("must be at least {min} characters")
        });
    }
    if len > max {
        return Err(format!("must be at most {max} characters"));
    }
    if trimmed.chars().any(|c| c.is_control() && !(multiline && matches!(c, '\n' | '\t' | '\r'))) {
        return Err("must not contain control characters".to_owned());
    }
    Ok(trimmed.to_owned())
}

macro_rules! text_type {
    ($(#[$meta:meta])* $name:ident, $min:expr, $max:expr, $multiline:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            pub const MAX: usize = $max;

            pub fn parse(input: &str) -> Result<Self, String> {
                text(input, $min, $max, $multiline).map(Self)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_type!(/// A person's or a shop's display name.
    PersonName, 1, 100, false);
text_type!(/// A product title.
    Title, 1, 200, false);
text_type!(/// A product description.
    Description, 1, 5000, true);
text_type!(/// A category or a brand.
    Label, 1, 100, false);
text_type!(/// The text of a review.
    ReviewText, 1, 5000, true);
text_type!(/// Where a tracking event happened.
    Location, 1, 200, false);
text_type!(/// A reason given by a person (cancellation, moderation).
    Reason, 1, 500, true);
text_type!(/// One line of a postal address.
    AddressLine, 1, 200, false);

/// An email address, normalised (trimmed, lower-cased).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(input: &str) -> Result<Self, String> {
        let email = input.trim().to_lowercase();
        let invalid = || "must be an email address like name@example.com".to_owned();
        if email.len() > 254 {
            return Err("must be at most 254 characters".to_owned());
        }
        let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
        let ok = !local.is_empty()
            && local.len() <= 64
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains('@')
            && !domain.contains("..")
            && email.chars().all(|c| !c.is_whitespace() && !c.is_control());
        if ok { Ok(Self(email)) } else { Err(invalid()) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password as typed; only its argon2 hash is ever stored.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn parse(input: &str) -> Result<Self, String> {
        let len = input.chars().count();
        if len < 8 {
            return Err("must be at least 8 characters".to_owned());
        }
        if len > 128 {
            return Err("must be at most 128 characters".to_owned());
        }
        Ok(Self(input.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// An ISO 4217 currency code (three capital letters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency([u8; 3]);

impl Currency {
    pub fn parse(input: &str) -> Result<Self, String> {
        let bytes = input.trim().as_bytes();
        match bytes {
            [a, b, c] if bytes.iter().all(u8::is_ascii_uppercase) => Ok(Self([*a, *b, *c])),
            _ => Err("must be a three-letter ISO 4217 code such as EUR or USD".to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        // Three ASCII capitals, checked in `parse`.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }
}

/// A price in minor units (cents), strictly positive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PriceCents(i64);

impl PriceCents {
    pub const MAX: i64 = 100_000_000_00;

    pub fn parse(cents: i64) -> Result<Self, String> {
        if cents <= 0 {
            return Err("must be greater than 0".to_owned());
        }
        if cents > Self::MAX {
            return Err(format!("must be at most {}", Self::MAX));
        }
        Ok(Self(cents))
    }

    pub fn cents(self) -> i64 {
        self.0
    }
}

/// How many of one product in a cart line: 1 to 1,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Quantity(u32);

impl Quantity {
    pub const MAX: u32 = 1000;

    pub fn parse(n: i64) -> Result<Self, String> {
        if (1..=i64::from(Self::MAX)).contains(&n) {
            Ok(Self(n as u32))
        } else {
            Err(format!("must be between 1 and {}", Self::MAX))
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

/// Units on the shelf: 0 to 1,000,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StockLevel(u32);

impl StockLevel {
    pub const MAX: u32 = 1_000_000;

    pub fn parse(n: i64) -> Result<Self, String> {
        if (0..=i64::from(Self::MAX)).contains(&n) {
            Ok(Self(n as u32))
        } else {
            Err(format!("must be between 0 and {}", Self::MAX))
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

/// A stock adjustment: non-zero, at most a million either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StockDelta(i64);

impl StockDelta {
    pub fn parse(n: i64) -> Result<Self, String> {
        if n == 0 {
            return Err("must not be 0".to_owned());
        }
        if n.abs() > i64::from(StockLevel::MAX) {
            return Err(format!("must be between -{0} and {0}", StockLevel::MAX));
        }
        Ok(Self(n))
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// A review rating: 1 to 5 stars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rating(u8);

impl Rating {
    pub fn parse(n: i64) -> Result<Self, String> {
        if (1..=5).contains(&n) { Ok(Self(n as u8)) } else { Err("must be between 1 and 5".to_owned()) }
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

/// A payment method token from the payment provider (never card data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentToken(String);

impl PaymentToken {
    pub fn parse(input: &str) -> Result<Self, String> {
        let token = input.trim();
        if token.is_empty() || token.len() > 200 || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("must be a payment token such as tok_visa".to_owned());
        }
        Ok(Self(token.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A two-letter ISO 3166 country code.
fn country(input: &str) -> Result<String, String> {
    let code = input.trim();
    if code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(code.to_owned())
    } else {
        Err("must be a two-letter ISO 3166 country code such as FR or US".to_owned())
    }
}

/// A shipping address; stored only sealed with the buyer's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub name: String,
    pub line1: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    pub country: String,
}

/// What a client sends as a shipping address.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressInput {
    pub name: String,
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    /// ISO 3166 alpha-2, e.g. `FR`.
    pub country: String,
}

impl Address {
    /// Parse every field of an address, reporting errors as `<prefix>.<field>`.
    pub fn parse(input: &AddressInput, prefix: &str, v: &mut Validator) -> Option<Address> {
        let f = |name: &str| format!("{prefix}.{name}");
        let name = v.check(&f("name"), PersonName::parse(&input.name));
        let line1 = v.check(&f("line1"), AddressLine::parse(&input.line1));
        let line2 = v.check_opt(&f("line2"), input.line2.as_deref(), AddressLine::parse);
        let city = v.check(&f("city"), AddressLine::parse(&input.city));
        let postal_code = v.check(&f("postal_code"), text(&input.postal_code, 1, 20, false));
        let country = v.check(&f("country"), country(&input.country));
        Some(Address {
            name: name?.into_string(),
            line1: line1?.into_string(),
            line2: line2?.map(AddressLine::into_string),
            city: city?.into_string(),
            postal_code: postal_code?,
            country: country?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(Email::parse("  Alice@Example.COM ").map(|e| e.as_str().to_owned()), Ok("alice@example.com".into()));
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "alice@example",
            "a b@example.com",
            "alice@.com",
            "a@b..com",
            "a@b@c.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(65))).is_err());
    }

    #[test]
    fn text_fields_have_bounds_and_no_control_characters() {
        assert_eq!(Title::parse("  Oak desk ").map(Title::into_string), Ok("Oak desk".into()));
        assert!(Title::parse("   ").is_err());
        assert!(Title::parse(&"x".repeat(201)).is_err());
        assert!(Title::parse("bell\u{7}").is_err());
        assert!(Description::parse("two\nlines").is_ok());
        assert!(Title::parse("two\nlines").is_err());
        assert!(Title::parse("日本語のタイトル").is_ok(), "unicode is fine");
    }

    #[test]
    fn numbers_have_ranges() {
        assert!(PriceCents::parse(0).is_err() && PriceCents::parse(-5).is_err() && PriceCents::parse(1).is_ok());
        assert!(PriceCents::parse(PriceCents::MAX + 1).is_err());
        assert!(Quantity::parse(0).is_err() && Quantity::parse(1001).is_err() && Quantity::parse(1000).is_ok());
        assert!(StockLevel::parse(-1).is_err() && StockLevel::parse(0).is_ok());
        assert!(StockDelta::parse(0).is_err() && StockDelta::parse(-3).is_ok());
        assert!(Rating::parse(0).is_err() && Rating::parse(6).is_err() && Rating::parse(5).is_ok());
        assert!(Currency::parse("EUR").is_ok() && Currency::parse("eur").is_err() && Currency::parse("EURO").is_err());
    }

    #[test]
    fn passwords_never_print() {
        let password = Password::parse("correct horse battery").expect("valid");
        assert_eq!(format!("{password:?}"), "Password(***)");
        assert!(Password::parse("short").is_err());
    }

    #[test]
    fn validator_collects_every_error() {
        let mut v = Validator::default();
        let input = AddressInput {
            name: "".into(),
            line1: "1 Main St".into(),
            line2: None,
            city: "Paris".into(),
            postal_code: "75001".into(),
            country: "France".into(),
        };
        assert!(Address::parse(&input, "shipping_address", &mut v).is_none());
        let errors = v.finish().expect_err("invalid").0;
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["shipping_address.name", "shipping_address.country"]);
    }
}

/// Where a webhook is delivered: an absolute `http` or `https` URL with a host, no
/// credentials (they would end up in logs and admin views) and no fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(String);

impl WebhookUrl {
    pub fn parse(input: &str) -> Result<Self, String> {
        let input = input.trim();
        if input.len() > 2000 {
            return Err("must be at most 2000 characters".to_owned());
        }
        let url = url::Url::parse(input).map_err(|e| format!("is not a URL ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("must be an http:// or https:// URL".to_owned());
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("must name a host".to_owned());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not contain credentials; use the secret to authenticate deliveries".to_owned());
        }
        if url.fragment().is_some() {
            return Err("must not contain a fragment (#...)".to_owned());
        }
        Ok(Self(url.to_string()))
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// The integration event types a webhook receives: at least one, each a published type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTypes(Vec<String>);

impl EventTypes {
    pub fn parse(input: &[String]) -> Result<Self, String> {
        if input.is_empty() {
            return Err(format!("must list at least one of: {}", events::integration::EVENT_TYPES.join(", ")));
        }
        let mut types: Vec<String> = Vec::new();
        for t in input {
            let t = t.trim();
            if !events::integration::EVENT_TYPES.contains(&t) {
                return Err(format!(
                    "{t:?} is not an integration event type; use: {}",
                    events::integration::EVENT_TYPES.join(", ")
                ));
            }
            if !types.iter().any(|known| known == t) {
                types.push(t.to_owned());
            }
        }
        Ok(Self(types))
    }

    pub fn into_vec(self) -> Vec<String> {
        self.0
    }
}

/// The HMAC key of a webhook's signatures: 16 to 256 visible ASCII characters.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(String);

impl WebhookSecret {
    pub fn parse(input: &str) -> Result<Self, String> {
        let len = input.chars().count();
        if !(16..=256).contains(&len) {
            return Err("must be 16 to 256 characters long".to_owned());
        }
        if !input.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("must be visible ASCII characters (no spaces)".to_owned());
        }
        Ok(Self(input.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(..)")
    }
}

#[cfg(test)]
mod webhook_tests {
    use super::*;

    #[test]
    fn webhook_urls_are_absolute_http_without_credentials() {
        assert_eq!(
            WebhookUrl::parse(" https://hooks.example.com/agora ").unwrap().into_string(),
            "https://hooks.example.com/agora"
        );
        assert!(WebhookUrl::parse("http://127.0.0.1:9000/x?y=1").is_ok());
        for bad in [
            "",
            "hooks.example.com",
            "ftp://x.example/",
            "https://user:pw@x.example/",
            "http://x.example/#f",
            "mailto:a@b.c",
        ] {
            assert!(WebhookUrl::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn event_types_must_be_published_types() {
        let parsed =
            EventTypes::parse(&["order.placed".into(), "order.placed".into(), "review.approved".into()]).unwrap();
        assert_eq!(parsed.into_vec(), vec!["order.placed", "review.approved"]);
        assert!(EventTypes::parse(&[]).is_err());
        assert!(EventTypes::parse(&["cart.item_set".into()]).unwrap_err().contains("not an integration event type"));
    }

    #[test]
    fn secrets_are_long_enough_and_never_printed() {
        assert!(WebhookSecret::parse("short").is_err());
        assert!(WebhookSecret::parse("has spaces in it, sixteen+").is_err());
        let secret = WebhookSecret::parse("0123456789abcdef").unwrap();
        assert_eq!(format!("{secret:?}"), "WebhookSecret(..)");
    }
}
