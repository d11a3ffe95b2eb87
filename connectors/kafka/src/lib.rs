//! outflow-kafka: the Kafka sink and the schema-registry client.
//!
//! It owns (so far) the HTTP client of the Confluent-compatible schema registry
//! ([`registry`]) that the core's [`outflow_core::encoding::registry::AvroSerializer`]
//! registers schemas through. Still to come here: the transactional producer (one
//! `transactional.id` per connector, one transaction per checkpoint, idempotence on,
//! murmur2 key partitioning as the Java client does), topic creation, the start-up
//! fencing and partition-tail scan that makes delivery exactly-once even on brokers that
//! show aborted records, and the optional Kafka offsets topic (`outflow-offsets`). It will
//! implement [`outflow_core::Sink`], reporting a batch Durable only once its transaction
//! committed.

pub mod registry;

pub use registry::{HttpSchemaRegistry, RegistryClientConfig};
