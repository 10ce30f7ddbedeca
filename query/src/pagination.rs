//! Relay-style pagination over read models: page sizes, opaque keyset cursors, `PageInfo`.
//!
//! A cursor is the sort key of the last item of a page (a timestamp and an id) with a tag
//! naming the list it belongs to, so a cursor of one list is refused by another. Product
//! search cursors are the search crate's own.

use async_graphql::SimpleObject;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeZone, Utc};
use uuid::Uuid;

use crate::error::Error;

/// The largest page any list serves.
pub const MAX_PAGE_SIZE: usize = 100;

/// The page size a client asked for, checked: 0 to `MAX_PAGE_SIZE`.
pub fn page_size(first: Option<i32>, default: usize) -> Result<usize, Error> {
    match first {
        None => Ok(default),
        Some(n) if n < 0 => Err(Error::bad_input(format!("first must not be negative (got {n})"))),
        Some(n) if n as usize > MAX_PAGE_SIZE => {
            Err(Error::bad_input(format!("first must be at most {MAX_PAGE_SIZE} (got {n})")))
        }
        Some(n) => Ok(n as usize),
    }
}

/// The complexity of a connection field: its own cost plus the cost of each item it may
/// return (unknown or invalid sizes count as the maximum).
pub fn connection_cost(first: Option<i32>, default: usize, child_complexity: usize) -> usize {
    let items = match first {
        None => default,
        Some(n) if (0..=MAX_PAGE_SIZE as i32).contains(&n) => n as usize,
        Some(_) => MAX_PAGE_SIZE,
    };
    2 + items.max(1).saturating_mul(child_complexity)
}

/// Which list a cursor belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CursorKind {
    VendorProducts = 1,
    Orders = 2,
    ProductReviews = 3,
    ModerationQueue = 4,
}

const VERSION: u8 = 1;
const LEN: usize = 2 + 8 + 16;

/// The sort key of a list item: a time and the item's id as tie-breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Keyset {
    pub at: DateTime<Utc>,
    pub id: Uuid,
}

impl Keyset {
    pub fn new(at: DateTime<Utc>, id: Uuid) -> Self {
        Self { at, id }
    }

    pub fn encode(&self, kind: CursorKind) -> String {
        let mut bytes = Vec::with_capacity(LEN);
        bytes.push(VERSION);
        bytes.push(kind as u8);
        bytes.extend_from_slice(&self.at.timestamp_micros().to_be_bytes());
        bytes.extend_from_slice(self.id.as_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// A cursor of list `kind`, or `BAD_USER_INPUT`.
    pub fn decode(kind: CursorKind, text: &str) -> Result<Self, Error> {
        let invalid = || Error::bad_input("invalid cursor: pass back the cursor of a previous page of the same list");
        // Checked before decoding, so a huge string costs nothing.
        if text.len() > 64 {
            return Err(invalid());
        }
        let bytes = URL_SAFE_NO_PAD.decode(text.trim()).map_err(|_| invalid())?;
        if bytes.len() != LEN || bytes[0] != VERSION || bytes[1] != kind as u8 {
            return Err(invalid());
        }
        let micros = bytes[2..10].try_into().map(i64::from_be_bytes).map_err(|_| invalid())?;
        let at = Utc.timestamp_micros(micros).single().ok_or_else(invalid)?;
        let id = Uuid::from_slice(&bytes[10..26]).map_err(|_| invalid())?;
        Ok(Self { at, id })
    }

    /// An optional `after` argument.
    pub fn after(kind: CursorKind, after: Option<&str>) -> Result<Option<Self>, Error> {
        after.map(|text| Self::decode(kind, text)).transpose()
    }
}

/// Relay's page information.
#[derive(Debug, Clone, Default, PartialEq, Eq, SimpleObject)]
pub struct PageInfo {
    pub has_next_page: bool,
    /// Always false: lists are paged forwards only.
    pub has_previous_page: bool,
    pub start_cursor: Option<String>,
    pub end_cursor: Option<String>,
}

impl PageInfo {
    pub fn new(cursors: &[String], has_next_page: bool) -> Self {
        Self {
            has_next_page,
            has_previous_page: false,
            start_cursor: cursors.first().cloned(),
            end_cursor: cursors.last().cloned(),
        }
    }
}

/// Split `rows` fetched with `Page::of(size, ..)` into the page and whether more follow.
pub fn split_page<T>(mut rows: Vec<T>, size: usize) -> (Vec<T>, bool) {
    let more = rows.len() > size;
    rows.truncate(size);
    (rows, more)
}

/// Parse an `ID` argument that must be a UUID.
pub fn parse_id(what: &str, id: &str) -> Result<Uuid, Error> {
    if id.len() > 64 {
        return Err(Error::bad_input(format!("{what} id is not a valid id")));
    }
    Uuid::parse_str(id.trim()).map_err(|_| Error::bad_input(format!("{what} id is not a valid id: expected a UUID")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_other_lists_and_garbage() {
        let key = Keyset::new(Utc.timestamp_micros(1_750_000_000_123_456).single().unwrap(), Uuid::now_v7());
        let text = key.encode(CursorKind::Orders);
        assert_eq!(Keyset::decode(CursorKind::Orders, &text).unwrap(), key);
        assert!(Keyset::decode(CursorKind::ProductReviews, &text).is_err());
        for bad in ["", "x", "!!!", &text[..text.len() - 2], &format!("{text}AA"), &"A".repeat(100_000)] {
            assert!(Keyset::decode(CursorKind::Orders, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn page_sizes_are_bounded() {
        assert_eq!(page_size(None, 20).unwrap(), 20);
        assert_eq!(page_size(Some(0), 20).unwrap(), 0);
        assert_eq!(page_size(Some(100), 20).unwrap(), 100);
        assert!(page_size(Some(101), 20).is_err());
        assert!(page_size(Some(-1), 20).is_err());
        assert!(page_size(Some(i32::MAX), 20).is_err());
        assert_eq!(connection_cost(Some(i32::MAX), 20, 3), 2 + 300);
        assert_eq!(connection_cost(Some(-5), 20, 3), 2 + 300);
    }

    #[test]
    fn ids_must_be_uuids() {
        assert!(parse_id("order", "not-a-uuid").is_err());
        assert!(parse_id("order", "").is_err());
        assert!(parse_id("order", &"1".repeat(10_000)).is_err());
        let id = Uuid::now_v7();
        assert_eq!(parse_id("order", &id.to_string()).unwrap(), id);
    }
}
