//! Encoders: Connect schema + data → bytes, independent of which envelope made them.
//!
//! - [`avro`]: Avro schemas as Confluent's AvroConverter derives them from Connect schemas
//!   (`connect.*` properties, `["null", T]` optionals), the Avro binary encoding, and the
//!   Confluent wire format (magic byte 0 + 4-byte schema id).
//! - [`json`]: Kafka Connect's JsonConverter (`schemas.enable` true or false).
//!
//! Both substitute a schema's default for a null value, as Connect's `Struct.get` does
//! before the converters see the value.

pub mod avro;
pub mod json;
pub mod registry;

/// Data that does not fit its schema (a formatter bug; definite).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot encode {datum} as {schema}")]
pub struct EncodeError {
    /// What the schema expected.
    pub schema: String,
    /// What was there, abbreviated.
    pub datum: String,
}

pub(crate) fn mismatch(
    schema: &crate::connect::ConnectSchema,
    datum: &crate::connect::Datum,
) -> EncodeError {
    let mut datum = format!("{datum:?}");
    datum.truncate(80);
    EncodeError {
        schema: format!("{:?}", schema.kind).chars().take(80).collect(),
        datum,
    }
}
