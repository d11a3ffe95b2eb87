//! Kafka Connect's JsonConverter.
//!
//! With `schemas.enable=true` a message is `{"schema": <schema>, "payload": <value>}`;
//! with `false` just the payload. Schema objects carry their keys in JsonConverter's
//! order: `type`, then `fields` / `items` / `keys`+`values`, `optional`, `name`,
//! `version`, `doc`, `parameters`, `default`, and `field` last for struct fields. Bytes
//! and decimals are Base64 (`decimal.format=BASE64`, the default); floating-point numbers
//! are printed as Java prints them (`1.0`, `1.0E10`), non-finite ones as quoted `"NaN"`,
//! `"Infinity"`, `"-Infinity"` (Jackson's default).

use std::fmt::Write as _;

use base64::Engine as _;

use crate::connect::{ConnectSchema, Datum, SchemaKind};

use super::{EncodeError, mismatch};

pub use outflow_core::value::write_json_string;

/// Appends a double as Java's `Double.toString` prints it.
pub fn write_java_double(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("\"NaN\"");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 {
            "\"Infinity\""
        } else {
            "\"-Infinity\""
        });
    } else if v == 0.0 {
        out.push_str(if v.is_sign_negative() { "-0.0" } else { "0.0" });
    } else {
        write_java_finite(
            out,
            (1e-3..1e7).contains(&v.abs()),
            &format!("{v}"),
            &format!("{v:e}"),
        );
    }
}

/// Appends a float as Java's `Float.toString` prints it.
pub fn write_java_float(out: &mut String, v: f32) {
    if !v.is_finite() || v == 0.0 {
        write_java_double(out, f64::from(v));
    } else {
        write_java_finite(
            out,
            (1e-3..1e7).contains(&v.abs()),
            &format!("{v}"),
            &format!("{v:e}"),
        );
    }
}

/// Java's layout of a finite non-zero number from Rust's shortest round-trip digits:
/// plain in [1e-3, 1e7) with at least one fractional digit, else `d.dddE±n`.
fn write_java_finite(out: &mut String, plain_range: bool, plain: &str, scientific: &str) {
    if plain_range {
        out.push_str(plain);
        if !plain.contains('.') {
            out.push_str(".0");
        }
    } else {
        let (mantissa, exponent) = scientific.split_once('e').unwrap_or((scientific, "0"));
        out.push_str(mantissa);
        if !mantissa.contains('.') {
            out.push_str(".0");
        }
        out.push('E');
        out.push_str(exponent);
    }
}

/// Appends a datum without looking at a schema (used for defaults).
pub(crate) fn write_plain_datum(out: &mut String, datum: &Datum) {
    match datum {
        Datum::Null => out.push_str("null"),
        Datum::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        Datum::Int8(v) => {
            let _ = write!(out, "{v}");
        }
        Datum::Int16(v) => {
            let _ = write!(out, "{v}");
        }
        Datum::Int32(v) => {
            let _ = write!(out, "{v}");
        }
        Datum::Int64(v) => {
            let _ = write!(out, "{v}");
        }
        Datum::Float32(v) => write_java_float(out, *v),
        Datum::Float64(v) => write_java_double(out, *v),
        Datum::String(s) => write_json_string(out, s),
        Datum::Text(s) => write_json_string(out, s),
        Datum::Bytes(b) => {
            out.push('"');
            out.push_str(&base64::engine::general_purpose::STANDARD.encode(b));
            out.push('"');
        }
        Datum::Array(items) | Datum::Struct(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_plain_datum(out, item);
            }
            out.push(']');
        }
        Datum::Map(entries) => {
            out.push('[');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push('[');
                write_plain_datum(out, k);
                out.push(',');
                write_plain_datum(out, v);
                out.push(']');
            }
            out.push(']');
        }
    }
}

fn type_name(kind: &SchemaKind) -> &'static str {
    match kind {
        SchemaKind::Int8 => "int8",
        SchemaKind::Int16 => "int16",
        SchemaKind::Int32 => "int32",
        SchemaKind::Int64 => "int64",
        SchemaKind::Float32 => "float",
        SchemaKind::Float64 => "double",
        SchemaKind::Boolean => "boolean",
        SchemaKind::String => "string",
        SchemaKind::Bytes => "bytes",
        SchemaKind::Array(_) => "array",
        SchemaKind::Map(..) => "map",
        SchemaKind::Struct(_) => "struct",
    }
}

/// Appends the JsonConverter schema object of `schema`; `field` names it inside a struct.
pub fn write_schema(out: &mut String, schema: &ConnectSchema, field: Option<&str>) {
    let _ = write!(out, "{{\"type\":\"{}\"", type_name(&schema.kind));
    match &schema.kind {
        SchemaKind::Struct(fields) => {
            out.push_str(",\"fields\":[");
            for (i, f) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_schema(out, &f.schema, Some(&f.name));
            }
            out.push(']');
        }
        SchemaKind::Array(items) => {
            out.push_str(",\"items\":");
            write_schema(out, items, None);
        }
        SchemaKind::Map(keys, values) => {
            out.push_str(",\"keys\":");
            write_schema(out, keys, None);
            out.push_str(",\"values\":");
            write_schema(out, values, None);
        }
        _ => {}
    }
    let _ = write!(out, ",\"optional\":{}", schema.optional);
    if let Some(name) = &schema.name {
        out.push_str(",\"name\":");
        write_json_string(out, name);
    }
    if let Some(version) = schema.version {
        let _ = write!(out, ",\"version\":{version}");
    }
    if let Some(doc) = &schema.doc {
        out.push_str(",\"doc\":");
        write_json_string(out, doc);
    }
    if !schema.parameters.is_empty() {
        out.push_str(",\"parameters\":{");
        for (i, (k, v)) in schema.parameters.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_json_string(out, k);
            out.push(':');
            write_json_string(out, v);
        }
        out.push('}');
    }
    if let Some(default) = &schema.default {
        out.push_str(",\"default\":");
        let _ = write_value(out, schema, default);
    }
    if let Some(field) = field {
        out.push_str(",\"field\":");
        write_json_string(out, field);
    }
    out.push('}');
}

/// Appends the JSON payload of `datum` (of `schema`).
pub fn write_value(
    out: &mut String,
    schema: &ConnectSchema,
    datum: &Datum,
) -> Result<(), EncodeError> {
    let datum = match (datum, &schema.default) {
        (Datum::Null, Some(default)) => default,
        _ => datum,
    };
    match (&schema.kind, datum) {
        (_, Datum::Null) if schema.optional => out.push_str("null"),
        (SchemaKind::Struct(fields), Datum::Struct(values)) if fields.len() == values.len() => {
            out.push('{');
            for (i, (f, v)) in fields.iter().zip(values).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_string(out, &f.name);
                out.push(':');
                write_value(out, &f.schema, v)?;
            }
            out.push('}');
        }
        (SchemaKind::Array(items), Datum::Array(values)) => {
            out.push('[');
            for (i, v) in values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, items, v)?;
            }
            out.push(']');
        }
        (SchemaKind::Map(keys, values), Datum::Map(entries)) => {
            if matches!(keys.kind, SchemaKind::String) {
                out.push('{');
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let Some(k) = k.as_str() else {
                        return Err(mismatch(schema, datum));
                    };
                    write_json_string(out, k);
                    out.push(':');
                    write_value(out, values, v)?;
                }
                out.push('}');
            } else {
                out.push('[');
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push('[');
                    write_value(out, keys, k)?;
                    out.push(',');
                    write_value(out, values, v)?;
                    out.push(']');
                }
                out.push(']');
            }
        }
        (SchemaKind::Int8, Datum::Int8(_))
        | (SchemaKind::Int16, Datum::Int16(_))
        | (SchemaKind::Int32, Datum::Int32(_))
        | (SchemaKind::Int64, Datum::Int64(_))
        | (SchemaKind::Float32, Datum::Float32(_))
        | (SchemaKind::Float64, Datum::Float64(_))
        | (SchemaKind::Boolean, Datum::Boolean(_))
        | (SchemaKind::String, Datum::String(_) | Datum::Text(_))
        | (SchemaKind::Bytes, Datum::Bytes(_)) => write_plain_datum(out, datum),
        _ => return Err(mismatch(schema, datum)),
    }
    Ok(())
}

/// Encodes one message as JsonConverter does; `None` for a null value (tombstone).
pub fn encode(
    schema: &ConnectSchema,
    datum: Option<&Datum>,
    schemas_enable: bool,
) -> Result<Option<Vec<u8>>, EncodeError> {
    let Some(datum) = datum else { return Ok(None) };
    let mut out = String::with_capacity(512);
    if schemas_enable {
        out.push_str("{\"schema\":");
        write_schema(&mut out, schema, None);
        out.push_str(",\"payload\":");
        write_value(&mut out, schema, datum)?;
        out.push('}');
    } else {
        write_value(&mut out, schema, datum)?;
    }
    Ok(Some(out.into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connect::{Field, logical};

    fn text(f: impl FnOnce(&mut String)) -> String {
        let mut s = String::new();
        f(&mut s);
        s
    }

    #[test]
    fn java_number_formatting() {
        for (v, shown) in [
            (1.0, "1.0"),
            (1.5, "1.5"),
            (1e10, "1.0E10"),
            (1.234e-5, "1.234E-5"),
            (-0.0, "-0.0"),
            (1234567.0, "1234567.0"),
            (f64::NAN, "\"NaN\""),
        ] {
            assert_eq!(text(|s| write_java_double(s, v)), shown);
        }
        assert_eq!(text(|s| write_java_float(s, 0.1)), "0.1");
    }

    #[test]
    fn schema_keys_in_jsonconverter_order() {
        let snapshot = ConnectSchema::new(SchemaKind::String)
            .named("io.debezium.data.Enum")
            .versioned(1)
            .parameter("allowed", "true,false")
            .with_default(Datum::String("false".into()))
            .optional();
        let s = text(|s| write_schema(s, &snapshot, Some("snapshot")));
        assert_eq!(
            s,
            r#"{"type":"string","optional":true,"name":"io.debezium.data.Enum","version":1,"parameters":{"allowed":"true,false"},"default":"false","field":"snapshot"}"#
        );
    }

    #[test]
    fn payload_with_and_without_schema() {
        let schema = ConnectSchema::record(
            "t.Value",
            vec![
                Field::new("id", ConnectSchema::new(SchemaKind::Int32)),
                Field::new("price", logical::decimal(2, Some(4))),
                Field::new("note", ConnectSchema::new(SchemaKind::String).optional()),
            ],
        );
        let datum = Datum::Struct(vec![
            Datum::Int32(7),
            Datum::Bytes(vec![0x27, 0x0f]),
            Datum::Null,
        ]);
        let plain = encode(&schema, Some(&datum), false).unwrap().unwrap();
        assert_eq!(
            String::from_utf8(plain).unwrap(),
            r#"{"id":7,"price":"Jw8=","note":null}"#
        );
        let full =
            String::from_utf8(encode(&schema, Some(&datum), true).unwrap().unwrap()).unwrap();
        assert!(full.starts_with(r#"{"schema":{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},"#), "{full}");
        assert!(full.ends_with(r#""optional":false,"name":"t.Value"},"payload":{"id":7,"price":"Jw8=","note":null}}"#), "{full}");
        assert_eq!(encode(&schema, None, true).unwrap(), None);
        assert_eq!(
            text(|s| write_json_string(s, "a\"\u{1}\n")),
            "\"a\\\"\\u0001\\n\""
        );
    }
}
