//! outflow-kafka: the Kafka sink and the schema-registry client.
//!
//! - [`registry`]: the HTTP client of the Confluent-compatible schema registry that the
//!   core's [`outflow_core::encoding::registry::AvroSerializer`] registers schemas through;
//! - [`sink`]: the transactional, exactly-once [`outflow_core::Sink`] (fencing, partition
//!   tail check, one transaction per checkpoint, Durable only once committed);
//! - [`partitioner`]: the Java client's murmur2 partitioning;
//! - [`offsets`]: offsets in a compacted Kafka topic (`outflow-offsets`), Kafka Connect's
//!   key and Debezium's value shape, for multi-worker use.

pub mod offsets;
pub mod partitioner;
pub mod registry;
pub mod sink;

pub use offsets::KafkaOffsetStore;
pub use registry::{HttpSchemaRegistry, RegistryClientConfig};
pub use sink::{KafkaSink, KafkaSinkConfig, RecordEncoder, TopicCreation};
