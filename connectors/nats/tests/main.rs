//! The NATS JetStream sink against the lab's nats-server: the sink conformance suite, and
//! what a NATS consumer sees (subjects, headers).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failing loudly is the point.

use std::time::Duration;

use async_nats::jetstream;
use outflow_core::config::properties as props;
use outflow_core::{EventBatch, Sink, SourcePosition, fixtures};
use outflow_interchange::RecordStage;
use outflow_interchange::encoding::RecordEncoder;
use outflow_interchange::envelope::{EnvelopeConfig, EnvelopeFormatter};
use outflow_interchange::transforms::TransformChain;
use outflow_nats::{NatsSink, NatsSinkConfig};
use outflow_postgres::source_block::POSTGRES_SOURCE_BLOCK;
use outflow_testkit::sink_conformance::SinkUnderTest;
use outflow_testkit::{nats, unique_name};

/// One connector's stream on the lab's server, with a unique topic prefix.
struct Harness {
    connector: String,
    prefix: String,
}

impl Harness {
    fn new() -> Self {
        Self {
            connector: unique_name("nats-sink"),
            prefix: unique_name("natsp"),
        }
    }

    fn config(&self) -> NatsSinkConfig {
        NatsSinkConfig::from_properties(
            &self.connector,
            &props(&[
                ("nats.url", nats().url().as_str()),
                ("topic.prefix", self.prefix.as_str()),
            ]),
        )
        .unwrap()
    }

    async fn stream(&self) -> jetstream::stream::Stream {
        let client = async_nats::connect(nats().url()).await.unwrap();
        jetstream::new(client)
            .get_stream(&self.config().stream)
            .await
            .unwrap()
    }

    /// Every message of the stream, in stream order.
    async fn messages(&self) -> Vec<jetstream::message::StreamMessage> {
        let mut stream = self.stream().await;
        let last = stream.info().await.unwrap().state.last_sequence;
        let mut out = Vec::new();
        for seq in 1..=last {
            if let Ok(message) = stream.get_raw_message(seq).await {
                out.push(message);
            }
        }
        out
    }
}

fn after_id(payload: &[u8]) -> Option<i64> {
    let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
    v.get("after")?.get("id")?.as_i64()
}

impl SinkUnderTest for Harness {
    type Sink = RecordStage<NatsSink>;

    async fn open(&self, _committed: Option<SourcePosition>) -> Self::Sink {
        let formatter = EnvelopeFormatter::new(
            EnvelopeConfig::from_properties(
                &POSTGRES_SOURCE_BLOCK,
                &props(&[
                    ("topic.prefix", self.prefix.as_str()),
                    ("database.dbname", "shop"),
                ]),
            )
            .unwrap(),
        );
        let sink = NatsSink::start(
            self.config(),
            RecordEncoder::Json {
                schemas_enable: false,
            },
            &outflow_core::SEQUENCE,
        )
        .await
        .unwrap();
        RecordStage::new(formatter, TransformChain::default(), sink)
    }

    async fn stored_ids(&self, at_least: usize) -> Vec<i64> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let ids: Vec<i64> = self
                .messages()
                .await
                .iter()
                .filter_map(|m| after_id(&m.payload))
                .collect();
            if ids.len() >= at_least || tokio::time::Instant::now() > deadline {
                return ids;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn server_pid(&self) -> Option<u32> {
        Some(nats().pid())
    }
}

outflow_testkit::sink_conformance_tests!(Harness::new());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subjects_are_topics_and_headers_carry_position_and_key() {
    let harness = Harness::new();
    let mut sink = harness.open(None).await;
    let handle = sink
        .write(EventBatch::new(fixtures::inserts(1, 3)))
        .await
        .unwrap();
    sink.flush().await.unwrap();
    handle.wait().await.unwrap();
    let messages = harness.messages().await;
    assert_eq!(messages.len(), 3);
    let first = &messages[0];
    assert_eq!(
        first.subject.as_str(),
        format!("{}.public.bench", harness.prefix)
    );
    let header = |name: &str| {
        first
            .headers
            .get(name)
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default()
    };
    assert_eq!(header("outflow.key"), r#"{"id":1}"#);
    assert_eq!(header("outflow.record"), "0");
    assert_eq!(
        SourcePosition::from_json(&header("outflow.position"), &[&outflow_core::SEQUENCE]).unwrap(),
        fixtures::inserts(1, 1)[0].position
    );
    let message_id = first
        .headers
        .get(async_nats::header::NATS_MESSAGE_ID)
        .map(|v| v.as_str().to_owned())
        .unwrap_or_default();
    assert!(
        message_id.starts_with(&format!("{}:", harness.config().stream)),
        "{message_id}"
    );
    assert_eq!(after_id(&first.payload), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_stream_is_used_as_it_is() {
    let harness = Harness::new();
    // The user's stream, made beforehand with its own settings.
    let client = async_nats::connect(nats().url()).await.unwrap();
    let js = jetstream::new(client);
    js.create_stream(jetstream::stream::Config {
        name: harness.config().stream,
        subjects: vec![format!("{}.>", harness.prefix)],
        max_messages: 10_000,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut sink = harness.open(None).await;
    let handle = sink
        .write(EventBatch::new(fixtures::inserts(1, 2)))
        .await
        .unwrap();
    sink.flush().await.unwrap();
    handle.wait().await.unwrap();
    let mut stream = harness.stream().await;
    let info = stream.info().await.unwrap();
    assert_eq!(info.config.max_messages, 10_000, "the stream was changed");
    assert_eq!(info.state.messages, 2);
}
