//! Source connector descriptors: what a source crate tells the worker about itself.
//!
//! The worker knows no database. Each source crate exports one [`SourcePlugin`]: the
//! connector classes it answers to (Debezium's full class names and Kafka Connect's
//! aliases), a pure validation that turns a connector's properties into a
//! [`SourcePlan`], and its own counters behind [`SourceMetrics`]. The daemon keeps a
//! static list of plugins and asks them; a new source is its crate plus one line there.
//!
//! The split follows the worker's lifecycle:
//! - **validate** (on every create, reconfigure and validate request; no I/O): the
//!   properties become a plan or a [`PropertyError`] naming the property;
//! - **metrics** (once per connector in a worker): counters that outlive task restarts;
//! - **build** (once per task attempt): the plan makes a fresh [`BoxedSource`] counting
//!   into those metrics.
//!
//! Dispatch through these traits happens once per connector or per task attempt, never
//! per event: the source inside a [`BoxedSource`] keeps its static per-event code.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use crate::config::PropertyError;
use crate::error::SourceError;
use crate::metrics::MetricSample;
use crate::position::PositionFamily;
use crate::source::{Source, SourceContext};
use crate::source_block::SourceBlock;

/// One connector class a plugin runs.
#[derive(Debug, Clone, Copy)]
pub struct ConnectorClass {
    /// The full class name, as Debezium spells it (`io.debezium.connector.….…Connector`).
    pub name: &'static str,
    /// Other spellings accepted for it: the simple class name, Kafka Connect's alias
    /// (the simple name without `Connector`), outflow's short name.
    pub aliases: &'static [&'static str],
    /// Its Debezium `source` block, whose `connector` (`postgresql`, `mysql`, …) also
    /// names the record shapes the envelope writes for it.
    pub source_block: &'static dyn SourceBlock,
    /// The kind of position its events carry.
    pub positions: &'static dyn PositionFamily,
}

impl PartialEq for ConnectorClass {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for ConnectorClass {}

impl ConnectorClass {
    /// The Debezium `source.connector` value.
    pub fn connector(&self) -> &'static str {
        self.source_block.connector()
    }

    /// True when `class` is this class's full name or one of its aliases.
    pub fn answers_to(&self, class: &str) -> bool {
        self.name == class || self.aliases.contains(&class)
    }
}

/// What the worker gives a source besides the connector's properties.
#[derive(Debug, Clone)]
pub struct SourceEnv {
    /// The connector's name.
    pub connector: String,
    /// A directory of the worker's data dir that is the connector's own, for files
    /// that spill out of memory (large in-progress transactions). The worker empties it
    /// before each task attempt.
    pub spool_dir: PathBuf,
}

/// A source crate's entry in the worker's registry.
pub trait SourcePlugin: fmt::Debug + Send + Sync + 'static {
    /// The classes this plugin runs.
    fn classes(&self) -> &'static [ConnectorClass];

    /// The properties its validation reads (an entry ending in `.` is a prefix): the
    /// worker reports any other property of a connector as accepted but not acted on.
    fn properties(&self) -> &'static [&'static str];

    /// Checks a connector's properties for `class` (one of [`Self::classes`]) and
    /// returns what a task needs to build the source. Pure: no I/O.
    fn validate(
        &self,
        class: &'static ConnectorClass,
        properties: &BTreeMap<String, String>,
        env: &SourceEnv,
    ) -> Result<Arc<dyn SourcePlan>, PropertyError>;

    /// Fresh counters for one connector; they live as long as the connector does in
    /// this worker, across task attempts.
    fn metrics(&self) -> Arc<dyn SourceMetrics>;

    /// Adapts the properties of a Debezium connector that this worker takes over from
    /// Debezium itself (`outflow migrate`): whatever outflow must be told to continue on
    /// the database resources Debezium made, such as its replication slot. Returns one
    /// line per change, for the operator. Pure; none by default.
    fn takeover_from_debezium(&self, properties: &mut BTreeMap<String, String>) -> Vec<String> {
        let _ = properties;
        Vec::new()
    }
}

/// A validated source, ready to be built for each task attempt.
pub trait SourcePlan: fmt::Debug + Send + Sync {
    /// A new source for one task attempt, counting into `metrics` (made by the same
    /// plugin's [`SourcePlugin::metrics`]; a source given another plugin's counters
    /// counts into fresh ones of its own). No I/O: the source connects when it runs.
    fn build(&self, metrics: &Arc<dyn SourceMetrics>) -> BoxedSource;
}

/// How far the source's snapshot has got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapshotProgress {
    /// The snapshot is over (or was never taken) and changes stream.
    pub streaming: bool,
    /// Rows read so far.
    pub rows: u64,
    /// Estimated rows in all (0 when the source cannot estimate).
    pub rows_estimate: u64,
    /// Tables in the snapshot.
    pub tables: u64,
    /// Tables completely read.
    pub tables_done: u64,
}

/// A source's own counters, read when `/metrics` or a status is asked for (never per
/// event).
pub trait SourceMetrics: fmt::Debug + Send + Sync + Any {
    /// The counters as a shared `Any`, for the plugin that made them to find its own
    /// type and hand it to the sources it builds.
    fn as_any_arc(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;

    /// The source's metric families and their current values.
    fn samples(&self) -> Vec<MetricSample>;

    /// Where the snapshot stands.
    fn snapshot(&self) -> SnapshotProgress;
}

type RunFuture<'a> = Pin<Box<dyn Future<Output = Result<(), SourceError>> + Send + 'a>>;

/// The object-safe face of a [`Source`].
trait ErasedSource: Send {
    fn run(&mut self, ctx: SourceContext) -> RunFuture<'_>;
}

impl<S: Source> ErasedSource for S {
    fn run(&mut self, ctx: SourceContext) -> RunFuture<'_> {
        Box::pin(Source::run(self, ctx))
    }
}

/// A [`Source`] behind a pointer, for a worker that picks the database at run time.
/// The one dynamic call is `run`, once per task attempt.
pub struct BoxedSource {
    inner: Box<dyn ErasedSource>,
}

impl fmt::Debug for BoxedSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoxedSource").finish_non_exhaustive()
    }
}

impl BoxedSource {
    /// Boxes `source`.
    pub fn new(source: impl Source) -> Self {
        Self {
            inner: Box::new(source),
        }
    }
}

impl Source for BoxedSource {
    async fn run(&mut self, ctx: SourceContext) -> Result<(), SourceError> {
        self.inner.run(ctx).await
    }
}

/// Every kind of position the classes of `plugins` write, once each (what a reader of
/// stored positions from any of them needs).
pub fn position_families(
    plugins: &[&'static dyn SourcePlugin],
) -> Vec<&'static dyn PositionFamily> {
    let mut families: Vec<&'static dyn PositionFamily> = Vec::new();
    for class in plugins.iter().flat_map(|p| p.classes()) {
        if !families.iter().any(|f| f.tag() == class.positions.tag()) {
            families.push(class.positions);
        }
    }
    families
}

/// The registered plugin and class that answer to `class`, from `plugins`.
pub fn find_class(
    plugins: &[&'static dyn SourcePlugin],
    class: &str,
) -> Option<(&'static dyn SourcePlugin, &'static ConnectorClass)> {
    plugins.iter().find_map(|plugin| {
        plugin
            .classes()
            .iter()
            .find(|c| c.answers_to(class))
            .map(|c| (*plugin, c))
    })
}
