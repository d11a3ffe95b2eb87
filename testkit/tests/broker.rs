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
    // Committed records arrive in order. This broker (measured) also returns the aborted
    // record to read_committed readers; the Kafka sink's exactly-once design does not rely
    // on the broker filtering it. Either behaviour is accepted here, nothing else.
    let without_aborted: Vec<&String> = values.iter().filter(|v| *v != "aborted").collect();
    assert_eq!(without_aborted, ["committed", "after"], "{values:?}");
}
