//! Avro serialisation against a Confluent-compatible schema registry.
//!
//! [`AvroSerializer`] turns a [`Record`] into Confluent wire-format key and value bytes.
//! It registers a schema the first time it sees it for a subject and caches the id, so
//! the registry is called once per (subject, schema version), never per event. The cache
//! is keyed by the identity of the formatter's `Arc<ConnectSchema>` (which the formatter
//! keeps per table version) and holds that `Arc`, so an address cannot be reused while
//! cached.
//!
//! The registry itself is behind the [`SchemaRegistry`] trait: core does no network I/O;
//! the HTTP client lives with the Kafka sink.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use crate::connect::ConnectSchema;
use crate::envelope::{Payload, Record};
use outflow_core::error::{Classify, ErrorClass};

use super::EncodeError;
use super::avro::{avro_schema, encode, write_confluent_header};

/// Why the registry did not give an id.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry could not be reached or answered 5xx: retry later.
    #[error("schema registry unavailable while registering subject {subject}: {message}")]
    Unavailable {
        /// The subject.
        subject: String,
        /// What happened.
        message: String,
    },
    /// The schema is incompatible with the subject's earlier versions (HTTP 409).
    #[error(
        "schema registry rejected an incompatible schema for subject {subject}: {message}. \
         Make the change compatible under the subject's compatibility level, or change the \
         level (PUT /config/{subject})"
    )]
    Incompatible {
        /// The subject.
        subject: String,
        /// The registry's message.
        message: String,
    },
    /// The registry's TLS certificate did not verify against the trusted CAs.
    #[error(
        "the schema registry's TLS certificate was not accepted while registering subject \
         {subject}: {message}. Set schema.registry.ssl.ca.location to a PEM file of the CA \
         that signed it, and use the host name the certificate names in schema.registry.url"
    )]
    Untrusted {
        /// The subject.
        subject: String,
        /// What the TLS library said.
        message: String,
    },
    /// Any other refusal (invalid schema 422, unauthorized 401/403, ...).
    #[error("schema registry refused subject {subject} (HTTP {status}): {message}")]
    Refused {
        /// The subject.
        subject: String,
        /// HTTP status.
        status: u16,
        /// The registry's message.
        message: String,
    },
}

impl Classify for RegistryError {
    fn class(&self) -> ErrorClass {
        match self {
            Self::Unavailable { .. } => ErrorClass::Transient,
            Self::Incompatible { .. } | Self::Refused { .. } | Self::Untrusted { .. } => {
                ErrorClass::Definite
            }
        }
    }
}

/// A Confluent-compatible schema registry.
pub trait SchemaRegistry: Send + Sync {
    /// Registers `schema` (Avro JSON) under `subject` and returns its global id; returns
    /// the existing id when the subject already has this schema.
    fn register(
        &self,
        subject: &str,
        schema: &str,
    ) -> impl Future<Output = Result<u32, RegistryError>> + Send;
}

/// How subjects are named (`key.subject.name.strategy` / `value.subject.name.strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubjectNameStrategy {
    /// `<topic>-key` / `<topic>-value` (the default).
    #[default]
    TopicName,
    /// The record's full name.
    RecordName,
    /// `<topic>-<record full name>`.
    TopicRecordName,
}

impl SubjectNameStrategy {
    /// Parses Confluent's class names or short names.
    pub fn parse(text: &str) -> Option<Self> {
        let short = text.rsplit('.').next().unwrap_or(text);
        match short {
            "TopicNameStrategy" | "topic" => Some(Self::TopicName),
            "RecordNameStrategy" | "record" => Some(Self::RecordName),
            "TopicRecordNameStrategy" | "topic_record" => Some(Self::TopicRecordName),
            _ => None,
        }
    }

    /// The subject for a key or value schema on `topic`.
    pub fn subject(self, topic: &str, is_key: bool, schema: &ConnectSchema) -> String {
        let record = schema
            .name
            .as_deref()
            .unwrap_or("io.confluent.connect.avro.ConnectDefault");
        match self {
            Self::TopicName => format!("{topic}-{}", if is_key { "key" } else { "value" }),
            Self::RecordName => record.to_owned(),
            Self::TopicRecordName => format!("{topic}-{record}"),
        }
    }
}

/// Why a record could not be serialised.
#[derive(Debug, thiserror::Error)]
pub enum SerializeError {
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The data did not fit its schema.
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

impl Classify for SerializeError {
    fn class(&self) -> ErrorClass {
        match self {
            Self::Registry(e) => e.class(),
            Self::Encode(_) => ErrorClass::Definite,
        }
    }
}

/// Key and value bytes of a record; `None` is a Kafka null.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerializedRecord {
    /// Key bytes.
    pub key: Option<Vec<u8>>,
    /// Value bytes.
    pub value: Option<Vec<u8>>,
}

type CacheKey = (usize, bool, Arc<str>);

/// Serialises records as Confluent-framed Avro, registering schemas on first use.
#[derive(Debug)]
pub struct AvroSerializer<R> {
    registry: R,
    key_strategy: SubjectNameStrategy,
    value_strategy: SubjectNameStrategy,
    ids: HashMap<CacheKey, (Arc<ConnectSchema>, u32)>,
    registrations: u64,
}

impl<R: SchemaRegistry> AvroSerializer<R> {
    /// A serialiser using `registry`.
    pub fn new(
        registry: R,
        key_strategy: SubjectNameStrategy,
        value_strategy: SubjectNameStrategy,
    ) -> Self {
        Self {
            registry,
            key_strategy,
            value_strategy,
            ids: HashMap::new(),
            registrations: 0,
        }
    }

    /// How many times the registry was called (for metrics and tests).
    pub fn registrations(&self) -> u64 {
        self.registrations
    }

    async fn schema_id(
        &mut self,
        topic: &Arc<str>,
        is_key: bool,
        schema: &Arc<ConnectSchema>,
    ) -> Result<u32, RegistryError> {
        let cache_key = (Arc::as_ptr(schema) as usize, is_key, Arc::clone(topic));
        if let Some((_, id)) = self.ids.get(&cache_key) {
            return Ok(*id);
        }
        let strategy = if is_key {
            self.key_strategy
        } else {
            self.value_strategy
        };
        let subject = strategy.subject(topic, is_key, schema);
        let id = self
            .registry
            .register(&subject, &avro_schema(schema))
            .await?;
        self.registrations += 1;
        self.ids.insert(cache_key, (Arc::clone(schema), id));
        Ok(id)
    }

    async fn part(
        &mut self,
        topic: &Arc<str>,
        is_key: bool,
        payload: Option<&Payload>,
    ) -> Result<Option<Vec<u8>>, SerializeError> {
        let Some(payload) = payload else {
            return Ok(None);
        };
        let id = self.schema_id(topic, is_key, &payload.schema).await?;
        let mut out = Vec::with_capacity(64);
        write_confluent_header(id, &mut out);
        encode(&payload.schema, &payload.datum, &mut out)?;
        Ok(Some(out))
    }

    /// Serialises one record.
    pub async fn serialize(&mut self, record: &Record) -> Result<SerializedRecord, SerializeError> {
        let key = self.part(&record.topic, true, record.key.as_ref()).await?;
        let value = self
            .part(&record.topic, false, record.value.as_ref())
            .await?;
        Ok(SerializedRecord { key, value })
    }
}
