//! Hybrid logical clocks.
//!
//! Vocabulary:
//! - **HLC** ([`Hlc`]): `(wall_ms, counter)`, ordered lexicographically. It stays close to wall
//!   time but never goes backwards, and a device that has *seen* an HLC only issues larger ones.
//! - **Clock** ([`Clock`]): the per-device state that issues HLCs ([`Clock::tick`]) and absorbs
//!   the HLCs of pulled changes ([`Clock::observe`]).
//! - **Drift bound** ([`MAX_DRIFT_MS`]): a remote HLC further ahead of local time than this is
//!   adopted only up to the bound, so one device with a clock set to 2099 cannot drag every other
//!   device's clock into the future.
//!
//! HLCs only *order* ops and break ties between concurrent values (the provisional winner of a
//! conflict). Device clocks are untrusted: nothing security-relevant (deadlines, audit times)
//! depends on an HLC; the server records its own receive time for that.

use serde::{Deserialize, Serialize};

/// How far (ms) a remote HLC may be ahead of local wall time before it is clamped: 5 minutes.
pub const MAX_DRIFT_MS: u64 = 5 * 60 * 1000;

/// A hybrid logical clock timestamp. The derived order (wall time, then counter) is the total
/// order of the protocol; where two HLCs are equal the device id breaks the tie.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Hlc {
    /// Milliseconds since the Unix epoch, as the issuing device believed.
    pub wall_ms: u64,
    /// Disambiguates HLCs issued within one millisecond (or while the wall clock lags).
    pub counter: u32,
}

impl Hlc {
    /// The smallest HLC.
    pub const ZERO: Hlc = Hlc {
        wall_ms: 0,
        counter: 0,
    };

    /// Creates an HLC.
    pub const fn new(wall_ms: u64, counter: u32) -> Self {
        Self { wall_ms, counter }
    }

    /// The next HLC after `self`; rolls over into the next millisecond when the counter is full.
    #[must_use]
    pub const fn successor(self) -> Self {
        if self.counter == u32::MAX {
            Self {
                wall_ms: self.wall_ms.saturating_add(1),
                counter: 0,
            }
        } else {
            Self {
                wall_ms: self.wall_ms,
                counter: self.counter + 1,
            }
        }
    }
}

/// A remote HLC was further ahead of local time than [`MAX_DRIFT_MS`].
///
/// The clock still advanced, but only to `adopted` (the bound); the caller may surface this
/// ("this device's clock or the sender's is wrong"), it is not fatal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "remote clock {remote:?} is more than {MAX_DRIFT_MS} ms ahead of local time {now_ms} ms; \
     adopted only up to {adopted:?}"
)]
pub struct ClockDrift {
    /// The HLC that was observed.
    pub remote: Hlc,
    /// Local wall time at the observation.
    pub now_ms: u64,
    /// What the clock adopted instead (the drift bound).
    pub adopted: Hlc,
}

/// Per-device HLC state. Serialisable so a device can persist it next to its outbox: after a
/// restart with a wall clock that went backwards, the device still issues increasing HLCs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clock {
    last: Hlc,
}

impl Clock {
    /// A clock that has issued and seen nothing.
    pub const fn new() -> Self {
        Self { last: Hlc::ZERO }
    }

    /// The largest HLC issued or observed so far.
    pub const fn last(&self) -> Hlc {
        self.last
    }

    /// Issues a new HLC, strictly greater than everything issued or observed before.
    pub fn tick(&mut self, now_ms: u64) -> Hlc {
        let next = if now_ms > self.last.wall_ms {
            Hlc::new(now_ms, 0)
        } else {
            self.last.successor()
        };
        self.last = next;
        next
    }

    /// Absorbs a remote HLC so that later [`tick`](Self::tick)s order after it.
    ///
    /// A remote HLC more than [`MAX_DRIFT_MS`] ahead of `now_ms` is adopted only up to that
    /// bound and reported as [`ClockDrift`].
    pub fn observe(&mut self, remote: Hlc, now_ms: u64) -> Result<Hlc, ClockDrift> {
        let bound = Hlc::new(now_ms.saturating_add(MAX_DRIFT_MS), 0);
        if remote > bound {
            self.last = self.last.max(bound);
            return Err(ClockDrift {
                remote,
                now_ms,
                adopted: bound,
            });
        }
        self.last = self.last.max(remote);
        Ok(self.last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_is_strictly_increasing_even_when_wall_time_goes_backwards() {
        let mut clock = Clock::new();
        let a = clock.tick(1_000);
        let b = clock.tick(1_000);
        let c = clock.tick(500);
        assert!(a < b && b < c);
        assert_eq!(c, Hlc::new(1_000, 2));
        assert_eq!(clock.tick(2_000), Hlc::new(2_000, 0));
    }

    #[test]
    fn observe_makes_later_ticks_order_after_the_remote() {
        let mut clock = Clock::new();
        clock.tick(1_000);
        let remote = Hlc::new(60_000, 7);
        assert_eq!(clock.observe(remote, 1_000), Ok(remote));
        assert!(clock.tick(1_001) > remote);
    }

    #[test]
    fn observe_clamps_a_remote_beyond_the_drift_bound() {
        let mut clock = Clock::new();
        let far = Hlc::new(1_000 + MAX_DRIFT_MS + 1, 0);
        let err = clock.observe(far, 1_000).expect_err("beyond the bound");
        assert_eq!(err.adopted, Hlc::new(1_000 + MAX_DRIFT_MS, 0));
        assert_eq!(clock.last(), err.adopted);
        assert!(clock.tick(1_000) < far);
    }

    #[test]
    fn counter_overflow_rolls_into_the_next_millisecond() {
        assert_eq!(Hlc::new(5, u32::MAX).successor(), Hlc::new(6, 0));
    }
}
