//! The sink conformance suite (outflow-testkit) on the lake: local files, Avro.

use outflow_core::SourcePosition;
use outflow_interchange::RecordStage;
use outflow_interchange::transforms::TransformChain;
use outflow_lake::{LakeSink, LakeSinkConfig};
use outflow_testkit::sink_conformance::SinkUnderTest;

use crate::{field, formatter, props, read_avro, visible_files};

struct Harness {
    root: tempfile::TempDir,
}

impl Harness {
    fn new() -> Self {
        Self {
            root: tempfile::tempdir().unwrap(),
        }
    }
}

impl SinkUnderTest for Harness {
    type Sink = RecordStage<LakeSink>;

    async fn open(&self, committed: Option<SourcePosition>) -> Self::Sink {
        let path = self.root.path().to_str().unwrap();
        let config =
            LakeSinkConfig::from_properties("conformance", &props(&[("lake.path", path)])).unwrap();
        RecordStage::new(
            formatter("conf"),
            TransformChain::default(),
            LakeSink::start(config, committed).await.unwrap(),
        )
    }

    async fn stored_ids(&self, _at_least: usize) -> Vec<i64> {
        // Durable files are visible at once: nothing to wait for.
        read_avro(&visible_files(self.root.path()))
            .iter()
            .map(|r| match field(field(r, "after"), "id") {
                apache_avro::types::Value::Int(id) => i64::from(*id),
                other => panic!("id is {other:?}"),
            })
            .collect()
    }
}

outflow_testkit::sink_conformance_tests!(Harness::new());
