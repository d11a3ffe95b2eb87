//! The Kafka sink: formatted records (from the record stage) → encoded bytes → one Kafka
//! transaction per checkpoint, exactly once.
//!
//! Exactly-once (docs/design.md §6), proven on Apache Kafka (the lab's broker), and built so it
//! also holds on Kafka-API brokers that show records of aborted transactions to
//! read_committed readers:
//!
//! 1. One transactional producer per connector (`transactional.id` = the connector
//!    name). Starting calls `init_transactions`, which fences any earlier instance and
//!    ends its open transaction: from then on only this instance writes.
//! 2. Every record carries its event's source position in the `outflow.position` header.
//!    Before writing to a partition for the first time, the sink reads the partition's
//!    tail (read_committed) and remembers the last position there; records at or before
//!    it are not produced again. On Kafka the tail holds only committed records, so a
//!    transaction that committed before a crash (whose offsets were not yet stored) is not
//!    repeated; on a broker that shows aborted records, consumers see those too, so not
//!    repeating them is right there as well. A partition whose newest records carry no
//!    such header (another writer's: the Debezium connector this one took over from) has
//!    no tail of ours, and is not read further back.
//! 3. A batch is Accepted when produced into the open transaction and Durable when the
//!    transaction committed ([`Sink::flush`], or when the transaction reaches its size
//!    bound). Only then does the pipeline store the resume position and the source
//!    acknowledge the database.
//! 4. A fenced producer (another instance took over), an authorization failure or a
//!    record too large is a definite error naming the topic and the reason; so is a
//!    start that timed out because every broker connection failed its TLS handshake or
//!    SASL authentication ([`BrokerConnectionContext`]); anything else is transient and
//!    the connector restarts from the stored position.
//!
//! Topics are created on first use with `topic.creation.default.*`. Keyed records are
//! partitioned as the Java client does ([`crate::partitioner`]). Backpressure: librdkafka's
//! bounded queue (`queue.buffering.max.*`); a full queue makes `write` wait.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use outflow_core::config::PropertyError;
use outflow_core::sink::durability;
use outflow_core::{DurableHandle, DurableNotifier, PositionFamily, SinkError, SourcePosition};
use outflow_interchange::encoding::RecordEncoder;
use outflow_interchange::{Record, RecordSink};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use crate::partitioner::partition;

/// Header carrying a record's source position (compact JSON, [`SourcePosition::to_json`]).
pub const POSITION_HEADER: &str = "outflow.position";

const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// How new topics are made (`topic.creation.default.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicCreation {
    /// `topic.creation.default.partitions` (default 1).
    pub partitions: i32,
    /// `topic.creation.default.replication.factor` (default 1).
    pub replication_factor: i32,
    /// Other `topic.creation.default.<config>` entries, e.g. `cleanup.policy`.
    pub configs: BTreeMap<String, String>,
}

/// Validated settings of a Kafka sink.
#[derive(Clone)]
pub struct KafkaSinkConfig {
    /// The connector's name: the producer's `transactional.id`.
    pub transactional_id: String,
    /// librdkafka settings: `bootstrap.servers` and every `producer.*` property (prefix
    /// removed).
    pub client: BTreeMap<String, String>,
    /// New topics.
    pub topic_creation: TopicCreation,
    /// A transaction is committed early once it holds this many bytes (default 16 MiB).
    pub max_transaction_bytes: usize,
}

impl std::fmt::Debug for KafkaSinkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let client: BTreeMap<&String, &str> = self
            .client
            .iter()
            .map(|(k, v)| {
                let secret = outflow_core::config::is_secret(k);
                (k, if secret { "********" } else { v.as_str() })
            })
            .collect();
        f.debug_struct("KafkaSinkConfig")
            .field("transactional_id", &self.transactional_id)
            .field("client", &client)
            .field("topic_creation", &self.topic_creation)
            .field("max_transaction_bytes", &self.max_transaction_bytes)
            .finish()
    }
}

/// Settings the sink owns; `producer.*` may not change them.
const OWNED: [&str; 4] = [
    "transactional.id",
    "enable.idempotence",
    "isolation.level",
    "enable.auto.commit",
];

impl KafkaSinkConfig {
    /// Reads `bootstrap.servers`, `producer.*` and `topic.creation.default.*` from the
    /// connector's properties (the worker's `kafka.*` settings merged in by the caller).
    /// Pure: no I/O.
    pub fn from_properties(
        connector: &str,
        props: &BTreeMap<String, String>,
    ) -> Result<Self, PropertyError> {
        let bootstrap = props
            .get("bootstrap.servers")
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| PropertyError::new("bootstrap.servers", "", "required"))?;
        let mut client = BTreeMap::new();
        client.insert("bootstrap.servers".to_owned(), bootstrap.clone());
        for (key, value) in props {
            if let Some(setting) = key.strip_prefix("producer.") {
                if OWNED.contains(&setting) {
                    return Err(PropertyError::new(
                        key,
                        value,
                        "set by outflow for exactly-once delivery",
                    ));
                }
                client.insert(setting.to_owned(), value.clone());
            }
        }
        let number = |property: &str, default: i32| -> Result<i32, PropertyError> {
            match props.get(property) {
                None => Ok(default),
                Some(v) => match v.trim().parse::<i32>() {
                    // Kafka Connect's -1: the broker's default.
                    Ok(-1) => Ok(default),
                    Ok(n) if n > 0 => Ok(n),
                    _ => Err(PropertyError::new(
                        property,
                        v,
                        "expected a positive number or -1",
                    )),
                },
            }
        };
        let configs = props
            .iter()
            .filter_map(|(k, v)| {
                let name = k.strip_prefix("topic.creation.default.")?;
                (name != "partitions" && name != "replication.factor")
                    .then(|| (name.to_owned(), v.clone()))
            })
            .collect();
        let max_transaction_bytes = match props.get("transaction.max.bytes") {
            None => 16 << 20,
            Some(v) => v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    PropertyError::new("transaction.max.bytes", v, "expected a positive number")
                })?,
        };
        Ok(Self {
            transactional_id: connector.to_owned(),
            client,
            topic_creation: TopicCreation {
                partitions: number("topic.creation.default.partitions", 1)?,
                replication_factor: number("topic.creation.default.replication.factor", 1)?,
                configs,
            },
            max_transaction_bytes,
        })
    }

    fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        for (k, v) in &self.client {
            config.set(k, v);
        }
        config
    }
}

/// Classifies a Kafka error: fencing, authorization and size are definite.
fn kafka_error(context: String, e: KafkaError) -> SinkError {
    let hint = error_hint(e.rdkafka_error_code());
    let fatal = matches!(&e, KafkaError::Transaction(t) if t.is_fatal());
    match hint {
        Some(hint) => SinkError::definite_with(context, hint, e),
        None if fatal => SinkError::definite_with(context, "see the broker's message", e),
        None => SinkError::transient(context, e),
    }
}

/// What to do about an error code that retrying cannot fix; `None` for the others.
fn error_hint(code: Option<RDKafkaErrorCode>) -> Option<&'static str> {
    match code {
        Some(
            RDKafkaErrorCode::Fenced
            | RDKafkaErrorCode::ProducerFenced
            | RDKafkaErrorCode::InvalidProducerEpoch,
        ) => Some(
            "another outflow instance runs this connector (same transactional.id) and fenced this one; stop one of them",
        ),
        Some(
            RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::ClusterAuthorizationFailed
            | RDKafkaErrorCode::TransactionalIdAuthorizationFailed
            | RDKafkaErrorCode::GroupAuthorizationFailed,
        ) => Some("grant the connector's principal the missing ACL"),
        Some(RDKafkaErrorCode::MessageSizeTooLarge) => {
            Some("raise the topic's max.message.bytes and producer.max.request.size")
        }
        Some(RDKafkaErrorCode::InvalidTransactionTimeout) => Some(
            "lower producer.transaction.timeout.ms below the broker's transaction.max.timeout.ms",
        ),
        _ => None,
    }
}

/// Runs a blocking client call off the async threads.
async fn blocking<T: Send + 'static>(
    context: &str,
    call: impl FnOnce() -> Result<T, KafkaError> + Send + 'static,
) -> Result<T, SinkError> {
    tokio::task::spawn_blocking(call)
        .await
        .map_err(|e| SinkError::transient(format!("{context}: the task failed"), e))?
        .map_err(|e| kafka_error(context.to_owned(), e))
}

/// The producer's client context. librdkafka retries broker connections forever, so a
/// broker certificate the client does not trust, a client certificate the broker refuses
/// or wrong SASL credentials surface only as a start that times out. This context keeps
/// the last such failure librdkafka reported, so that [`KafkaSink::start`] can report it
/// as a definite error naming the settings to fix instead of a timeout to retry. It logs
/// every client error once, at warn (librdkafka logs them at error itself).
#[derive(Debug, Default, Clone)]
pub struct BrokerConnectionContext {
    setup_failure: Arc<std::sync::Mutex<Option<(RDKafkaErrorCode, String)>>>,
}

impl BrokerConnectionContext {
    /// The last TLS or authentication failure reported, if any.
    fn setup_failure(&self) -> Option<(RDKafkaErrorCode, String)> {
        self.setup_failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl ClientContext for BrokerConnectionContext {
    fn error(&self, error: KafkaError, reason: &str) {
        // The broker refusing the handshake (a client certificate it does not trust, or
        // none) arrives as a transport failure carrying the TLS alert.
        let refused_handshake = |reason: &str| reason.contains("SSL") && reason.contains("alert");
        let code = match error.rdkafka_error_code() {
            Some(code @ (RDKafkaErrorCode::SSL | RDKafkaErrorCode::Authentication)) => Some(code),
            Some(RDKafkaErrorCode::BrokerTransportFailure) if refused_handshake(reason) => {
                Some(RDKafkaErrorCode::SSL)
            }
            _ => None,
        };
        if let Some(code) = code {
            *self
                .setup_failure
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) =
                Some((code, reason.to_owned()));
        }
        tracing::warn!(error = %error, reason, "Kafka client error");
    }
}

/// The tail reader's client context: the end of a partition is what the reader looks
/// for, not an error (librdkafka reports it as one); other errors log as warnings.
struct TailReaderContext;

impl ClientContext for TailReaderContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(error, KafkaError::PartitionEOF(_)) {
            tracing::trace!(reason, "tail reader reached the end of the partition");
        } else {
            tracing::warn!(error = %error, reason, "Kafka client error (tail reader)");
        }
    }
}

impl rdkafka::consumer::ConsumerContext for TailReaderContext {}

/// The settings to check when the broker connection failed its TLS handshake or SASL
/// authentication.
fn setup_failure_hint(code: RDKafkaErrorCode) -> &'static str {
    if code == RDKafkaErrorCode::SSL {
        "the TLS handshake with the broker failed: set kafka.ssl.ca.location to a PEM file of the CA that signed the broker's certificate, name the brokers in bootstrap.servers by the host names their certificates carry, and give kafka.ssl.certificate.location and kafka.ssl.key.location if the broker demands a client certificate"
    } else {
        "the broker refused the connector's credentials: check kafka.security.protocol, kafka.sasl.mechanism, kafka.sasl.username and kafka.sasl.password"
    }
}

/// The error of a connection-set-up failure `context` gave up on.
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
struct BrokerSetupError {
    reason: String,
    #[source]
    source: KafkaError,
}

struct OpenTransaction {
    deliveries: Vec<(Arc<str>, DeliveryFuture)>,
    notifiers: Vec<DurableNotifier>,
    bytes: usize,
    began: std::time::Instant,
}

/// The Kafka sink of one connector.
pub struct KafkaSink {
    config: KafkaSinkConfig,
    producer: Arc<FutureProducer<BrokerConnectionContext>>,
    encoder: RecordEncoder,
    /// How to read back the positions in the records' headers.
    positions: &'static dyn PositionFamily,
    partitions: HashMap<Arc<str>, i32>,
    tails: HashMap<(Arc<str>, i32), Option<SourcePosition>>,
    open: Option<OpenTransaction>,
    skipped: u64,
    /// The producer's `transaction.timeout.ms`.
    transaction_timeout: Duration,
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl KafkaSink {
    /// Connects, and fences every earlier producer of this connector. The sink takes
    /// formatted records: wrap it in an [`outflow_interchange::RecordStage`] to give it
    /// change events. `positions` reads back the positions this sink wrote.
    pub async fn start(
        config: KafkaSinkConfig,
        encoder: RecordEncoder,
        positions: &'static dyn PositionFamily,
    ) -> Result<Self, SinkError> {
        let mut client = config.client_config();
        client
            .set("transactional.id", &config.transactional_id)
            .set("enable.idempotence", "true");
        if !config.client.contains_key("transaction.timeout.ms") {
            client.set("transaction.timeout.ms", "60000");
        }
        let transaction_timeout = Duration::from_millis(
            config
                .client
                .get("transaction.timeout.ms")
                .and_then(|ms| ms.trim().parse().ok())
                .unwrap_or(60_000),
        );
        // Bounded in-flight bytes (librdkafka's default is 1 GiB): a full queue makes
        // `write` wait, so a slow or absent broker stops the source instead of filling
        // memory.
        if !config.client.contains_key("queue.buffering.max.kbytes") {
            client.set("queue.buffering.max.kbytes", "65536");
        }
        let connection = BrokerConnectionContext::default();
        let producer: FutureProducer<BrokerConnectionContext> = client
            .create_with_context(connection.clone())
            .map_err(|e| {
                SinkError::definite_with(
                    "creating the Kafka producer",
                    "check the kafka.* and producer.* settings",
                    e,
                )
            })?;
        let producer = Arc::new(producer);
        let fencing = Arc::clone(&producer);
        let context = "initialising transactions (fencing earlier instances)";
        let initialised =
            tokio::task::spawn_blocking(move || fencing.init_transactions(CLIENT_TIMEOUT))
                .await
                .map_err(|e| SinkError::transient(format!("{context}: the task failed"), e))?;
        if let Err(e) = initialised {
            return Err(match connection.setup_failure() {
                Some((code, reason)) => SinkError::definite_with(
                    context,
                    setup_failure_hint(code),
                    BrokerSetupError { reason, source: e },
                ),
                None => kafka_error(context.to_owned(), e),
            });
        }
        tracing::info!(transactional_id = %config.transactional_id, "Kafka producer ready; earlier instances fenced");
        Ok(Self {
            config,
            producer,
            encoder,
            positions,
            partitions: HashMap::new(),
            tails: HashMap::new(),
            open: None,
            skipped: 0,
            transaction_timeout,
        })
    }

    /// Records not produced because the partition already held them (after a restart).
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Partition count of `topic`, creating the topic when it does not exist.
    async fn partition_count(&mut self, topic: &Arc<str>) -> Result<i32, SinkError> {
        if let Some(n) = self.partitions.get(topic) {
            return Ok(*n);
        }
        let n = match self.fetch_partition_count(topic).await? {
            Some(n) => n,
            None => {
                self.create_topic(topic).await?;
                let mut found = None;
                for _ in 0..50 {
                    found = self.fetch_partition_count(topic).await?;
                    if found.is_some() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                found.ok_or_else(|| {
                    SinkError::transient(
                        format!("topic {topic} was created but has no partitions yet"),
                        "metadata not propagated",
                    )
                })?
            }
        };
        self.partitions.insert(Arc::clone(topic), n);
        Ok(n)
    }

    async fn fetch_partition_count(&self, topic: &Arc<str>) -> Result<Option<i32>, SinkError> {
        let producer = Arc::clone(&self.producer);
        let name = topic.to_string();
        blocking("reading topic metadata", move || {
            // All topics: asking for one by name makes brokers with auto-creation create
            // it with their defaults instead of `topic.creation.default.*`.
            let metadata = producer.client().fetch_metadata(None, CLIENT_TIMEOUT)?;
            Ok(metadata
                .topics()
                .iter()
                .find(|t| t.name() == name && t.error().is_none())
                .map(|t| i32::try_from(t.partitions().len()).unwrap_or(i32::MAX))
                .filter(|n| *n > 0))
        })
        .await
    }

    async fn create_topic(&self, topic: &str) -> Result<(), SinkError> {
        let admin: AdminClient<DefaultClientContext> =
            self.config.client_config().create().map_err(|e| {
                SinkError::definite_with("creating the Kafka admin client", "check the settings", e)
            })?;
        let creation = &self.config.topic_creation;
        let mut new_topic = NewTopic::new(
            topic,
            creation.partitions,
            TopicReplication::Fixed(creation.replication_factor),
        );
        for (k, v) in &creation.configs {
            new_topic = new_topic.set(k, v);
        }
        let results = admin
            .create_topics(&[new_topic], &AdminOptions::new())
            .await
            .map_err(|e| kafka_error(format!("creating topic {topic}"), e))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => {
                    return Err(kafka_error(
                        format!("creating topic {topic}"),
                        KafkaError::AdminOp(code),
                    ));
                }
            }
        }
        tracing::info!(topic, partitions = creation.partitions, "topic created");
        Ok(())
    }

    /// Whether `position` is at or before the last record this connector left in the
    /// partition (read once per partition after start).
    async fn already_written(
        &mut self,
        topic: &Arc<str>,
        partition: i32,
        position: &SourcePosition,
    ) -> Result<bool, SinkError> {
        let key = (Arc::clone(topic), partition);
        if !self.tails.contains_key(&key) {
            let tail = read_tail(
                self.config.client_config(),
                topic.to_string(),
                partition,
                self.positions,
            )
            .await?;
            if let Some(tail) = &tail {
                tracing::info!(topic = %topic, partition, tail = %tail.to_json(), "partition already holds records up to this position");
            }
            self.tails.insert(key.clone(), tail);
        }
        Ok(self
            .tails
            .get(&key)
            .and_then(Option::as_ref)
            .is_some_and(|tail| position <= tail))
    }

    async fn produce(&mut self, record: Record) -> Result<(), SinkError> {
        let partitions = self.partition_count(&record.topic).await?;
        let bytes = self.encoder.encode(&record).await?;
        let partition = partition(bytes.key.as_deref(), &record.position, partitions);
        if self
            .already_written(&record.topic, partition, &record.position)
            .await?
        {
            self.skipped += 1;
            return Ok(());
        }
        if self.open.is_none() {
            self.producer
                .begin_transaction()
                .map_err(|e| kafka_error("beginning a transaction".into(), e))?;
            self.open = Some(OpenTransaction {
                deliveries: Vec::new(),
                notifiers: Vec::new(),
                bytes: 0,
                began: std::time::Instant::now(),
            });
        }
        let position = record.position.to_json();
        let mut headers =
            OwnedHeaders::new_with_capacity(1 + record.headers.len()).insert(Header {
                key: POSITION_HEADER,
                value: Some(position.as_bytes()),
            });
        for (name, value) in &record.headers {
            headers = headers.insert(Header {
                key: name,
                value: Some(value.as_bytes()),
            });
        }
        let size =
            bytes.key.as_ref().map_or(0, Vec::len) + bytes.value.as_ref().map_or(0, Vec::len);
        let mut future_record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&record.topic)
            .partition(partition)
            .headers(headers);
        if let Some(key) = &bytes.key {
            future_record = future_record.key(key.as_slice());
        }
        if let Some(value) = &bytes.value {
            future_record = future_record.payload(value.as_slice());
        }
        let delivery = loop {
            match self.producer.send_result(future_record) {
                Ok(delivery) => break delivery,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    // Backpressure: wait for the oldest delivery, then try again.
                    future_record = returned;
                    self.wait_oldest_delivery().await?;
                }
                Err((e, _)) => {
                    let began = self.open.as_ref().map(|open| open.began);
                    return Err(self.timed_out_or(
                        began,
                        kafka_error(format!("producing to {}", record.topic), e),
                    ));
                }
            }
        };
        if let Some(open) = self.open.as_mut() {
            open.deliveries.push((Arc::clone(&record.topic), delivery));
            open.bytes += size;
        }
        Ok(())
    }

    async fn wait_oldest_delivery(&mut self) -> Result<(), SinkError> {
        let Some(open) = self.open.as_mut() else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            return Ok(());
        };
        if open.deliveries.is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
            return Ok(());
        }
        let (topic, delivery) = open.deliveries.remove(0);
        check_delivery(&topic, delivery).await
    }

    /// `commit_transaction`, retried while the error says retrying can help (a broker
    /// that is slow or away): nothing is lost or reordered by waiting.
    async fn commit_with_retries(&self) -> Result<(), SinkError> {
        let mut backoff = Duration::from_millis(100);
        loop {
            let producer = Arc::clone(&self.producer);
            let outcome =
                tokio::task::spawn_blocking(move || producer.commit_transaction(CLIENT_TIMEOUT))
                    .await
                    .map_err(|e| {
                        SinkError::transient("committing the Kafka transaction: the task failed", e)
                    })?;
            match outcome {
                Ok(()) => return Ok(()),
                Err(KafkaError::Transaction(e)) if e.is_retriable() && !e.is_fatal() => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "Kafka transaction commit not done yet; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
                Err(e) => {
                    return Err(kafka_error("committing the Kafka transaction".into(), e));
                }
            }
        }
    }

    /// `error`, unless the producer was fenced while its transaction (begun at `began`)
    /// had been open longer than `transaction.timeout.ms`: then the broker itself aborted
    /// the transaction and bumped the producer's epoch (the broker, or this process, was
    /// away too long), which librdkafka reports as the same fence a second instance causes.
    /// That is transient: the restarted connector's new producer resumes from the stored
    /// position. A fence inside the timeout is another instance, and stays definite.
    fn timed_out_or(&self, began: Option<std::time::Instant>, error: SinkError) -> SinkError {
        let fenced = matches!(
            self.producer.client().fatal_error(),
            Some((
                RDKafkaErrorCode::Fenced
                    | RDKafkaErrorCode::ProducerFenced
                    | RDKafkaErrorCode::InvalidProducerEpoch,
                _
            ))
        );
        match began {
            Some(began) if fenced && began.elapsed() >= self.transaction_timeout => {
                tracing::warn!(open_for = ?began.elapsed(), timeout = ?self.transaction_timeout, "the broker aborted a Kafka transaction that outlived transaction.timeout.ms; restarting from the stored position");
                SinkError::transient(
                    "the broker aborted the Kafka transaction: it stayed open longer than transaction.timeout.ms",
                    error,
                )
            }
            _ => error,
        }
    }

    /// The producer's fatal error (fenced, say), if it has one.
    fn fatal_error(&self) -> Option<SinkError> {
        let (code, reason) = self.producer.client().fatal_error()?;
        let hint = error_hint(Some(code)).unwrap_or("see the broker's message");
        Some(SinkError::definite_with(
            format!("the Kafka producer failed fatally: {reason}"),
            hint,
            KafkaError::MessageProduction(code),
        ))
    }

    /// Commits the open transaction; every batch in it becomes durable.
    async fn commit(&mut self) -> Result<(), SinkError> {
        let Some(open) = self.open.take() else {
            return Ok(());
        };
        let mut result = Ok(());
        for (topic, delivery) in open.deliveries {
            if let Err(e) = check_delivery(&topic, delivery).await {
                // A fenced or otherwise failed producer purges its queue: the delivery
                // reports say "purged"; the cause is the producer's fatal error.
                result = Err(self.fatal_error().unwrap_or(e));
                break;
            }
        }
        if result.is_ok() {
            result = self.commit_with_retries().await;
        }
        let result = result.map_err(|e| self.timed_out_or(Some(open.began), e));
        match result {
            Ok(()) => {
                for notifier in open.notifiers {
                    notifier.durable();
                }
                Ok(())
            }
            Err(e) => {
                let producer = Arc::clone(&self.producer);
                let _ = blocking("aborting the Kafka transaction", move || {
                    producer.abort_transaction(CLIENT_TIMEOUT)
                })
                .await;
                for notifier in open.notifiers {
                    notifier.failed(SinkError::transient(
                        "the Kafka transaction holding this batch did not commit",
                        e.to_string(),
                    ));
                }
                Err(e)
            }
        }
    }
}

async fn check_delivery(topic: &str, delivery: DeliveryFuture) -> Result<(), SinkError> {
    match delivery.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => Err(kafka_error(format!("producing to {topic}"), e)),
        Err(_) => Err(SinkError::transient(
            format!("producing to {topic}"),
            "the producer dropped the delivery report",
        )),
    }
}

/// The last source position in a partition's committed (read_committed) records.
///
/// Read backwards in growing windows (64, 512, 4096, … offsets before the end): on Kafka
/// the end of a partition may be a fenced instance's aborted records, which a
/// read_committed reader skips, so the last committed record can lie far back.
async fn read_tail(
    mut config: ClientConfig,
    topic: String,
    partition: i32,
    positions: &'static dyn PositionFamily,
) -> Result<Option<SourcePosition>, SinkError> {
    config
        .set("group.id", "outflow-tail-reader")
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true");
    let context = format!("reading the tail of {topic}[{partition}]");
    blocking(&context.clone(), move || {
        let consumer: BaseConsumer<TailReaderContext> =
            config.create_with_context(TailReaderContext)?;
        let (low, high) = consumer.fetch_watermarks(&topic, partition, CLIENT_TIMEOUT)?;
        let mut window = 64i64;
        loop {
            let start = (high - window).max(low);
            let mut assignment = TopicPartitionList::new();
            assignment.add_partition_offset(&topic, partition, Offset::Offset(start))?;
            consumer.assign(&assignment)?;
            let mut last = None;
            let mut foreign = false;
            let deadline = std::time::Instant::now() + CLIENT_TIMEOUT;
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
                        let position = message.headers().and_then(|headers| {
                            headers
                                .iter()
                                .find(|h| h.key == POSITION_HEADER)
                                .and_then(|h| h.value)
                                .and_then(|v| std::str::from_utf8(v).ok())
                                .and_then(|v| SourcePosition::from_json(v, &[positions]).ok())
                        });
                        if position.is_some() {
                            last = position;
                        } else {
                            foreign = true;
                        }
                        if message.offset() + 1 >= high {
                            break;
                        }
                    }
                }
            }
            // The newest committed records are another writer's (a Debezium connector
            // this one took over from): nothing of ours follows them, so there is nothing
            // to skip, and the rest of a topic that may hold millions of their records
            // is not read.
            if last.is_some() || foreign || start <= low {
                return Ok(last);
            }
            window *= 8;
        }
    })
    .await
}

impl RecordSink for KafkaSink {
    async fn put(&mut self, record: Record, _commit_us: i64) -> Result<(), SinkError> {
        self.produce(record).await
    }

    async fn end_batch(&mut self) -> Result<DurableHandle, SinkError> {
        let Some(open) = self.open.as_mut() else {
            // Nothing to produce (all already in Kafka, or filtered): durable as it is.
            return Ok(DurableHandle::ready());
        };
        let (notifier, handle) = durability();
        open.notifiers.push(notifier);
        if open.bytes >= self.config.max_transaction_bytes {
            self.commit().await?;
        }
        Ok(handle)
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        self.commit().await
    }
}
