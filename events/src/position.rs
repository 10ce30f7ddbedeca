//! `LogPosition`: where an event sits in the global log, and the consistency token of the API.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A place in the global, commit-ordered log.
///
/// Two numbers, compared in order: `commit` (on PostgreSQL the id of the transaction that
/// wrote the event; on KurrentDB the `$all` commit position) then `prepare` (the event's own
/// sequence number; the `$all` prepare position). Readers see the log in this order and
/// never see an event appear behind a position they have already passed.
///
/// Clients treat the printed form (`"<commit>.<prepare>"`) as an opaque token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LogPosition {
    commit: u64,
    prepare: u64,
}

impl LogPosition {
    /// Before the first event: `read_all(LogPosition::START, ..)` reads from the beginning.
    pub const START: LogPosition = LogPosition { commit: 0, prepare: 0 };

    pub const fn new(commit: u64, prepare: u64) -> Self {
        Self { commit, prepare }
    }

    pub const fn commit(self) -> u64 {
        self.commit
    }

    pub const fn prepare(self) -> u64 {
        self.prepare
    }

    pub fn is_start(self) -> bool {
        self == Self::START
    }
}

impl fmt::Display for LogPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.commit, self.prepare)
    }
}

/// A consistency token that is not a log position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a consistency token: expected two numbers joined by '.', as returned by a command")]
pub struct InvalidLogPosition;

impl FromStr for LogPosition {
    type Err = InvalidLogPosition;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (commit, prepare) = s.trim().split_once('.').ok_or(InvalidLogPosition)?;
        let parse = |part: &str| {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(InvalidLogPosition);
            }
            part.parse::<u64>().map_err(|_| InvalidLogPosition)
        };
        Ok(Self::new(parse(commit)?, parse(prepare)?))
    }
}

impl Serialize for LogPosition {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LogPosition {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_by_commit_then_prepare() {
        let a = LogPosition::new(10, 500);
        let b = LogPosition::new(11, 2);
        let c = LogPosition::new(11, 3);
        assert!(LogPosition::START < a && a < b && b < c);
    }

    #[test]
    fn prints_and_parses_back() {
        let p = LogPosition::new(123_456, 789);
        assert_eq!(p.to_string(), "123456.789");
        assert_eq!("123456.789".parse::<LogPosition>(), Ok(p));
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"123456.789\"");
        assert_eq!(serde_json::from_str::<LogPosition>("\"123456.789\"").unwrap(), p);
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", ".", "1.", ".1", "1.2.3", "a.b", "-1.2", "1.-2", "+1.2", "99999999999999999999.1", "1 .2"] {
            assert_eq!(bad.parse::<LogPosition>(), Err(InvalidLogPosition), "{bad:?}");
        }
    }
}
