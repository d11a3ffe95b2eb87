//! The NATS JetStream sink: formatted records (from the record stage) → messages on
//! subjects of one JetStream stream, exactly once.
//!
//! It implements only transport and durability ([`RecordSink`]); the envelope, the
//! transforms and the encoding are the record stage's. The design:
//!
//! - **Subjects from topics.** A record for topic `shop.public.orders` is published on the
//!   subject of the same name (Kafka topic names are valid NATS subjects, their dots being
//!   NATS's token separators), so `shop.>` subscribes to a whole connector and
//!   `shop.public.*` to a schema. The stream (`nats.stream`, default `outflow-<connector>`)
//!   is created with the subjects `nats.subjects` (default `<topic.prefix>.>`) when it does
//!   not exist; an existing stream is used as it is and never changed or deleted.
//! - **Headers.** Every message carries `outflow.position` (its event's source position,
//!   compact JSON as on Kafka), `outflow.record` (the record's ordinal among the records
//!   of that position: a delete and its tombstone share one), the key (`outflow.key`,
//!   UTF-8 as encoded, or `outflow.key.base64` for a binary key) and the transforms'
//!   headers. The value is the payload.
//! - **Exactly once.** Two mechanisms, for the two ways a record can be sent twice:
//!   1. within the server's de-duplication window (`duplicate_window`, 2 minutes by
//!      default), `Nats-Msg-Id` = `<stream>:<position>:<ordinal>` makes JetStream drop a
//!      repeated publish (a retry after a lost acknowledgement, a restart soon after a
//!      crash);
//!   2. after any length of time, a **tail check**: before the first publish to a subject,
//!      the sink reads the subject's last message and skips every record at or before its
//!      (position, ordinal). Records of one subject are published in source order, so
//!      the tail is the high-water mark of what that subject holds.
//! - **Durable = the publish acknowledgement.** Publishes are pipelined: each returns an
//!   acknowledgement future that a background task awaits in order, resolving a batch's
//!   [`DurableHandle`] once every message of it (and of every batch before it) is stored
//!   by JetStream. A failed acknowledgement fails that batch and every later one; the next
//!   `put` returns the error (transient: the connector restarts from the stored position,
//!   and the two mechanisms above absorb what was stored already).
//! - **Backpressure.** At most `nats.max.in.flight` messages await their acknowledgement
//!   (a bounded channel); `put` waits when it is full.
//!
//! Tombstones and heartbeats are not published (they exist for Kafka's log compaction and
//! liveness; JetStream has neither); their positions still advance the offset.
//!
//! Not covered: a second live instance of the same connector (a zombie) is not fenced by
//! the server as Kafka's transactional producer is; the daemon's data-dir lock keeps one
//! instance per connector.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, context::PublishAckFuture, stream};
use base64::Engine as _;
use outflow_core::BoxedSink;
use outflow_core::config::PropertyError;
use outflow_core::sink::durability;
use outflow_core::{DurableHandle, DurableNotifier, PositionFamily, SinkError, SourcePosition};
use outflow_interchange::encoding::RecordEncoder;
use outflow_interchange::envelope::RecordKind;
use outflow_interchange::stage::{SinkPlan, SinkPlugin, StageParts, StartFuture};
use outflow_interchange::{Record, RecordSink, RecordStage};
use tokio::sync::mpsc;

/// Header carrying a record's source position (compact JSON, [`SourcePosition::to_json`]).
pub const POSITION_HEADER: &str = "outflow.position";
/// Header carrying a record's ordinal among the records of its position.
pub const RECORD_HEADER: &str = "outflow.record";
/// Header carrying a UTF-8 record key.
pub const KEY_HEADER: &str = "outflow.key";
/// Header carrying a binary record key, base64 (standard alphabet, padded).
pub const KEY_BASE64_HEADER: &str = "outflow.key.base64";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The NATS sink's validated settings.
#[derive(Clone, PartialEq, Eq)]
pub struct NatsSinkConfig {
    /// `nats.url`: the server(s), comma-separated (`nats://host:4222`).
    pub url: String,
    /// `nats.stream`: the JetStream stream (default `outflow-<connector>`).
    pub stream: String,
    /// `nats.subjects`: the stream's subjects when the sink creates it (default
    /// `<topic.prefix>.>`), comma-separated.
    pub subjects: Vec<String>,
    /// `nats.user` and `nats.password`.
    pub user: Option<(String, String)>,
    /// `nats.token`.
    pub token: Option<String>,
    /// `nats.max.in.flight`: messages awaiting their acknowledgement (default 4096).
    pub max_in_flight: usize,
}

impl std::fmt::Debug for NatsSinkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSinkConfig")
            .field("url", &self.url)
            .field("stream", &self.stream)
            .field("subjects", &self.subjects)
            .field("user", &self.user.as_ref().map(|(user, _)| user))
            .field("token", &self.token.as_ref().map(|_| "********"))
            .field("max_in_flight", &self.max_in_flight)
            .finish()
    }
}

/// Whether `name` is a NATS subject a publish may use: non-empty tokens separated by
/// dots, without whitespace or wildcards.
fn valid_subject(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').all(|token| {
            !token.is_empty()
                && token
                    .chars()
                    .all(|c| !c.is_whitespace() && !c.is_control() && c != '*' && c != '>')
        })
}

impl NatsSinkConfig {
    /// Reads `nats.*` (and `topic.prefix` for the default subjects); pure.
    pub fn from_properties(
        connector: &str,
        props: &BTreeMap<String, String>,
    ) -> Result<Self, PropertyError> {
        let get = |key: &str| props.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
        let url = get("nats.url")
            .ok_or_else(|| PropertyError::new("nats.url", "", "required (nats://host:4222)"))?
            .to_owned();
        if !url
            .split(',')
            .all(|u| u.trim().starts_with("nats://") || u.trim().starts_with("tls://"))
        {
            return Err(PropertyError::new(
                "nats.url",
                url.as_str(),
                "expected nats://host:port (or tls://), comma-separated",
            ));
        }
        let stream = match get("nats.stream") {
            Some(stream) => stream.to_owned(),
            None => format!(
                "outflow-{}",
                connector
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '_'
                    })
                    .collect::<String>()
            ),
        };
        if stream
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '.' | '*' | '>' | '/' | '\\'))
        {
            return Err(PropertyError::new(
                "nats.stream",
                stream.as_str(),
                "a stream name has no dots, wildcards, slashes or spaces",
            ));
        }
        let subjects: Vec<String> = match get("nats.subjects") {
            Some(list) => list.split(',').map(|s| s.trim().to_owned()).collect(),
            None => {
                let prefix = get("topic.prefix").ok_or_else(|| {
                    PropertyError::new(
                        "nats.subjects",
                        "",
                        "required when topic.prefix is not set (the default is <topic.prefix>.>)",
                    )
                })?;
                vec![format!("{prefix}.>")]
            }
        };
        if subjects.iter().any(|s| s.is_empty()) {
            return Err(PropertyError::new(
                "nats.subjects",
                subjects.join(","),
                "an empty subject",
            ));
        }
        let user = outflow_core::config::both_or_neither(
            ("nats.user", get("nats.user")),
            ("nats.password", get("nats.password")),
        )?
        .map(|(user, password)| (user.to_owned(), password.to_owned()));
        let max_in_flight = match get("nats.max.in.flight") {
            None => 4096,
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    PropertyError::new("nats.max.in.flight", text, "expected a positive number")
                })?,
        };
        Ok(Self {
            url,
            stream,
            subjects,
            user,
            token: get("nats.token").map(str::to_owned),
            max_in_flight,
        })
    }
}

/// Counters of a NATS sink, for the metrics endpoint.
#[derive(Debug, Default)]
pub struct NatsMetrics {
    /// Messages published.
    pub published: std::sync::atomic::AtomicU64,
    /// Records not published because the subject already held them (tail check).
    pub skipped: std::sync::atomic::AtomicU64,
    /// Publishes JetStream reported as duplicates (message-id de-duplication).
    pub duplicates: std::sync::atomic::AtomicU64,
}

impl outflow_core::SinkMetrics for NatsMetrics {
    fn as_any_arc(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }

    fn samples(&self) -> Vec<outflow_core::MetricSample> {
        use std::sync::atomic::Ordering::Relaxed;
        let counter =
            |name, help, value: &std::sync::atomic::AtomicU64| outflow_core::MetricSample {
                name,
                kind: outflow_core::MetricKind::Counter,
                help,
                value: value.load(Relaxed) as f64,
            };
        vec![
            counter(
                "outflow_nats_messages_published_total",
                "Messages published to JetStream.",
                &self.published,
            ),
            counter(
                "outflow_nats_records_skipped_total",
                "Records not published because the subject already held them (tail check after a restart).",
                &self.skipped,
            ),
            counter(
                "outflow_nats_duplicates_total",
                "Publishes JetStream acknowledged as duplicates (message-id de-duplication).",
                &self.duplicates,
            ),
        ]
    }
}

/// What the acknowledgement task awaits, in publish order.
enum InFlight {
    Ack {
        subject: Arc<str>,
        ack: PublishAckFuture,
    },
    Batch(DurableNotifier),
}

/// The first failure the acknowledgement task saw; every later batch fails with it.
type Failure = Arc<Mutex<Option<String>>>;

fn failure_error(message: &str) -> SinkError {
    SinkError::transient(
        "publishing to NATS JetStream",
        format!("an earlier publish was not acknowledged: {message}"),
    )
}

/// The NATS JetStream sink (see the module docs).
pub struct NatsSink {
    config: NatsSinkConfig,
    client: async_nats::Client,
    jetstream: jetstream::Context,
    stream: stream::Stream,
    encoder: RecordEncoder,
    /// How to read the positions in the messages' headers.
    positions: &'static dyn PositionFamily,
    /// Per subject: the last (position, ordinal) it held when first used.
    tails: HashMap<Arc<str>, Option<(SourcePosition, u32)>>,
    /// The position of the last record put and how many records it had.
    last: Option<(SourcePosition, u32)>,
    in_flight: mpsc::Sender<InFlight>,
    failure: Failure,
    metrics: Arc<NatsMetrics>,
}

impl std::fmt::Debug for NatsSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSink")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn connect_error(
    config: &NatsSinkConfig,
    e: impl std::error::Error + Send + Sync + 'static,
) -> SinkError {
    SinkError::transient(format!("connecting to NATS at {}", config.url), e)
}

impl NatsSink {
    /// Connects, finds or creates the stream, and starts the acknowledgement task.
    ///
    /// An unreachable server is transient; a refused login is definite.
    /// `positions` reads back the positions this sink wrote into the stream.
    pub async fn start(
        config: NatsSinkConfig,
        encoder: RecordEncoder,
        positions: &'static dyn PositionFamily,
    ) -> Result<Self, SinkError> {
        let mut options = async_nats::ConnectOptions::new()
            .connection_timeout(CONNECT_TIMEOUT)
            .retry_on_initial_connect();
        if let Some((user, password)) = &config.user {
            options = options.user_and_password(user.clone(), password.clone());
        }
        if let Some(token) = &config.token {
            options = options.token(token.clone());
        }
        let client = tokio::time::timeout(
            CONNECT_TIMEOUT,
            options.connect(config.url.split(',').map(str::trim).collect::<Vec<_>>()),
        )
        .await
        .map_err(|e| connect_error(&config, e))?
        .map_err(|e| {
            if matches!(
                e.kind(),
                async_nats::ConnectErrorKind::AuthorizationViolation
            ) {
                SinkError::definite_with(
                    format!("connecting to NATS at {}", config.url),
                    "check nats.user / nats.password / nats.token",
                    e,
                )
            } else {
                connect_error(&config, e)
            }
        })?;
        let jetstream = jetstream::new(client.clone());
        let stream = match jetstream.get_stream(&config.stream).await {
            Ok(stream) => stream,
            Err(e)
                if matches!(e.kind(), jetstream::context::GetStreamErrorKind::JetStream(j)
                    if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND) =>
            {
                tracing::info!(stream = %config.stream, subjects = ?config.subjects, "creating the JetStream stream");
                jetstream
                    .create_stream(stream::Config {
                        name: config.stream.clone(),
                        subjects: config.subjects.clone(),
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| {
                        SinkError::definite_with(
                            format!("creating the JetStream stream {}", config.stream),
                            "check that JetStream is enabled and nats.subjects overlaps no other stream",
                            e,
                        )
                    })?
            }
            Err(e) => {
                return Err(SinkError::transient(
                    format!("looking up the JetStream stream {}", config.stream),
                    e,
                ));
            }
        };
        let (in_flight, acks) = mpsc::channel(config.max_in_flight);
        let failure: Failure = Arc::default();
        let metrics = Arc::new(NatsMetrics::default());
        tokio::spawn(acknowledge(
            acks,
            Arc::clone(&failure),
            Arc::clone(&metrics),
        ));
        Ok(Self {
            config,
            client,
            jetstream,
            stream,
            encoder,
            positions,
            tails: HashMap::new(),
            last: None,
            in_flight,
            failure,
            metrics,
        })
    }

    /// Shares `metrics` (the daemon's per-connector counters) instead of the sink's own.
    pub fn with_metrics(mut self, metrics: Arc<NatsMetrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The settings the sink runs with.
    pub fn config(&self) -> &NatsSinkConfig {
        &self.config
    }

    fn failed(&self) -> Option<SinkError> {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_deref()
            .map(failure_error)
    }

    /// The subject's tail, read on first use.
    async fn tail(
        &mut self,
        subject: &Arc<str>,
    ) -> Result<Option<(SourcePosition, u32)>, SinkError> {
        if let Some(tail) = self.tails.get(subject) {
            return Ok(tail.clone());
        }
        let tail = match self.stream.get_last_raw_message_by_subject(subject).await {
            Ok(message) => tail_of(&message.headers, self.positions),
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => None,
            Err(e) => {
                return Err(SinkError::transient(
                    format!(
                        "reading the last message of {subject} in {}",
                        self.config.stream
                    ),
                    e,
                ));
            }
        };
        if let Some((position, ordinal)) = &tail {
            tracing::info!(subject = %subject, tail = %position.to_json(), ordinal, "subject already holds records up to this position");
        }
        self.tails.insert(Arc::clone(subject), tail.clone());
        Ok(tail)
    }

    async fn publish(&mut self, record: Record) -> Result<(), SinkError> {
        if let Some(error) = self.failed() {
            return Err(error);
        }
        let ordinal = match &self.last {
            Some((position, n)) if *position == record.position => n + 1,
            _ => 0,
        };
        self.last = Some((record.position.clone(), ordinal));
        if matches!(record.kind, RecordKind::Tombstone | RecordKind::Heartbeat) {
            return Ok(());
        }
        let subject = Arc::clone(&record.topic);
        if !valid_subject(&subject) {
            return Err(SinkError::definite(
                format!("publishing a record for topic {subject:?}"),
                "the topic is not a valid NATS subject (empty token, space or wildcard): change topic.prefix or the routing transform",
            ));
        }
        if let Some((tail, tail_ordinal)) = self.tail(&subject).await?
            && (&record.position, ordinal) <= (&tail, tail_ordinal)
        {
            self.metrics
                .skipped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Ok(());
        }
        let bytes = self.encoder.encode(&record).await?;
        let position = record.position.to_json();
        let mut headers = HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            format!("{}:{position}:{ordinal}", self.config.stream).as_str(),
        );
        headers.insert(POSITION_HEADER, position.as_str());
        headers.insert(RECORD_HEADER, ordinal.to_string().as_str());
        if let Some(key) = &bytes.key {
            match std::str::from_utf8(key) {
                Ok(text) if !text.contains(['\r', '\n']) => headers.insert(KEY_HEADER, text),
                _ => headers.insert(
                    KEY_BASE64_HEADER,
                    base64::engine::general_purpose::STANDARD
                        .encode(key)
                        .as_str(),
                ),
            }
        }
        for (name, value) in &record.headers {
            headers.insert(name.as_str(), value.as_str());
        }
        let payload = bytes::Bytes::from(bytes.value.unwrap_or_default());
        let ack = self
            .jetstream
            .publish_with_headers(subject.to_string(), headers, payload)
            .await
            .map_err(|e| SinkError::transient(format!("publishing to {subject}"), e))?;
        self.metrics
            .published
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.in_flight
            .send(InFlight::Ack { subject, ack })
            .await
            .map_err(|_| acknowledger_gone())
    }
}

fn acknowledger_gone() -> SinkError {
    SinkError::transient(
        "publishing to NATS JetStream",
        "the acknowledgement task ended",
    )
}

/// The (position, ordinal) in a message's headers, if it is one of outflow's.
fn tail_of(
    headers: &HeaderMap,
    positions: &'static dyn PositionFamily,
) -> Option<(SourcePosition, u32)> {
    let position =
        SourcePosition::from_json(headers.get(POSITION_HEADER)?.as_str(), &[positions]).ok()?;
    let ordinal = headers
        .get(RECORD_HEADER)
        .and_then(|v| v.as_str().parse().ok())
        .unwrap_or(0);
    Some((position, ordinal))
}

/// Awaits acknowledgements in publish order and resolves each batch after its messages.
async fn acknowledge(
    mut acks: mpsc::Receiver<InFlight>,
    failure: Failure,
    metrics: Arc<NatsMetrics>,
) {
    while let Some(item) = acks.recv().await {
        match item {
            InFlight::Ack { subject, ack } => {
                let failed = failure
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .is_some();
                if failed {
                    continue;
                }
                match ack.await {
                    Ok(ack) => {
                        if ack.duplicate {
                            metrics
                                .duplicates
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(subject = %subject, error = %e, "JetStream did not acknowledge a publish");
                        *failure.lock().unwrap_or_else(PoisonError::into_inner) =
                            Some(format!("{subject}: {e}"));
                    }
                }
            }
            InFlight::Batch(notifier) => {
                let failed = failure
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                match failed {
                    None => notifier.durable(),
                    Some(message) => notifier.failed(failure_error(&message)),
                }
            }
        }
    }
}

impl RecordSink for NatsSink {
    async fn put(&mut self, record: Record, _commit_us: i64) -> Result<(), SinkError> {
        self.publish(record).await
    }

    async fn end_batch(&mut self) -> Result<DurableHandle, SinkError> {
        if let Some(error) = self.failed() {
            return Err(error);
        }
        let (notifier, handle) = durability();
        self.in_flight
            .send(InFlight::Batch(notifier))
            .await
            .map_err(|_| acknowledger_gone())?;
        Ok(handle)
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        self.client
            .flush()
            .await
            .map_err(|e| SinkError::transient("flushing the NATS connection", e))
    }
}

/// The NATS sink's entry in the daemon's sink registry (`sink = "nats"`, `nats.*`).
#[derive(Debug, Clone, Copy, Default)]
pub struct NatsPlugin;

#[derive(Debug)]
struct NatsPlan {
    config: NatsSinkConfig,
}

impl SinkPlugin for NatsPlugin {
    fn name(&self) -> &'static str {
        "nats"
    }

    fn validate(
        &self,
        connector: &str,
        props: &BTreeMap<String, String>,
    ) -> Result<Arc<dyn SinkPlan>, PropertyError> {
        Ok(Arc::new(NatsPlan {
            config: NatsSinkConfig::from_properties(connector, props)?,
        }))
    }

    fn metrics(&self) -> Arc<dyn outflow_core::SinkMetrics> {
        Arc::new(NatsMetrics::default())
    }
}

impl SinkPlan for NatsPlan {
    fn start(&self, parts: StageParts) -> StartFuture<'_> {
        Box::pin(async move {
            let metrics = parts.counters::<NatsMetrics>();
            let sink = NatsSink::start(self.config.clone(), parts.encoder, parts.positions)
                .await?
                .with_metrics(metrics);
            Ok(BoxedSink::new(RecordStage::new(
                parts.formatter,
                parts.transforms,
                sink,
            )))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outflow_core::config::properties as props;

    #[test]
    fn defaults_and_errors_name_the_property() {
        let c = NatsSinkConfig::from_properties(
            "inventory.cdc",
            &props(&[
                ("nats.url", "nats://127.0.0.1:4222"),
                ("topic.prefix", "shop"),
            ]),
        )
        .unwrap();
        assert_eq!(c.stream, "outflow-inventory_cdc");
        assert_eq!(c.subjects, ["shop.>"]);
        assert_eq!(c.max_in_flight, 4096);
        for (pairs, property) in [
            (vec![("topic.prefix", "shop")], "nats.url"),
            (vec![("nats.url", "http://x")], "nats.url"),
            (vec![("nats.url", "nats://x:1")], "nats.subjects"),
            (
                vec![
                    ("nats.url", "nats://x:1"),
                    ("topic.prefix", "s"),
                    ("nats.stream", "a.b"),
                ],
                "nats.stream",
            ),
            (
                vec![
                    ("nats.url", "nats://x:1"),
                    ("topic.prefix", "s"),
                    ("nats.user", "u"),
                ],
                "nats.password",
            ),
            (
                vec![
                    ("nats.url", "nats://x:1"),
                    ("topic.prefix", "s"),
                    ("nats.max.in.flight", "0"),
                ],
                "nats.max.in.flight",
            ),
        ] {
            let e = NatsSinkConfig::from_properties("c", &props(&pairs)).unwrap_err();
            assert_eq!(e.property, property, "{pairs:?}");
        }
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let c = NatsSinkConfig::from_properties(
            "c",
            &props(&[
                ("nats.url", "nats://x:1"),
                ("topic.prefix", "s"),
                ("nats.user", "u"),
                ("nats.password", "hunter2"),
                ("nats.token", "t0k3n"),
            ]),
        )
        .unwrap();
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("hunter2") && !debug.contains("t0k3n"),
            "{debug}"
        );
    }

    #[test]
    fn subjects_from_topic_names() {
        assert!(valid_subject("shop.public.orders"));
        assert!(valid_subject("shop.public.my-table_1"));
        for bad in ["", "a..b", ".a", "a.", "a b", "a.*", "a.>"] {
            assert!(!valid_subject(bad), "{bad:?}");
        }
    }
}
