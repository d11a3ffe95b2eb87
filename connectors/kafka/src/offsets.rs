//! Offsets in a compacted Kafka topic (`offset.storage.topic`, default `outflow-offsets`),
//! for several workers sharing connectors, as Kafka Connect keeps them.
//!
//! Record key: `["<connector>",{"server":"<topic.prefix>"}]` (Kafka Connect's form).
//! Record value: Debezium's offset fields for the source (Postgres: `lsn`, `lsn_commit`,
//! `lsn_proc`, `txId`, `ts_usec`; MySQL/MariaDB: `file`, `pos`, `row`, `event`, `gtids`)
//! plus `outflow_position`, outflow's exact position. A value without `outflow_position`
//! (written by Debezium) is read from Debezium's fields, so a connector moved from
//! Debezium resumes where Debezium stood.
//!
//! Loading reads the topic from the start and keeps the last value of the key. Commits
//! are produced with an idempotent producer (`acks=all`) and awaited; a commit at or before
//! the stored position changes nothing ([`outflow_core::offsets::advance`]).
//!
//! Needs a broker that keeps a compacted topic; the topic is created compacted when
//! missing. Tested on the lab's Apache Kafka, which compacts it as a production broker
//! would (the last record per key is what a reader keeps either way).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use outflow_core::offsets::{CommitOutcome, advance};
use outflow_core::{OffsetStore, OffsetStoreError, PositionFamily, SourcePosition};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

const TIMEOUT: Duration = Duration::from_secs(30);

/// The offsets topic store.
pub struct KafkaOffsetStore {
    client: ClientConfig,
    topic: String,
    server: String,
    producer: FutureProducer,
    /// The position families the stored values may hold.
    families: Vec<&'static dyn PositionFamily>,
    cache: Mutex<HashMap<String, SourcePosition>>,
}

impl std::fmt::Debug for KafkaOffsetStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaOffsetStore")
            .field("topic", &self.topic)
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

fn store_error(context: &str, e: KafkaError) -> OffsetStoreError {
    match e.rdkafka_error_code() {
        Some(
            RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::ClusterAuthorizationFailed,
        ) => OffsetStoreError::definite_with(
            context.to_owned(),
            "grant the worker read and write on the offsets topic",
            e,
        ),
        _ => OffsetStoreError::transient(context.to_owned(), e),
    }
}

/// Kafka Connect's key for a connector's offsets.
pub fn offset_key(connector: &str, server: &str) -> String {
    serde_json::json!([connector, { "server": server }]).to_string()
}

/// The stored value for `position`: Debezium's offset fields plus `outflow_position`
/// ([`SourcePosition::debezium_offset`]).
pub fn offset_value(position: &SourcePosition) -> String {
    position.debezium_offset().to_string()
}

/// Reads a stored value of one of `families`: outflow's own position, else Debezium's
/// fields.
pub fn parse_offset_value(
    text: &str,
    families: &[&'static dyn PositionFamily],
) -> Option<SourcePosition> {
    SourcePosition::from_debezium_offset(&serde_json::from_str(text).ok()?, families)
}

impl KafkaOffsetStore {
    /// A store on `topic` for connectors of `server` (their `topic.prefix`), with the
    /// worker's Kafka client settings (`bootstrap.servers`, security). Creates the topic
    /// (compacted) when missing. `families` are the position families its values may
    /// hold (the connectors' classes').
    pub async fn open(
        client: ClientConfig,
        topic: &str,
        server: &str,
        replication_factor: i32,
        families: Vec<&'static dyn PositionFamily>,
    ) -> Result<Self, OffsetStoreError> {
        let admin: AdminClient<DefaultClientContext> = client
            .create()
            .map_err(|e| store_error("creating the Kafka admin client", e))?;
        let results = admin
            .create_topics(
                &[
                    NewTopic::new(topic, 1, TopicReplication::Fixed(replication_factor))
                        .set("cleanup.policy", "compact"),
                ],
                &AdminOptions::new(),
            )
            .await
            .map_err(|e| store_error("creating the offsets topic", e))?;
        for result in results {
            if let Err((_, code)) = result
                && code != RDKafkaErrorCode::TopicAlreadyExists
            {
                return Err(store_error(
                    "creating the offsets topic",
                    KafkaError::AdminOp(code),
                ));
            }
        }
        let mut producer_config = client.clone();
        producer_config
            .set("enable.idempotence", "true")
            .set("acks", "all");
        let producer = producer_config
            .create()
            .map_err(|e| store_error("creating the offsets producer", e))?;
        Ok(Self {
            client,
            topic: topic.to_owned(),
            server: server.to_owned(),
            producer,
            families,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Reads the topic from the start; the last value per key.
    async fn read_all(&self) -> Result<HashMap<String, String>, OffsetStoreError> {
        let mut config = self.client.clone();
        config
            .set("group.id", "outflow-offsets-reader")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true");
        let topic = self.topic.clone();
        tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer = config.create()?;
            let (low, high) = consumer.fetch_watermarks(&topic, 0, TIMEOUT)?;
            let mut values = HashMap::new();
            if high <= low {
                return Ok(values);
            }
            let mut assignment = TopicPartitionList::new();
            assignment.add_partition_offset(&topic, 0, Offset::Beginning)?;
            consumer.assign(&assignment)?;
            let deadline = std::time::Instant::now() + TIMEOUT;
            loop {
                match consumer.poll(Duration::from_millis(200)) {
                    None if std::time::Instant::now() > deadline => {
                        return Err(KafkaError::MessageConsumption(
                            RDKafkaErrorCode::OperationTimedOut,
                        ));
                    }
                    None => {}
                    Some(Err(KafkaError::PartitionEOF(_))) => break,
                    Some(Err(e)) => return Err(e),
                    Some(Ok(message)) => {
                        let key = message
                            .key()
                            .map(|k| String::from_utf8_lossy(k).into_owned());
                        let value = message
                            .payload()
                            .map(|v| String::from_utf8_lossy(v).into_owned());
                        if let Some(key) = key {
                            match value {
                                Some(value) => {
                                    values.insert(key, value);
                                }
                                None => {
                                    values.remove(&key);
                                }
                            }
                        }
                        if message.offset() + 1 >= high {
                            break;
                        }
                    }
                }
            }
            Ok(values)
        })
        .await
        .map_err(|e| OffsetStoreError::transient("reading the offsets topic: the task failed", e))?
        .map_err(|e| store_error("reading the offsets topic", e))
    }
}

impl OffsetStore for KafkaOffsetStore {
    async fn load(&self, connector: &str) -> Result<Option<SourcePosition>, OffsetStoreError> {
        let values = self.read_all().await?;
        let stored = values
            .get(&offset_key(connector, &self.server))
            .and_then(|v| parse_offset_value(v, &self.families));
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &stored {
            Some(p) => {
                cache.insert(connector.to_owned(), p.clone());
            }
            None => {
                cache.remove(connector);
            }
        }
        Ok(stored)
    }

    async fn commit(
        &self,
        connector: &str,
        position: &SourcePosition,
    ) -> Result<CommitOutcome, OffsetStoreError> {
        let mut stored = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(connector)
            .cloned();
        let outcome = advance(&mut stored, position);
        if outcome == CommitOutcome::Stale {
            return Ok(outcome);
        }
        let key = offset_key(connector, &self.server);
        let value = offset_value(position);
        self.producer
            .send(
                FutureRecord::to(&self.topic)
                    .partition(0)
                    .key(&key)
                    .payload(&value),
                TIMEOUT,
            )
            .await
            .map_err(|(e, _)| store_error("writing to the offsets topic", e))?;
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(connector.to_owned(), position.clone());
        Ok(outcome)
    }
}

impl Drop for KafkaOffsetStore {
    fn drop(&mut self) {
        let _ = self.producer.flush(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outflow_mysql::position::{BINLOG_POSITIONS, BinlogPosition};
    use outflow_postgres::position::{Lsn, POSTGRES_POSITIONS, PgPosition};

    const FAMILIES: &[&'static dyn PositionFamily] = &[&POSTGRES_POSITIONS, &BINLOG_POSITIONS];

    #[test]
    fn key_and_value_have_kafka_connect_and_debezium_shapes() {
        assert_eq!(
            offset_key("inventory", "dbserver1"),
            r#"["inventory",{"server":"dbserver1"}]"#
        );
        let position = SourcePosition::from(PgPosition {
            snapshot_cursor: None,
            lsn_commit: Lsn(300),
            lsn: Lsn(250),
            seq: 4,
            tx_id: Some(77),
            snapshot: false,
        });
        let value = offset_value(&position);
        let json: serde_json::Value = serde_json::from_str(&value).unwrap();
        assert_eq!(json["lsn"], 250);
        assert_eq!(json["lsn_commit"], 300);
        assert_eq!(json["txId"], 77);
        assert_eq!(parse_offset_value(&value, FAMILIES), Some(position));
        // Debezium's own value: resumes after its commit.
        let debezium = r#"{"transaction_id":null,"lsn_proc":250,"lsn_commit":300,"lsn":250,"txId":77,"ts_usec":1700000000000000}"#;
        let p = PgPosition::of(&parse_offset_value(debezium, FAMILIES).unwrap()).unwrap();
        assert_eq!(
            (p.lsn_commit, p.lsn, p.tx_id),
            (Lsn(300), Lsn(250), Some(77))
        );
        let mysql = r#"{"file":"binlog.000003","pos":4711,"row":1,"event":2}"#;
        let b = BinlogPosition::of(&parse_offset_value(mysql, FAMILIES).unwrap()).unwrap();
        assert_eq!(
            (b.file.as_str(), b.pos, b.event, b.row),
            ("binlog.000003", 4711, 2, 1)
        );
    }
}
