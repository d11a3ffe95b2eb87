//! Typed column values.
//!
//! Sources decode every column into a [`Value`] once, at the edge, and everything
//! downstream (envelope, Avro/JSON encoders, sinks) works on these typed values: no
//! stringly-typed data crosses a crate boundary. Temporal values keep the full precision
//! the databases have (microseconds); the encoders reduce them to what the configured
//! `time.precision.mode` asks for.
//!
//! [`Value::Unavailable`] marks a column whose value the source does not have, such as an
//! unchanged TOAST column in a Postgres update; it is distinct from SQL `NULL`.

use num_bigint::BigInt;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// An exact decimal number: `unscaled * 10^-scale`.
///
/// Arbitrary precision (Postgres `numeric` can hold 131072 digits before the point), so
/// the unscaled part is a big integer. `scale` may be negative for values such as
/// `1E+3` stored without trailing zeros.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Decimal {
    /// The digits of the number, as an integer.
    pub unscaled: BigInt,
    /// Number of digits after the decimal point.
    pub scale: i32,
}

/// Digits that always fit a `u128` (10^38 < 2^128): parsed without a big-integer parse.
const SMALL_DECIMAL_DIGITS: usize = 38;

impl Decimal {
    /// Builds a decimal from its unscaled integer and scale.
    pub fn new(unscaled: impl Into<BigInt>, scale: i32) -> Self {
        Self {
            unscaled: unscaled.into(),
            scale,
        }
    }

    /// Parses the plain decimal notation that databases print (`-12.3400`, `5`, `.5`).
    ///
    /// Exponent notation and special values (`NaN`, `Infinity`) are not decimals and
    /// yield `None`; sources map those themselves.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (negative, body) = match text.as_bytes().first()? {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let (int_part, frac_part) = match body.split_once('.') {
            Some((i, f)) => (i, f),
            None => (body, ""),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        if !int_part
            .bytes()
            .chain(frac_part.bytes())
            .all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let scale = i32::try_from(frac_part.len()).ok()?;
        let digit_count = int_part.len() + frac_part.len();
        let mut unscaled = if digit_count <= SMALL_DECIMAL_DIGITS {
            // The common case (every `numeric(p,s)` with p ≤ 38): no text concatenation,
            // no big-integer parse.
            let small = int_part
                .bytes()
                .chain(frac_part.bytes())
                .fold(0u128, |n, b| n * 10 + u128::from(b - b'0'));
            BigInt::from(small)
        } else {
            let mut digits = String::with_capacity(digit_count);
            digits.push_str(int_part);
            digits.push_str(frac_part);
            digits.parse().ok()?
        };
        if negative {
            unscaled = -unscaled;
        }
        Some(Self { unscaled, scale })
    }
}

impl std::fmt::Display for Decimal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let negative = self.unscaled.sign() == num_bigint::Sign::Minus;
        let magnitude = self.unscaled.magnitude().to_string();
        if negative {
            f.write_str("-")?;
        }
        if self.scale <= 0 {
            f.write_str(&magnitude)?;
            for _ in 0..self.scale.unsigned_abs() {
                f.write_str("0")?;
            }
            return Ok(());
        }
        let scale = self.scale.unsigned_abs() as usize;
        if magnitude.len() > scale {
            let (int_part, frac_part) = magnitude.split_at(magnitude.len() - scale);
            write!(f, "{int_part}.{frac_part}")
        } else {
            write!(f, "0.{}{magnitude}", "0".repeat(scale - magnitude.len()))
        }
    }
}

/// The timestamp (µs since the epoch) that stands for `+infinity` in
/// [`Value::Timestamp`] and [`Value::TimestampTz`]: the value Debezium's converters emit
/// for an infinite timestamp, so numeric encodings carry it as Debezium does; text
/// encodings write `infinity`.
pub const TIMESTAMP_POS_INFINITY: i64 = 9_223_372_036_825_200_000;

/// The timestamp (µs) that stands for `-infinity` (see [`TIMESTAMP_POS_INFINITY`]).
pub const TIMESTAMP_NEG_INFINITY: i64 = -9_223_372_036_832_400_000;

/// The date (days since the epoch) that stands for `infinity` in [`Value::Date`]: what
/// Debezium's Postgres connector writes for it (Postgres' own stand-in, `i32::MAX` days
/// from 2000-01-01, moved to the Unix epoch with 32-bit wrap-around), observed by the
/// differential test. Consumers of Debezium's topics see exactly this value.
pub const DATE_POS_INFINITY: i32 = i32::MAX.wrapping_add(10_957);

/// The date that stands for `-infinity` (see [`DATE_POS_INFINITY`]).
pub const DATE_NEG_INFINITY: i32 = i32::MIN.wrapping_add(10_957);

/// A Postgres-style interval: months, days and microseconds kept apart, because a month
/// has no fixed number of days and a day no fixed number of seconds (DST).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Interval {
    /// Whole months.
    pub months: i32,
    /// Whole days.
    pub days: i32,
    /// Microseconds.
    pub micros: i64,
}

/// One column value, decoded from the source's wire format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    /// SQL `NULL`.
    Null,
    /// `boolean`, MySQL `tinyint(1)`/`bit(1)`.
    Bool(bool),
    /// 8/16-bit integers (`smallint`, MySQL `tinyint`).
    Int16(i16),
    /// 32-bit integers (`integer`, MySQL `mediumint`, unsigned `smallint`).
    Int32(i32),
    /// 64-bit integers (`bigint`, unsigned `int`).
    Int64(i64),
    /// `real`, `float`.
    Float32(f32),
    /// `double precision`.
    Float64(f64),
    /// `numeric`/`decimal`, exact.
    Decimal(Decimal),
    /// Text of any kind (`text`, `varchar`, `char`, MySQL `set`, ...), valid UTF-8.
    String(String),
    /// Binary data (`bytea`, `blob`, `binary`, `bit varying`).
    Bytes(Vec<u8>),
    /// A calendar date, as days since 1970-01-01.
    Date(i32),
    /// A time of day without zone, as microseconds since midnight (may reach 24:00:00).
    Time(i64),
    /// A time of day with zone offset: microseconds since midnight and the offset east of
    /// UTC in seconds.
    TimeTz {
        /// Microseconds since local midnight.
        micros: i64,
        /// Zone offset east of UTC, in seconds.
        offset_seconds: i32,
    },
    /// A timestamp without time zone, as microseconds since 1970-01-01 00:00:00.
    Timestamp(i64),
    /// An instant, as microseconds since the Unix epoch in UTC.
    TimestampTz(i64),
    /// An interval.
    Interval(Interval),
    /// A UUID, 16 bytes in network order.
    Uuid([u8; 16]),
    /// A JSON document, as its text (`json`, `jsonb`, MySQL `JSON`).
    Json(String),
    /// A value of an enumerated type, as its label.
    Enum(String),
    /// An array of values of one element type.
    Array(Vec<Value>),
    /// Text keys with optional text values, in the source's order (Postgres `hstore`
    /// as a map).
    StringMap(Vec<(String, Option<String>)>),
    /// Spatial data as well-known binary, with its SRID if any (and, for points, the
    /// coordinates).
    Geometry {
        /// Well-known binary.
        wkb: Vec<u8>,
        /// Spatial reference id.
        srid: Option<i32>,
        /// x and y of a point.
        point: Option<(f64, f64)>,
    },
    /// A value the source did not send (an unchanged TOAST column); not the same as NULL.
    Unavailable,
}

impl Value {
    /// True for SQL `NULL`.
    pub fn is_null(&self) -> bool {
        matches!(self, Self::Null)
    }
}

/// Appends `s` as a JSON string literal, escaped as Jackson (Kafka Connect's JSON) escapes
/// it: the one rule for every JSON text outflow writes, in values and in records.
pub fn write_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decimal_parse_and_display() {
        for (text, unscaled, scale, shown) in [
            ("12.340", 12340, 3, "12.340"),
            ("-0.05", -5, 2, "-0.05"),
            ("7", 7, 0, "7"),
            (".5", 5, 1, "0.5"),
            ("+3.", 3, 0, "3"),
        ] {
            let d = Decimal::parse(text).unwrap_or_else(|| Decimal::new(i64::MIN, 0));
            assert_eq!(d, Decimal::new(unscaled, scale), "{text}");
            assert_eq!(d.to_string(), shown);
        }
        assert_eq!(Decimal::new(12, -2).to_string(), "1200");
        for bad in ["", "-", ".", "1e5", "NaN", "1.2.3", "12a"] {
            assert!(Decimal::parse(bad).is_none(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn decimal_display_round_trips(unscaled in any::<i64>(), scale in 0i32..30) {
            let d = Decimal::new(unscaled, scale);
            prop_assert_eq!(Decimal::parse(&d.to_string()), Some(d));
        }

        /// Both parse paths (≤ 38 digits in a `u128`, longer through the big integer)
        /// agree with a big-integer parse of the digits, around the boundary too.
        #[test]
        fn decimal_parse_matches_big_integer_parse(
            digits in "[0-9]{1,60}",
            point in 0usize..61,
            negative in any::<bool>(),
        ) {
            let point = point.min(digits.len());
            let text = format!(
                "{}{}.{}",
                if negative { "-" } else { "" },
                &digits[..point],
                &digits[point..]
            );
            let mut expected: BigInt = digits.parse().map_err(|e| TestCaseError::fail(format!("{e}")))?;
            if negative {
                expected = -expected;
            }
            let scale = i32::try_from(digits.len() - point).unwrap_or(i32::MAX);
            prop_assert_eq!(Decimal::parse(&text), Some(Decimal::new(expected, scale)));
        }
    }
}
