//! Per-device series: retries are duplicates, lost ops are gaps.
//!
//! Each device numbers its ops 1, 2, 3 … (`seq`). The server keeps, per device, the last
//! sequence number it processed ([`SeriesState`]) and classifies each incoming op
//! ([`Admission`]):
//! - `seq == last + 1` → **next**: process it (whatever the merge outcome, even a rejection,
//!   the series advances — the op has been answered);
//! - `seq <= last` → **duplicate**: a retry after a lost response. The batch processor confirms
//!   the op is exactly the one stored for `(device, seq)` (same id, same content) and answers
//!   with the stored result; anything else under a used number is `seq_reused` (`seq` 0, never
//!   a valid number, is refused before the series is consulted);
//! - `seq > last + 1` → **gap**: an earlier op is missing. The op is held (not applied, not
//!   stored) and the device resends from `expected`. Never silently skip a lost op.

use serde::{Deserialize, Serialize};

/// What the server knows about one device's series.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesState {
    /// The last sequence number processed; 0 before the first op.
    pub last_seq: u64,
}

/// How an incoming op relates to its device's series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The next op: process it.
    Next,
    /// Already processed: answer with the stored result.
    Duplicate,
    /// Ops are missing before it: hold it; the device must resend from `expected`.
    Gap {
        /// The sequence number the server expects next.
        expected: u64,
    },
}

impl SeriesState {
    /// Classifies the sequence number of an incoming op.
    pub fn admit(&self, seq: u64) -> Admission {
        let expected = self.last_seq.saturating_add(1);
        match seq {
            s if s == expected => Admission::Next,
            s if s <= self.last_seq => Admission::Duplicate,
            _ => Admission::Gap { expected },
        }
    }

    /// Records that the next op was processed.
    pub fn advance(&mut self) {
        self.last_seq = self.last_seq.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_next_duplicate_and_gap() {
        let series = SeriesState { last_seq: 3 };
        assert_eq!(series.admit(4), Admission::Next);
        assert_eq!(series.admit(3), Admission::Duplicate);
        assert_eq!(series.admit(1), Admission::Duplicate);
        assert_eq!(series.admit(6), Admission::Gap { expected: 4 });
        assert_eq!(SeriesState::default().admit(1), Admission::Next);
        assert_eq!(SeriesState::default().admit(0), Admission::Duplicate);
    }
}
