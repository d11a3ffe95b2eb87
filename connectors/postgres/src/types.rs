//! Postgres types: OIDs and type modifiers to outflow's [`DataType`], and pgoutput's text
//! representation of a value to a typed [`Value`].
//!
//! The replication session runs with `DateStyle=ISO`, `IntervalStyle=iso_8601`,
//! `TimeZone=UTC`, `extra_float_digits=3`, `bytea_output=hex` and `lc_monetary=C`
//! ([`SESSION_SETTINGS`]), so each type has exactly one text form to parse. Types outflow
//! does not map (geometric types other than point, ranges, tsvector, network types, ...)
//! are kept as their text, as Debezium does for most of them; a type outflow knows nothing
//! about is passed as text with a warning, never a crash.

use outflow_core::value::{
    DATE_NEG_INFINITY, DATE_POS_INFINITY, Interval, TIMESTAMP_NEG_INFINITY, TIMESTAMP_POS_INFINITY,
};
use outflow_core::{DataType, Decimal, Value};

/// Session settings under which [`parse_text`] understands every value.
pub const SESSION_SETTINGS: &[(&str, &str)] = &[
    ("DateStyle", "ISO, YMD"),
    ("IntervalStyle", "iso_8601"),
    ("TimeZone", "UTC"),
    ("extra_float_digits", "3"),
    ("bytea_output", "hex"),
    ("lc_monetary", "C"),
];

/// A Postgres type as outflow understands it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgType {
    /// `bool`.
    Bool,
    /// `int2`.
    Int2,
    /// `int4`.
    Int4,
    /// `int8`.
    Int8,
    /// `oid`.
    Oid,
    /// `float4`.
    Float4,
    /// `float8`.
    Float8,
    /// `numeric`.
    Numeric,
    /// `money`.
    Money,
    /// `text`, `varchar`, `bpchar`, `name`, `char`, `citext` and other character types.
    Text,
    /// `bytea`.
    Bytea,
    /// `date`.
    Date,
    /// `time`.
    Time,
    /// `timetz`.
    TimeTz,
    /// `timestamp`.
    Timestamp,
    /// `timestamptz`.
    TimestampTz,
    /// `interval`.
    Interval,
    /// `uuid`.
    Uuid,
    /// `json`.
    Json,
    /// `jsonb`.
    Jsonb,
    /// `xml`.
    Xml,
    /// `bit(n)`.
    Bit,
    /// `varbit`.
    Varbit,
    /// `point`.
    Point,
    /// `ltree` (extension).
    Ltree,
    /// `hstore` (extension); as JSON text (`hstore.handling.mode=json`).
    Hstore,
    /// `hstore` (extension) as a map of text to optional text (`hstore.handling.mode=map`).
    HstoreMap,
    /// An enum with its labels.
    Enum(Vec<String>),
    /// An array of the element type.
    Array(Box<PgType>),
    /// Kept as text: network, range, geometric (non-point), tsvector and unknown types.
    AsText(String),
}

/// The built-in type with this OID (from `pg_type.dat`, stable across versions).
pub fn builtin(oid: u32) -> Option<PgType> {
    use PgType as T;
    let t = match oid {
        16 => T::Bool,
        17 => T::Bytea,
        18 | 19 | 25 | 1042 | 1043 => T::Text,
        20 => T::Int8,
        21 => T::Int2,
        23 => T::Int4,
        26 => T::Oid,
        114 => T::Json,
        142 => T::Xml,
        600 => T::Point,
        700 => T::Float4,
        701 => T::Float8,
        790 => T::Money,
        1082 => T::Date,
        1083 => T::Time,
        1114 => T::Timestamp,
        1184 => T::TimestampTz,
        1186 => T::Interval,
        1266 => T::TimeTz,
        1560 => T::Bit,
        1562 => T::Varbit,
        1700 => T::Numeric,
        2950 => T::Uuid,
        3802 => T::Jsonb,
        // Kept as text, as Debezium maps them to STRING.
        650 => T::AsText("cidr".into()),
        869 => T::AsText("inet".into()),
        829 => T::AsText("macaddr".into()),
        774 => T::AsText("macaddr8".into()),
        3614 => T::AsText("tsvector".into()),
        3904 => T::AsText("int4range".into()),
        3926 => T::AsText("int8range".into()),
        3906 => T::AsText("numrange".into()),
        3908 => T::AsText("tsrange".into()),
        3910 => T::AsText("tstzrange".into()),
        3912 => T::AsText("daterange".into()),
        601 => T::AsText("lseg".into()),
        602 => T::AsText("path".into()),
        603 => T::AsText("box".into()),
        604 => T::AsText("polygon".into()),
        628 => T::AsText("line".into()),
        718 => T::AsText("circle".into()),
        _ => {
            let element = match oid {
                1000 => T::Bool,
                1001 => T::Bytea,
                1002 | 1003 | 1009 | 1014 | 1015 => T::Text,
                1005 => T::Int2,
                1007 => T::Int4,
                1016 => T::Int8,
                1028 => T::Oid,
                1021 => T::Float4,
                1022 => T::Float8,
                1231 => T::Numeric,
                1182 => T::Date,
                1183 => T::Time,
                1115 => T::Timestamp,
                1185 => T::TimestampTz,
                1270 => T::TimeTz,
                2951 => T::Uuid,
                199 => T::Json,
                3807 => T::Jsonb,
                1041 => T::AsText("inet".into()),
                651 => T::AsText("cidr".into()),
                1040 => T::AsText("macaddr".into()),
                _ => return None,
            };
            T::Array(Box::new(element))
        }
    };
    Some(t)
}

fn precision_of(type_modifier: i32) -> Option<u8> {
    (type_modifier >= 0).then(|| u8::try_from(type_modifier.min(6)).unwrap_or(6))
}

impl PgType {
    /// The logical type of a column of this type with this modifier.
    pub fn data_type(&self, type_modifier: i32) -> DataType {
        match self {
            Self::Bool => DataType::Bool,
            Self::Int2 => DataType::Int16,
            Self::Int4 => DataType::Int32,
            Self::Int8 | Self::Oid => DataType::Int64,
            Self::Float4 => DataType::Float32,
            Self::Float8 => DataType::Float64,
            Self::Numeric => {
                if type_modifier >= 4 {
                    let m = type_modifier - 4;
                    let precision = u32::try_from((m >> 16) & 0xffff).ok();
                    // Scale is a signed 11-bit field since PG 15; negative scales are
                    // treated as variable.
                    let scale = u32::try_from(m & 0xffff).ok().filter(|s| *s <= 1000);
                    match scale {
                        Some(scale) => DataType::Decimal {
                            precision,
                            scale: Some(scale),
                        },
                        None => DataType::Decimal {
                            precision: None,
                            scale: None,
                        },
                    }
                } else {
                    DataType::Decimal {
                        precision: None,
                        scale: None,
                    }
                }
            }
            Self::Money => DataType::Decimal {
                precision: None,
                scale: Some(2),
            },
            Self::AsText(name) if name == "tsvector" => DataType::Tsvector,
            Self::Text | Self::AsText(_) => DataType::String {
                length: (type_modifier >= 4).then(|| u32::try_from(type_modifier - 4).unwrap_or(0)),
            },
            Self::Bytea => DataType::Bytes { length: None },
            Self::Date => DataType::Date,
            Self::Time => DataType::Time {
                precision: precision_of(type_modifier).or(Some(6)),
            },
            Self::TimeTz => DataType::TimeTz {
                precision: precision_of(type_modifier).or(Some(6)),
            },
            Self::Timestamp => DataType::Timestamp {
                precision: precision_of(type_modifier).or(Some(6)),
            },
            Self::TimestampTz => DataType::TimestampTz {
                precision: precision_of(type_modifier).or(Some(6)),
            },
            Self::Interval => DataType::Interval,
            Self::Uuid => DataType::Uuid,
            Self::Json | Self::Jsonb | Self::Hstore => DataType::Json,
            Self::HstoreMap => DataType::StringMap,
            Self::Xml => DataType::Xml,
            Self::Ltree => DataType::Ltree,
            Self::Bit if type_modifier == 1 => DataType::Bool,
            Self::Bit | Self::Varbit => DataType::Bits {
                length: u32::try_from(type_modifier).unwrap_or(i32::MAX as u32),
            },
            Self::Point => DataType::Point,
            Self::Enum(labels) => DataType::Enum {
                labels: labels.clone(),
            },
            // An array column's type modifier is its elements' (numeric(6,2)[]).
            Self::Array(element) => DataType::Array(Box::new(element.data_type(type_modifier))),
        }
    }
}

/// A value text that does not parse as its type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read {text:?} as {type_name}")]
pub struct ValueError {
    /// The type.
    pub type_name: String,
    /// The text, abbreviated.
    pub text: String,
}

fn err(t: &PgType, text: &str) -> ValueError {
    ValueError {
        type_name: format!("{t:?}"),
        text: text.chars().take(80).collect(),
    }
}

/// Parses pgoutput's text form of a value of type `t` (a column of `type_modifier`).
pub fn parse_text(t: &PgType, type_modifier: i32, bytes: &[u8]) -> Result<Value, ValueError> {
    let text = std::str::from_utf8(bytes).map_err(|_| ValueError {
        type_name: format!("{t:?}"),
        text: String::from_utf8_lossy(bytes).chars().take(80).collect(),
    })?;
    let bad = || err(t, text);
    Ok(match t {
        PgType::Bool => match text {
            "t" => Value::Bool(true),
            "f" => Value::Bool(false),
            _ => return Err(bad()),
        },
        PgType::Int2 => Value::Int16(text.parse().map_err(|_| bad())?),
        PgType::Int4 => Value::Int32(text.parse().map_err(|_| bad())?),
        PgType::Int8 | PgType::Oid => Value::Int64(text.parse().map_err(|_| bad())?),
        PgType::Float4 => Value::Float32(parse_float(text).ok_or_else(bad)? as f32),
        PgType::Float8 => Value::Float64(parse_float(text).ok_or_else(bad)?),
        PgType::Numeric => match text {
            "NaN" => Value::Float64(f64::NAN),
            "Infinity" => Value::Float64(f64::INFINITY),
            "-Infinity" => Value::Float64(f64::NEG_INFINITY),
            _ => Value::Decimal(Decimal::parse(text).ok_or_else(bad)?),
        },
        PgType::Money => {
            let negative = text.starts_with('-') || text.starts_with('(');
            let digits: String = text
                .chars()
                .filter(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            let mut d = Decimal::parse(&digits).ok_or_else(bad)?;
            if negative {
                d.unscaled = -d.unscaled;
            }
            Value::Decimal(d)
        }
        PgType::Text | PgType::AsText(_) => Value::String(text.to_owned()),
        PgType::Xml | PgType::Ltree => Value::String(text.to_owned()),
        PgType::Bytea => Value::Bytes(parse_bytea(text).ok_or_else(bad)?),
        PgType::Date => Value::Date(parse_date(text).ok_or_else(bad)?),
        PgType::Time => Value::Time(parse_time(text).ok_or_else(bad)?),
        PgType::TimeTz => {
            let split = text.rfind(['+', '-']).ok_or_else(bad)?;
            let micros = parse_time(&text[..split]).ok_or_else(bad)?;
            let offset_seconds = parse_offset(&text[split..]).ok_or_else(bad)?;
            Value::TimeTz {
                micros,
                offset_seconds,
            }
        }
        PgType::Timestamp => Value::Timestamp(parse_timestamp(text, false).ok_or_else(bad)?),
        PgType::TimestampTz => Value::TimestampTz(parse_timestamp(text, true).ok_or_else(bad)?),
        PgType::Interval => Value::Interval(parse_iso_interval(text).ok_or_else(bad)?),
        PgType::Uuid => Value::Uuid(parse_uuid(text).ok_or_else(bad)?),
        PgType::Json | PgType::Jsonb => Value::Json(text.to_owned()),
        PgType::Hstore => Value::Json(hstore_json(&hstore_entries(text).ok_or_else(bad)?)),
        PgType::HstoreMap => Value::StringMap(hstore_entries(text).ok_or_else(bad)?),
        PgType::Bit if type_modifier == 1 => match text {
            "1" => Value::Bool(true),
            "0" => Value::Bool(false),
            _ => return Err(bad()),
        },
        PgType::Bit | PgType::Varbit => Value::Bytes(parse_bits(text).ok_or_else(bad)?),
        PgType::Point => {
            let inner = text
                .strip_prefix('(')
                .and_then(|s| s.strip_suffix(')'))
                .ok_or_else(bad)?;
            let (x, y) = inner.split_once(',').ok_or_else(bad)?;
            let (x, y) = (
                parse_float(x).ok_or_else(bad)?,
                parse_float(y).ok_or_else(bad)?,
            );
            Value::Geometry {
                wkb: point_wkb(x, y),
                srid: None,
                point: Some((x, y)),
            }
        }
        PgType::Enum(_) => Value::Enum(text.to_owned()),
        PgType::Array(element) => {
            let items = parse_array(text).ok_or_else(bad)?;
            Value::Array(
                items
                    .into_iter()
                    .map(|item| match item {
                        None => Ok(Value::Null),
                        Some(s) => parse_text(element, -1, s.as_bytes()),
                    })
                    .collect::<Result<_, _>>()?,
            )
        }
    })
}

fn parse_float(text: &str) -> Option<f64> {
    match text.trim() {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        t => t.parse().ok(),
    }
}

fn parse_bytea(text: &str) -> Option<Vec<u8>> {
    let hex = text.strip_prefix("\\x")?;
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD[ BC]` → days; infinities are Debezium's stand-ins.
fn parse_date_days(text: &str) -> Option<i64> {
    match text {
        "infinity" => return Some(i64::from(DATE_POS_INFINITY)),
        "-infinity" => return Some(i64::from(DATE_NEG_INFINITY)),
        _ => {}
    }
    match text.strip_suffix(" BC") {
        Some(body) => parse_date_parts(body, true),
        None => parse_date_parts(text, false),
    }
}

/// `YYYY-MM-DD` (a year of the era `bc` says) → days.
fn parse_date_parts(body: &str, bc: bool) -> Option<i64> {
    let mut parts = body.splitn(3, '-');
    let mut year: i64 = parts.next()?.parse().ok()?;
    let month: u32 = parts.next()?.parse().ok()?;
    let day: u32 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    if bc {
        year = 1 - year;
    }
    Some(days_from_civil(year, month, day))
}

fn parse_date(text: &str) -> Option<i32> {
    i32::try_from(parse_date_days(text)?).ok()
}

/// `HH:MM:SS[.ffffff]` → µs since midnight.
fn parse_time(text: &str) -> Option<i64> {
    let mut parts = text.splitn(3, ':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let sec = parts.next()?;
    let (s, frac) = match sec.split_once('.') {
        Some((s, f)) => (s, f),
        None => (sec, ""),
    };
    let s: i64 = s.parse().ok()?;
    if frac.len() > 6
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || !(0..=24).contains(&h)
        || !(0..60).contains(&m)
        || !(0..=60).contains(&s)
    {
        return None;
    }
    Some(((h * 60 + m) * 60 + s) * 1_000_000 + fraction_micros(frac)?)
}

/// Up to six fractional-second digits as microseconds (`"5"` → 500000).
fn fraction_micros(digits: &str) -> Option<i64> {
    if digits.len() > 6 {
        return None;
    }
    let mut value = 0i64;
    for b in digits.bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value * 10 + i64::from(b - b'0');
    }
    Some(value * 10i64.pow(6 - digits.len() as u32))
}

/// `+HH[:MM[:SS]]` → seconds east of UTC.
fn parse_offset(text: &str) -> Option<i32> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let mut total = 0i32;
    for (i, part) in rest.split(':').enumerate() {
        let v: i32 = part.parse().ok()?;
        total += v * [3600, 60, 1].get(i)?;
    }
    Some(sign * total)
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff][+HH[:MM]][ BC]` → µs since the epoch (UTC).
fn parse_timestamp(text: &str, with_zone: bool) -> Option<i64> {
    parse_timestamp_fixed(text.as_bytes(), with_zone)
        .or_else(|| parse_timestamp_general(text, with_zone))
}

/// [`parse_timestamp`] for every form the server may print, by splitting the text.
fn parse_timestamp_general(text: &str, with_zone: bool) -> Option<i64> {
    match text {
        "infinity" => return Some(TIMESTAMP_POS_INFINITY),
        "-infinity" => return Some(TIMESTAMP_NEG_INFINITY),
        _ => {}
    }
    let (body, bc) = match text.strip_suffix(" BC") {
        Some(b) => (b, true),
        None => (text, false),
    };
    let (date, time) = body.split_once(' ')?;
    let (time, offset) = if with_zone {
        let split = time.rfind(['+', '-'])?;
        (&time[..split], parse_offset(&time[split..])?)
    } else {
        (time, 0)
    };
    let days = parse_date_parts(date, bc)?;
    let micros = parse_time(time)?;
    days.checked_mul(86_400_000_000)?
        .checked_add(micros)?
        .checked_sub(i64::from(offset) * 1_000_000)
}

/// Two ASCII digits at `at` as a number.
fn two_digits(b: &[u8], at: usize) -> Option<u32> {
    match (b.get(at)?, b.get(at + 1)?) {
        (h @ b'0'..=b'9', l @ b'0'..=b'9') => Some(u32::from(h - b'0') * 10 + u32::from(l - b'0')),
        _ => None,
    }
}

/// The form the server prints for nearly every value, read by position without
/// splitting: `YYYY-MM-DD HH:MM:SS[.f{1,6}]` and, `with_zone`, `±HH[:MM[:SS]]`; a
/// four-digit year of the common era. `None` for anything else (BC, five-digit years,
/// infinities, malformed text): [`parse_timestamp`]'s general path decides those. For
/// every text it accepts it returns what the general path returns (a property test
/// checks this).
fn parse_timestamp_fixed(b: &[u8], with_zone: bool) -> Option<i64> {
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b' ' {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let year = two_digits(b, 0)? * 100 + two_digits(b, 2)?;
    let (month, day) = (two_digits(b, 5)?, two_digits(b, 8)?);
    let (hour, minute, second) = (two_digits(b, 11)?, two_digits(b, 14)?, two_digits(b, 17)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    if hour > 24 || minute > 59 || second > 60 {
        return None;
    }
    let mut at = 19;
    let mut fraction = 0i64;
    if b.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while let Some(digit @ b'0'..=b'9') = b.get(at) {
            fraction = fraction * 10 + i64::from(digit - b'0');
            at += 1;
        }
        let digits = at - start;
        if digits == 0 || digits > 6 {
            return None;
        }
        fraction *= 10i64.pow(6 - digits as u32);
    }
    let mut offset_seconds = 0i64;
    if with_zone {
        let sign = match b.get(at)? {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        offset_seconds = i64::from(two_digits(b, at + 1)?) * 3600;
        at += 3;
        for unit in [60, 1] {
            if b.get(at) != Some(&b':') {
                break;
            }
            offset_seconds += i64::from(two_digits(b, at + 1)?) * unit;
            at += 3;
        }
        offset_seconds *= sign;
    }
    if at != b.len() {
        return None;
    }
    let days = days_from_civil(i64::from(year), month, day);
    let of_day = (i64::from(hour) * 60 + i64::from(minute)) * 60 + i64::from(second);
    Some((days * 86_400 + of_day - offset_seconds) * 1_000_000 + fraction)
}

/// ISO-8601 interval (`IntervalStyle=iso_8601`): `P1Y2M3DT4H5M6.5S`, parts may be negative.
fn parse_iso_interval(text: &str) -> Option<Interval> {
    let body = text.strip_prefix('P')?;
    let (date_part, time_part) = match body.split_once('T') {
        Some((d, t)) => (d, t),
        None => (body, ""),
    };
    let mut interval = Interval::default();
    let mut number = String::new();
    for c in date_part.chars() {
        match c {
            'Y' => {
                interval.months = interval
                    .months
                    .checked_add(number.parse::<i32>().ok()?.checked_mul(12)?)?
            }
            'M' => interval.months = interval.months.checked_add(number.parse().ok()?)?,
            'W' => {
                interval.days = interval
                    .days
                    .checked_add(number.parse::<i32>().ok()?.checked_mul(7)?)?
            }
            'D' => interval.days = interval.days.checked_add(number.parse().ok()?)?,
            _ => {
                number.push(c);
                continue;
            }
        }
        number.clear();
    }
    if !number.is_empty() {
        return None;
    }
    for c in time_part.chars() {
        let unit = match c {
            'H' => 3_600_000_000i64,
            'M' => 60_000_000,
            'S' => 1_000_000,
            _ => {
                number.push(c);
                continue;
            }
        };
        let micros = if unit == 1_000_000 {
            let negative = number.starts_with('-');
            let digits = number.trim_start_matches('-');
            let (s, f) = digits.split_once('.').unwrap_or((digits, ""));
            if f.len() > 6 {
                return None;
            }
            let whole: i64 = if s.is_empty() { 0 } else { s.parse().ok()? };
            let frac = fraction_micros(f)?;
            let v = whole.checked_mul(unit)?.checked_add(frac)?;
            if negative { -v } else { v }
        } else {
            number.parse::<i64>().ok()?.checked_mul(unit)?
        };
        interval.micros = interval.micros.checked_add(micros)?;
        number.clear();
    }
    number.is_empty().then_some(interval)
}

fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    let mut out = [0u8; 16];
    let mut nibbles = text.bytes().filter(|b| *b != b'-');
    for b in &mut out {
        let hi = char::from(nibbles.next()?).to_digit(16)?;
        let lo = char::from(nibbles.next()?).to_digit(16)?;
        *b = u8::try_from(hi * 16 + lo).ok()?;
    }
    nibbles.next().is_none().then_some(out)
}

/// A bit string as Debezium's `io.debezium.data.Bits` bytes: the bits as a number,
/// least significant byte first.
fn parse_bits(text: &str) -> Option<Vec<u8>> {
    if !text.bytes().all(|b| b == b'0' || b == b'1') {
        return None;
    }
    let len = text.len().div_ceil(8).max(1);
    let mut out = vec![0u8; len];
    for (i, b) in text.bytes().rev().enumerate() {
        if b == b'1' {
            out[i / 8] |= 1 << (i % 8);
        }
    }
    Some(out)
}

/// Well-known binary of a 2D point (little-endian).
fn point_wkb(x: f64, y: f64) -> Vec<u8> {
    let mut wkb = Vec::with_capacity(21);
    wkb.push(1);
    wkb.extend_from_slice(&1u32.to_le_bytes());
    wkb.extend_from_slice(&x.to_le_bytes());
    wkb.extend_from_slice(&y.to_le_bytes());
    wkb
}

/// Splits a one- or multi-dimensional array literal into its (flattened) elements;
/// `None` items are SQL NULLs.
fn parse_array(text: &str) -> Option<Vec<Option<String>>> {
    // Optional dimension decoration: `[1:2]={...}`.
    let text = match text.find('=') {
        Some(i) if text.starts_with('[') => &text[i + 1..],
        _ => text,
    };
    let mut items = Vec::new();
    let mut chars = text.chars();
    let mut depth = 0usize;
    let mut current = String::new();
    let mut in_quotes = false;
    let mut item_quoted = false;
    let mut has_item = false;
    let finish = |current: &mut String, item_quoted: bool, items: &mut Vec<Option<String>>| {
        let item = std::mem::take(current);
        items.push(
            if !item_quoted && item.trim().eq_ignore_ascii_case("NULL") {
                None
            } else if item_quoted {
                Some(item)
            } else {
                Some(item.trim().to_owned())
            },
        );
    };
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' => in_quotes = false,
                '\\' => current.push(chars.next()?),
                c => current.push(c),
            }
            continue;
        }
        match c {
            '{' => depth += 1,
            '}' | ',' => {
                if has_item {
                    finish(&mut current, item_quoted, &mut items);
                }
                has_item = false;
                item_quoted = false;
                if c == '}' {
                    depth = depth.checked_sub(1)?;
                }
            }
            '"' => {
                in_quotes = true;
                item_quoted = true;
                has_item = true;
            }
            c if c.is_whitespace() && !has_item => {}
            c => {
                has_item = true;
                current.push(c);
            }
        }
    }
    (depth == 0 && !in_quotes).then_some(items)
}

/// `"a"=>"b", "c"=>NULL` → `[("a", Some("b")), ("c", None)]`, in the text's order.
fn hstore_entries(text: &str) -> Option<Vec<(String, Option<String>)>> {
    let mut entries = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let key = hstore_token(&mut chars)??;
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next()? != '=' || chars.next()? != '>' {
            return None;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        entries.push((key, hstore_token(&mut chars)?));
    }
    Some(entries)
}

/// hstore entries as a JSON object's text: `{"a":"b","c":null}`.
fn hstore_json(entries: &[(String, Option<String>)]) -> String {
    let mut out = String::from("{");
    for (i, (key, value)) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json_string(key));
        out.push(':');
        match value {
            Some(v) => out.push_str(&serde_json_string(v)),
            None => out.push_str("null"),
        }
    }
    out.push('}');
    out
}

/// One hstore token: a quoted string, or bare `NULL` (→ `Some(None)`).
fn hstore_token(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<Option<String>> {
    if chars.peek() == Some(&'"') {
        chars.next();
        let mut s = String::new();
        loop {
            match chars.next()? {
                '"' => return Some(Some(s)),
                '\\' => s.push(chars.next()?),
                c => s.push(c),
            }
        }
    }
    let mut word = String::new();
    while let Some(&c) = chars.peek() {
        if c == ',' || c == '=' || c.is_whitespace() {
            break;
        }
        word.push(c);
        chars.next();
    }
    if word.eq_ignore_ascii_case("NULL") {
        Some(None)
    } else {
        Some(Some(word))
    }
}

fn serde_json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    outflow_core::value::write_json_string(&mut out, s);
    out
}

#[cfg(test)]
mod tests;
