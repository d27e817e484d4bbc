//! The one clock of the server: services and the store take every time from [`Clock`] (held in
//! `AppState::clock`), never from the system directly, so a test or a drill can walk a
//! campaign's real calendar.
//!
//! Two readings of one clock:
//! - [`Clock::now_ms`], the instant (Unix milliseconds): stored timestamps, token lifetimes,
//!   login-throttle windows, the receive time of sync ops;
//! - [`Clock::today`], the county's calendar day (China Standard Time, UTC+8, no daylight
//!   saving): the dates of workflow steps and deadlines.
//!
//! The system clock derives the day from the instant. A [`ManualClock`] sets the day only, so a
//! test or a training drill walks a campaign's calendar while sessions still expire in real time.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, FixedOffset, NaiveDate, Offset, Utc};

/// China Standard Time, in milliseconds east of UTC.
const CST_OFFSET_MS: i64 = 8 * 3_600_000;

/// The server's sense of time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, in Unix milliseconds.
    fn now_ms(&self) -> i64;

    /// Today's date in the county (UTC+8), the day of [`Clock::now_ms`].
    fn today(&self) -> NaiveDate {
        county_date(self.now_ms())
    }
}

/// The county's calendar day of a Unix millisecond time.
pub fn county_date(ms: i64) -> NaiveDate {
    let offset = FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| Utc.fix());
    DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .with_timezone(&offset)
        .date_naive()
}

/// Midnight at the start of a county calendar day, in Unix milliseconds.
pub fn county_midnight_ms(date: NaiveDate) -> i64 {
    date.and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc()
        .timestamp_millis()
        - CST_OFFSET_MS
}

/// The real clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        Utc::now().timestamp_millis()
    }
}

/// A clock whose calendar day is set by hand (tests, training drills); its instant is the real
/// one.
#[derive(Debug)]
pub struct ManualClock(Mutex<NaiveDate>);

impl ManualClock {
    pub fn new(today: NaiveDate) -> Arc<Self> {
        Arc::new(Self(Mutex::new(today)))
    }

    pub fn set(&self, today: NaiveDate) {
        if let Ok(mut d) = self.0.lock() {
            *d = today;
        }
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        Utc::now().timestamp_millis()
    }

    fn today(&self) -> NaiveDate {
        self.0.lock().map(|d| *d).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn county_dates_turn_at_midnight_china_time() {
        let d = NaiveDate::from_ymd_opt(2024, 3, 31).unwrap_or_default();
        let midnight = county_midnight_ms(d);
        assert_eq!(county_date(midnight), d);
        assert_eq!(county_date(midnight - 1), d.pred_opt().unwrap_or_default());
        // 2024-03-31 00:00 CST is 2024-03-30 16:00 UTC.
        assert_eq!(midnight, 1_711_814_400_000);
    }

    #[test]
    fn a_manual_clock_moves_the_day_not_the_instant() {
        let d = NaiveDate::from_ymd_opt(2024, 5, 31).unwrap_or_default();
        let clock = ManualClock::new(d);
        assert_eq!(clock.today(), d);
        let next = d.succ_opt().unwrap_or_default();
        clock.set(next);
        assert_eq!(clock.today(), next);
        let real = SystemClock.now_ms();
        assert!((clock.now_ms() - real).abs() < 60_000);
    }
}
