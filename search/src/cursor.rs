//! Opaque pagination cursors.
//!
//! A cursor is the sort position of the last item of a page: the normalised sort key and the
//! product id (the tie-breaker), plus the match mode the first page settled on, and a
//! fingerprint of the query it belongs to. The next page is every item strictly after that
//! position in the same order, so, while the index does not change, walking the pages never
//! repeats or skips an item. A cursor from another query, or a damaged one, is refused.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::SearchError;
use crate::query::{MatchMode, Scope};

const VERSION: u8 = 1;
const LEN: usize = 1 + 8 + 1 + 8 + 16;

/// A position in a result list: ascending `(key, id)` is result order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct SortPosition {
    pub key: u64,
    pub id: u128,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub fingerprint: u64,
    pub mode: MatchMode,
    pub scope: Scope,
    pub position: SortPosition,
}

impl Cursor {
    pub fn encode(&self) -> String {
        let mut bytes = Vec::with_capacity(LEN);
        bytes.push(VERSION);
        bytes.extend_from_slice(&self.fingerprint.to_be_bytes());
        let titles = if self.scope == Scope::Titles { 0x10 } else { 0 };
        bytes.push(self.mode.code() | titles);
        bytes.extend_from_slice(&self.position.key.to_be_bytes());
        bytes.extend_from_slice(&self.position.id.to_be_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Parse a cursor made for the query with `fingerprint`.
    pub fn decode(text: &str, fingerprint: u64) -> Result<Self, SearchError> {
        // Checked before decoding, so a huge string costs nothing.
        if text.len() > 64 {
            return Err(SearchError::InvalidCursor);
        }
        let bytes = URL_SAFE_NO_PAD.decode(text.trim()).map_err(|_| SearchError::InvalidCursor)?;
        if bytes.len() != LEN || bytes[0] != VERSION {
            return Err(SearchError::InvalidCursor);
        }
        let u64_at =
            |at: usize| bytes[at..at + 8].try_into().map(u64::from_be_bytes).map_err(|_| SearchError::InvalidCursor);
        if u64_at(1)? != fingerprint {
            return Err(SearchError::InvalidCursor);
        }
        let mode = MatchMode::from_code(bytes[9] & 0x0f).ok_or(SearchError::InvalidCursor)?;
        let scope = match bytes[9] & 0xf0 {
            0 => Scope::Anywhere,
            0x10 => Scope::Titles,
            _ => return Err(SearchError::InvalidCursor),
        };
        let key = u64_at(10)?;
        let id = bytes[18..34].try_into().map(u128::from_be_bytes).map_err(|_| SearchError::InvalidCursor)?;
        Ok(Self { fingerprint, mode, scope, position: SortPosition { key, id } })
    }
}

/// FNV-1a, 64 bits: stable across processes and versions (unlike `std`'s hasher), so a
/// cursor made by one query replica is understood by another.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fingerprint(u64);

impl Fingerprint {
    pub fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    pub fn bytes(mut self, bytes: &[u8]) -> Self {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self
    }

    /// A field of variable length, framed so that ("ab","c") and ("a","bc") differ.
    pub fn field(self, bytes: &[u8]) -> Self {
        self.bytes(&(bytes.len() as u64).to_le_bytes()).bytes(bytes)
    }

    pub fn finish(self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_other_queries_and_garbage() {
        let cursor = Cursor {
            fingerprint: 42,
            mode: MatchMode::AllWordsWithTypos,
            scope: Scope::Titles,
            position: SortPosition { key: u64::MAX - 7, id: u128::MAX / 3 },
        };
        let text = cursor.encode();
        assert_eq!(Cursor::decode(&text, 42).unwrap(), cursor);
        assert!(matches!(Cursor::decode(&text, 43), Err(SearchError::InvalidCursor)));
        for bad in ["", "x", "!!!!", &text[..text.len() - 1], &format!("{text}A"), &"A".repeat(10_000)] {
            assert!(matches!(Cursor::decode(bad, 42), Err(SearchError::InvalidCursor)), "{bad:?}");
        }
    }

    #[test]
    fn fingerprint_frames_fields() {
        let a = Fingerprint::new().field(b"ab").field(b"c").finish();
        let b = Fingerprint::new().field(b"a").field(b"bc").finish();
        assert_ne!(a, b);
    }
}
