//! Encoders: Connect schema + data → bytes, independent of which envelope made them.
//!
//! - [`avro`]: Avro schemas as Confluent's AvroConverter derives them from Connect schemas
//!   (`connect.*` properties, `["null", T]` optionals), the Avro binary encoding, and the
//!   Confluent wire format (magic byte 0 + 4-byte schema id).
//! - [`json`]: Kafka Connect's JsonConverter (`schemas.enable` true or false).
//! - [`registry`], [`http_registry`]: the schema-registry contract, the serializer that
//!   registers a record's schemas before framing it, and the HTTP client of a
//!   Confluent-compatible registry.
//! - [`RecordEncoder`]: the converter a connector is configured with.
//!
//! Both substitute a schema's default for a null value, as Connect's `Struct.get` does
//! before the converters see the value.

pub mod avro;
pub mod http_registry;
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

/// How records become bytes.
#[derive(Debug)]
pub enum RecordEncoder {
    /// Confluent-framed Avro through the schema registry.
    Avro(Box<registry::AvroSerializer<http_registry::HttpSchemaRegistry>>),
    /// Kafka's JsonConverter, with or without the schema.
    Json {
        /// `value.converter.schemas.enable` / `key.converter.schemas.enable`.
        schemas_enable: bool,
    },
}

impl RecordEncoder {
    /// The key and value bytes of `record`; registers its schemas first under Avro.
    pub async fn encode(
        &mut self,
        record: &crate::envelope::Record,
    ) -> Result<registry::SerializedRecord, outflow_core::SinkError> {
        match self {
            Self::Avro(serializer) => {
                serializer
                    .serialize(record)
                    .await
                    .map_err(|e| match outflow_core::Classify::class(&e) {
                        outflow_core::ErrorClass::Transient => outflow_core::SinkError::transient(
                            format!("encoding a record for {}", record.topic),
                            e,
                        ),
                        outflow_core::ErrorClass::Definite => {
                            outflow_core::SinkError::definite_with(
                                format!("encoding a record for {}", record.topic),
                                "check the schema registry's compatibility setting for the subject",
                                e,
                            )
                        }
                    })
            }
            Self::Json { schemas_enable } => {
                let part = |payload: Option<&crate::envelope::Payload>| {
                    payload
                        .map(|p| json::encode(&p.schema, Some(&p.datum), *schemas_enable))
                        .transpose()
                        .map(Option::flatten)
                };
                let encode_error = |e| {
                    outflow_core::SinkError::definite_with(
                        format!("encoding a record for {}", record.topic),
                        "report this as a bug",
                        e,
                    )
                };
                Ok(registry::SerializedRecord {
                    key: part(record.key.as_ref()).map_err(encode_error)?,
                    value: part(record.value.as_ref()).map_err(encode_error)?,
                })
            }
        }
    }
}
