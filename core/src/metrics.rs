//! Metric families a connector crate exposes: what the worker's `/metrics` renders.
//!
//! Each source and sink crate counts into its own atomics and describes them as
//! [`MetricSample`]s when asked (at a scrape or a status request, never per event). The
//! worker renders the Prometheus text; it knows no counter by name. Sources implement
//! [`crate::connector::SourceMetrics`], sinks [`SinkMetrics`].

use std::any::Any;
use std::fmt;
use std::sync::Arc;

/// The kind of a Prometheus metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up (until the worker restarts).
    Counter,
    /// Goes up and down.
    Gauge,
}

impl MetricKind {
    /// The name Prometheus' text format uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
        }
    }
}

/// One value of one metric family, for one connector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricSample {
    /// Family name (`outflow_<source>_…`).
    pub name: &'static str,
    /// Counter or gauge.
    pub kind: MetricKind,
    /// One sentence on what is counted.
    pub help: &'static str,
    /// The value (`f64::INFINITY` where a limit is absent).
    pub value: f64,
}

/// The counters of type `T` that `shared` holds, or fresh ones when it holds another
/// type's (a plugin handed counters it did not make counts into its own; it never
/// panics). How a plugin finds its own counters in what the worker keeps for it.
pub fn own_counters<T: Any + Send + Sync + Default>(shared: Arc<dyn Any + Send + Sync>) -> Arc<T> {
    shared.downcast::<T>().unwrap_or_default()
}

/// A sink's own counters.
pub trait SinkMetrics: fmt::Debug + Send + Sync + Any {
    /// The counters as a shared `Any`, for the sink that made them to find its own type.
    fn as_any_arc(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;

    /// The sink's metric families and their current values.
    fn samples(&self) -> Vec<MetricSample>;
}

/// Counters of a sink that keeps none.
#[derive(Debug, Default)]
pub struct NoSinkMetrics;

impl SinkMetrics for NoSinkMetrics {
    fn as_any_arc(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }

    fn samples(&self) -> Vec<MetricSample> {
        Vec::new()
    }
}
