//! outflow-kafka: the Kafka sink.
//!
//! It will own the transactional producer (one `transactional.id` per connector, one
//! transaction per checkpoint, idempotence on, murmur2 key partitioning as the Java
//! client does), topic creation, the start-up fencing and partition-tail scan that makes
//! delivery exactly-once even on brokers that show aborted records, and the optional
//! Kafka offsets topic (`outflow-offsets`). It implements [`outflow_core::Sink`],
//! reporting a batch Durable only once its transaction committed.
