//! Column type mapping: [`DataType`] → Connect schema, and [`Value`] → [`Datum`], as
//! Debezium maps them under `decimal.handling.mode`, `time.precision.mode` and
//! `binary.handling.mode` (see `docs/compatibility.md` for the table and the deviations).

use std::fmt::Write as _;

use num_bigint::BigInt;
use num_traits::ToPrimitive as _;

use crate::connect::{ConnectSchema, Datum, SchemaKind, logical};
use outflow_core::schema::DataType;
use outflow_core::value::{Decimal, Value};

use super::config::{
    BinaryHandlingMode, DecimalHandlingMode, IntervalHandlingMode, TimePrecisionMode,
};

/// The modes that change how columns map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeModes {
    /// `decimal.handling.mode`.
    pub decimal: DecimalHandlingMode,
    /// `time.precision.mode`.
    pub time: TimePrecisionMode,
    /// `binary.handling.mode`.
    pub binary: BinaryHandlingMode,
    /// `interval.handling.mode`.
    pub interval: IntervalHandlingMode,
}

/// A value that does not fit its column's type: a source bug, reported definitely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("value {value} does not match column type {data_type}")]
pub struct TypeMismatch {
    /// The value, abbreviated.
    pub value: String,
    /// The column type.
    pub data_type: String,
}

fn mismatch(value: &Value, data_type: &DataType) -> TypeMismatch {
    let mut shown = format!("{value:?}");
    shown.truncate(80);
    TypeMismatch {
        value: shown,
        data_type: format!("{data_type:?}"),
    }
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Debezium's average month for `io.debezium.time.MicroDuration` (365.25 / 12 days).
const DAYS_PER_MONTH_AVG: f64 = 365.25 / 12.0;

fn millis_precision(precision: Option<u8>) -> bool {
    precision.is_some_and(|p| p <= 3)
}

/// The Connect schema of a column (required; the caller makes nullable columns optional).
pub fn column_schema(data_type: &DataType, modes: TypeModes) -> ConnectSchema {
    use SchemaKind as K;
    match data_type {
        DataType::Bool => ConnectSchema::new(K::Boolean),
        DataType::Int16 => ConnectSchema::new(K::Int16),
        DataType::Int32 => ConnectSchema::new(K::Int32),
        DataType::Int64 => ConnectSchema::new(K::Int64),
        DataType::Float32 => ConnectSchema::new(K::Float32),
        DataType::Float64 => ConnectSchema::new(K::Float64),
        DataType::Decimal { precision, scale } => match modes.decimal {
            DecimalHandlingMode::Precise => match scale {
                Some(scale) => logical::decimal(*scale, *precision),
                None => logical::variable_scale_decimal(),
            },
            DecimalHandlingMode::Double => ConnectSchema::new(K::Float64),
            DecimalHandlingMode::String => ConnectSchema::new(K::String),
        },
        DataType::String { .. } => ConnectSchema::new(K::String),
        DataType::Bytes { .. } => match modes.binary {
            BinaryHandlingMode::Bytes => ConnectSchema::new(K::Bytes),
            _ => ConnectSchema::new(K::String),
        },
        DataType::Date => match modes.time {
            TimePrecisionMode::Connect => {
                logical::semantic(K::Int32, "org.apache.kafka.connect.data.Date")
            }
            _ => logical::semantic(K::Int32, "io.debezium.time.Date"),
        },
        DataType::Time { precision } => match modes.time {
            TimePrecisionMode::Connect => {
                logical::semantic(K::Int32, "org.apache.kafka.connect.data.Time")
            }
            TimePrecisionMode::Adaptive if millis_precision(*precision) => {
                logical::semantic(K::Int32, "io.debezium.time.Time")
            }
            _ => logical::semantic(K::Int64, "io.debezium.time.MicroTime"),
        },
        DataType::Timestamp { precision } => match modes.time {
            TimePrecisionMode::Connect => {
                logical::semantic(K::Int64, "org.apache.kafka.connect.data.Timestamp")
            }
            _ if millis_precision(*precision) => {
                logical::semantic(K::Int64, "io.debezium.time.Timestamp")
            }
            _ => logical::semantic(K::Int64, "io.debezium.time.MicroTimestamp"),
        },
        DataType::TimestampTz { .. } => {
            logical::semantic(K::String, "io.debezium.time.ZonedTimestamp")
        }
        DataType::TimeTz { .. } => logical::semantic(K::String, "io.debezium.time.ZonedTime"),
        DataType::Interval => match modes.interval {
            IntervalHandlingMode::Numeric => {
                logical::semantic(K::Int64, "io.debezium.time.MicroDuration")
            }
            IntervalHandlingMode::String => {
                logical::semantic(K::String, "io.debezium.time.Interval")
            }
        },
        DataType::Bits { length } => logical::semantic(K::Bytes, "io.debezium.data.Bits")
            .parameter("length", length.to_string()),
        DataType::Year => logical::semantic(K::Int32, "io.debezium.time.Year"),
        DataType::Set { labels } => logical::semantic(K::String, "io.debezium.data.EnumSet")
            .parameter("allowed", labels.join(",")),
        DataType::Xml => logical::semantic(K::String, "io.debezium.data.Xml"),
        DataType::Ltree => logical::semantic(K::String, "io.debezium.data.Ltree"),
        DataType::Tsvector => logical::semantic(K::String, "io.debezium.data.Tsvector"),
        DataType::StringMap => ConnectSchema::new(K::Map(
            ConnectSchema::new(K::String).into(),
            ConnectSchema::new(K::String).optional().into(),
        )),
        DataType::Geometry { geography } => logical::geometry(*geography),
        DataType::Point => logical::point(),
        DataType::Uuid => logical::semantic(K::String, "io.debezium.data.Uuid"),
        DataType::Json => logical::semantic(K::String, "io.debezium.data.Json"),
        DataType::Enum { labels } => logical::enumeration(labels),
        DataType::Array(element) => logical::array_of(column_schema(element, modes)),
    }
}

/// The value Debezium substitutes for a missing value of a required column (its
/// converters' "fallback"): the type's zero, `false`, `""`, empty bytes, or a struct of
/// those. It appears where the source does not send a column it declares NOT NULL, e.g.
/// the non-key columns of a key-only `before` image (REPLICA IDENTITY DEFAULT).
pub fn fallback_datum(schema: &ConnectSchema) -> Datum {
    use SchemaKind as K;
    if let Some(default) = &schema.default {
        return default.clone();
    }
    match &schema.kind {
        K::Boolean => Datum::Boolean(false),
        K::Int8 => Datum::Int8(0),
        K::Int16 => Datum::Int16(0),
        K::Int32 => Datum::Int32(0),
        K::Int64 => Datum::Int64(0),
        K::Float32 => Datum::Float32(0.0),
        K::Float64 => Datum::Float64(0.0),
        K::String => Datum::String(String::new()),
        // A decimal's bytes are a two's-complement integer: one zero byte is 0.
        K::Bytes
            if schema.name.as_deref() == Some("org.apache.kafka.connect.data.Decimal")
                || schema.name.as_deref() == Some("io.debezium.data.VariableScaleDecimal") =>
        {
            Datum::Bytes(vec![0])
        }
        K::Bytes => Datum::Bytes(Vec::new()),
        K::Array(_) => Datum::Array(Vec::new()),
        K::Map(..) => Datum::Map(Vec::new()),
        K::Struct(_) if schema.name.as_deref() == Some("io.debezium.data.VariableScaleDecimal") => {
            Datum::Struct(vec![Datum::Int32(0), Datum::Bytes(vec![0])])
        }
        K::Struct(fields) => Datum::Struct(
            fields
                .iter()
                .map(|f| {
                    if f.schema.optional {
                        Datum::Null
                    } else {
                        fallback_datum(&f.schema)
                    }
                })
                .collect(),
        ),
    }
}

/// Converts a column value to its Connect datum. `placeholder` is what an unavailable
/// (unchanged TOAST) value becomes.
pub fn column_datum(
    value: &Value,
    data_type: &DataType,
    modes: TypeModes,
    placeholder: &str,
) -> Result<Datum, TypeMismatch> {
    let datum = match (value, data_type) {
        (Value::Null, _) => Datum::Null,
        (Value::Unavailable, _) => return Ok(unavailable(data_type, modes, placeholder)),
        (Value::Bool(b), DataType::Bool) => Datum::Boolean(*b),
        (Value::Int16(v), DataType::Int16) => Datum::Int16(*v),
        (Value::Int16(v), DataType::Int32) => Datum::Int32(i32::from(*v)),
        (Value::Int32(v), DataType::Int32) => Datum::Int32(*v),
        (Value::Int16(v), DataType::Int64) => Datum::Int64(i64::from(*v)),
        (Value::Int32(v), DataType::Int64) => Datum::Int64(i64::from(*v)),
        (Value::Int64(v), DataType::Int64) => Datum::Int64(*v),
        (Value::Float32(v), DataType::Float32) => Datum::Float32(*v),
        (Value::Float64(v), DataType::Float64) => Datum::Float64(*v),
        (Value::Float32(v), DataType::Float64) => Datum::Float64(f64::from(*v)),
        (Value::Decimal(d), DataType::Decimal { scale, .. }) => {
            decimal_datum(d, *scale, modes.decimal)
        }
        (Value::Float64(v), DataType::Decimal { .. })
            if modes.decimal != DecimalHandlingMode::Precise =>
        {
            // NaN / ±Infinity of Postgres numeric: representable only as double or string.
            match modes.decimal {
                DecimalHandlingMode::Double => Datum::Float64(*v),
                _ => Datum::String(special_float_text(*v)),
            }
        }
        (Value::Float64(v), DataType::Decimal { .. }) if !v.is_finite() => Datum::Null,
        (Value::String(s), DataType::String { .. }) => Datum::String(s.clone()),
        (Value::Bytes(b), DataType::Bytes { .. }) => binary_datum(b, modes.binary),
        (Value::Date(days), DataType::Date) => Datum::Int32(*days),
        (Value::Time(micros), DataType::Time { precision }) => match modes.time {
            // Connect's Time is a time of day: a MySQL TIME outside 00:00–24:00 (negative,
            // or past a day) has none, and Debezium writes null for it rather than
            // failing (observed by tests/debezium_oracle.rs).
            TimePrecisionMode::Connect => i32::try_from(micros / 1000)
                .ok()
                .filter(|ms| (0..86_400_000).contains(ms))
                .map_or(Datum::Null, Datum::Int32),
            TimePrecisionMode::Adaptive if millis_precision(*precision) => {
                Datum::Int32(to_i32(micros / 1000, value, data_type)?)
            }
            _ => Datum::Int64(*micros),
        },
        (Value::Timestamp(micros), DataType::Timestamp { precision }) => match modes.time {
            TimePrecisionMode::Connect => Datum::Int64(micros.div_euclid(1000)),
            _ if millis_precision(*precision) => Datum::Int64(micros.div_euclid(1000)),
            _ => Datum::Int64(*micros),
        },
        (Value::TimestampTz(micros), DataType::TimestampTz { precision }) => {
            Datum::String(zoned_timestamp(*micros, precision.unwrap_or(6)))
        }
        (
            Value::TimeTz {
                micros,
                offset_seconds,
            },
            DataType::TimeTz { precision },
        ) => {
            let utc = (micros - i64::from(*offset_seconds) * 1_000_000).rem_euclid(MICROS_PER_DAY);
            // `io.debezium.time.ZonedTime` is Java's ISO offset time: the fraction has
            // as many digits as it needs, none when it is zero (`08:14:15Z`,
            // `08:14:15.5Z`), whatever the column's precision.
            let mut text = String::with_capacity(20);
            write_time(&mut text, utc, precision.unwrap_or(6).min(6));
            if text.contains('.') {
                let kept = text.trim_end_matches('0').trim_end_matches('.').len();
                text.truncate(kept);
            }
            text.push('Z');
            Datum::String(text)
        }
        (Value::Interval(i), DataType::Interval) => match modes.interval {
            IntervalHandlingMode::Numeric => {
                let months = f64::from(i.months) * DAYS_PER_MONTH_AVG * MICROS_PER_DAY as f64;
                Datum::Int64(months as i64 + i64::from(i.days) * MICROS_PER_DAY + i.micros)
            }
            IntervalHandlingMode::String => Datum::String(iso_interval(i)),
        },
        (Value::Bytes(b), DataType::Bits { .. }) => Datum::Bytes(b.clone()),
        (Value::Int16(y), DataType::Year) => Datum::Int32(i32::from(*y)),
        (Value::Int32(y), DataType::Year) => Datum::Int32(*y),
        (
            Value::String(s),
            DataType::Set { .. } | DataType::Xml | DataType::Ltree | DataType::Tsvector,
        ) => Datum::String(s.clone()),
        (Value::StringMap(entries), DataType::StringMap) => Datum::Map(
            entries
                .iter()
                .map(|(key, value)| {
                    (
                        Datum::String(key.clone()),
                        value.clone().map_or(Datum::Null, Datum::String),
                    )
                })
                .collect(),
        ),
        (Value::Geometry { wkb, srid, .. }, DataType::Geometry { .. }) => Datum::Struct(vec![
            Datum::Bytes(wkb.clone()),
            srid.map_or(Datum::Null, Datum::Int32),
        ]),
        (
            Value::Geometry {
                wkb,
                srid,
                point: Some((x, y)),
            },
            DataType::Point,
        ) => Datum::Struct(vec![
            Datum::Float64(*x),
            Datum::Float64(*y),
            Datum::Bytes(wkb.clone()),
            srid.map_or(Datum::Null, Datum::Int32),
        ]),
        (Value::Uuid(bytes), DataType::Uuid) => Datum::String(uuid_text(bytes)),
        (Value::Json(text), DataType::Json) => Datum::String(text.clone()),
        (Value::Enum(label), DataType::Enum { .. }) => Datum::String(label.clone()),
        (Value::String(label), DataType::Enum { .. }) => Datum::String(label.clone()),
        (Value::Array(items), DataType::Array(element)) => Datum::Array(
            items
                .iter()
                .map(|item| column_datum(item, element, modes, placeholder))
                .collect::<Result<_, _>>()?,
        ),
        _ => return Err(mismatch(value, data_type)),
    };
    Ok(datum)
}

fn special_float_text(v: f64) -> String {
    if v.is_nan() {
        "NAN".into()
    } else if v > 0.0 {
        "POSITIVE_INFINITY".into()
    } else {
        "NEGATIVE_INFINITY".into()
    }
}

fn decimal_datum(d: &Decimal, declared_scale: Option<u32>, mode: DecimalHandlingMode) -> Datum {
    match mode {
        DecimalHandlingMode::Precise => match declared_scale {
            Some(scale) => {
                let scale = i32::try_from(scale).unwrap_or(i32::MAX);
                Datum::Bytes(
                    rescale_small(&d.unscaled, d.scale, scale)
                        .map(signed_bytes_be)
                        .unwrap_or_else(|| {
                            rescale(&d.unscaled, d.scale, scale).to_signed_bytes_be()
                        }),
                )
            }
            None => Datum::Struct(vec![
                Datum::Int32(d.scale),
                Datum::Bytes(
                    d.unscaled
                        .to_i128()
                        .map_or_else(|| d.unscaled.to_signed_bytes_be(), signed_bytes_be),
                ),
            ]),
        },
        DecimalHandlingMode::Double => Datum::Float64(d.to_string().parse().unwrap_or(f64::NAN)),
        DecimalHandlingMode::String => Datum::String(d.to_string()),
    }
}

/// [`rescale`] in `i128` arithmetic, the case of nearly every value: `None` when the
/// value or the result does not fit (the big-integer path takes those).
fn rescale_small(unscaled: &BigInt, from: i32, to: i32) -> Option<i128> {
    use std::cmp::Ordering;
    let value = unscaled.to_i128()?;
    match to.cmp(&from) {
        Ordering::Equal => Some(value),
        Ordering::Greater => value.checked_mul(10i128.checked_pow(to.abs_diff(from))?),
        Ordering::Less => {
            let divisor = 10i128.checked_pow(from.abs_diff(to))?;
            let (quotient, remainder) = (value / divisor, value % divisor);
            if remainder.unsigned_abs().checked_mul(2)? < divisor.unsigned_abs() {
                Some(quotient)
            } else if value < 0 {
                Some(quotient - 1)
            } else {
                Some(quotient + 1)
            }
        }
    }
}

/// The shortest big-endian two's-complement bytes of `value`: what
/// `BigInt::to_signed_bytes_be` (and Java's `BigInteger.toByteArray`) give.
fn signed_bytes_be(value: i128) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    let sign_fill = if value < 0 { 0xff } else { 0x00 };
    let mut start = 0;
    // A leading fill byte is redundant when the next byte carries the same sign bit.
    while start + 1 < bytes.len()
        && bytes[start] == sign_fill
        && (bytes[start + 1] & 0x80) == (sign_fill & 0x80)
    {
        start += 1;
    }
    bytes[start..].to_vec()
}

/// `unscaled * 10^-from` expressed with scale `to` (rounding half away from zero when
/// digits are dropped, as Java's `setScale(…, HALF_UP)`).
fn rescale(unscaled: &BigInt, from: i32, to: i32) -> BigInt {
    use std::cmp::Ordering;
    match to.cmp(&from) {
        Ordering::Equal => unscaled.clone(),
        Ordering::Greater => unscaled * BigInt::from(10).pow(to.abs_diff(from)),
        Ordering::Less => {
            let divisor = BigInt::from(10).pow(from.abs_diff(to));
            let (quotient, remainder) = (unscaled / &divisor, unscaled % &divisor);
            let twice: BigInt = remainder.clone() * 2;
            let magnitude_round_up = twice.magnitude() >= divisor.magnitude();
            if !magnitude_round_up {
                quotient
            } else if unscaled.sign() == num_bigint::Sign::Minus {
                quotient - 1
            } else {
                quotient + 1
            }
        }
    }
}

fn binary_datum(bytes: &[u8], mode: BinaryHandlingMode) -> Datum {
    use base64::Engine as _;
    match mode {
        BinaryHandlingMode::Bytes => Datum::Bytes(bytes.to_vec()),
        BinaryHandlingMode::Base64 => {
            Datum::String(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
        BinaryHandlingMode::Base64UrlSafe => {
            Datum::String(base64::engine::general_purpose::URL_SAFE.encode(bytes))
        }
        BinaryHandlingMode::Hex => {
            let mut text = String::with_capacity(bytes.len() * 2);
            for b in bytes {
                let _ = write!(text, "{b:02x}");
            }
            Datum::String(text)
        }
    }
}

/// What Debezium writes for an unchanged TOAST value: the placeholder, typed to fit.
fn unavailable(data_type: &DataType, modes: TypeModes, placeholder: &str) -> Datum {
    match data_type {
        DataType::Bytes { .. } => match modes.binary {
            BinaryHandlingMode::Bytes => Datum::Bytes(placeholder.as_bytes().to_vec()),
            _ => Datum::String(placeholder.to_owned()),
        },
        DataType::Array(element) => match element.as_ref() {
            DataType::Int32 | DataType::Date => Datum::Array(
                placeholder
                    .bytes()
                    .map(|b| Datum::Int32(i32::from(b)))
                    .collect(),
            ),
            DataType::Int64 => Datum::Array(
                placeholder
                    .bytes()
                    .map(|b| Datum::Int64(i64::from(b)))
                    .collect(),
            ),
            other => Datum::Array(vec![unavailable(other, modes, placeholder)]),
        },
        DataType::String { .. }
        | DataType::Xml
        | DataType::Ltree
        | DataType::Tsvector
        | DataType::Set { .. }
        | DataType::Json
        | DataType::Enum { .. }
        | DataType::Uuid
        | DataType::TimestampTz { .. }
        | DataType::TimeTz { .. } => Datum::String(placeholder.to_owned()),
        DataType::Decimal { .. } if modes.decimal == DecimalHandlingMode::String => {
            Datum::String(placeholder.to_owned())
        }
        // Types that are never TOASTed; a source sending Unavailable for them has nothing
        // better to offer than null.
        _ => Datum::Null,
    }
}

/// ISO-8601 duration as Debezium's `io.debezium.time.Interval` (`P1Y2M3DT4H5M6.78S`).
fn iso_interval(i: &outflow_core::value::Interval) -> String {
    let mut text = String::from("P");
    let _ = write!(text, "{}Y{}M{}DT", i.months / 12, i.months % 12, i.days);
    let total = i.micros;
    let hours = total / 3_600_000_000;
    let minutes = (total / 60_000_000) % 60;
    let micros = total % 60_000_000;
    let _ = write!(text, "{hours}H{minutes}M");
    let (secs, frac) = (micros / 1_000_000, (micros % 1_000_000).abs());
    if frac == 0 {
        let _ = write!(text, "{secs}S");
    } else {
        let sign = if micros < 0 && secs == 0 { "-" } else { "" };
        let digits = format!("{frac:06}");
        let _ = write!(text, "{sign}{secs}.{}S", digits.trim_end_matches('0'));
    }
    text
}

fn uuid_text(b: &[u8; 16]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push(char::from(HEX[usize::from(byte >> 4)]));
        s.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    s
}

/// Appends `v` as exactly `width` decimal digits (`v` must fit).
fn push_padded(out: &mut String, v: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut rest = v;
    for slot in digits[..width].iter_mut().rev() {
        *slot = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    for &d in &digits[..width] {
        out.push(char::from(d));
    }
}

/// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn write_time(out: &mut String, micros_of_day: i64, precision: u8) {
    let micros = micros_of_day.unsigned_abs();
    let secs = micros / 1_000_000;
    push_padded(out, secs / 3600, 2);
    out.push(':');
    push_padded(out, (secs / 60) % 60, 2);
    out.push(':');
    push_padded(out, secs % 60, 2);
    let digits = usize::from(precision.min(6));
    if digits > 0 {
        out.push('.');
        push_padded(
            out,
            (micros % 1_000_000) / 10u64.pow(6 - digits as u32),
            digits,
        );
    }
}

fn to_i32(v: i64, value: &Value, data_type: &DataType) -> Result<i32, TypeMismatch> {
    i32::try_from(v).map_err(|_| mismatch(value, data_type))
}

/// ISO-8601 UTC text of an instant, with `precision` fractional digits, as Debezium's
/// `io.debezium.time.ZonedTimestamp` (e.g. `2025-02-22T09:57:48.517360Z`); the
/// stand-ins for infinite timestamps are `infinity` and `-infinity`, as Debezium writes
/// them.
pub fn zoned_timestamp(micros: i64, precision: u8) -> String {
    match micros {
        outflow_core::value::TIMESTAMP_POS_INFINITY => return "infinity".to_owned(),
        outflow_core::value::TIMESTAMP_NEG_INFINITY => return "-infinity".to_owned(),
        _ => {}
    }
    let days = micros.div_euclid(MICROS_PER_DAY);
    let of_day = micros.rem_euclid(MICROS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    let mut text = String::with_capacity(32);
    if (0..=9999).contains(&y) {
        push_padded(&mut text, y.unsigned_abs(), 4);
        text.push('-');
        push_padded(&mut text, u64::from(m), 2);
        text.push('-');
        push_padded(&mut text, u64::from(d), 2);
        text.push('T');
    } else {
        let _ = write!(text, "{y:+05}-{m:02}-{d:02}T");
    }
    write_time(&mut text, of_day, precision);
    text.push('Z');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use outflow_core::value::Interval;

    fn modes() -> TypeModes {
        TypeModes {
            decimal: DecimalHandlingMode::Precise,
            time: TimePrecisionMode::Adaptive,
            binary: BinaryHandlingMode::Bytes,
            interval: IntervalHandlingMode::Numeric,
        }
    }

    #[test]
    fn string_maps_are_connect_maps_of_optional_strings() {
        let schema = column_schema(&DataType::StringMap, modes());
        let SchemaKind::Map(keys, values) = &schema.kind else {
            panic!("{schema:?}")
        };
        assert_eq!(
            (keys.kind.clone(), keys.optional),
            (SchemaKind::String, false)
        );
        assert_eq!(
            (values.kind.clone(), values.optional),
            (SchemaKind::String, true)
        );
        let value = Value::StringMap(vec![("a".into(), Some("1".into())), ("b".into(), None)]);
        let datum = column_datum(&value, &DataType::StringMap, modes(), "").unwrap();
        assert_eq!(
            datum,
            Datum::Map(vec![
                (Datum::String("a".into()), Datum::String("1".into())),
                (Datum::String("b".into()), Datum::Null),
            ])
        );
        // JsonConverter writes a map with STRING keys as a JSON object.
        let mut json = String::new();
        crate::encoding::json::write_value(&mut json, &schema, &datum).unwrap();
        assert_eq!(json, r#"{"a":"1","b":null}"#);
        let mut described = String::new();
        crate::encoding::json::write_schema(&mut described, &schema, Some("h"));
        assert_eq!(
            described,
            r#"{"type":"map","keys":{"type":"string","optional":false},"values":{"type":"string","optional":true},"optional":false,"field":"h"}"#
        );
    }

    #[test]
    fn iso_intervals() {
        let i = Interval {
            months: 14,
            days: 3,
            micros: 4 * 3_600_000_000 + 5 * 60_000_000 + 6_780_000,
        };
        assert_eq!(iso_interval(&i), "P1Y2M3DT4H5M6.78S");
        assert_eq!(iso_interval(&Interval::default()), "P0Y0M0DT0H0M0S");
    }

    #[test]
    fn zoned_timestamps() {
        assert_eq!(zoned_timestamp(0, 6), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            zoned_timestamp(1_740_218_268_517_360, 6),
            "2025-02-22T09:57:48.517360Z"
        );
        assert_eq!(
            zoned_timestamp(1_739_355_004_000_000, 0),
            "2025-02-12T10:10:04Z"
        );
        assert_eq!(zoned_timestamp(-1, 3), "1969-12-31T23:59:59.999Z");
        use outflow_core::value::{TIMESTAMP_NEG_INFINITY, TIMESTAMP_POS_INFINITY};
        assert_eq!(zoned_timestamp(TIMESTAMP_POS_INFINITY, 6), "infinity");
        assert_eq!(zoned_timestamp(TIMESTAMP_NEG_INFINITY, 6), "-infinity");
    }

    #[test]
    fn zoned_times_write_the_fraction_they_need() {
        let datum = |micros: i64, offset_seconds: i32| {
            column_datum(
                &Value::TimeTz {
                    micros,
                    offset_seconds,
                },
                &DataType::TimeTz { precision: Some(6) },
                modes(),
                "",
            )
            .unwrap()
        };
        let hms = (13 * 3600 + 14 * 60 + 15) * 1_000_000;
        assert_eq!(datum(hms, 5 * 3600), Datum::String("08:14:15Z".into()));
        assert_eq!(datum(hms + 500_000, 0), Datum::String("13:14:15.5Z".into()));
        assert_eq!(datum(hms + 120, 0), Datum::String("13:14:15.00012Z".into()));
        assert_eq!(datum(0, 0), Datum::String("00:00:00Z".into()));
    }

    #[test]
    fn decimals_by_mode() {
        let d = Decimal::parse("99.99").unwrap();
        let ty = DataType::Decimal {
            precision: Some(5),
            scale: Some(2),
        };
        assert_eq!(
            column_datum(&Value::Decimal(d.clone()), &ty, modes(), "").unwrap(),
            Datum::Bytes(vec![0x27, 0x0f])
        );
        // Rescaled to the declared scale.
        let short = Decimal::parse("1.5").unwrap();
        assert_eq!(
            column_datum(&Value::Decimal(short), &ty, modes(), "").unwrap(),
            Datum::Bytes(BigInt::from(150).to_signed_bytes_be())
        );
        let var = DataType::Decimal {
            precision: None,
            scale: None,
        };
        assert_eq!(
            column_datum(&Value::Decimal(d.clone()), &var, modes(), "").unwrap(),
            Datum::Struct(vec![Datum::Int32(2), Datum::Bytes(vec![0x27, 0x0f])])
        );
        let string = TypeModes {
            decimal: DecimalHandlingMode::String,
            ..modes()
        };
        assert_eq!(
            column_datum(&Value::Decimal(d), &ty, string, "").unwrap(),
            Datum::String("99.99".into())
        );
        assert_eq!(rescale(&BigInt::from(-125), 2, 1), BigInt::from(-13));
        assert_eq!(rescale(&BigInt::from(124), 2, 1), BigInt::from(12));
    }

    #[test]
    fn temporal_by_precision_and_mode() {
        let ms = DataType::Timestamp { precision: Some(3) };
        let us = DataType::Timestamp { precision: Some(6) };
        assert_eq!(
            column_schema(&ms, modes()).name.as_deref(),
            Some("io.debezium.time.Timestamp")
        );
        assert_eq!(
            column_schema(&us, modes()).name.as_deref(),
            Some("io.debezium.time.MicroTimestamp")
        );
        assert_eq!(
            column_datum(&Value::Timestamp(1_500_999), &ms, modes(), "").unwrap(),
            Datum::Int64(1_500)
        );
        assert_eq!(
            column_datum(&Value::Timestamp(1_500_999), &us, modes(), "").unwrap(),
            Datum::Int64(1_500_999)
        );
        let connect = TypeModes {
            time: TimePrecisionMode::Connect,
            ..modes()
        };
        let t = DataType::Time { precision: Some(6) };
        assert_eq!(column_schema(&t, connect).kind, SchemaKind::Int32);
        assert_eq!(
            column_datum(&Value::Time(3_723_000_456), &t, connect, "").unwrap(),
            Datum::Int32(3_723_000)
        );
        let iv = Value::Interval(Interval {
            months: 1,
            days: 2,
            micros: 3,
        });
        assert_eq!(
            column_datum(&iv, &DataType::Interval, modes(), "").unwrap(),
            Datum::Int64(2_629_800_000_000 + 2 * MICROS_PER_DAY + 3)
        );
    }

    #[test]
    fn unavailable_values_take_the_placeholder() {
        let p = "__debezium_unavailable_value";
        let text = DataType::String { length: None };
        assert_eq!(
            column_datum(&Value::Unavailable, &text, modes(), p).unwrap(),
            Datum::String(p.into())
        );
        let bytes = DataType::Bytes { length: None };
        assert_eq!(
            column_datum(&Value::Unavailable, &bytes, modes(), p).unwrap(),
            Datum::Bytes(p.as_bytes().to_vec())
        );
        let ints = DataType::Array(Box::new(DataType::Int32));
        let Datum::Array(items) = column_datum(&Value::Unavailable, &ints, modes(), p).unwrap()
        else {
            panic!()
        };
        assert_eq!(items.len(), p.len());
    }

    #[test]
    fn mismatches_are_errors_not_panics() {
        assert!(column_datum(&Value::String("x".into()), &DataType::Int32, modes(), "").is_err());
        assert!(
            column_datum(
                &Value::Time(i64::MAX),
                &DataType::Time { precision: Some(3) },
                modes(),
                ""
            )
            .is_err()
        );
    }

    #[test]
    fn uuids_and_binary_modes() {
        let mut u = [0u8; 16];
        u[0] = 0xab;
        u[15] = 0x01;
        assert_eq!(uuid_text(&u), "ab000000-0000-0000-0000-000000000001");
        assert_eq!(
            binary_datum(&[0xde, 0xad], BinaryHandlingMode::Hex),
            Datum::String("dead".into())
        );
        assert_eq!(
            binary_datum(&[0xfb, 0xff], BinaryHandlingMode::Base64UrlSafe),
            Datum::String("-_8=".into())
        );
    }

    proptest::proptest! {
        /// The `i128` path gives the bytes the big-integer path gives, whatever the
        /// value, its scale and the declared scale (rounding included).
        #[test]
        fn small_decimal_bytes_match_the_big_integer_path(
            unscaled in proptest::prelude::any::<i128>(),
            small in -1_000_000i64..1_000_000,
            use_small in proptest::prelude::any::<bool>(),
            from in 0i32..40,
            to in 0i32..40,
        ) {
            let unscaled = if use_small { i128::from(small) } else { unscaled };
            let big = BigInt::from(unscaled);
            let expected = rescale(&big, from, to).to_signed_bytes_be();
            if let Some(fast) = rescale_small(&big, from, to) {
                proptest::prop_assert_eq!(signed_bytes_be(fast), expected);
            }
            proptest::prop_assert_eq!(signed_bytes_be(unscaled), big.to_signed_bytes_be());
        }
    }

    #[test]
    fn signed_bytes_edges() {
        for v in [
            0i128,
            1,
            -1,
            127,
            128,
            -128,
            -129,
            255,
            256,
            i128::MAX,
            i128::MIN,
        ] {
            assert_eq!(
                signed_bytes_be(v),
                BigInt::from(v).to_signed_bytes_be(),
                "{v}"
            );
        }
    }
}
