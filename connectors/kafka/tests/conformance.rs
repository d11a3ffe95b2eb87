//! The sink conformance suite (outflow-testkit) on the Kafka sink and the lab's broker.

use outflow_core::SourcePosition;
use outflow_interchange::RecordStage;
use outflow_kafka::KafkaSink;
use outflow_testkit::sink_conformance::SinkUnderTest;
use outflow_testkit::unique_name;

use crate::sink_live::{after_id, consume, json_sink_of};

struct Harness {
    connector: String,
    prefix: String,
}

impl Harness {
    fn new() -> Self {
        Self {
            connector: unique_name("kafka-conformance"),
            prefix: unique_name("kconf"),
        }
    }
}

impl SinkUnderTest for Harness {
    type Sink = RecordStage<KafkaSink>;

    async fn open(&self, _committed: Option<SourcePosition>) -> Self::Sink {
        json_sink_of(&self.connector, &self.prefix, &[], &outflow_core::SEQUENCE)
            .await
            .unwrap()
    }

    async fn stored_ids(&self, at_least: usize) -> Vec<i64> {
        let topic = format!("{}.public.bench", self.prefix);
        tokio::task::spawn_blocking(move || {
            consume(&topic, |records| records.len() >= at_least)
                .iter()
                .filter_map(|c| c.value.as_deref().and_then(after_id))
                .collect()
        })
        .await
        .unwrap()
    }
}

outflow_testkit::sink_conformance_tests!(Harness::new(), guard = crate::BROKER.read().await);
