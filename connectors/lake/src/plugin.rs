//! The lake's entry in the worker's sink registry (`sink = "lake"`, the default).
//!
//! The worker hands its `lake.path`, `lake.format` and staging dir as defaults under the
//! connector's own `lake.*` and `flush.interval.ms`. The lake writes its own file formats,
//! so it takes no record encoder (and no registry client), and it tells the pipeline to
//! commit offsets at each roll (`flush.interval.ms`), when its files become visible.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use outflow_core::config::PropertyError;
use outflow_core::{BoxedSink, SinkMetrics};
use outflow_interchange::RecordStage;
use outflow_interchange::stage::{SinkPlan, SinkPlugin, StageParts, StartFuture};

use crate::{LakeMetrics, LakeSink, LakeSinkConfig};

/// The lake sink plugin.
#[derive(Debug, Clone, Copy, Default)]
pub struct LakePlugin;

/// A validated lake sink.
#[derive(Debug)]
struct LakePlan(LakeSinkConfig);

impl SinkPlugin for LakePlugin {
    fn name(&self) -> &'static str {
        "lake"
    }

    fn validate(
        &self,
        connector: &str,
        props: &BTreeMap<String, String>,
    ) -> Result<Arc<dyn SinkPlan>, PropertyError> {
        Ok(Arc::new(LakePlan(LakeSinkConfig::from_properties(
            connector, props,
        )?)))
    }

    fn metrics(&self) -> Arc<dyn SinkMetrics> {
        Arc::new(LakeMetrics::default())
    }
}

impl SinkPlan for LakePlan {
    fn start(&self, parts: StageParts) -> StartFuture<'_> {
        Box::pin(async move {
            let metrics = parts.counters::<LakeMetrics>();
            let sink = LakeSink::start(self.0.clone(), parts.committed)
                .await?
                .with_metrics(metrics);
            Ok(BoxedSink::new(RecordStage::new(
                parts.formatter,
                parts.transforms,
                sink,
            )))
        })
    }

    fn checkpoint_interval(&self) -> Option<Duration> {
        Some(self.0.flush_interval)
    }

    fn encodes_records(&self) -> bool {
        false
    }
}
