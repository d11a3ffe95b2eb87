//! The Kafka sink against the lab's Apache Kafka broker: Postgres → pipeline → Kafka end to end, exactly
//! once across an abrupt stop; fencing of a second instance; Java-compatible partitioning.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use outflow_core::{
    ChangeEvent, Classify, ColumnSchema, DataType, ErrorClass, EventBatch, EventKind,
    MemoryOffsetStore, Pipeline, PipelineConfig, SchemaVersion, Sink, SourcePosition, TableId,
    TableSchema, Value,
};
use outflow_interchange::RecordStage;
use outflow_interchange::encoding::RecordEncoder;
use outflow_interchange::envelope::{EnvelopeConfig, EnvelopeFormatter};
use outflow_interchange::transforms::TransformChain;
use outflow_kafka::partitioner::partition;
use outflow_kafka::{KafkaSink, KafkaSinkConfig};
use outflow_postgres::config::PostgresConfig;
use outflow_postgres::position::{Lsn, POSTGRES_POSITIONS, PgPosition};
use outflow_postgres::source::PostgresSource;
use outflow_postgres::source_block::POSTGRES_SOURCE_BLOCK;
use outflow_testkit::{CONSUMER_SETTINGS, PostgresDatabase, broker, postgres, unique_name};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect()
}

fn sink_config(connector: &str, extra: &[(&str, &str)]) -> KafkaSinkConfig {
    let servers = broker().bootstrap_servers();
    let mut p = props(&[("bootstrap.servers", servers.as_str())]);
    p.extend(props(extra));
    KafkaSinkConfig::from_properties(connector, &p).unwrap()
}

fn formatter(prefix: &str) -> EnvelopeFormatter {
    EnvelopeFormatter::new(
        EnvelopeConfig::from_properties(
            &POSTGRES_SOURCE_BLOCK,
            &props(&[("topic.prefix", prefix), ("database.dbname", "shop")]),
        )
        .unwrap(),
    )
}

pub(crate) async fn json_sink(
    connector: &str,
    prefix: &str,
    extra: &[(&str, &str)],
) -> Result<RecordStage<KafkaSink>, outflow_core::SinkError> {
    json_sink_of(connector, prefix, extra, &POSTGRES_POSITIONS).await
}

/// [`json_sink`] for events with positions of `positions`.
pub(crate) async fn json_sink_of(
    connector: &str,
    prefix: &str,
    extra: &[(&str, &str)],
    positions: &'static dyn outflow_core::PositionFamily,
) -> Result<RecordStage<KafkaSink>, outflow_core::SinkError> {
    KafkaSink::start(
        sink_config(connector, extra),
        RecordEncoder::Json {
            schemas_enable: false,
        },
        positions,
    )
    .await
    .map(|sink| RecordStage::new(formatter(prefix), TransformChain::default(), sink))
}

/// A Postgres source for `db` (slot named after it) with `extra` properties.
fn pg_source(db: &PostgresDatabase, extra: &[(&str, &str)]) -> PostgresSource {
    let port = db.server().port().to_string();
    let mut p = props(&[
        ("database.hostname", "127.0.0.1"),
        ("database.port", port.as_str()),
        ("database.user", "postgres"),
        ("database.dbname", db.name()),
        ("slot.name", db.name()),
        ("status.update.interval.ms", "200"),
    ]);
    p.extend(props(extra));
    PostgresSource::new(PostgresConfig::from_properties(&p).unwrap())
}

/// Postgres → JSON Kafka sink, checkpointing every 200 ms.
async fn pg_to_kafka(
    db: &PostgresDatabase,
    connector: &str,
    prefix: &str,
    offsets: Arc<MemoryOffsetStore>,
    source_extra: &[(&str, &str)],
    sink_extra: &[(&str, &str)],
) -> Pipeline<PostgresSource, RecordStage<KafkaSink>, Arc<MemoryOffsetStore>> {
    Pipeline::new(
        connector.to_owned(),
        pg_source(db, source_extra),
        json_sink(connector, prefix, sink_extra).await.unwrap(),
        offsets,
        PipelineConfig {
            checkpoint_interval: Duration::from_millis(200),
            ..PipelineConfig::default()
        },
    )
}

pub(crate) struct Consumed {
    partition: i32,
    raw_value: Option<Vec<u8>>,
    key: Option<String>,
    pub(crate) value: Option<String>,
    position: Option<String>,
}

/// Reads every partition of `topic` from the start, read_committed (as the sink's
/// consumers read), until `done` holds or 60 s pass.
pub(crate) fn consume(topic: &str, done: impl Fn(&[Consumed]) -> bool) -> Vec<Consumed> {
    consume_with(topic, "read_committed", done)
}

fn consume_with(topic: &str, isolation: &str, done: impl Fn(&[Consumed]) -> bool) -> Vec<Consumed> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", broker().bootstrap_servers())
        .set("group.id", unique_name("sink-test"))
        .set("isolation.level", isolation)
        .set("enable.auto.commit", "false");
    for (k, v) in CONSUMER_SETTINGS {
        config.set(*k, *v);
    }
    let consumer: BaseConsumer = config.create().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let partitions = loop {
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .unwrap();
        let n = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
            .map_or(0, |t| t.partitions().len());
        if n > 0 {
            break n;
        }
        assert!(std::time::Instant::now() < deadline, "no topic {topic}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment
            .add_partition_offset(topic, i32::try_from(p).unwrap(), Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut out = Vec::new();
    // `done` is asked when the reader has caught up (a poll came back empty) or after
    // every 4096 records: asking it per record is quadratic over a long topic.
    let mut unchecked = 0usize;
    loop {
        let message = consumer.poll(Duration::from_millis(100));
        if message.is_none() || unchecked >= 4096 {
            unchecked = 0;
            if done(&out) || std::time::Instant::now() >= deadline {
                break;
            }
        }
        if let Some(message) = message {
            unchecked += 1;
            let message = message.unwrap();
            let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
            let position = message.headers().and_then(|h| {
                h.iter()
                    .find(|h| h.key == "outflow.position")
                    .and_then(|h| text(h.value))
            });
            out.push(Consumed {
                partition: message.partition(),
                raw_value: message.payload().map(<[u8]>::to_vec),
                key: text(message.key()),
                value: text(message.payload()),
                position,
            });
        }
    }
    out
}

pub(crate) fn after_id(value: &str) -> Option<i64> {
    let v: serde_json::Value = serde_json::from_str(value).ok()?;
    v.get("after")?.get("id")?.as_i64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_to_kafka_exactly_once_across_an_abrupt_stop() {
    let _shared = crate::BROKER.read().await;
    let db = postgres().create_database("tokafka").await;
    let admin = db.connect().await;
    admin
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, v text);
             INSERT INTO t SELECT i, 'r' || i FROM generate_series(1, 2000) i",
        )
        .await
        .unwrap();
    let prefix = unique_name("pgk");
    let connector = unique_name("pg-kafka");
    let offsets = Arc::new(MemoryOffsetStore::new());
    let partitions = [("topic.creation.default.partitions", "3")];

    // First instance: the snapshot, then stopped abruptly inside a large transaction.
    let pipeline = pg_to_kafka(&db, &connector, &prefix, offsets.clone(), &[], &partitions).await;
    let metrics = pipeline.metrics();
    let task = tokio::spawn(pipeline.run(CancellationToken::new()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while metrics.events_durable.load(Ordering::Relaxed) < 2001 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "snapshot not durable"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    admin
        .batch_execute("INSERT INTO t SELECT i, 'big' FROM generate_series(10001, 60000) i")
        .await
        .unwrap();
    while metrics.events_received.load(Ordering::Relaxed) < 2001 + 20_000 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "transaction not flowing"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    task.abort();
    let _ = task.await;

    // Second instance, same connector: fences the first, skips what Kafka already has.
    admin
        .batch_execute("INSERT INTO t VALUES (-1, 'last'); UPDATE t SET v = 'u' WHERE id = 1; DELETE FROM t WHERE id = 2")
        .await
        .unwrap();
    let pipeline = pg_to_kafka(&db, &connector, &prefix, offsets, &[], &partitions).await;
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(pipeline.run(shutdown.clone()));
    // Wait for the last change, then stop: every transaction is committed.
    let topic = format!("{prefix}.public.t");
    let t = topic.clone();
    tokio::task::spawn_blocking(move || {
        consume_with(&t, "read_committed", |r| {
            r.iter()
                .any(|c| c.value.as_deref().and_then(after_id) == Some(-1))
                && r.iter().any(|c| c.value.is_none())
        })
    })
    .await
    .unwrap();
    shutdown.cancel();
    task.await.unwrap().unwrap();
    // The whole log as consumers see it: read_committed readers never see the records
    // of the first instance's open transaction, which its fencing aborted (they are in
    // the log, as every aborted record is: a read_uncommitted reader would see them).
    let records = tokio::task::spawn_blocking(move || {
        consume_with(&topic, "read_committed", |r| r.len() >= 52_004)
    })
    .await
    .unwrap();

    let mut per_id: BTreeMap<i64, usize> = BTreeMap::new();
    for c in &records {
        if let Some(id) = c.value.as_deref().and_then(after_id) {
            *per_id.entry(id).or_insert(0) += 1;
        }
    }
    // Row 1 appears twice (its read and its update); every other row once.
    let repeated: Vec<_> = per_id
        .iter()
        .filter(|(id, n)| **n > 1 && **id != 1)
        .take(5)
        .collect();
    assert!(repeated.is_empty(), "repeated: {repeated:?}");
    assert_eq!(per_id.get(&1), Some(&2));
    assert_eq!(per_id.len(), 2000 + 50_000 + 1, "every row arrived");
    assert_eq!(
        records.len(),
        52_004,
        "rows, the update, the delete and its tombstone"
    );
    // Per partition, positions only increase.
    let mut last: BTreeMap<i32, SourcePosition> = BTreeMap::new();
    for c in &records {
        let position =
            SourcePosition::from_json(c.position.as_deref().unwrap(), &[&POSTGRES_POSITIONS])
                .unwrap();
        if let Some(previous) = last.get(&c.partition) {
            assert!(position >= *previous, "partition {} went back", c.partition);
        }
        last.insert(c.partition, position);
    }
    // The delete and its tombstone, keyed.
    assert!(
        records
            .iter()
            .any(|c| c.value.is_none() && c.key.as_deref() == Some(r#"{"id":2}"#))
    );
}

fn table() -> Arc<TableSchema> {
    Arc::new(
        TableSchema::new(
            TableId::new("public", "fence"),
            SchemaVersion(1),
            vec![ColumnSchema::new("id", DataType::Int32, false)],
            &["id"],
        )
        .unwrap(),
    )
}

fn insert(id: i32) -> ChangeEvent {
    let seq = u64::try_from(id).unwrap();
    ChangeEvent {
        position: SourcePosition::from(PgPosition {
            snapshot_cursor: None,
            lsn_commit: Lsn(100 + seq),
            lsn: Lsn(100 + seq),
            seq: 0,
            tx_id: None,
            snapshot: false,
        }),
        source_ts_us: Some(1_700_000_000_000_000),
        kind: EventKind::Insert {
            table: table(),
            after: vec![Value::Int32(id)],
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_fences_the_first() {
    let _shared = crate::BROKER.read().await;
    let connector = unique_name("fence");
    let prefix = unique_name("fence");
    let mut first = json_sink(&connector, &prefix, &[]).await.unwrap();
    let handle = first.write(EventBatch::new(vec![insert(1)])).await.unwrap();
    first.flush().await.unwrap();
    handle.wait().await.unwrap();

    let mut second = json_sink(&connector, &prefix, &[]).await.unwrap();
    // The first may still accept into its queue, but cannot commit.
    let outcome = match first.write(EventBatch::new(vec![insert(2)])).await {
        Ok(handle) => match first.flush().await {
            Ok(()) => handle.wait().await,
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    let err = outcome.expect_err("a fenced producer must not commit");
    assert_eq!(err.class(), ErrorClass::Definite, "{err}");
    assert!(err.to_string().contains("fenced"), "{err}");

    // The second writes on; a restart of it skips what it already wrote.
    let handle = second
        .write(EventBatch::new(vec![insert(3)]))
        .await
        .unwrap();
    second.flush().await.unwrap();
    handle.wait().await.unwrap();
    drop(second);
    let mut third = json_sink(&connector, &prefix, &[]).await.unwrap();
    let handle = third
        .write(EventBatch::new(vec![insert(3), insert(4)]))
        .await
        .unwrap();
    third.flush().await.unwrap();
    handle.wait().await.unwrap();
    assert_eq!(third.sink().skipped(), 1);

    let topic = format!("{prefix}.public.fence");
    let records = tokio::task::spawn_blocking(move || {
        consume(&topic, |r| {
            r.iter()
                .any(|c| c.value.as_deref().and_then(after_id) == Some(4))
        })
    })
    .await
    .unwrap();
    let ids: Vec<i64> = records
        .iter()
        .filter_map(|c| c.value.as_deref().and_then(after_id))
        .collect();
    // Id 2 was never committed: read_committed readers see 1, 3 and 4, once each.
    assert_eq!(ids, [1, 3, 4]);
}

/// A zombie: an instance whose records of an open transaction are in the log when it
/// stops answering (killed, or stuck, but its producer never aborts). Its successor
/// fences it; read_committed readers never see those records, though they are in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zombies_open_transaction_is_never_visible() {
    let _shared = crate::BROKER.read().await;
    let connector = unique_name("zombie");
    let prefix = unique_name("zombie");
    let topic = format!("{prefix}.public.fence");
    let mut zombie = json_sink(&connector, &prefix, &[]).await.unwrap();
    let handle = zombie
        .write(EventBatch::new(vec![insert(1)]))
        .await
        .unwrap();
    zombie.flush().await.unwrap();
    handle.wait().await.unwrap();
    // Produced into an open transaction, never committed: wait until the broker has it.
    let _open = zombie
        .write(EventBatch::new(vec![insert(2)]))
        .await
        .unwrap();
    let t = topic.clone();
    let logged = tokio::task::spawn_blocking(move || {
        consume_with(&t, "read_uncommitted", |r| {
            r.iter()
                .any(|c| c.value.as_deref().and_then(after_id) == Some(2))
        })
    })
    .await
    .unwrap();
    assert!(
        logged
            .iter()
            .any(|c| c.value.as_deref().and_then(after_id) == Some(2)),
        "the open transaction's record never reached the log"
    );
    // The zombie's producer stays alive, as a stuck process's would; a successor starts.
    let mut successor = json_sink(&connector, &prefix, &[]).await.unwrap();
    let handle = successor
        .write(EventBatch::new(vec![insert(3)]))
        .await
        .unwrap();
    successor.flush().await.unwrap();
    handle.wait().await.unwrap();
    let committed = tokio::task::spawn_blocking(move || {
        consume(&topic, |r| {
            r.iter()
                .any(|c| c.value.as_deref().and_then(after_id) == Some(3))
        })
    })
    .await
    .unwrap();
    let ids: Vec<i64> = committed
        .iter()
        .filter_map(|c| c.value.as_deref().and_then(after_id))
        .collect();
    assert_eq!(
        ids,
        [1, 3],
        "read_committed readers see the zombie's open record"
    );
    // And the zombie cannot commit it now.
    assert!(zombie.flush().await.is_err(), "a fenced zombie committed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_land_where_the_java_partitioner_puts_them() {
    let _shared = crate::BROKER.read().await;
    let topic = unique_name("murmur");
    let servers = broker().bootstrap_servers();
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        ClientConfig::new()
            .set("bootstrap.servers", &servers)
            .create()
            .unwrap();
    admin
        .create_topics(
            &[rdkafka::admin::NewTopic::new(
                &topic,
                6,
                rdkafka::admin::TopicReplication::Fixed(1),
            )],
            &rdkafka::admin::AdminOptions::new(),
        )
        .await
        .unwrap();
    // librdkafka's murmur2 partitioner is the Java client's.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &servers)
        .set("partitioner", "murmur2")
        .create()
        .unwrap();
    for i in 0..60 {
        let key = format!("{{\"id\":{i}}}");
        producer
            .send(
                FutureRecord::to(&topic).key(&key).payload("x"),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }
    let t = topic.clone();
    let records = tokio::task::spawn_blocking(move || consume(&t, |r| r.len() >= 60))
        .await
        .unwrap();
    assert_eq!(records.len(), 60);
    let any = SourcePosition::from(PgPosition {
        snapshot_cursor: None,
        lsn_commit: Lsn(0),
        lsn: Lsn(0),
        seq: 0,
        tx_id: None,
        snapshot: false,
    });
    for c in &records {
        let key = c.key.as_deref().unwrap();
        assert_eq!(
            partition(Some(key.as_bytes()), &any, 6),
            c.partition,
            "{key}"
        );
    }
    let used: std::collections::BTreeSet<i32> = records.iter().map(|c| c.partition).collect();
    assert!(used.len() > 3);
}

fn event(lsn: u64, seq: u64, kind: EventKind) -> ChangeEvent {
    ChangeEvent {
        position: SourcePosition::from(PgPosition {
            snapshot_cursor: None,
            lsn_commit: Lsn(lsn),
            lsn: Lsn(lsn),
            seq,
            tx_id: Some(7),
            snapshot: false,
        }),
        source_ts_us: Some(1_700_000_000_000_000),
        kind,
    }
}

/// Transaction BEGIN/END records and heartbeats go in the same Kafka transactions as the
/// data, each with its position header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_metadata_and_heartbeats_share_the_transaction() {
    let _shared = crate::BROKER.read().await;
    let connector = unique_name("sidechannels");
    let prefix = unique_name("side");
    let formatter = EnvelopeFormatter::new(
        EnvelopeConfig::from_properties(
            &POSTGRES_SOURCE_BLOCK,
            &props(&[
                ("topic.prefix", prefix.as_str()),
                ("database.dbname", "shop"),
                ("provide.transaction.metadata", "true"),
            ]),
        )
        .unwrap(),
    );
    let mut sink = KafkaSink::start(
        sink_config(&connector, &[]),
        RecordEncoder::Json {
            schemas_enable: false,
        },
        &POSTGRES_POSITIONS,
    )
    .await
    .map(|sink| RecordStage::new(formatter, TransformChain::default(), sink))
    .unwrap();
    let boundary = |count| outflow_core::TransactionBoundary {
        id: "7:100".into(),
        event_count: count,
    };
    let batch = EventBatch::new(vec![
        event(100, 0, EventKind::Begin(boundary(0))),
        event(
            100,
            1,
            EventKind::Insert {
                table: table(),
                after: vec![Value::Int32(1)],
            },
        ),
        event(100, 2, EventKind::Commit(boundary(2))),
        event(100, 1 << 33, EventKind::Heartbeat),
    ]);
    let handle = sink.write(batch).await.unwrap();
    sink.flush().await.unwrap();
    handle.wait().await.unwrap();

    for (topic, expected) in [
        (format!("{prefix}.transaction"), 2),
        (format!("__debezium-heartbeat.{prefix}"), 1),
        (format!("{prefix}.public.fence"), 1),
    ] {
        let t = topic.clone();
        let records = tokio::task::spawn_blocking(move || consume(&t, |r| r.len() >= expected))
            .await
            .unwrap();
        assert_eq!(records.len(), expected, "{topic}");
        assert!(records.iter().all(|r| r.position.is_some()), "{topic}");
        if topic.ends_with(".transaction") {
            let statuses: Vec<String> = records
                .iter()
                .map(|r| {
                    let v: serde_json::Value =
                        serde_json::from_str(r.value.as_deref().unwrap()).unwrap();
                    v["status"].as_str().unwrap_or_default().to_owned()
                })
                .collect();
            assert_eq!(statuses, ["BEGIN", "END"]);
        }
    }
}

/// The broker stops answering (SIGSTOP) for 10 s while Postgres changes flow: the
/// pipeline waits (the source stops reading) and delivers everything exactly once after
/// SIGCONT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_delays_but_loses_nothing() {
    let _alone = crate::BROKER.write().await;
    let db = postgres().create_database("outage").await;
    let admin = db.connect().await;
    admin
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
        .await
        .unwrap();
    let prefix = unique_name("outage");
    let connector = unique_name("outage");
    let pipeline = pg_to_kafka(
        &db,
        &connector,
        &prefix,
        Arc::new(MemoryOffsetStore::new()),
        &[("snapshot.mode", "no_data")],
        &[],
    )
    .await;
    let metrics = pipeline.metrics();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(pipeline.run(shutdown.clone()));
    // Changes count from the slot's consistent point (its confirmed_flush_lsn is set).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let consistent = admin
            .query_opt(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND confirmed_flush_lsn IS NOT NULL",
                &[&db.name()],
            )
            .await
            .unwrap()
            .is_some();
        if consistent {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "slot not consistent"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    admin
        .batch_execute("INSERT INTO t VALUES (1, 'warm-up')")
        .await
        .unwrap();
    while metrics.events_durable.load(Ordering::Relaxed) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "nothing delivered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let warm_up = 1;

    let pid = i32::try_from(broker().pid()).unwrap();
    let signal = |sig: &str| {
        std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap()
    };
    assert!(signal("-STOP").success());
    let writer = {
        let admin = db.connect().await;
        tokio::spawn(async move {
            for chunk in 0..20 {
                let from = 1000 + chunk * 1000;
                admin
                    .batch_execute(&format!(
                        "INSERT INTO t SELECT i, 'during' FROM generate_series({from}, {}) i",
                        from + 999
                    ))
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(10)).await;
    let durable_during = metrics.events_durable.load(Ordering::Relaxed);
    assert!(signal("-CONT").success());
    writer.await.unwrap();
    admin
        .batch_execute("INSERT INTO t VALUES (-1, 'last')")
        .await
        .unwrap();
    // Every statement is a transaction: begin + rows + commit.
    let expected_events = 3 * u64::try_from(warm_up).unwrap() + 20 * 1002 + 3;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while metrics.events_durable.load(Ordering::Relaxed) < expected_events {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {expected_events} events durable",
            metrics.events_durable.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    task.await.unwrap().unwrap();
    // Read once the producer is done (a reader racing a transactional producer on the lab
    // broker stalls; docs/testing.md).
    let expected_rows = usize::try_from(warm_up).unwrap() + 20_000 + 1;
    let topic = format!("{prefix}.public.t");
    let records =
        tokio::task::spawn_blocking(move || consume(&topic, |r| r.len() >= expected_rows))
            .await
            .unwrap();

    let mut per_id: BTreeMap<i64, usize> = BTreeMap::new();
    for c in &records {
        if let Some(id) = c.value.as_deref().and_then(after_id) {
            *per_id.entry(id).or_insert(0) += 1;
        }
    }
    assert!(per_id.values().all(|n| *n == 1), "a row repeated");
    assert_eq!(per_id.len(), expected_rows, "rows lost");
    assert_eq!(records.len(), expected_rows);
    println!(
        "outage: {durable_during} events durable while the broker was stopped; {} rows after",
        per_id.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_topic_store_round_trips_and_reads_debezium_offsets() {
    let _shared = crate::BROKER.read().await;
    use outflow_core::{CommitOutcome, OffsetStore};
    use outflow_kafka::KafkaOffsetStore;
    let topic = unique_name("outflow-offsets");
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", broker().bootstrap_servers());
    let store = KafkaOffsetStore::open(
        client.clone(),
        &topic,
        "dbserver1",
        1,
        vec![&POSTGRES_POSITIONS],
    )
    .await
    .unwrap();
    assert_eq!(store.load("inventory").await.unwrap(), None);
    let at = |lsn: u64| {
        SourcePosition::from(PgPosition {
            snapshot_cursor: None,
            lsn_commit: Lsn(lsn),
            lsn: Lsn(lsn),
            seq: 2,
            tx_id: Some(9),
            snapshot: false,
        })
    };
    assert_eq!(
        store.commit("inventory", &at(100)).await.unwrap(),
        CommitOutcome::Advanced
    );
    assert_eq!(
        store.commit("inventory", &at(200)).await.unwrap(),
        CommitOutcome::Advanced
    );
    assert_eq!(
        store.commit("inventory", &at(150)).await.unwrap(),
        CommitOutcome::Stale
    );
    drop(store);
    // A Debezium worker's offset for another connector, in the same topic.
    let producer: FutureProducer = client.create().unwrap();
    producer
        .send(
            FutureRecord::to(&topic)
                .partition(0)
                .key(r#"["legacy",{"server":"dbserver1"}]"#)
                .payload(r#"{"lsn_proc":500,"lsn_commit":600,"lsn":500,"txId":3,"ts_usec":1}"#),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    let store = KafkaOffsetStore::open(client, &topic, "dbserver1", 1, vec![&POSTGRES_POSITIONS])
        .await
        .unwrap();
    assert_eq!(store.load("inventory").await.unwrap(), Some(at(200)));
    let Some(legacy) = store
        .load("legacy")
        .await
        .unwrap()
        .as_ref()
        .and_then(PgPosition::of)
    else {
        panic!("the Debezium offset was not read")
    };
    assert_eq!((legacy.lsn_commit, legacy.lsn), (Lsn(600), Lsn(500)));
}

/// Postgres → Kafka in Avro through the lab registry: a snapshot of 20,000 rows (or
/// `OUTFLOW_AVRO_ROWS`, for a throughput figure in a release build), decoded by a reader
/// that knows only the registry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_to_kafka_avro_through_the_registry() {
    let _shared = crate::BROKER.read().await;
    use crate::avro_registry::{decode, field, unwrap_union};
    use apache_avro::types::Value as Avro;
    use outflow_interchange::encoding::http_registry::{HttpSchemaRegistry, RegistryClientConfig};
    use outflow_interchange::encoding::registry::{AvroSerializer, SubjectNameStrategy};

    let rows: usize = std::env::var("OUTFLOW_AVRO_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let db = postgres().create_database("avro").await;
    let admin = db.connect().await;
    admin
        .batch_execute(
            &"CREATE TABLE t (id int PRIMARY KEY, name text NOT NULL, price numeric(8,2));
             INSERT INTO t SELECT i, 'n' || i, i / 100.0 FROM generate_series(1, $ROWS) i"
                .replace("$ROWS", &rows.to_string()),
        )
        .await
        .unwrap();
    let prefix = unique_name("avro");
    let connector = unique_name("avro");
    let registry_url = outflow_testkit::registry().url();
    let serializer = AvroSerializer::new(
        HttpSchemaRegistry::new(
            RegistryClientConfig::from_properties(
                "",
                &props(&[("schema.registry.url", registry_url.as_str())]),
            )
            .unwrap(),
        )
        .unwrap(),
        SubjectNameStrategy::TopicName,
        SubjectNameStrategy::TopicName,
    );
    let sink = KafkaSink::start(
        sink_config(&connector, &[]),
        RecordEncoder::Avro(Box::new(serializer)),
        &POSTGRES_POSITIONS,
    )
    .await
    .map(|sink| RecordStage::new(formatter(&prefix), TransformChain::default(), sink))
    .unwrap();
    let source = pg_source(&db, &[("snapshot.mode", "initial_only")]);
    let started = std::time::Instant::now();
    // initial_only: the pipeline ends by itself once the snapshot is durable.
    Pipeline::new(
        connector,
        source,
        sink,
        Arc::new(MemoryOffsetStore::new()),
        PipelineConfig::default(),
    )
    .run(CancellationToken::new())
    .await
    .unwrap();
    let elapsed = started.elapsed();
    println!(
        "Avro snapshot: {rows} rows durable in Kafka in {elapsed:?} ({:.0} rows/s)",
        rows as f64 / elapsed.as_secs_f64()
    );
    let topic = format!("{prefix}.public.t");
    let records = tokio::task::spawn_blocking(move || consume(&topic, |r| r.len() >= rows))
        .await
        .unwrap();
    assert_eq!(records.len(), rows);
    for record in [&records[0], &records[rows - 1]] {
        let value = decode(record.raw_value.as_deref().unwrap()).await;
        let after = unwrap_union(field(&value, "after"));
        let Avro::Int(id) = field(after, "id") else {
            panic!("id: {after:?}")
        };
        assert_eq!(
            unwrap_union(field(after, "name")),
            &Avro::String(format!("n{id}"))
        );
        assert_eq!(field(&value, "op"), &Avro::String("r".into()));
    }
}
