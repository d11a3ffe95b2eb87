//! outflow-kafka: the Kafka sink.
//!
//! - [`sink`]: the transactional, exactly-once record sink
//!   ([`outflow_interchange::RecordSink`]; fencing, partition tail check, one transaction
//!   per checkpoint, Durable only once committed); the record stage formats and encodes;
//! - [`partitioner`]: the Java client's murmur2 partitioning;
//! - [`offsets`]: offsets in a compacted Kafka topic (`outflow-offsets`), Kafka Connect's
//!   key and Debezium's value shape, for multi-worker use.

pub mod offsets;
pub mod partitioner;
pub mod plugin;
pub mod sink;

pub use offsets::KafkaOffsetStore;
pub use plugin::KafkaPlugin;
pub use sink::{KafkaSink, KafkaSinkConfig, TopicCreation};
