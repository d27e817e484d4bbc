//! Exact decimals for thresholds and measured values.
//!
//! A threshold like 苗木成活率 ≥ 85 % decides whether a mine passes, so `85` and `85.0` must compare
//! equal and `84.999` must not round up: values are kept as an integer **mantissa** and a decimal
//! **scale** (`85.5` = 855 × 10⁻¹), parsed from the inspector's exact digits, never from a float.
//! They travel as strings (the sync protocol forbids floats for the same reason).

use std::{cmp::Ordering, fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The most fractional digits accepted; far beyond any field measurement.
pub const MAX_SCALE: u32 = 9;
/// The most integer digits accepted (areas in m² of a large mine fit easily).
const MAX_INT_DIGITS: usize = 15;

/// An exact decimal number: `mantissa × 10^-scale`.
#[derive(Debug, Clone, Copy)]
pub struct Decimal {
    mantissa: i128,
    scale: u32,
}

/// Why a text is not a decimal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    /// Not of the form `[-+]digits[.digits]`.
    #[error("{0:?} is not a decimal number (expected digits with an optional point, e.g. 85.5)")]
    Syntax(String),
    /// Too many digits.
    #[error(
        "{0:?} has too many digits (at most {MAX_INT_DIGITS} before and {MAX_SCALE} after the point)"
    )]
    TooLong(String),
}

impl Decimal {
    /// An integer value.
    pub const fn from_int(n: i64) -> Self {
        Decimal {
            mantissa: n as i128,
            scale: 0,
        }
    }

    /// The value scaled to [`MAX_SCALE`] digits, for comparison (cannot overflow: 15 + 9 digits
    /// fit in i128 with room to spare).
    fn scaled(self) -> i128 {
        self.mantissa * 10_i128.pow(MAX_SCALE - self.scale)
    }

    /// Whether the value is zero.
    pub fn is_zero(self) -> bool {
        self.mantissa == 0
    }
}

impl FromStr for Decimal {
    type Err = DecimalError;

    /// Accepts `85`, `85.0`, `-3.25`, `+1`; strict: at least one digit before the point and at least one after it if there is a point; no exponent, no spaces,
    /// no thousands separators.
    fn from_str(s: &str) -> Result<Self, DecimalError> {
        let syntax = || DecimalError::Syntax(s.to_owned());
        let (negative, body) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        let (int, frac) = match body.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (body, None),
        };
        let all_digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(int) || frac.is_some_and(|f| !all_digits(f)) {
            return Err(syntax());
        }
        let frac = frac.unwrap_or("");
        if int.trim_start_matches('0').len() > MAX_INT_DIGITS || frac.len() > MAX_SCALE as usize {
            return Err(DecimalError::TooLong(s.to_owned()));
        }
        let digits = format!("{int}{frac}");
        let magnitude: i128 = digits
            .parse()
            .map_err(|_| DecimalError::TooLong(s.to_owned()))?;
        let scale = u32::try_from(frac.len()).map_err(|_| DecimalError::TooLong(s.to_owned()))?;
        Ok(Decimal {
            mantissa: if negative { -magnitude } else { magnitude },
            scale,
        })
    }
}

impl PartialEq for Decimal {
    fn eq(&self, other: &Self) -> bool {
        self.scaled() == other.scaled()
    }
}

impl Eq for Decimal {}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Decimal {
    fn cmp(&self, other: &Self) -> Ordering {
        self.scaled().cmp(&other.scaled())
    }
}

impl fmt::Display for Decimal {
    /// Prints the digits as given (`85.0` stays `85.0`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.mantissa < 0 { "-" } else { "" };
        let magnitude = self.mantissa.unsigned_abs();
        if self.scale == 0 {
            return write!(f, "{sign}{magnitude}");
        }
        let divisor = 10_u128.pow(self.scale);
        let width = self.scale as usize;
        write!(
            f,
            "{sign}{}.{:0width$}",
            magnitude / divisor,
            magnitude % divisor
        )
    }
}

impl Serialize for Decimal {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl utoipa::PartialSchema for Decimal {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some(r"^[-+]?[0-9]+(\.[0-9]+)?$"))
            .description(Some(
                "An exact decimal number written as a string, e.g. \"85.5\".",
            ))
            .into()
    }
}

impl utoipa::ToSchema for Decimal {}

impl<'de> Deserialize<'de> for Decimal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn trailing_zeros_compare_equal() {
        assert_eq!(d("85"), d("85.0"));
        assert_eq!(d("85"), d("85.000000000"));
        assert_eq!(d("-0"), d("0.0"));
        assert!(d("84.999") < d("85"));
        assert!(d("85.001") > d("85"));
        assert!(d("-1.5") < d("-1.25"));
    }

    #[test]
    fn display_keeps_the_digits_given() {
        for s in ["85", "85.0", "-3.25", "0.05", "100", "-0.5"] {
            assert_eq!(d(s).to_string(), s);
        }
        assert_eq!(d("+7").to_string(), "7");
    }

    #[test]
    fn rejects_non_decimals() {
        for s in [
            "", "-", ".5", "5.", "1e3", "8 5", "85%", "1,000", "NaN", "inf", "0x10", "--1", "１",
        ] {
            assert!(s.parse::<Decimal>().is_err(), "{s:?} should be rejected");
        }
        assert!(matches!(
            "1.0000000001".parse::<Decimal>(),
            Err(DecimalError::TooLong(_))
        ));
        assert!(matches!(
            "1234567890123456".parse::<Decimal>(),
            Err(DecimalError::TooLong(_))
        ));
        assert!("123456789012345.123456789".parse::<Decimal>().is_ok());
    }

    #[test]
    fn serde_as_string() {
        let v: Decimal = serde_json::from_str("\"12.50\"").unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), "\"12.50\"");
        assert!(serde_json::from_str::<Decimal>("12.5").is_err());
    }
}
