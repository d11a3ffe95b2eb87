//! Avro: schema derivation (Confluent AvroConverter rules), binary encoding, and the
//! Confluent wire format.
//!
//! Schema rules (from `AvroData.fromConnectSchema`, `connect.meta.data=true`):
//! - a Connect struct becomes a record; its name splits at the last dot into namespace and
//!   name; `"namespace"` is written only when it differs from the enclosing record's, and
//!   a record seen before is written by name;
//! - an optional field without default is `["null", T]` with default null; an optional
//!   field with default d is `[T, "null"]` with default d;
//! - properties on the (non-union) type, in this order: `connect.doc`, `connect.version`,
//!   `connect.parameters`, `connect.default`, `connect.name`, `connect.type` (int8/int16);
//!   Decimal adds `scale`/`precision` before them and `logicalType` after; Date, Time and
//!   Timestamp add `logicalType` date / time-millis / timestamp-millis.

use std::collections::HashSet;
use std::fmt::Write as _;

use crate::connect::{ConnectSchema, Datum, SchemaKind};

use super::{EncodeError, mismatch};

/// The Confluent wire-format magic byte.
pub const MAGIC_BYTE: u8 = 0;

/// Writes the Confluent header (magic byte, big-endian schema id) into `out`.
pub fn write_confluent_header(schema_id: u32, out: &mut Vec<u8>) {
    out.push(MAGIC_BYTE);
    out.extend_from_slice(&schema_id.to_be_bytes());
}

/// The Avro schema (JSON text) AvroConverter derives from `schema`.
pub fn avro_schema(schema: &ConnectSchema) -> String {
    let mut writer = SchemaWriter {
        defined: HashSet::new(),
        out: String::with_capacity(1024),
    };
    writer.top(schema);
    writer.out
}

struct SchemaWriter {
    defined: HashSet<String>,
    out: String,
}

fn split_name(full: &str) -> (&str, &str) {
    match full.rsplit_once('.') {
        Some((ns, name)) => (ns, name),
        None => ("", full),
    }
}

fn json_string(out: &mut String, s: &str) {
    super::json::write_json_string(out, s);
}

impl SchemaWriter {
    fn top(&mut self, schema: &ConnectSchema) {
        if schema.optional {
            self.union(schema, "");
        } else {
            self.base(schema, "");
        }
    }

    /// `["null", T]` or, with a default, `[T, "null"]`.
    fn union(&mut self, schema: &ConnectSchema, namespace: &str) {
        if schema.default.is_some() {
            self.out.push('[');
            self.base(schema, namespace);
            self.out.push_str(",\"null\"]");
        } else {
            self.out.push_str("[\"null\",");
            self.base(schema, namespace);
            self.out.push(']');
        }
    }

    fn connect_props(&mut self, schema: &ConnectSchema, is_record: bool) {
        if let Some(doc) = &schema.doc {
            self.out.push_str(",\"connect.doc\":");
            json_string(&mut self.out, doc);
        }
        if let Some(version) = schema.version {
            let _ = write!(self.out, ",\"connect.version\":{version}");
        }
        if !schema.parameters.is_empty() {
            self.out.push_str(",\"connect.parameters\":{");
            for (i, (k, v)) in schema.parameters.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                json_string(&mut self.out, k);
                self.out.push(':');
                json_string(&mut self.out, v);
            }
            self.out.push('}');
        }
        if !is_record && let Some(default) = &schema.default {
            self.out.push_str(",\"connect.default\":");
            write_avro_json_default(&mut self.out, default);
        }
        if let Some(name) = &schema.name {
            self.out.push_str(",\"connect.name\":");
            json_string(&mut self.out, name);
        }
        match schema.kind {
            SchemaKind::Int8 => self.out.push_str(",\"connect.type\":\"int8\""),
            SchemaKind::Int16 => self.out.push_str(",\"connect.type\":\"int16\""),
            _ => {}
        }
    }

    fn base(&mut self, schema: &ConnectSchema, namespace: &str) {
        let primitive = match &schema.kind {
            SchemaKind::Int8 | SchemaKind::Int16 | SchemaKind::Int32 => "int",
            SchemaKind::Int64 => "long",
            SchemaKind::Float32 => "float",
            SchemaKind::Float64 => "double",
            SchemaKind::Boolean => "boolean",
            SchemaKind::String => "string",
            SchemaKind::Bytes => "bytes",
            SchemaKind::Array(items) => {
                self.out.push_str("{\"type\":\"array\",\"items\":");
                self.top_in(items, namespace);
                self.connect_props(schema, false);
                self.out.push('}');
                return;
            }
            SchemaKind::Map(_, values) => {
                self.out.push_str("{\"type\":\"map\",\"values\":");
                self.top_in(values, namespace);
                self.connect_props(schema, false);
                self.out.push('}');
                return;
            }
            SchemaKind::Struct(fields) => {
                let full = schema
                    .name
                    .clone()
                    .unwrap_or_else(|| "io.confluent.connect.avro.ConnectDefault".into());
                let (ns, short) = split_name(&full);
                if self.defined.contains(&full) {
                    if ns == namespace {
                        json_string(&mut self.out, short);
                    } else {
                        json_string(&mut self.out, &full);
                    }
                    return;
                }
                self.defined.insert(full.clone());
                self.out.push_str("{\"type\":\"record\",\"name\":");
                json_string(&mut self.out, short);
                if ns != namespace && !ns.is_empty() {
                    self.out.push_str(",\"namespace\":");
                    json_string(&mut self.out, ns);
                }
                self.out.push_str(",\"fields\":[");
                for (i, field) in fields.iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    self.out.push_str("{\"name\":");
                    json_string(&mut self.out, &field.name);
                    self.out.push_str(",\"type\":");
                    if field.schema.optional {
                        self.union(&field.schema, ns);
                        self.out.push_str(",\"default\":");
                        match &field.schema.default {
                            Some(d) => write_avro_json_default(&mut self.out, d),
                            None => self.out.push_str("null"),
                        }
                    } else {
                        self.base(&field.schema, ns);
                        if let Some(d) = &field.schema.default {
                            self.out.push_str(",\"default\":");
                            write_avro_json_default(&mut self.out, d);
                        }
                    }
                    self.out.push('}');
                }
                self.out.push(']');
                self.connect_props(schema, true);
                self.out.push('}');
                return;
            }
        };
        let logical = schema.name.as_deref().and_then(|name| match name {
            "org.apache.kafka.connect.data.Decimal" => Some("decimal"),
            "org.apache.kafka.connect.data.Date" => Some("date"),
            "org.apache.kafka.connect.data.Time" => Some("time-millis"),
            "org.apache.kafka.connect.data.Timestamp" => Some("timestamp-millis"),
            _ => None,
        });
        let has_props = logical.is_some()
            || schema.doc.is_some()
            || schema.version.is_some()
            || !schema.parameters.is_empty()
            || schema.default.is_some()
            || schema.name.is_some()
            || matches!(schema.kind, SchemaKind::Int8 | SchemaKind::Int16);
        if !has_props {
            let _ = write!(self.out, "\"{primitive}\"");
            return;
        }
        let _ = write!(self.out, "{{\"type\":\"{primitive}\"");
        if logical == Some("decimal") {
            let param = |key: &str| {
                schema
                    .parameters
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.as_str())
            };
            let scale = param("scale")
                .and_then(|s| s.parse::<i64>().ok())
                .unwrap_or(0);
            let precision = param("connect.decimal.precision")
                .and_then(|s| s.parse::<i64>().ok())
                .unwrap_or(64);
            let _ = write!(self.out, ",\"scale\":{scale},\"precision\":{precision}");
        }
        self.connect_props(schema, false);
        if let Some(logical) = logical {
            let _ = write!(self.out, ",\"logicalType\":\"{logical}\"");
        }
        self.out.push('}');
    }

    fn top_in(&mut self, schema: &ConnectSchema, namespace: &str) {
        if schema.optional {
            self.union(schema, namespace);
        } else {
            self.base(schema, namespace);
        }
    }
}

/// A default value in Avro's JSON form (bytes as ISO-8859-1 text).
fn write_avro_json_default(out: &mut String, datum: &Datum) {
    match datum {
        Datum::Bytes(bytes) => {
            let text: String = bytes.iter().map(|&b| char::from(b)).collect();
            json_string(out, &text);
        }
        other => super::json::write_plain_datum(out, other),
    }
}

fn write_long(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn write_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    write_long(out, bytes.len() as i64);
    out.extend_from_slice(bytes);
}

/// Appends the Avro binary encoding of `datum` (of `schema`) to `out`.
pub fn encode(schema: &ConnectSchema, datum: &Datum, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    if schema.optional {
        let datum = match (datum, &schema.default) {
            (Datum::Null, Some(default)) => default,
            _ => datum,
        };
        let value_first = schema.default.is_some();
        match (datum.is_null(), value_first) {
            (true, false) => write_long(out, 0),
            (true, true) => write_long(out, 1),
            (false, false) => {
                write_long(out, 1);
                encode_base(schema, datum, out)?;
            }
            (false, true) => {
                write_long(out, 0);
                encode_base(schema, datum, out)?;
            }
        }
        return Ok(());
    }
    let datum = match (datum, &schema.default) {
        (Datum::Null, Some(default)) => default,
        _ => datum,
    };
    encode_base(schema, datum, out)
}

fn encode_base(
    schema: &ConnectSchema,
    datum: &Datum,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    match (&schema.kind, datum) {
        (SchemaKind::Int8, Datum::Int8(v)) => write_long(out, i64::from(*v)),
        (SchemaKind::Int16, Datum::Int16(v)) => write_long(out, i64::from(*v)),
        (SchemaKind::Int32, Datum::Int32(v)) => write_long(out, i64::from(*v)),
        (SchemaKind::Int64, Datum::Int64(v)) => write_long(out, *v),
        (SchemaKind::Float32, Datum::Float32(v)) => out.extend_from_slice(&v.to_le_bytes()),
        (SchemaKind::Float64, Datum::Float64(v)) => out.extend_from_slice(&v.to_le_bytes()),
        (SchemaKind::Boolean, Datum::Boolean(v)) => out.push(u8::from(*v)),
        (SchemaKind::String, Datum::String(s)) => write_bytes(out, s.as_bytes()),
        (SchemaKind::String, Datum::Text(s)) => write_bytes(out, s.as_bytes()),
        (SchemaKind::Bytes, Datum::Bytes(b)) => write_bytes(out, b),
        (SchemaKind::Array(items), Datum::Array(values)) => {
            if !values.is_empty() {
                write_long(out, values.len() as i64);
                for v in values {
                    encode(items, v, out)?;
                }
            }
            write_long(out, 0);
        }
        (SchemaKind::Map(_, values), Datum::Map(entries)) => {
            if !entries.is_empty() {
                write_long(out, entries.len() as i64);
                for (k, v) in entries {
                    let Some(k) = k.as_str() else {
                        return Err(mismatch(schema, datum));
                    };
                    write_bytes(out, k.as_bytes());
                    encode(values, v, out)?;
                }
            }
            write_long(out, 0);
        }
        (SchemaKind::Struct(fields), Datum::Struct(values)) if fields.len() == values.len() => {
            for (field, value) in fields.iter().zip(values) {
                encode(&field.schema, value, out)?;
            }
        }
        _ => return Err(mismatch(schema, datum)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connect::{Field, logical};

    #[test]
    fn zigzag_varints() {
        for (v, bytes) in [
            (0i64, vec![0u8]),
            (-1, vec![1]),
            (1, vec![2]),
            (-64, vec![0x7f]),
            (64, vec![0x80, 0x01]),
        ] {
            let mut out = Vec::new();
            write_long(&mut out, v);
            assert_eq!(out, bytes, "{v}");
        }
    }

    #[test]
    fn decimal_schema_as_avroconverter_writes_it() {
        let s = avro_schema(&logical::decimal(2, Some(5)));
        assert_eq!(
            s,
            r#"{"type":"bytes","scale":2,"precision":5,"connect.version":1,"connect.parameters":{"scale":"2","connect.decimal.precision":"5"},"connect.name":"org.apache.kafka.connect.data.Decimal","logicalType":"decimal"}"#
        );
    }

    #[test]
    fn optional_fields_and_named_reuse() {
        let value = std::sync::Arc::new(
            ConnectSchema::record(
                "a.b.Value",
                vec![Field::new("id", ConnectSchema::new(SchemaKind::Int16))],
            )
            .optional(),
        );
        let env = ConnectSchema::record(
            "a.b.Envelope",
            vec![
                Field::new("before", value.clone()),
                Field::new("after", value),
            ],
        );
        assert_eq!(
            avro_schema(&env),
            r#"{"type":"record","name":"Envelope","namespace":"a.b","fields":[{"name":"before","type":["null",{"type":"record","name":"Value","fields":[{"name":"id","type":{"type":"int","connect.type":"int16"}}],"connect.name":"a.b.Value"}],"default":null},{"name":"after","type":["null","Value"],"default":null}],"connect.name":"a.b.Envelope"}"#
        );
        let mut out = Vec::new();
        encode(
            &env,
            &Datum::Struct(vec![Datum::Null, Datum::Struct(vec![Datum::Int16(3)])]),
            &mut out,
        )
        .unwrap();
        assert_eq!(out, vec![0, 2, 6]);
    }

    #[test]
    fn mismatch_is_an_error() {
        let mut out = Vec::new();
        assert!(
            encode(
                &ConnectSchema::new(SchemaKind::Int32),
                &Datum::String("x".into()),
                &mut out
            )
            .is_err()
        );
    }
}
