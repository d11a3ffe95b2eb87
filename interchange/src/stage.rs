//! The record stage between the pipeline and a sink.
//!
//! The pipeline hands a sink batches of change events ([`outflow_core::Sink::write`]);
//! what a destination stores are records: the Debezium envelope of each event, after the
//! connector's transforms. That loop (format each event into its records, pass each
//! through the transform chain, hand the survivors on) is the same for every destination,
//! so it lives here once. A destination implements [`RecordSink`]: it takes records one by
//! one, says when a batch's records are durable, and flushes; [`RecordStage`] wraps it
//! into a core [`Sink`].
//!
//! Dispatch is static (`RecordStage<S>` is generic over its sink): no dynamic call per
//! record. The format and transform buffers are kept across events so that a steady stream
//! allocates nothing per event for them.

use std::future::Future;

use outflow_core::{DurableHandle, EventBatch, Sink, SinkError};

use crate::envelope::{EnvelopeFormatter, Record};
use crate::transforms::TransformChain;

/// A destination of formatted records: transport and durability, nothing else.
///
/// Contract: [`RecordSink::put`] accepts a record (it may be buffered, produced into an
/// open transaction, appended to an open file); [`RecordSink::end_batch`] is called once
/// after the records of each batch and returns the handle that resolves when all records
/// put so far are durable (or fails when they cannot become so); [`RecordSink::flush`]
/// makes every accepted record durable soon. Records arrive in the pipeline's order, which
/// is the source's order.
pub trait RecordSink: Send + 'static {
    /// Accepts one record. `commit_us` is its event's commit time (microseconds since the
    /// epoch): the source's timestamp, or the time the batch was formatted when the
    /// source gives none.
    fn put(
        &mut self,
        record: Record,
        commit_us: i64,
    ) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// The records of one batch have all been put: the handle that resolves when they are
    /// durable.
    fn end_batch(&mut self) -> impl Future<Output = Result<DurableHandle, SinkError>> + Send;

    /// Makes every accepted record durable soon (ends the open transaction, rolls the
    /// file); see [`Sink::flush`].
    fn flush(&mut self) -> impl Future<Output = Result<(), SinkError>> + Send;
}

/// A [`RecordSink`] behind the envelope and the transforms: a core [`Sink`].
#[derive(Debug)]
pub struct RecordStage<S> {
    formatter: EnvelopeFormatter,
    transforms: TransformChain,
    sink: S,
    formatted: Vec<Record>,
    transformed: Vec<Record>,
}

impl<S: RecordSink> RecordStage<S> {
    /// Formats with `formatter`, transforms with `transforms`, and hands the records to
    /// `sink`.
    pub fn new(formatter: EnvelopeFormatter, transforms: TransformChain, sink: S) -> Self {
        Self {
            formatter,
            transforms,
            sink,
            formatted: Vec::new(),
            transformed: Vec::new(),
        }
    }

    /// The record sink.
    pub fn sink(&self) -> &S {
        &self.sink
    }

    /// The record sink, mutably.
    pub fn sink_mut(&mut self) -> &mut S {
        &mut self.sink
    }

    async fn put_event_records(&mut self, commit_us: i64) -> Result<(), SinkError> {
        // Taken and put back so the buffers keep their capacity across events.
        let mut formatted = std::mem::take(&mut self.formatted);
        let mut transformed = std::mem::take(&mut self.transformed);
        for record in formatted.drain(..) {
            if self.transforms.is_empty() {
                self.sink.put(record, commit_us).await?;
            } else {
                transformed.clear();
                self.transforms.apply(record, &mut transformed);
                for record in transformed.drain(..) {
                    self.sink.put(record, commit_us).await?;
                }
            }
        }
        self.formatted = formatted;
        self.transformed = transformed;
        Ok(())
    }
}

impl<S: RecordSink> Sink for RecordStage<S> {
    async fn write(&mut self, batch: EventBatch) -> Result<DurableHandle, SinkError> {
        let now_us = outflow_core::now_us();
        for event in &batch.events {
            self.formatted.clear();
            self.formatter
                .format(event, now_us, &mut self.formatted)
                .map_err(|e| {
                    SinkError::definite_with(
                        "putting an event in Debezium's shape",
                        "report this as a bug with the table's definition",
                        e,
                    )
                })?;
            self.put_event_records(event.source_ts_us.unwrap_or(now_us))
                .await?;
        }
        self.sink.end_batch().await
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        self.sink.flush().await
    }
}

/// What the record stage of a connector is made of, handed to a [`SinkPlan`] to start.
#[derive(Debug)]
pub struct StageParts {
    /// The connector's envelope.
    pub formatter: EnvelopeFormatter,
    /// The connector's transforms.
    pub transforms: TransformChain,
    /// The connector's converter.
    pub encoder: crate::encoding::RecordEncoder,
    /// The position the pipeline stored last (`None`: none): where the source resumes.
    pub committed: Option<outflow_core::SourcePosition>,
    /// The connector's position family: how to read back positions the sink stored.
    pub positions: &'static dyn outflow_core::PositionFamily,
    /// The connector's sink counters, made by the plugin's [`SinkPlugin::metrics`] (they
    /// outlive task attempts); a sink given another plugin's counters counts into fresh
    /// ones of its own.
    pub metrics: std::sync::Arc<dyn outflow_core::SinkMetrics>,
}

impl StageParts {
    /// The sink's counters, as the plugin's type `T` (see
    /// [`outflow_core::metrics::own_counters`]).
    pub fn counters<T: std::any::Any + Send + Sync + Default>(&self) -> std::sync::Arc<T> {
        outflow_core::metrics::own_counters(std::sync::Arc::clone(&self.metrics).as_any_arc())
    }
}

/// A future that starts a sink.
pub type StartFuture<'a> =
    std::pin::Pin<Box<dyn Future<Output = Result<outflow_core::BoxedSink, SinkError>> + Send + 'a>>;

/// A destination that registers with the daemon: its name and its validation.
///
/// The daemon's sink registry lists plugins; the worker's `sink = "<name>"` picks one,
/// and every key `<name>.*` of the worker config becomes a default of the connectors'
/// properties of the same name. A new destination implements this (and [`RecordSink`])
/// in its own crate and adds one line to the registry.
pub trait SinkPlugin: std::fmt::Debug + Send + Sync + 'static {
    /// The name the worker config selects it by, also the prefix of its properties.
    fn name(&self) -> &'static str;

    /// Checks the connector's properties (the worker's `<name>.*` merged under the
    /// connector's own); pure. The plan starts the sink later, once per task attempt.
    fn validate(
        &self,
        connector: &str,
        props: &std::collections::BTreeMap<String, String>,
    ) -> Result<std::sync::Arc<dyn SinkPlan>, outflow_core::config::PropertyError>;

    /// Fresh counters for one connector's sink, shown on `/metrics`.
    fn metrics(&self) -> std::sync::Arc<dyn outflow_core::SinkMetrics> {
        std::sync::Arc::new(outflow_core::NoSinkMetrics)
    }
}

/// A validated destination: starts a sink for one task attempt.
pub trait SinkPlan: std::fmt::Debug + Send + Sync {
    /// Connects and returns the sink with its record stage.
    fn start(&self, parts: StageParts) -> StartFuture<'_>;

    /// How often the pipeline should flush the sink and commit offsets, when the sink
    /// decides it (the lake: at each roll); `None`: the connector's
    /// `offset.flush.interval.ms`.
    fn checkpoint_interval(&self) -> Option<std::time::Duration> {
        None
    }

    /// Whether the sink sends records encoded by the connector's converter (so an Avro
    /// converter needs a registry client); `false` for a sink with its own file formats.
    fn encodes_records(&self) -> bool {
        true
    }
}
