use std::time::Duration;

use outflow_testkit::{CONSUMER_SETTINGS, broker, unique_name};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};

fn config() -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", broker().bootstrap_servers());
    config
}

async fn create_topic(topic: &str) {
    let admin: AdminClient<DefaultClientContext> = config().create().unwrap();
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    for result in results {
        result.unwrap();
    }
}

/// Reads partition 0 of `topic` from the start until the value `last` arrived (or 30 s).
fn read_values(topic: &str, isolation: &str, last: &str) -> Vec<String> {
    let mut config = config();
    config
        .set("group.id", unique_name("smoke-group"))
        .set("isolation.level", isolation);
    for (key, value) in CONSUMER_SETTINGS {
        config.set(*key, *value);
    }
    let consumer: BaseConsumer = config.create().unwrap();
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut values = Vec::new();
    while values.last().is_none_or(|v| v != last) && std::time::Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message.unwrap();
            values
                .push(String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned());
        }
    }
    values
}

#[tokio::test]
async fn produce_and_consume() {
    let topic = unique_name("smoke-plain");
    create_topic(&topic).await;
    let producer: FutureProducer = config().set("enable.idempotence", "true").create().unwrap();
    for i in 0..3 {
        let value = format!("v{i}");
        producer
            .send(
                FutureRecord::to(&topic).key("k").payload(&value),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }
    let values = tokio::task::spawn_blocking(move || read_values(&topic, "read_uncommitted", "v2"))
        .await
        .unwrap();
    assert_eq!(values, ["v0", "v1", "v2"]);
}

#[tokio::test]
async fn transactions_commit_and_abort() {
    let topic = unique_name("smoke-tx");
    create_topic(&topic).await;
    let producer: FutureProducer = config()
        .set("transactional.id", unique_name("smoke-txid"))
        .set("transaction.timeout.ms", "60000")
        .create()
        .unwrap();
    producer.init_transactions(Duration::from_secs(30)).unwrap();

    producer.begin_transaction().unwrap();
    producer
        .send(
            FutureRecord::to(&topic).key("k").payload("committed"),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    producer
        .commit_transaction(Duration::from_secs(30))
        .unwrap();

    producer.begin_transaction().unwrap();
    producer
        .send(
            FutureRecord::to(&topic).key("k").payload("aborted"),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    producer.abort_transaction(Duration::from_secs(30)).unwrap();

    producer.begin_transaction().unwrap();
    producer
        .send(
            FutureRecord::to(&topic).key("k").payload("after"),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    producer
        .commit_transaction(Duration::from_secs(30))
        .unwrap();

    let values =
        tokio::task::spawn_blocking(move || read_values(&topic, "read_committed", "after"))
            .await
            .unwrap();
    // Committed records arrive in order; Kafka hides the aborted one from
    // read_committed readers.
    assert_eq!(values, ["committed", "after"]);
}

/// A broker killed with SIGKILL comes back from its log directory with its topics and
/// their records.
#[tokio::test]
async fn a_killed_broker_restarts_with_its_log() {
    let dedicated = outflow_testkit::dedicated_broker();
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", dedicated.bootstrap_servers());
    let topic = unique_name("smoke-restart");
    let producer: FutureProducer = config.clone().set("acks", "all").create().unwrap();
    producer
        .send(
            FutureRecord::to(&topic).key("k").payload("before"),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    drop(producer);
    eprintln!(
        "kafka {}: started in {:?}, RSS {} MB",
        outflow_testkit::kafka_version(),
        dedicated.started_in(),
        dedicated.rss_bytes().unwrap_or_default() / (1024 * 1024)
    );
    let started = std::time::Instant::now();
    tokio::task::spawn_blocking(|| dedicated.restart(libc::SIGKILL))
        .await
        .unwrap();
    eprintln!("kafka restarted after SIGKILL in {:?}", started.elapsed());
    let consumer: BaseConsumer = config
        .set("group.id", unique_name("smoke-restart-group"))
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(&topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let message = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
                return Some(message.payload().map(<[u8]>::to_vec));
            }
        }
        None
    })
    .await
    .unwrap();
    assert_eq!(message, Some(Some(b"before".to_vec())));
}
