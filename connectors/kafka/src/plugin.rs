//! Kafka's entry in the worker's sink registry (`sink = "kafka"`).
//!
//! The worker's `kafka.*` settings arrive as properties of that name: `kafka.bootstrap.servers`
//! is the cluster, every other `kafka.<key>` a producer setting, which the connector's own
//! `producer.<key>` overrides (Kafka Connect's worker-then-connector order). The
//! connector's `topic.creation.*` and `transaction.max.bytes` pass as they are.

use std::collections::BTreeMap;
use std::sync::Arc;

use outflow_core::BoxedSink;
use outflow_core::config::PropertyError;
use outflow_interchange::RecordStage;
use outflow_interchange::stage::{SinkPlan, SinkPlugin, StageParts, StartFuture};

use crate::{KafkaSink, KafkaSinkConfig};

/// The Kafka sink plugin.
#[derive(Debug, Clone, Copy, Default)]
pub struct KafkaPlugin;

/// A validated Kafka sink.
#[derive(Debug)]
struct KafkaPlan(KafkaSinkConfig);

/// The sink's properties from the worker's `kafka.*` and the connector's own.
fn sink_properties(props: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut sink: BTreeMap<String, String> = props
        .iter()
        .filter_map(|(k, v)| {
            let key = k.strip_prefix("kafka.")?;
            Some(if key == "bootstrap.servers" {
                (key.to_owned(), v.clone())
            } else {
                (format!("producer.{key}"), v.clone())
            })
        })
        .collect();
    for (k, v) in props {
        if k.starts_with("producer.")
            || k.starts_with("topic.creation.")
            || k == "transaction.max.bytes"
        {
            sink.insert(k.clone(), v.clone());
        }
    }
    sink
}

impl SinkPlugin for KafkaPlugin {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn validate(
        &self,
        connector: &str,
        props: &BTreeMap<String, String>,
    ) -> Result<Arc<dyn SinkPlan>, PropertyError> {
        let config =
            KafkaSinkConfig::from_properties(connector, &sink_properties(props)).map_err(|e| {
                if e.property == "bootstrap.servers" {
                    PropertyError {
                        property: "kafka.bootstrap.servers".to_owned(),
                        ..e
                    }
                } else {
                    e
                }
            })?;
        Ok(Arc::new(KafkaPlan(config)))
    }
}

impl SinkPlan for KafkaPlan {
    fn start(&self, parts: StageParts) -> StartFuture<'_> {
        Box::pin(async move {
            let sink = KafkaSink::start(self.0.clone(), parts.encoder, parts.positions).await?;
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
    fn worker_settings_are_defaults_under_the_connectors() {
        let sink = sink_properties(&props(&[
            ("kafka.bootstrap.servers", "b:9092"),
            ("kafka.linger.ms", "5"),
            ("kafka.acks", "all"),
            ("producer.linger.ms", "20"),
            ("topic.creation.default.partitions", "3"),
            ("slot.name", "s"),
        ]));
        assert_eq!(sink["bootstrap.servers"], "b:9092");
        assert_eq!(sink["producer.linger.ms"], "20");
        assert_eq!(sink["producer.acks"], "all");
        assert_eq!(sink["topic.creation.default.partitions"], "3");
        assert!(!sink.contains_key("slot.name"));
        let e = KafkaPlugin.validate("c", &props(&[])).unwrap_err();
        assert_eq!(e.property, "kafka.bootstrap.servers");
    }
}
