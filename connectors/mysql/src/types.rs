//! MySQL / MariaDB column types → outflow's logical types, and server values → [`Value`].
//!
//! A column's type is read from `information_schema.COLUMNS` (`DATA_TYPE`, `COLUMN_TYPE`,
//! precision, scale, charset) into a [`ColumnCodec`]: the logical [`DataType`] Debezium
//! gives it plus what decoding needs (unsignedness, charset, enum/set labels, bit
//! length). The same codec decodes values from the binlog (mysql_common's `BinlogValue`)
//! and from snapshot reads (binary protocol), which differ for ENUM/SET (index and
//! bitmask vs text), TIMESTAMP (epoch text vs date parts) and YEAR.
//!
//! Mapping (Debezium's defaults, `docs/types-mysql.md`): TINYINT → INT16 (also
//! `tinyint(1)`, as Debezium's snapshot sees it), SMALLINT → INT16 (unsigned INT32),
//! MEDIUMINT → INT32, INT → INT32 (unsigned INT64), BIGINT → INT64, FLOAT → FLOAT32
//! (`FLOAT(M,D)` FLOAT64), DOUBLE → FLOAT64, DECIMAL → Decimal, BIT(1) → BOOLEAN, BIT(n)
//! → Bits, CHAR/VARCHAR/TEXT → STRING (decoded from the column charset: utf8mb4,
//! utf8mb3, latin1 = cp1252, ascii), BINARY/VARBINARY/BLOB → BYTES, ENUM → Enum, SET →
//! Set, JSON → Json (MariaDB's JSON is LONGTEXT with a JSON check and arrives as text),
//! DATE → Date, TIME → Time, DATETIME → Timestamp, TIMESTAMP → TimestampTz (UTC), YEAR
//! → Year, POINT → Point (x, y, WKB, SRID), the rest of the GEOMETRY family → Geometry
//! (WKB + SRID; SRID 0 is null), MariaDB UUID → Uuid, INET6 → STRING.
//! Zero dates become null in nullable columns and the epoch in NOT NULL ones, as
//! Debezium writes them; a zero TIMESTAMP streamed from the binlog (epoch 0 there) is the
//! epoch in any column, as Debezium streams it.

use mysql_async::Value as MyValue;
use outflow_core::{DataType, Decimal, Value};

/// How a column's bytes become text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    /// utf8mb4, utf8mb3, ascii (a subset), and anything else treated as UTF-8.
    Utf8,
    /// MySQL's latin1, which is Windows-1252.
    Latin1,
    /// `binary`: no text.
    Binary,
}

impl Charset {
    /// From `CHARACTER_SET_NAME`.
    pub fn from_name(name: Option<&str>) -> Self {
        match name.map(str::to_ascii_lowercase).as_deref() {
            None | Some("binary") => Self::Binary,
            Some("latin1") => Self::Latin1,
            _ => Self::Utf8,
        }
    }
}

/// What decoding a column needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnCodec {
    /// Logical type.
    pub data_type: DataType,
    /// UNSIGNED integer.
    pub unsigned: bool,
    /// Text encoding of string columns.
    pub charset: Charset,
    /// Column admits NULL.
    pub nullable: bool,
    /// Fixed byte length (BINARY(n), UUID, INET6): the binlog drops trailing zero bytes,
    /// so values are padded back to it.
    pub fixed_length: Option<usize>,
    /// MariaDB INET6: 16 bytes in the binlog, text in the protocol; decoded to text.
    pub inet6: bool,
    /// Width of an integer column (8, 16, 24, 32, 64), 0 for other types: the binlog
    /// decoder's signedness can disagree with the column's (MariaDB), so integers are
    /// re-read in the column's width and signedness.
    pub int_bits: u32,
}

/// A value that does not fit its column (a server or decoder bug).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot decode {value} as {expected}")]
pub struct ValueError {
    /// What the column expects.
    pub expected: String,
    /// What arrived (shortened).
    pub value: String,
}

/// x and y of a well-known-binary POINT: byte order (1 little-endian, 0 big), type 1,
/// then the two doubles; `None` for anything else.
fn wkb_point(wkb: &[u8]) -> Option<(f64, f64)> {
    let little = match wkb.first()? {
        1 => true,
        0 => false,
        _ => return None,
    };
    let word = |at: usize| -> Option<[u8; 8]> { wkb.get(at..at + 8)?.try_into().ok() };
    let kind: [u8; 4] = wkb.get(1..5)?.try_into().ok()?;
    let kind = if little {
        u32::from_le_bytes(kind)
    } else {
        u32::from_be_bytes(kind)
    };
    if kind != 1 {
        return None;
    }
    let double = |bytes: [u8; 8]| {
        if little {
            f64::from_le_bytes(bytes)
        } else {
            f64::from_be_bytes(bytes)
        }
    };
    Some((double(word(5)?), double(word(13)?)))
}

fn labels(column_type: &str) -> Vec<String> {
    // enum('a','b''c') / set('x','y')
    let Some(open) = column_type.find('(') else {
        return Vec::new();
    };
    let inner = column_type[open + 1..].trim_end_matches(')');
    let mut out = Vec::new();
    let mut current = String::new();
    let mut in_quote = false;
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, in_quote) {
            ('\'', false) => in_quote = true,
            ('\'', true) if chars.peek() == Some(&'\'') => {
                current.push('\'');
                chars.next();
            }
            ('\'', true) => {
                in_quote = false;
                out.push(std::mem::take(&mut current));
            }
            ('\\', true) => {
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            (c, true) => current.push(c),
            _ => {}
        }
    }
    out
}

fn parenthesised(column_type: &str) -> Option<(u32, Option<u32>)> {
    let open = column_type.find('(')?;
    let close = column_type[open..].find(')')? + open;
    let inner = &column_type[open + 1..close];
    let mut parts = inner.split(',').map(|p| p.trim().parse::<u32>());
    let first = parts.next()?.ok()?;
    let second = parts.next().and_then(Result::ok);
    Some((first, second))
}

impl ColumnCodec {
    /// From `information_schema.COLUMNS`: `DATA_TYPE`, `COLUMN_TYPE`, `IS_NULLABLE`,
    /// `NUMERIC_PRECISION`, `NUMERIC_SCALE`, `DATETIME_PRECISION`, `CHARACTER_SET_NAME`,
    /// `CHARACTER_MAXIMUM_LENGTH`.
    #[allow(clippy::too_many_arguments)]
    pub fn from_information_schema(
        data_type: &str,
        column_type: &str,
        nullable: bool,
        precision: Option<u32>,
        scale: Option<u32>,
        datetime_precision: Option<u32>,
        charset: Option<&str>,
        max_length: Option<u64>,
    ) -> Self {
        let data_type = data_type.to_ascii_lowercase();
        let column_type = column_type.to_ascii_lowercase();
        let unsigned = column_type.contains("unsigned");
        let fsp = datetime_precision.and_then(|p| u8::try_from(p).ok());
        let length = max_length.and_then(|l| u32::try_from(l).ok());
        let charset = Charset::from_name(charset);
        let logical = match data_type.as_str() {
            "tinyint" => DataType::Int16,
            "smallint" if unsigned => DataType::Int32,
            "smallint" => DataType::Int16,
            "mediumint" => DataType::Int32,
            "int" | "integer" if unsigned => DataType::Int64,
            "int" | "integer" => DataType::Int32,
            "bigint" => DataType::Int64,
            "float" if parenthesised(&column_type).is_some_and(|(_, d)| d.is_some()) => {
                DataType::Float64
            }
            "float" => DataType::Float32,
            "double" | "real" => DataType::Float64,
            "decimal" | "numeric" => DataType::Decimal {
                precision,
                scale: Some(scale.unwrap_or(0)),
            },
            "bit" => match parenthesised(&column_type).map(|(n, _)| n).unwrap_or(1) {
                1 => DataType::Bool,
                n => DataType::Bits { length: n },
            },
            "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => {
                if charset == Charset::Binary {
                    DataType::Bytes { length }
                } else {
                    DataType::String { length }
                }
            }
            "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
                DataType::Bytes { length }
            }
            "enum" => DataType::Enum {
                labels: labels(&column_type),
            },
            "set" => DataType::Set {
                labels: labels(&column_type),
            },
            "json" => DataType::Json,
            "date" => DataType::Date,
            "time" => DataType::Time { precision: fsp },
            "datetime" => DataType::Timestamp { precision: fsp },
            "timestamp" => DataType::TimestampTz { precision: fsp },
            "year" => DataType::Year,
            "point" => DataType::Point,
            "geometry" | "linestring" | "polygon" | "multipoint" | "multilinestring"
            | "multipolygon" | "geometrycollection" | "geomcollection" => {
                DataType::Geometry { geography: false }
            }
            "uuid" => DataType::Uuid,
            _ => DataType::String { length },
        };
        let fixed_length = match data_type.as_str() {
            "binary" => length.and_then(|l| usize::try_from(l).ok()),
            "uuid" | "inet6" => Some(16),
            _ => None,
        };
        let int_bits = match data_type.as_str() {
            "tinyint" => 8,
            "smallint" => 16,
            "mediumint" => 24,
            "int" | "integer" => 32,
            "bigint" => 64,
            _ => 0,
        };
        Self {
            int_bits,
            inet6: data_type == "inet6",
            fixed_length,
            data_type: logical,
            unsigned,
            charset: if matches!(data_type.as_str(), "enum" | "set" | "json") {
                Charset::Utf8
            } else {
                charset
            },
            nullable,
        }
    }

    fn error(&self, value: &MyValue) -> ValueError {
        let mut shown = format!("{value:?}");
        shown.truncate(80);
        ValueError {
            expected: format!("{:?}", self.data_type),
            value: shown,
        }
    }

    /// Text of a string value: the binlog holds the column's charset; the protocol
    /// converts to the connection's (utf8mb4).
    fn text(&self, bytes: &[u8], binlog: bool) -> String {
        match self.charset {
            Charset::Latin1 if binlog => bytes.iter().map(|&b| cp1252(b)).collect(),
            _ => String::from_utf8_lossy(bytes).into_owned(),
        }
    }

    /// [`decode`](Self::decode) of a value the caller gives away: the bytes of valid
    /// UTF-8 text and JSON become the string without a copy. The same value as `decode`.
    pub fn decode_owned(&self, value: MyValue, binlog: bool) -> Result<Value, ValueError> {
        let latin1 = matches!(self.charset, Charset::Latin1) && binlog;
        match (value, &self.data_type) {
            (MyValue::Bytes(bytes), DataType::String { .. } | DataType::Json)
                if !self.inet6 && self.fixed_length.is_none() && !latin1 =>
            {
                let text = String::from_utf8(bytes)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
                Ok(match self.data_type {
                    DataType::Json => Value::Json(text),
                    _ => Value::String(text),
                })
            }
            (value, _) => self.decode(&value, binlog),
        }
    }

    /// The value of a text or JSON column from the bytes the binlog holds, without an
    /// intermediate `mysql_common` value (one copy fewer); `None` for every other column,
    /// which [`decode`](Self::decode) takes. The same value `decode` makes of those bytes.
    fn decode_binlog_text(&self, bytes: &[u8]) -> Option<Value> {
        if self.inet6 || self.fixed_length.is_some() {
            return None;
        }
        match &self.data_type {
            DataType::String { .. } => Some(Value::String(self.text(bytes, true))),
            DataType::Json => Some(Value::Json(String::from_utf8_lossy(bytes).into_owned())),
            _ => None,
        }
    }

    /// `bigint.unsigned.handling.mode=precise`: BIGINT UNSIGNED becomes a decimal of
    /// precision 20, scale 0 (every value exact) instead of a wrapping INT64 (`long`).
    #[must_use]
    pub fn with_bigint_unsigned_precise(mut self, precise: bool) -> Self {
        if precise && self.unsigned && self.int_bits == 64 {
            self.data_type = DataType::Decimal {
                precision: Some(20),
                scale: Some(0),
            };
        }
        self
    }

    fn integer(&self, value: &MyValue) -> Option<i64> {
        match value {
            MyValue::Int(i) => Some(*i),
            MyValue::UInt(u) => Some(*u as i64),
            MyValue::Bytes(b) => std::str::from_utf8(b).ok()?.trim().parse().ok(),
            _ => None,
        }
    }

    /// An integer in the column's width and signedness, whatever signedness the decoder
    /// assumed (BIGINT UNSIGNED above `i64::MAX` wraps, Debezium's long mode).
    fn column_integer(&self, value: &MyValue) -> Option<i64> {
        let raw = self.integer(value)?;
        if self.int_bits == 0 || self.int_bits >= 64 {
            return Some(raw);
        }
        let span = 1i64 << self.int_bits;
        let half = span / 2;
        Some(match (self.unsigned, raw) {
            (true, r) if r < 0 => r + span,
            (false, r) if r >= half && r < span => r - span,
            (_, r) => r,
        })
    }

    /// The column's constant default, from `information_schema.COLUMNS.COLUMN_DEFAULT`
    /// as MariaDB 10.2.7+ writes it (a string literal quoted, a number bare, `NULL` for
    /// none, an expression such as `current_timestamp()` as written): the Connect schema
    /// default Debezium reports. Numbers, decimals, booleans, strings, ENUM and SET
    /// values are read; an expression, or a default of another type, gives `None`.
    pub fn default_value(&self, column_default: Option<&str>) -> Option<Value> {
        let text = column_default?.trim();
        if text.eq_ignore_ascii_case("NULL") {
            return None;
        }
        let literal = text
            .strip_prefix('\'')
            .and_then(|t| t.strip_suffix('\''))
            .map(|t| t.replace("''", "'").replace("\\\\", "\\"));
        let number = || literal.as_deref().unwrap_or(text).parse::<i64>().ok();
        Some(match &self.data_type {
            DataType::Bool => Value::Bool(number()? != 0),
            DataType::Int16 => Value::Int16(i16::try_from(number()?).ok()?),
            DataType::Int32 => Value::Int32(i32::try_from(number()?).ok()?),
            DataType::Int64 => Value::Int64(number()?),
            DataType::Float32 => Value::Float32(literal.as_deref().unwrap_or(text).parse().ok()?),
            DataType::Float64 => Value::Float64(literal.as_deref().unwrap_or(text).parse().ok()?),
            DataType::Decimal { .. } => {
                Value::Decimal(Decimal::parse(literal.as_deref().unwrap_or(text))?)
            }
            DataType::String { .. } => Value::String(literal?),
            DataType::Enum { .. } => Value::Enum(literal?),
            DataType::Set { .. } => Value::String(literal?),
            _ => return None,
        })
    }

    /// The epoch for NOT NULL columns, null otherwise (a zero date).
    fn zero_date(&self, epoch: Value) -> Value {
        if self.nullable { Value::Null } else { epoch }
    }

    /// Decodes a value as the server sent it. `binlog` says where it came from: the
    /// binlog encodes ENUM as its index, SET as a bitmask and TIMESTAMP as epoch text;
    /// the binary protocol sends the label(s) and the date parts.
    pub fn decode(&self, value: &MyValue, binlog: bool) -> Result<Value, ValueError> {
        if matches!(value, MyValue::NULL) {
            return Ok(Value::Null);
        }
        if let (Some(size), MyValue::Bytes(b)) = (self.fixed_length, value)
            && binlog
            && b.len() < size
        {
            let mut padded = b.clone();
            padded.resize(size, 0);
            return self.decode(&MyValue::Bytes(padded), binlog);
        }
        if self.inet6
            && let MyValue::Bytes(b) = value
        {
            return Ok(Value::String(match <[u8; 16]>::try_from(b.as_slice()) {
                Ok(raw) if binlog => std::net::Ipv6Addr::from(raw).to_string(),
                _ => self.text(b, binlog),
            }));
        }
        let bad = || self.error(value);
        let decoded = match &self.data_type {
            DataType::Bool => match value {
                MyValue::Bytes(b) => Value::Bool(b.iter().any(|&x| x != 0)),
                other => Value::Bool(self.integer(other).ok_or_else(bad)? != 0),
            },
            DataType::Int16 => {
                let i = self.column_integer(value).ok_or_else(bad)?;
                Value::Int16(i16::try_from(i).map_err(|_| bad())?)
            }
            DataType::Int32 => {
                let i = self.column_integer(value).ok_or_else(bad)?;
                Value::Int32(i32::try_from(i).map_err(|_| bad())?)
            }
            DataType::Int64 => Value::Int64(self.column_integer(value).ok_or_else(bad)?),
            DataType::Float32 => match value {
                MyValue::Float(f) => Value::Float32(*f),
                MyValue::Double(d) => Value::Float32(*d as f32),
                _ => return Err(bad()),
            },
            DataType::Float64 => match value {
                MyValue::Float(f) => Value::Float64(f64::from(*f)),
                MyValue::Double(d) => Value::Float64(*d),
                _ => return Err(bad()),
            },
            DataType::Decimal { .. } => match value {
                MyValue::Bytes(b) => Value::Decimal(
                    std::str::from_utf8(b)
                        .ok()
                        .and_then(Decimal::parse)
                        .ok_or_else(bad)?,
                ),
                // BIGINT UNSIGNED (precise mode) that a decoder read as signed.
                MyValue::Int(i) if self.unsigned && self.int_bits == 64 => {
                    Value::Decimal(Decimal::new(*i as u64, 0))
                }
                MyValue::Int(i) => Value::Decimal(Decimal::new(*i, 0)),
                MyValue::UInt(u) => Value::Decimal(Decimal::new(*u, 0)),
                _ => return Err(bad()),
            },
            DataType::Bits { length } => match value {
                // Big-endian on the wire; Debezium writes little-endian, sized to the bits.
                MyValue::Bytes(b) => {
                    let size = usize::try_from(length.div_ceil(8)).unwrap_or(0);
                    let mut le: Vec<u8> = b.iter().rev().copied().collect();
                    le.resize(size.max(1), 0);
                    Value::Bytes(le)
                }
                MyValue::Int(_) | MyValue::UInt(_) => {
                    let n = self.integer(value).ok_or_else(bad)? as u64;
                    let size = usize::try_from(length.div_ceil(8)).unwrap_or(8).min(8);
                    Value::Bytes(n.to_le_bytes()[..size.max(1)].to_vec())
                }
                _ => return Err(bad()),
            },
            DataType::String { .. } => match value {
                MyValue::Bytes(b) => Value::String(self.text(b, binlog)),
                _ => return Err(bad()),
            },
            DataType::Bytes { .. } => match value {
                MyValue::Bytes(b) => Value::Bytes(b.clone()),
                _ => return Err(bad()),
            },
            DataType::Json => match value {
                MyValue::Bytes(b) => Value::Json(String::from_utf8_lossy(b).into_owned()),
                _ => return Err(bad()),
            },
            DataType::Enum { labels } => match value {
                MyValue::Bytes(b) if !binlog => Value::Enum(self.text(b, binlog)),
                other => {
                    let index = self.integer(other).ok_or_else(bad)?;
                    let label = usize::try_from(index)
                        .ok()
                        .and_then(|i| i.checked_sub(1))
                        .and_then(|i| labels.get(i))
                        .cloned()
                        .unwrap_or_default();
                    Value::Enum(label)
                }
            },
            DataType::Set { labels } => match value {
                MyValue::Bytes(b) if !binlog => Value::String(self.text(b, binlog)),
                MyValue::Bytes(b) => {
                    let mut bits = [0u8; 8];
                    for (i, byte) in b.iter().take(8).enumerate() {
                        bits[i] = *byte;
                    }
                    let mask = u64::from_le_bytes(bits);
                    let members: Vec<&str> = labels
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| *i < 64 && mask & (1 << i) != 0)
                        .map(|(_, l)| l.as_str())
                        .collect();
                    Value::String(members.join(","))
                }
                other => {
                    let mask = self.integer(other).ok_or_else(bad)? as u64;
                    let members: Vec<&str> = labels
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| *i < 64 && mask & (1 << i) != 0)
                        .map(|(_, l)| l.as_str())
                        .collect();
                    Value::String(members.join(","))
                }
            },
            DataType::Year => {
                let year = self.integer(value).ok_or_else(bad)?;
                Value::Int32(i32::try_from(year).map_err(|_| bad())?)
            }
            DataType::Date => match value {
                MyValue::Date(0, 0, 0, ..) => self.zero_date(Value::Date(0)),
                MyValue::Date(y, m, d, ..) => Value::Date(
                    i32::try_from(days_from_civil(i64::from(*y), u32::from(*m), u32::from(*d)))
                        .map_err(|_| bad())?,
                ),
                _ => return Err(bad()),
            },
            DataType::Time { .. } => match value {
                MyValue::Time(negative, days, h, m, s, us) => {
                    let micros = ((i64::from(*days) * 24 + i64::from(*h)) * 3600
                        + i64::from(*m) * 60
                        + i64::from(*s))
                        * 1_000_000
                        + i64::from(*us);
                    Value::Time(if *negative { -micros } else { micros })
                }
                _ => return Err(bad()),
            },
            DataType::Timestamp { .. } => match value {
                MyValue::Date(0, 0, 0, ..) => self.zero_date(Value::Timestamp(0)),
                MyValue::Date(y, mo, d, h, mi, s, us) => {
                    Value::Timestamp(micros_from_parts(*y, *mo, *d, *h, *mi, *s, *us))
                }
                _ => return Err(bad()),
            },
            DataType::TimestampTz { .. } => match value {
                // Binlog: "<epoch seconds>[.<micros>]".
                MyValue::Bytes(b) => {
                    let text = std::str::from_utf8(b).map_err(|_| bad())?;
                    let (secs, frac) = text.split_once('.').unwrap_or((text, "0"));
                    let secs: i64 = secs.parse().map_err(|_| bad())?;
                    let mut frac = frac.to_owned();
                    frac.truncate(6);
                    while frac.len() < 6 {
                        frac.push('0');
                    }
                    let micros: i64 = frac.parse().map_err(|_| bad())?;
                    // A zero TIMESTAMP is epoch 0 in the binlog, and Debezium streams it
                    // as the epoch even in a nullable column (its snapshot reads null).
                    Value::TimestampTz(secs * 1_000_000 + micros)
                }
                MyValue::Date(0, 0, 0, ..) => self.zero_date(Value::TimestampTz(0)),
                // Binary protocol: the session time zone is UTC.
                MyValue::Date(y, mo, d, h, mi, s, us) => {
                    Value::TimestampTz(micros_from_parts(*y, *mo, *d, *h, *mi, *s, *us))
                }
                _ => return Err(bad()),
            },
            DataType::Geometry { .. } | DataType::Point => match value {
                // MySQL's internal format: 4-byte little-endian SRID, then WKB. SRID 0
                // (none) is null, as Debezium writes it.
                MyValue::Bytes(b) if b.len() >= 4 => {
                    let srid = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                    let wkb = &b[4..];
                    let point = if self.data_type == DataType::Point {
                        Some(wkb_point(wkb).ok_or_else(bad)?)
                    } else {
                        None
                    };
                    Value::Geometry {
                        wkb: wkb.to_vec(),
                        srid: (srid != 0).then_some(srid),
                        point,
                    }
                }
                _ => return Err(bad()),
            },
            DataType::Uuid => match value {
                MyValue::Bytes(b) if b.len() == 16 => {
                    let mut u = [0u8; 16];
                    u.copy_from_slice(b);
                    Value::Uuid(u)
                }
                MyValue::Bytes(b) => Value::Uuid(parse_uuid(b).ok_or_else(bad)?),
                _ => return Err(bad()),
            },
            _ => match value {
                MyValue::Bytes(b) => Value::String(self.text(b, binlog)),
                _ => return Err(bad()),
            },
        };
        Ok(decoded)
    }
}

/// 32 hex digits, dashes anywhere between them ignored, as 16 bytes.
fn parse_uuid(text: &[u8]) -> Option<[u8; 16]> {
    let mut out = [0u8; 16];
    let mut nibbles = 0usize;
    for &c in text {
        let nibble = match c {
            b'-' => continue,
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return None,
        };
        let byte = out.get_mut(nibbles / 2)?;
        *byte = *byte << 4 | nibble;
        nibbles += 1;
    }
    (nibbles == 32).then_some(out)
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn micros_from_parts(y: u16, mo: u8, d: u8, h: u8, mi: u8, s: u8, us: u32) -> i64 {
    let days = days_from_civil(i64::from(y), u32::from(mo), u32::from(d));
    ((days * 24 + i64::from(h)) * 60 + i64::from(mi)) * 60_000_000
        + i64::from(s) * 1_000_000
        + i64::from(us)
}

/// Windows-1252, which MySQL calls latin1.
fn cp1252(b: u8) -> char {
    const HIGH: [char; 32] = [
        '\u{20AC}', '\u{81}', '\u{201A}', '\u{0192}', '\u{201E}', '\u{2026}', '\u{2020}',
        '\u{2021}', '\u{02C6}', '\u{2030}', '\u{0160}', '\u{2039}', '\u{0152}', '\u{8D}',
        '\u{017D}', '\u{8F}', '\u{90}', '\u{2018}', '\u{2019}', '\u{201C}', '\u{201D}', '\u{2022}',
        '\u{2013}', '\u{2014}', '\u{02DC}', '\u{2122}', '\u{0161}', '\u{203A}', '\u{0153}',
        '\u{9D}', '\u{017E}', '\u{0178}',
    ];
    match b {
        0x80..=0x9F => HIGH[usize::from(b - 0x80)],
        _ => char::from(b),
    }
}

/// How many rows of a rows event to read at most, after checking that the event fits its
/// TABLE_MAP: every row takes at least one byte (its null bitmap), and mysql_common's row
/// iterator neither ends on an event whose rows take none nor checks the column count
/// (it sizes buffers by it). Iterate with `.take(..)` of this.
pub fn rows_to_read(
    rows: &mysql_async::binlog::events::RowsEventData<'_>,
    tme: &mysql_async::binlog::events::TableMapEvent<'_>,
) -> Result<usize, RowDecodeError> {
    if rows.num_columns() != tme.columns_count() {
        return Err(RowDecodeError::Width {
            values: usize::try_from(rows.num_columns()).unwrap_or(usize::MAX),
            columns: usize::try_from(tme.columns_count()).unwrap_or(usize::MAX),
        });
    }
    Ok(rows.rows_data().len())
}

/// What decoding a table's rows needs from its TABLE_MAP, taken once per table map
/// rather than per row (mysql_common's own row reader re-reads the optional metadata and
/// builds column descriptions for every row): each column's wire type, type metadata and
/// signedness.
#[derive(Debug, Clone)]
pub struct RowLayout {
    columns: Vec<(mysql_async::consts::ColumnType, Vec<u8>, bool)>,
}

impl RowLayout {
    /// The layout of `tme`'s rows; `codecs` (the same columns) give the signedness.
    /// Call after [`table_map_shape`] accepted the event (it checks the metadata).
    pub fn new(
        tme: &mysql_async::binlog::events::TableMapEvent<'_>,
        codecs: &[ColumnCodec],
    ) -> Result<Self, std::io::Error> {
        let count = usize::try_from(tme.columns_count()).unwrap_or(usize::MAX);
        if count != codecs.len() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} codecs for {count} columns", codecs.len()),
            ));
        }
        let columns = codecs
            .iter()
            .enumerate()
            .map(|(i, codec)| {
                let kind = tme
                    .get_column_type(i)
                    .map_err(|e| std::io::Error::other(e.to_string()))?
                    .ok_or_else(|| std::io::Error::other(format!("column {i} has no type")))?;
                let metadata = tme.get_column_metadata(i).unwrap_or(&[]).to_vec();
                Ok((kind, metadata, codec.unsigned && kind.is_numeric_type()))
            })
            .collect::<Result<_, std::io::Error>>()?;
        Ok(Self { columns })
    }
}

/// One row image with the columns of `present` (a FULL image has all).
fn read_image(
    buf: &mut mysql_common::io::ParseBuf<'_>,
    layout: &RowLayout,
    codecs: &[ColumnCodec],
    present: &[bool],
) -> Result<Vec<Value>, RowDecodeError> {
    use mysql_common::proto::MyDeserialize;
    let columns = layout.columns.len();
    let shown = present.iter().filter(|p| **p).count();
    if shown != columns {
        return Err(RowDecodeError::Width {
            values: shown,
            columns,
        });
    }
    let nulls: &[u8] = buf
        .checked_eat(shown.div_ceil(8))
        .ok_or(RowDecodeError::Truncated)?;
    let mut values = Vec::with_capacity(columns);
    for (i, ((kind, metadata, unsigned), codec)) in layout.columns.iter().zip(codecs).enumerate() {
        if nulls[i / 8] & (1 << (i % 8)) != 0 {
            values.push(Value::Null);
            continue;
        }
        // The value is read from a view of the buffer that lives as long as the metadata
        // borrow (the deserializer wants one lifetime for both), then the buffer advances.
        let rest: &[u8] = buf.0;
        // DATETIME2 stores the value + 2^39 in 5 big-endian bytes: a clear top bit is a
        // negative date-time, which the server never writes and which overflows inside
        // mysql_common's unpacking (found by the binlog_events fuzz target).
        if *kind == mysql_async::consts::ColumnType::MYSQL_TYPE_DATETIME2
            && rest.first().is_some_and(|b| b & 0x80 == 0)
        {
            return Err(RowDecodeError::NegativeDatetime);
        }
        if *kind == mysql_async::consts::ColumnType::MYSQL_TYPE_NEWDECIMAL {
            match read_binary_decimal(rest, metadata) {
                BinaryDecimal::Implausible => return Err(RowDecodeError::InvalidDecimal),
                BinaryDecimal::Valid {
                    value: Some(value),
                    size,
                } if matches!(codec.data_type, DataType::Decimal { .. }) => {
                    buf.0 = &rest[size..];
                    values.push(Value::Decimal(value));
                    continue;
                }
                // Wider than 38 digits, or short (the decoder reports the truncation).
                _ => {}
            }
        }
        if *kind == mysql_async::consts::ColumnType::MYSQL_TYPE_TIME2
            && matches!(metadata.first(), Some(1 | 2))
        {
            let bytes: &[u8; 4] = rest.first_chunk().ok_or(RowDecodeError::Truncated)?;
            buf.0 = &rest[4..];
            values.push(codec.decode(&time2_hundredths(*bytes), true)?);
            continue;
        }
        if let Some((payload, size)) = length_prefixed(*kind, metadata, rest)
            && let Some(value) = codec.decode_binlog_text(payload)
        {
            buf.0 = &rest[size..];
            values.push(value);
            continue;
        }
        let mut view = mysql_common::io::ParseBuf(rest);
        let value = mysql_async::binlog::value::BinlogValue::deserialize(
            (*kind, metadata.as_slice(), *unsigned, false),
            &mut view,
        )
        .map_err(|_| RowDecodeError::Truncated)?;
        let consumed = rest.len() - view.0.len();
        buf.0 = &buf.0[consumed..];
        values.push(match value {
            mysql_async::binlog::value::BinlogValue::Value(v) => codec.decode(&v, true)?,
            mysql_async::binlog::value::BinlogValue::Jsonb(j) => {
                let json = serde_json::Value::try_from(j)
                    .map_err(|e| RowDecodeError::Json(e.to_string()))?;
                codec.decode(&MyValue::Bytes(json.to_string().into_bytes()), true)?
            }
            mysql_async::binlog::value::BinlogValue::JsonDiff(_) => {
                return Err(RowDecodeError::PartialJson);
            }
        });
    }
    Ok(values)
}

/// The payload of a VARCHAR or BLOB-family value (TEXT, JSON on MariaDB) at the start
/// of `bytes` and the bytes it takes with its length prefix: VARCHAR has a 1-byte
/// length when its declared maximum (metadata, 2 bytes little-endian) is below 256 and 2
/// bytes otherwise; a BLOB has as many length bytes as its metadata says (1–4). `None`
/// for other types and for a value cut short (the decoder reports that).
fn length_prefixed<'a>(
    kind: mysql_async::consts::ColumnType,
    metadata: &[u8],
    bytes: &'a [u8],
) -> Option<(&'a [u8], usize)> {
    use mysql_async::consts::ColumnType;
    let prefix = match kind {
        ColumnType::MYSQL_TYPE_VARCHAR => {
            let max = u16::from_le_bytes([*metadata.first()?, *metadata.get(1)?]);
            if max < 256 { 1 } else { 2 }
        }
        ColumnType::MYSQL_TYPE_BLOB => match metadata.first()? {
            size @ 1..=4 => usize::from(*size),
            _ => return None,
        },
        _ => return None,
    };
    let mut length = [0u8; 8];
    length[..prefix].copy_from_slice(bytes.get(..prefix)?);
    let length = usize::try_from(u64::from_le_bytes(length)).ok()?;
    let end = prefix.checked_add(length)?;
    Some((bytes.get(prefix..end)?, end))
}

/// What the first bytes of a binary DECIMAL hold (MySQL's `decimal2bin` layout: the
/// integer digits, then the fraction, in groups of nine decimal digits per 4 bytes, a
/// leading and a trailing partial group, the sign in the top bit and negative values
/// with every bit inverted).
#[derive(Debug, Clone, PartialEq, Eq)]
enum BinaryDecimal {
    /// Fewer bytes than the precision needs: left to the decoder's truncation error.
    Short,
    /// Bad metadata, or a digit group holding more digits than its size allows: never
    /// written by a server (mysql_common 0.37 multiplies an oversized trailing group
    /// without a check; found by the binlog_events fuzz target).
    Implausible,
    /// Well formed, `size` bytes long; `value` is the number when it has at most 38
    /// digits (read straight from the groups, no text round trip).
    Valid { value: Option<Decimal>, size: usize },
}

/// Reads a binary DECIMAL of the precision and scale in `metadata` from `bytes`.
fn read_binary_decimal(bytes: &[u8], metadata: &[u8]) -> BinaryDecimal {
    const DIG_TO_BYTES: [usize; 10] = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];
    /// Digits that always fit a `u128`.
    const SMALL_DIGITS: u8 = 38;
    let (Some(&precision), Some(&scale)) = (metadata.first(), metadata.get(1)) else {
        return BinaryDecimal::Implausible;
    };
    if precision == 0 || precision > 65 || scale > 30 || scale > precision {
        return BinaryDecimal::Implausible;
    }
    let (intg, frac) = (usize::from(precision - scale), usize::from(scale));
    // (bytes, digits) of each group in order: the leading partial group, the full ones,
    // the trailing partial group.
    let full = intg / 9 + frac / 9;
    let groups = [(DIG_TO_BYTES[intg % 9], intg % 9)]
        .into_iter()
        .chain(std::iter::repeat_n((4, 9), full))
        .chain([(DIG_TO_BYTES[frac % 9], frac % 9)])
        .filter(|(_, digits)| *digits > 0);
    let size = DIG_TO_BYTES[intg % 9] + 4 * full + DIG_TO_BYTES[frac % 9];
    let Some(stored) = bytes.get(..size) else {
        return BinaryDecimal::Short;
    };
    let negative = stored.first().is_some_and(|b| b & 0x80 == 0);
    let small = precision <= SMALL_DIGITS;
    let mut unscaled: u128 = 0;
    let mut at = 0;
    for (group_size, digits) in groups {
        let mut group: u32 = 0;
        for (i, byte) in stored[at..at + group_size].iter().enumerate() {
            let mut byte = *byte;
            if at + i == 0 {
                byte ^= 0x80;
            }
            if negative {
                byte = !byte;
            }
            group = group << 8 | u32::from(byte);
        }
        let limit = 10u32.pow(digits as u32);
        if group >= limit {
            return BinaryDecimal::Implausible;
        }
        if small {
            unscaled = unscaled * u128::from(limit) + u128::from(group);
        }
        at += group_size;
    }
    // Below 10^38 < i128::MAX: the conversion cannot fail for a small decimal.
    let value = i128::try_from(unscaled)
        .ok()
        .filter(|_| small)
        .map(|magnitude| {
            Decimal::new(
                if negative { -magnitude } else { magnitude },
                i32::from(scale),
            )
        });
    BinaryDecimal::Valid { value, size }
}

#[cfg(test)]
fn decimal_plausible(bytes: &[u8], metadata: &[u8]) -> bool {
    read_binary_decimal(bytes, metadata) != BinaryDecimal::Implausible
}

/// A TIME(1) or TIME(2) value as the binlog stores it (3 bytes of seconds-packed time
/// plus 2^23, then one byte of hundredths). mysql_common 0.37 unpacks a negative one with a
/// fraction in unsigned arithmetic (`-00:00:01.50` comes out as a large positive time in
/// release builds and overflows in debug ones; found by the binlog_events fuzz target),
/// so these are read here, as the server's `my_time_packed_from_binary` does: a negative
/// time with a fraction borrows one second.
fn time2_hundredths(bytes: [u8; 4]) -> MyValue {
    const TIMEF_INT_OFS: i64 = 0x80_0000;
    let mut seconds_part =
        (i64::from(bytes[0]) << 16 | i64::from(bytes[1]) << 8 | i64::from(bytes[2]))
            - TIMEF_INT_OFS;
    let mut hundredths = i64::from(bytes[3]);
    if seconds_part < 0 && hundredths > 0 {
        seconds_part += 1;
        hundredths -= 0x100;
    }
    // (seconds part << 24) + microseconds: the packed form mysql_common unpacks.
    let packed = seconds_part * (1 << 24) + hundredths * 10_000;
    mysql_common::binlog::misc::time_from_packed(packed)
}

/// A row of a rows event: the before image (UPDATE, DELETE) and the after image (WRITE,
/// UPDATE).
pub type RowImages = (Option<Vec<Value>>, Option<Vec<Value>>);

/// Decodes every row of a rows event (WRITE/UPDATE/DELETE v1 and v2, and MySQL's
/// PARTIAL_UPDATE when it carries no partial JSON) straight into values: the hot path of
/// binlog decoding. `layout` and `codecs` describe the event's table map.
pub fn decode_rows(
    rows: &mysql_async::binlog::events::RowsEventData<'_>,
    layout: &RowLayout,
    codecs: &[ColumnCodec],
) -> Result<Vec<RowImages>, RowDecodeError> {
    use mysql_async::binlog::events::RowsEventData;
    let n = layout.columns.len();
    let before: Option<Vec<bool>> = rows
        .columns_before_image()
        .map(|b| (0..n).map(|i| b.get(i).is_some_and(|x| *x)).collect());
    let after: Option<Vec<bool>> = rows
        .columns_after_image()
        .map(|b| (0..n).map(|i| b.get(i).is_some_and(|x| *x)).collect());
    let partial = matches!(rows, RowsEventData::PartialUpdateRowsEvent(_));
    let mut buf = mysql_common::io::ParseBuf(rows.rows_data());
    let mut out = Vec::new();
    while !buf.is_empty() {
        let remaining = buf.len();
        let before = match &before {
            Some(present) => Some(read_image(&mut buf, layout, codecs, present)?),
            None => None,
        };
        let after = match &after {
            Some(present) => {
                if partial {
                    // The shared image's value options (WL#2955): partial JSON is not
                    // a full value.
                    let options = buf
                        .checked_eat_lenenc_int()
                        .ok_or(RowDecodeError::Truncated)?;
                    if options & 1 != 0 {
                        return Err(RowDecodeError::PartialJson);
                    }
                }
                Some(read_image(&mut buf, layout, codecs, present)?)
            }
            None => None,
        };
        if before.is_none() && after.is_none() {
            break;
        }
        // Images of no bytes (no column present) would repeat without end (found by
        // fuzzing: the loop grew until memory ran out).
        if buf.len() == remaining {
            return Err(RowDecodeError::EmptyImages);
        }
        out.push((before, after));
    }
    Ok(out)
}

/// Why a binlog row could not be turned into values.
#[derive(Debug, thiserror::Error)]
pub enum RowDecodeError {
    /// The row has another number of values than the shape has columns.
    #[error("the row has {values} values for {columns} columns")]
    Width {
        /// Values in the row.
        values: usize,
        /// Columns of the shape.
        columns: usize,
    },
    /// A value does not fit its column.
    #[error(transparent)]
    Value(#[from] ValueError),
    /// MySQL binary JSON that does not decode.
    #[error("undecodable binary JSON: {0}")]
    Json(String),
    /// The rows data ends inside a row.
    #[error("the rows data ends inside a row")]
    Truncated,
    /// Row images that hold no bytes, so the rows data never advances.
    #[error("the rows event's images hold no columns")]
    EmptyImages,
    /// A partial JSON update (`binlog_row_value_options=PARTIAL_JSON`), which carries no
    /// full value.
    #[error("a partial JSON update; set binlog_row_value_options='' on the server")]
    PartialJson,
    /// A DATETIME2 value below the encoding's offset (a negative date-time, which no
    /// server writes; mysql_common would overflow on it).
    #[error("a DATETIME value with an invalid encoding (negative)")]
    NegativeDatetime,
    /// A DECIMAL value whose digit groups are out of range for its precision and scale
    /// (no server writes one; mysql_common would overflow on it).
    #[error("a DECIMAL value with an invalid encoding")]
    InvalidDecimal,
}

/// Turns one row image of a rows event into values with `codecs` (the shape of the
/// event's TABLE_MAP or of the table): the hot path of binlog decoding.
pub fn binlog_row_values(
    row: mysql_async::binlog::row::BinlogRow,
    codecs: &[ColumnCodec],
) -> Result<Vec<Value>, RowDecodeError> {
    use mysql_async::binlog::value::BinlogValue;
    let values = row.unwrap();
    if values.len() != codecs.len() {
        return Err(RowDecodeError::Width {
            values: values.len(),
            columns: codecs.len(),
        });
    }
    values
        .into_iter()
        .zip(codecs)
        .map(|(value, codec)| match value {
            BinlogValue::Value(v) => Ok(codec.decode(&v, true)?),
            BinlogValue::Jsonb(j) => {
                let json = serde_json::Value::try_from(j)
                    .map_err(|e| RowDecodeError::Json(e.to_string()))?;
                Ok(codec.decode(&MyValue::Bytes(json.to_string().into_bytes()), true)?)
            }
            BinlogValue::JsonDiff(_) => Err(RowDecodeError::PartialJson),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_digit_groups_are_checked() {
        // DECIMAL(5,2): 3 integer digits (2 bytes), 2 fraction digits (1 byte).
        // 123.45 → 0x80 0x7B 0x2D; -123.45 → the same with every bit inverted.
        assert!(decimal_plausible(&[0x80, 0x7B, 0x2D], &[5, 2]));
        assert!(decimal_plausible(&[0x7F, 0x84, 0xD2], &[5, 2]));
        // A fraction group of 100 (> 99) or an integer group of 1000 (> 999).
        assert!(!decimal_plausible(&[0x80, 0x7B, 0x64], &[5, 2]));
        assert!(!decimal_plausible(&[0x83, 0xE8, 0x00], &[5, 2]));
        // DECIMAL(10,0): one 1-byte group, one full group.
        assert!(decimal_plausible(&[0x81, 0x3B, 0x9A, 0xC9, 0xFF], &[10, 0]));
        assert!(!decimal_plausible(
            &[0x81, 0x3B, 0x9A, 0xCA, 0x00],
            &[10, 0]
        ));
        assert!(!decimal_plausible(&[0x80], &[2, 3]));
        assert!(
            decimal_plausible(&[0x80], &[5, 2]),
            "short: left to the decoder"
        );
    }

    #[test]
    fn time2_with_hundredths_borrows_a_second_when_negative() {
        // As the server stores them (my_time_packed_to_binary).
        assert_eq!(
            time2_hundredths([0x7F, 0xFF, 0xFE, 206]),
            MyValue::Time(true, 0, 0, 0, 1, 500_000)
        );
        assert_eq!(
            time2_hundredths([0x7F, 0xFF, 0xFF, 0]),
            MyValue::Time(true, 0, 0, 0, 1, 0)
        );
        assert_eq!(
            time2_hundredths([0x80, 0xC8, 0xB8, 78]),
            MyValue::Time(false, 0, 12, 34, 56, 780_000)
        );
        // The extremes of the encoding do not overflow.
        let _ = time2_hundredths([0, 0, 0, 255]);
        let _ = time2_hundredths([255, 255, 255, 255]);
    }

    /// `decimal2bin`: a DECIMAL of `precision` and `scale` holding the digit groups
    /// `groups` (leading partial, full, trailing partial), as the server writes it.
    fn decimal_bytes(precision: u8, scale: u8, groups: &[u32], negative: bool) -> Vec<u8> {
        const DIG_TO_BYTES: [usize; 10] = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];
        let (intg, frac) = (usize::from(precision - scale), usize::from(scale));
        let sizes = [DIG_TO_BYTES[intg % 9]]
            .into_iter()
            .chain(std::iter::repeat_n(4, intg / 9 + frac / 9))
            .chain([DIG_TO_BYTES[frac % 9]])
            .filter(|size| *size > 0);
        let mut out = Vec::new();
        for (size, group) in sizes.zip(groups) {
            out.extend_from_slice(&group.to_be_bytes()[4 - size..]);
        }
        if negative {
            for b in &mut out {
                *b = !*b;
            }
        }
        if let Some(first) = out.first_mut() {
            *first ^= 0x80;
        }
        out
    }

    proptest::proptest! {
        /// A binary DECIMAL read from its digit groups equals what mysql_common's
        /// decoder and the text path make of the same bytes, for every precision and
        /// scale up to 38 digits; wider ones are left to that path.
        #[test]
        fn binary_decimals_read_directly_match_mysql_common(
            precision in 1u8..=65,
            scale_seed in 0u8..=30,
            seeds in proptest::collection::vec(proptest::prelude::any::<u32>(), 9),
            negative in proptest::prelude::any::<bool>(),
        ) {
            let scale = scale_seed.min(precision);
            let (intg, frac) = (usize::from(precision - scale), usize::from(scale));
            let digits: Vec<usize> = [intg % 9]
                .into_iter()
                .chain(std::iter::repeat_n(9, intg / 9 + frac / 9))
                .chain([frac % 9])
                .filter(|d| *d > 0)
                .collect();
            let groups: Vec<u32> = digits
                .iter()
                .zip(seeds.iter().cycle())
                .map(|(d, seed)| seed % 10u32.pow(*d as u32))
                .collect();
            let bytes = decimal_bytes(precision, scale, &groups, negative);
            let metadata = [precision, scale];
            let direct = read_binary_decimal(&bytes, &metadata);
            let mut view = mysql_common::io::ParseBuf(&bytes);
            let reference = <mysql_async::binlog::value::BinlogValue<'_> as mysql_common::proto::MyDeserialize>::deserialize(
                (mysql_async::consts::ColumnType::MYSQL_TYPE_NEWDECIMAL, &metadata[..], false, false),
                &mut view,
            );
            let Ok(mysql_async::binlog::value::BinlogValue::Value(reference)) = reference else {
                return Err(proptest::test_runner::TestCaseError::fail("mysql_common refused"));
            };
            let codec = ColumnCodec::from_information_schema(
                "decimal",
                &format!("decimal({precision},{scale})"),
                true,
                Some(u32::from(precision)),
                Some(u32::from(scale)),
                None,
                None,
                None,
            );
            let expected = codec.decode(&reference, true).map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
            match direct {
                BinaryDecimal::Valid { value: Some(value), size } => {
                    proptest::prop_assert_eq!(size, bytes.len());
                    proptest::prop_assert_eq!(Value::Decimal(value), expected);
                }
                BinaryDecimal::Valid { value: None, size } => {
                    proptest::prop_assert!(precision > 38);
                    proptest::prop_assert_eq!(size, bytes.len());
                }
                other => proptest::prop_assert!(false, "{:?}", other),
            }
        }
    }

    proptest::proptest! {
        /// VARCHAR and BLOB-family text read straight from the binlog bytes equals what
        /// mysql_common's decoder and `decode` make of them (UTF-8 and latin1 text, JSON
        /// on MariaDB, invalid UTF-8 included), and takes the same number of bytes.
        #[test]
        fn binlog_text_read_directly_matches_mysql_common(
            payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            blob in proptest::prelude::any::<bool>(),
            varchar_max in 1u16..=65_535,
            pack in 1u8..=4,
            column in 0usize..3,
        ) {
            use mysql_async::consts::ColumnType;
            let (kind, metadata, prefix) = if blob {
                (ColumnType::MYSQL_TYPE_BLOB, vec![pack], usize::from(pack))
            } else {
                let max = varchar_max.max(u16::try_from(payload.len()).unwrap_or(u16::MAX));
                (ColumnType::MYSQL_TYPE_VARCHAR, max.to_le_bytes().to_vec(), if max < 256 { 1 } else { 2 })
            };
            let payload = &payload[..payload.len().min(if prefix == 1 { 255 } else { payload.len() })];
            let mut bytes = (payload.len() as u64).to_le_bytes()[..prefix].to_vec();
            bytes.extend_from_slice(payload);
            bytes.extend_from_slice(b"next");
            let codec = match column {
                0 => ColumnCodec::from_information_schema("varchar", "varchar(300)", true, None, None, None, Some("utf8mb4"), Some(300)),
                1 => ColumnCodec::from_information_schema("text", "text", true, None, None, None, Some("latin1"), Some(65_535)),
                _ => ColumnCodec::from_information_schema("json", "longtext", true, None, None, None, Some("utf8mb4"), Some(u64::from(u32::MAX))),
            };
            let mut view = mysql_common::io::ParseBuf(&bytes);
            let reference = <mysql_async::binlog::value::BinlogValue<'_> as mysql_common::proto::MyDeserialize>::deserialize(
                (kind, &metadata[..], false, false),
                &mut view,
            );
            let Ok(mysql_async::binlog::value::BinlogValue::Value(reference)) = reference else {
                return Err(proptest::test_runner::TestCaseError::fail("mysql_common refused"));
            };
            let consumed = bytes.len() - view.0.len();
            let expected = codec.decode(&reference, true).map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
            let (direct_payload, size) = length_prefixed(kind, &metadata, &bytes)
                .ok_or_else(|| proptest::test_runner::TestCaseError::fail("no payload"))?;
            proptest::prop_assert_eq!(size, consumed);
            proptest::prop_assert_eq!(codec.decode_binlog_text(direct_payload), Some(expected));
        }
    }

    proptest::proptest! {
        /// `decode_owned` gives what `decode` gives, for text (valid UTF-8 or not, utf8mb4
        /// or latin1, from the binlog or a query), JSON, UUIDs and binary columns.
        #[test]
        fn decode_owned_matches_decode(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80),
            text in "[ -~é€]{0,40}",
            use_text in proptest::prelude::any::<bool>(),
            column in 0usize..5,
            binlog in proptest::prelude::any::<bool>(),
        ) {
            let codec = match column {
                0 => ColumnCodec::from_information_schema("varchar", "varchar(80)", true, None, None, None, Some("utf8mb4"), Some(80)),
                1 => ColumnCodec::from_information_schema("text", "text", true, None, None, None, Some("latin1"), Some(65_535)),
                2 => ColumnCodec::from_information_schema("json", "longtext", true, None, None, None, Some("utf8mb4"), Some(u64::from(u32::MAX))),
                3 => ColumnCodec::from_information_schema("uuid", "uuid", true, None, None, None, None, None),
                _ => ColumnCodec::from_information_schema("varbinary", "varbinary(80)", true, None, None, None, None, Some(80)),
            };
            let value = MyValue::Bytes(if use_text { text.into_bytes() } else { bytes });
            let expected = codec.decode(&value, binlog).map_err(|e| e.to_string());
            let got = codec.decode_owned(value, binlog).map_err(|e| e.to_string());
            proptest::prop_assert_eq!(got, expected);
        }

        /// The UUID reader takes what the old one took (32 hex digits, dashes ignored).
        #[test]
        fn uuids_parse_as_before(text in "[0-9a-fA-F-]{30,40}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}") {
            let hex: Vec<u8> = text.bytes().filter(|c| *c != b'-').collect();
            let expected = (hex.len() == 32).then(|| {
                let mut out = [0u8; 16];
                for (i, pair) in hex.chunks(2).enumerate() {
                    out[i] = u8::from_str_radix(std::str::from_utf8(pair).unwrap_or("x"), 16).unwrap_or(0);
                }
                out
            });
            proptest::prop_assert_eq!(parse_uuid(text.as_bytes()), expected);
        }
    }

    fn codec(data_type: &str, column_type: &str) -> ColumnCodec {
        ColumnCodec::from_information_schema(
            data_type,
            column_type,
            true,
            Some(10),
            Some(2),
            Some(3),
            Some("utf8mb4"),
            Some(20),
        )
    }

    #[test]
    fn types_map_as_debezium_maps_them() {
        assert_eq!(codec("tinyint", "tinyint(1)").data_type, DataType::Int16);
        assert_eq!(
            codec("smallint", "smallint(5) unsigned").data_type,
            DataType::Int32
        );
        assert_eq!(codec("int", "int(10) unsigned").data_type, DataType::Int64);
        assert_eq!(codec("float", "float").data_type, DataType::Float32);
        assert_eq!(codec("float", "float(7,2)").data_type, DataType::Float64);
        assert_eq!(codec("bit", "bit(1)").data_type, DataType::Bool);
        assert_eq!(
            codec("bit", "bit(12)").data_type,
            DataType::Bits { length: 12 }
        );
        assert_eq!(
            codec("enum", "enum('a','it''s')").data_type,
            DataType::Enum {
                labels: vec!["a".into(), "it's".into()]
            }
        );
        assert_eq!(
            codec("datetime", "datetime(3)").data_type,
            DataType::Timestamp { precision: Some(3) }
        );
        assert_eq!(
            codec("timestamp", "timestamp(3)").data_type,
            DataType::TimestampTz { precision: Some(3) }
        );
    }

    #[test]
    fn values_decode_from_binlog_and_protocol_forms() {
        let tiny = ColumnCodec {
            unsigned: true,
            ..codec("tinyint", "tinyint(3) unsigned")
        };
        assert_eq!(
            tiny.decode(&MyValue::Int(-56), true).unwrap(),
            Value::Int16(200)
        );
        let int = ColumnCodec {
            unsigned: true,
            ..codec("int", "int unsigned")
        };
        assert_eq!(
            int.decode(&MyValue::Int(-1), true).unwrap(),
            Value::Int64(4_294_967_295)
        );
        let dec = codec("decimal", "decimal(10,2)");
        assert_eq!(
            dec.decode(&MyValue::Bytes(b"-12.50".to_vec()), true)
                .unwrap(),
            Value::Decimal(Decimal::new(-1250, 2))
        );
        let e = codec("enum", "enum('x','y')");
        assert_eq!(
            e.decode(&MyValue::Int(2), true).unwrap(),
            Value::Enum("y".into())
        );
        assert_eq!(
            e.decode(&MyValue::Bytes(b"x".to_vec()), false).unwrap(),
            Value::Enum("x".into())
        );
        let s = codec("set", "set('a','b','c')");
        assert_eq!(
            s.decode(&MyValue::Bytes(vec![0b101]), true).unwrap(),
            Value::String("a,c".into())
        );
        assert_eq!(
            s.decode(&MyValue::Bytes(b"a,c".to_vec()), false).unwrap(),
            Value::String("a,c".into())
        );
        // POINT: coordinates from the WKB, SRID 0 as none (Debezium's).
        let point = codec("point", "point");
        let mut bytes = 4326i32.to_le_bytes().to_vec();
        bytes.extend([1, 1, 0, 0, 0]);
        bytes.extend(3.0f64.to_le_bytes());
        bytes.extend(4.0f64.to_le_bytes());
        let Value::Geometry {
            srid, point: xy, ..
        } = point.decode(&MyValue::Bytes(bytes.clone()), true).unwrap()
        else {
            panic!("not a geometry")
        };
        assert_eq!((srid, xy), (Some(4326), Some((3.0, 4.0))));
        bytes[..4].copy_from_slice(&[0; 4]);
        let geometry = codec("geometry", "geometry");
        let Value::Geometry {
            srid, point: xy, ..
        } = geometry.decode(&MyValue::Bytes(bytes), true).unwrap()
        else {
            panic!("not a geometry")
        };
        assert_eq!((srid, xy), (None, None));
        // Constant defaults as information_schema spells them.
        let int = codec("int", "int(11)");
        assert_eq!(int.default_value(Some("7")), Some(Value::Int32(7)));
        assert_eq!(int.default_value(Some("NULL")), None);
        assert_eq!(int.default_value(None), None);
        let text = codec("varchar", "varchar(10)");
        assert_eq!(
            text.default_value(Some("'it''s'")),
            Some(Value::String("it's".into()))
        );
        let at = codec("datetime", "datetime");
        assert_eq!(at.default_value(Some("current_timestamp()")), None);
        let ts = codec("timestamp", "timestamp(3)");
        assert_eq!(
            ts.decode(&MyValue::Bytes(b"1700000000.5".to_vec()), true)
                .unwrap(),
            Value::TimestampTz(1_700_000_000_500_000)
        );
        assert_eq!(
            ts.decode(&MyValue::Date(2023, 11, 14, 22, 13, 20, 500_000), false)
                .unwrap(),
            Value::TimestampTz(1_700_000_000_500_000)
        );
        // A zero TIMESTAMP: the epoch when streamed, null when read by a snapshot of a
        // nullable column (Debezium 3.6 does both).
        assert_eq!(
            ts.decode(&MyValue::Bytes(b"0".to_vec()), true).unwrap(),
            Value::TimestampTz(0)
        );
        assert_eq!(
            ts.decode(&MyValue::Date(0, 0, 0, 0, 0, 0, 0), false)
                .unwrap(),
            if ts.nullable {
                Value::Null
            } else {
                Value::TimestampTz(0)
            }
        );
        let d = codec("date", "date");
        assert_eq!(
            d.decode(&MyValue::Date(1970, 1, 2, 0, 0, 0, 0), true)
                .unwrap(),
            Value::Date(1)
        );
        assert_eq!(
            d.decode(&MyValue::Date(0, 0, 0, 0, 0, 0, 0), true).unwrap(),
            Value::Null
        );
        let not_null = ColumnCodec {
            nullable: false,
            ..d
        };
        assert_eq!(
            not_null
                .decode(&MyValue::Date(0, 0, 0, 0, 0, 0, 0), true)
                .unwrap(),
            Value::Date(0)
        );
        let bits = codec("bit", "bit(12)");
        assert_eq!(
            bits.decode(&MyValue::Bytes(vec![0x0a, 0xbc]), true)
                .unwrap(),
            Value::Bytes(vec![0xbc, 0x0a])
        );
        let latin = ColumnCodec {
            charset: Charset::Latin1,
            ..codec("varchar", "varchar(10)")
        };
        assert_eq!(
            latin
                .decode(&MyValue::Bytes(vec![0x63, 0x61, 0x66, 0xe9, 0x80]), true)
                .unwrap(),
            Value::String("café€".into())
        );
        let time = codec("time", "time(6)");
        assert_eq!(
            time.decode(&MyValue::Time(true, 1, 2, 0, 0, 5), true)
                .unwrap(),
            Value::Time(-(26 * 3600 * 1_000_000 + 5))
        );
        assert!(
            codec("int", "int")
                .decode(&MyValue::Bytes(b"x".to_vec()), true)
                .is_err()
        );
    }
}

/// Column names, codecs and key columns of a table as a TABLE_MAP event with FULL
/// metadata describes it: the shape at that binlog position, whatever the table looks
/// like now.
#[derive(Debug, Clone)]
pub struct TableMapShape {
    /// Column names (`@<n>` when the server sends none).
    pub names: Vec<String>,
    /// Codecs in column order.
    pub codecs: Vec<ColumnCodec>,
    /// Indices of the primary-key columns.
    pub key: Vec<usize>,
}

fn charset_of(id: u16) -> Charset {
    match id {
        63 => Charset::Binary,
        5 | 8 | 15 | 31 | 47 | 48 | 49 | 94 => Charset::Latin1,
        _ => Charset::Utf8,
    }
}

/// Reads a MySQL length-encoded integer from the front of `buf` and advances past it;
/// `None` when `buf` ends inside it (mysql_common's own reader indexes unchecked).
pub(crate) fn read_lenenc(buf: &mut &[u8]) -> Option<u64> {
    let (&first, rest) = buf.split_first()?;
    let width = match first {
        0..=0xfa => {
            *buf = rest;
            return Some(u64::from(first));
        }
        0xfb | 0xff => {
            *buf = rest;
            return Some(0);
        }
        0xfc => 2,
        0xfd => 3,
        0xfe => 8,
    };
    let bytes = rest.get(..width)?;
    *buf = &rest[width..];
    let mut value = [0u8; 8];
    value[..width].copy_from_slice(bytes);
    Some(u64::from_le_bytes(value))
}

/// Whether the ENUM and SET value lists of a TABLE_MAP body's optional metadata hold as
/// many values as they claim: mysql_common sizes a vector by the claimed count before
/// reading (a capacity-overflow panic on a damaged count, found by fuzzing). Only that
/// is judged; a body whose fixed part does not walk is left to mysql_common's own
/// (graceful) errors.
pub fn table_map_enum_values_plausible(body: &[u8]) -> bool {
    fn take<'a>(buf: &mut &'a [u8], n: u64) -> Option<&'a [u8]> {
        let n = usize::try_from(n).ok()?;
        let taken = buf.get(..n)?;
        *buf = &buf[n..];
        Some(taken)
    }
    fn optional_meta(body: &[u8]) -> Option<&[u8]> {
        let mut buf = body;
        take(&mut buf, 8)?; // table id (6) and flags (2)
        for _ in 0..2 {
            // database, then table: a length byte, the name, a NUL
            let len = take(&mut buf, 1)?[0];
            take(&mut buf, u64::from(len) + 1)?;
        }
        let columns = read_lenenc(&mut buf)?;
        take(&mut buf, columns)?;
        let metadata = read_lenenc(&mut buf)?;
        take(&mut buf, metadata)?;
        take(&mut buf, columns.div_ceil(8))?;
        Some(buf)
    }
    let Some(mut fields) = optional_meta(body) else {
        return true;
    };
    while !fields.is_empty() {
        let Some(kind) = take(&mut fields, 1).map(|t| t[0]) else {
            return true;
        };
        let Some(value) = read_lenenc(&mut fields).and_then(|len| take(&mut fields, len)) else {
            return true;
        };
        // SET_STR_VALUE (5) and ENUM_STR_VALUE (6): per column, a count and the values.
        if kind == 5 || kind == 6 {
            let mut lists = value;
            while !lists.is_empty() {
                let Some(count) = read_lenenc(&mut lists) else {
                    return false;
                };
                if count > lists.len() as u64 {
                    return false;
                }
                for _ in 0..count {
                    if read_lenenc(&mut lists)
                        .and_then(|len| take(&mut lists, len))
                        .is_none()
                    {
                        return false;
                    }
                }
            }
        }
    }
    true
}

/// Reads the shape from a TABLE_MAP event (`binlog_row_metadata=FULL`).
pub fn table_map_shape(
    tme: &mysql_async::binlog::events::TableMapEvent<'_>,
) -> Result<TableMapShape, std::io::Error> {
    use mysql_async::binlog::events::{OptionalMetaExtractor, OptionalMetadataField};
    use mysql_async::consts::ColumnType as T;
    let count = usize::try_from(tme.columns_count()).unwrap_or(usize::MAX);
    // MySQL and MariaDB tables have at most 4,096 columns; more is a damaged event (and
    // would size the vectors below).
    if count > 4096 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("TABLE_MAP with {count} columns"),
        ));
    }
    let mut raw = Vec::new();
    mysql_common::proto::MySerialize::serialize(tme, &mut raw);
    if !table_map_enum_values_plausible(&raw) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "TABLE_MAP whose ENUM/SET value lists claim more values than they hold",
        ));
    }
    let meta = OptionalMetaExtractor::new(tme.iter_optional_meta())?;
    let mut names: Vec<String> = Vec::with_capacity(count);
    for name in meta.iter_column_name() {
        names.push(name?.name().into_owned());
    }
    let mut signedness = meta.iter_signedness();
    let mut charsets = meta.iter_charset();
    let mut key = Vec::new();
    for index in meta.iter_primary_key() {
        key.push(usize::try_from(index?).unwrap_or(usize::MAX));
    }
    let (mut enums, mut sets): (Vec<Vec<String>>, Vec<Vec<String>>) = (Vec::new(), Vec::new());
    for field in tme.iter_optional_meta() {
        match field? {
            OptionalMetadataField::EnumStrValue(values) => {
                for labels in values.iter_values() {
                    enums.push(
                        labels?
                            .values()
                            .iter()
                            .map(|v| v.value().into_owned())
                            .collect(),
                    );
                }
            }
            OptionalMetadataField::SetStrValue(values) => {
                for labels in values.iter_values() {
                    sets.push(
                        labels?
                            .values()
                            .iter()
                            .map(|v| v.value().into_owned())
                            .collect(),
                    );
                }
            }
            _ => {}
        }
    }
    let (mut enums, mut sets) = (enums.into_iter(), sets.into_iter());
    let nulls = tme.null_bitmask();
    let mut codecs = Vec::with_capacity(count);
    for i in 0..count {
        let kind = tme
            .get_column_type(i)
            .map_err(|e| std::io::Error::other(e.to_string()))?
            .unwrap_or(T::MYSQL_TYPE_VARCHAR);
        let metadata = tme.get_column_metadata(i).unwrap_or(&[]);
        // mysql_common's row decoder indexes this metadata without checking its length.
        let needed = match kind {
            T::MYSQL_TYPE_VARCHAR
            | T::MYSQL_TYPE_VAR_STRING
            | T::MYSQL_TYPE_STRING
            | T::MYSQL_TYPE_NEWDECIMAL
            | T::MYSQL_TYPE_BIT
            | T::MYSQL_TYPE_SET
            | T::MYSQL_TYPE_ENUM => 2,
            T::MYSQL_TYPE_TINY_BLOB
            | T::MYSQL_TYPE_MEDIUM_BLOB
            | T::MYSQL_TYPE_LONG_BLOB
            | T::MYSQL_TYPE_BLOB
            | T::MYSQL_TYPE_GEOMETRY
            | T::MYSQL_TYPE_JSON
            | T::MYSQL_TYPE_FLOAT
            | T::MYSQL_TYPE_DOUBLE
            | T::MYSQL_TYPE_TIMESTAMP2
            | T::MYSQL_TYPE_DATETIME2
            | T::MYSQL_TYPE_TIME2 => 1,
            _ => 0,
        };
        // A typed array (the element type in its metadata) exists only inside MySQL's
        // multi-valued indexes, never in a rows event; mysql_common decodes its elements
        // without the checks the source makes for the plain types (a DATETIME2 element
        // below the encoding's offset overflowed inside it; found by binlog_events).
        if kind == T::MYSQL_TYPE_TYPED_ARRAY {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("TABLE_MAP column {i} is a typed array, which no rows event holds"),
            ));
        }
        if metadata.len() < needed {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "TABLE_MAP column {i} of type {kind:?} has {} metadata bytes, needs {needed}",
                    metadata.len()
                ),
            ));
        }
        if kind == T::MYSQL_TYPE_NEWDECIMAL
            && !(metadata[1] <= metadata[0] && metadata[0] <= 65 && metadata[1] <= 30)
        {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "TABLE_MAP column {i}: DECIMAL({}, {}) is not a valid decimal",
                    metadata[0], metadata[1]
                ),
            ));
        }
        let unsigned = kind.is_numeric_type() && signedness.next().unwrap_or(false);
        let charset = if kind.is_character_type() {
            charsets
                .next()
                .transpose()?
                .map_or(Charset::Utf8, charset_of)
        } else {
            Charset::Utf8
        };
        let byte = |n: usize| metadata.get(n).copied().map(u32::from);
        let binary = charset == Charset::Binary;
        let (data_type, column_type): (&str, String) = match kind {
            T::MYSQL_TYPE_TINY => ("tinyint", String::new()),
            T::MYSQL_TYPE_SHORT => ("smallint", String::new()),
            T::MYSQL_TYPE_INT24 => ("mediumint", String::new()),
            T::MYSQL_TYPE_LONG => ("int", String::new()),
            T::MYSQL_TYPE_LONGLONG => ("bigint", String::new()),
            T::MYSQL_TYPE_FLOAT => ("float", String::new()),
            T::MYSQL_TYPE_DOUBLE => ("double", String::new()),
            T::MYSQL_TYPE_NEWDECIMAL | T::MYSQL_TYPE_DECIMAL => ("decimal", String::new()),
            T::MYSQL_TYPE_YEAR => ("year", String::new()),
            T::MYSQL_TYPE_DATE | T::MYSQL_TYPE_NEWDATE => ("date", String::new()),
            T::MYSQL_TYPE_TIME | T::MYSQL_TYPE_TIME2 => ("time", String::new()),
            T::MYSQL_TYPE_DATETIME | T::MYSQL_TYPE_DATETIME2 => ("datetime", String::new()),
            T::MYSQL_TYPE_TIMESTAMP | T::MYSQL_TYPE_TIMESTAMP2 => ("timestamp", String::new()),
            T::MYSQL_TYPE_BIT => {
                let bits = byte(1).unwrap_or(0) * 8 + byte(0).unwrap_or(1);
                ("bit", format!("bit({bits})"))
            }
            T::MYSQL_TYPE_ENUM => ("enum", String::new()),
            T::MYSQL_TYPE_SET => ("set", String::new()),
            T::MYSQL_TYPE_STRING if binary => ("binary", String::new()),
            T::MYSQL_TYPE_STRING => ("char", String::new()),
            T::MYSQL_TYPE_VARCHAR | T::MYSQL_TYPE_VAR_STRING if binary => {
                ("varbinary", String::new())
            }
            T::MYSQL_TYPE_BLOB if binary => ("blob", String::new()),
            T::MYSQL_TYPE_BLOB => ("text", String::new()),
            T::MYSQL_TYPE_JSON => ("json", String::new()),
            T::MYSQL_TYPE_GEOMETRY => ("geometry", String::new()),
            _ => ("varchar", String::new()),
        };
        let column_type = if unsigned {
            format!("{data_type} unsigned")
        } else if column_type.is_empty() {
            data_type.to_owned()
        } else {
            column_type
        };
        let (precision, scale, fsp) = match kind {
            T::MYSQL_TYPE_NEWDECIMAL => (byte(0), byte(1), None),
            T::MYSQL_TYPE_TIME2 | T::MYSQL_TYPE_DATETIME2 | T::MYSQL_TYPE_TIMESTAMP2 => {
                (None, None, byte(0))
            }
            _ => (None, None, None),
        };
        let charset_name = match charset {
            Charset::Binary => "binary",
            Charset::Latin1 => "latin1",
            Charset::Utf8 => "utf8mb4",
        };
        let nullable = nulls.get(i).is_some_and(|b| *b);
        let mut codec = ColumnCodec::from_information_schema(
            data_type,
            &column_type,
            nullable,
            precision,
            scale,
            fsp,
            (kind.is_character_type() || kind.is_enum_or_set_type()).then_some(charset_name),
            None,
        );
        match kind {
            T::MYSQL_TYPE_ENUM => {
                codec.data_type = DataType::Enum {
                    labels: enums.next().unwrap_or_default(),
                }
            }
            T::MYSQL_TYPE_SET => {
                codec.data_type = DataType::Set {
                    labels: sets.next().unwrap_or_default(),
                }
            }
            _ => {}
        }
        codecs.push(codec);
    }
    while names.len() < count {
        names.push(format!("@{}", names.len() + 1));
    }
    key.retain(|k| *k < count);
    Ok(TableMapShape { names, codecs, key })
}
