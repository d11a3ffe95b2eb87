//! The pipeline runner: one source, one sink, one offset store, joined by a bounded
//! channel.
//!
//! ```text
//!  Source task ──EventBatch──▶ [bounded mpsc] ──▶ runner ──write──▶ Sink
//!       ▲                                           │  ◀──DurableHandle (in order)
//!       └──────── DurableWatch ◀── OffsetStore::commit ◀┘
//! ```
//!
//! - **Backpressure**: the channel holds at most `channel_capacity` batches and
//!   `channel_events` events, and the runner keeps at most `max_in_flight`
//!   accepted-but-not-durable batches; when any is full the source's `send` waits, so
//!   memory stays bounded whatever the sink's speed. Decoded events are the bulky form
//!   of the data (a sink's encoded bytes are several times smaller), so the event bound
//!   is what keeps a fast source in front of a slower sink from holding tens of
//!   megabytes of them.
//! - **Exactly-once guard**: events at or before the stored resume position are dropped
//!   (sources may resend them after a restart); a position that does not increase
//!   otherwise is a definite [`PipelineError::OutOfOrder`].
//! - **Progress**: a batch's last position is committed to the offset store only after
//!   the sink reported the batch Durable, in write order, and only after that committed
//!   is it published on the [`crate::source::DurableWatch`] for the source to acknowledge
//!   the database. Batches found durable together are committed with one write of the
//!   last one's position, so the stored offset is always at the end of a sink's durable
//!   unit (a Kafka transaction, a lake roll), never inside one.
//! - **Checkpoints**: every `checkpoint_interval` with unflushed batches, when
//!   `max_in_flight` batches wait for durability, and at the end, the runner asks the
//!   sink to flush.
//! - **Merging**: batches queued behind the one received join it (up to 1,024 events),
//!   so a stream of single-row transactions costs one sink write per run of them.
//! - **Shutdown**: cancelling stops the source; batches it already sent are still
//!   written, flushed and committed before `run` returns.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::stream::FuturesOrdered;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::error::{PipelineError, SinkError};
use crate::event::EventBatch;
use crate::offsets::OffsetStore;
use crate::position::SourcePosition;
use crate::sink::Sink;
use crate::source::{DurableWatch, EventSender, Source, SourceContext};

/// Tuning of a pipeline.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Batches that may wait between source and sink.
    pub channel_capacity: usize,
    /// Events that may wait between source and sink, over all waiting batches (a batch
    /// larger than this waits alone).
    pub channel_events: usize,
    /// Batches accepted by the sink and not yet durable.
    pub max_in_flight: usize,
    /// How often accepted batches are flushed to durability (Kafka Connect's
    /// `offset.flush.interval.ms`).
    pub checkpoint_interval: Duration,
    /// Batches queued behind one are merged into it up to this many events
    /// (Debezium's `max.batch.size`).
    pub max_batch_events: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            channel_capacity: 64,
            channel_events: 4096,
            max_in_flight: 64,
            checkpoint_interval: Duration::from_millis(1000),
            max_batch_events: 1024,
        }
    }
}

/// Counters of a running pipeline, shared with the metrics endpoint.
#[derive(Debug, Default)]
pub struct PipelineMetrics {
    /// Events received from the source.
    pub events_received: AtomicU64,
    /// Events dropped because they were at or before the resume position.
    pub events_skipped: AtomicU64,
    /// Events durable in the sink.
    pub events_durable: AtomicU64,
    /// Batches currently accepted but not durable.
    pub batches_in_flight: AtomicU64,
    /// Offset commits that advanced the stored position.
    pub offset_commits: AtomicU64,
    /// Batches durable in the sink.
    pub batches_durable: AtomicU64,
    /// Source transactions (Commit events) durable in the sink.
    pub transactions_durable: AtomicU64,
    /// Batches waiting in the channel between source and sink.
    pub queue_batches: AtomicU64,
    /// Source timestamp (µs since the epoch) of the last durable event that has one.
    pub last_event_source_us: AtomicI64,
    /// Wall-clock time (µs since the epoch) of the last offset commit.
    pub last_commit_us: AtomicI64,
    /// Durable row events per table and operation.
    table_ops: Mutex<BTreeMap<String, OpCounts>>,
}

/// Durable row events of one table, by Debezium operation.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OpCounts {
    /// `c`: inserts.
    pub create: u64,
    /// `u`: updates.
    pub update: u64,
    /// `d`: deletes.
    pub delete: u64,
    /// `r`: snapshot reads.
    pub read: u64,
    /// `t`: truncates.
    pub truncate: u64,
}

impl OpCounts {
    fn add(&mut self, other: &Self) {
        self.create += other.create;
        self.update += other.update;
        self.delete += other.delete;
        self.read += other.read;
        self.truncate += other.truncate;
    }
}

impl PipelineMetrics {
    /// Durable row events per table (`schema.table`) and operation.
    pub fn table_ops(&self) -> BTreeMap<String, OpCounts> {
        self.table_ops
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// What a batch holds, tallied when it is admitted and counted when it is durable.
#[derive(Debug, Default)]
struct BatchSummary {
    events: u64,
    transactions: u64,
    last_source_us: Option<i64>,
    tables: Vec<(Arc<crate::schema::TableSchema>, OpCounts)>,
}

impl BatchSummary {
    fn of(batch: &EventBatch) -> Self {
        use crate::event::EventKind;
        let mut summary = Self {
            events: batch.len() as u64,
            ..Self::default()
        };
        for event in &batch.events {
            if event.source_ts_us.is_some() {
                summary.last_source_us = event.source_ts_us;
            }
            let (table, op): (&Arc<crate::schema::TableSchema>, fn(&mut OpCounts)) =
                match &event.kind {
                    EventKind::Commit(_) => {
                        summary.transactions += 1;
                        continue;
                    }
                    EventKind::Insert { table, .. } => (table, |c| c.create += 1),
                    EventKind::Update { table, .. } => (table, |c| c.update += 1),
                    EventKind::Delete { table, .. } => (table, |c| c.delete += 1),
                    EventKind::Read { table, .. } => (table, |c| c.read += 1),
                    _ => continue,
                };
            // Consecutive events of one table (the common case) share the last entry.
            match summary.tables.last_mut() {
                Some((last, counts)) if Arc::ptr_eq(last, table) => op(counts),
                _ => {
                    let mut counts = OpCounts::default();
                    op(&mut counts);
                    summary.tables.push((Arc::clone(table), counts));
                }
            }
        }
        summary
    }

    fn record(self, metrics: &PipelineMetrics) {
        metrics
            .events_durable
            .fetch_add(self.events, Ordering::Relaxed);
        metrics.batches_durable.fetch_add(1, Ordering::Relaxed);
        metrics
            .transactions_durable
            .fetch_add(self.transactions, Ordering::Relaxed);
        if let Some(ts) = self.last_source_us {
            metrics.last_event_source_us.store(ts, Ordering::Relaxed);
        }
        if !self.tables.is_empty() {
            let mut tables = metrics
                .table_ops
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for (table, counts) in &self.tables {
                tables.entry(table.id.to_string()).or_default().add(counts);
            }
        }
    }
}

/// How a pipeline ended without error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineReport {
    /// The durable position at the end.
    pub durable: Option<SourcePosition>,
}

/// One connector's pipeline.
#[derive(Debug)]
pub struct Pipeline<S, K, O> {
    connector: String,
    source: S,
    sink: K,
    offsets: O,
    config: PipelineConfig,
    metrics: Arc<PipelineMetrics>,
}

impl<S: Source, K: Sink, O: OffsetStore> Pipeline<S, K, O> {
    /// Joins a source, a sink and an offset store under the connector's name (the key
    /// of its offsets).
    pub fn new(
        connector: impl Into<String>,
        source: S,
        sink: K,
        offsets: O,
        config: PipelineConfig,
    ) -> Self {
        Self {
            connector: connector.into(),
            source,
            sink,
            offsets,
            config,
            metrics: Arc::default(),
        }
    }

    /// The pipeline's counters.
    pub fn metrics(&self) -> Arc<PipelineMetrics> {
        Arc::clone(&self.metrics)
    }

    /// Counts into `metrics` (kept by the caller across restarts of the connector).
    #[must_use]
    pub fn with_metrics(mut self, metrics: Arc<PipelineMetrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Runs until the source ends, `shutdown` is cancelled, or something fails.
    pub async fn run(self, shutdown: CancellationToken) -> Result<PipelineReport, PipelineError> {
        let Self {
            connector,
            mut source,
            mut sink,
            offsets,
            config,
            metrics,
        } = self;
        let offsets = Arc::new(offsets);
        let resume = offsets.load(&connector).await?;
        let (tx, mut rx) = mpsc::channel(config.channel_capacity.max(1));
        let (durable_tx, durable_rx) = watch::channel(resume.clone());
        let source_stop = shutdown.child_token();
        let ctx = SourceContext {
            resume_after: resume.clone(),
            events: EventSender::new(tx, config.channel_events),
            durable: DurableWatch::new(durable_rx),
            shutdown: source_stop.clone(),
            resources: crate::source::ResourceLedger::of(Arc::clone(&offsets), &connector),
        };
        let mut source_task = Some(tokio::spawn(async move { source.run(ctx).await }));
        // Stops the source on every exit path, errors included.
        let _stop_source = source_stop.clone().drop_guard();

        let mut in_flight = FuturesOrdered::new();
        let mut last_emitted: Option<SourcePosition> = None;
        let mut durable = resume.clone();
        let mut unflushed = false;
        let mut source_done = false;
        // A batch taken from the channel while merging that must go on its own.
        let mut held: Option<EventBatch> = None;
        let mut ticker = tokio::time::interval(config.checkpoint_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.reset();

        loop {
            if source_done {
                if unflushed {
                    sink.flush().await?;
                    unflushed = false;
                }
                if in_flight.is_empty() {
                    break;
                }
            }
            tokio::select! {
                biased;
                Some(first) = in_flight.next(), if !in_flight.is_empty() => {
                    // Batches that became durable together (one Kafka transaction, one
                    // lake roll) are committed together: one offset write for all, so
                    // the stored offset never lands between them (the lake's recovery
                    // relies on that).
                    let mut resolved = vec![first];
                    while let Some(Some(next)) = in_flight.next().now_or_never() {
                        resolved.push(next);
                    }
                    let mut position = None;
                    for ((last, summary), outcome) in resolved {
                        let outcome: Result<(), SinkError> = outcome;
                        outcome?;
                        metrics.batches_in_flight.fetch_sub(1, Ordering::Relaxed);
                        let summary: BatchSummary = summary;
                        summary.record(&metrics);
                        position = Some(last);
                    }
                    let Some(position): Option<SourcePosition> = position else { continue };
                    if offsets.commit(&connector, &position).await?
                        == crate::offsets::CommitOutcome::Advanced
                    {
                        metrics.offset_commits.fetch_add(1, Ordering::Relaxed);
                        metrics.last_commit_us.store(crate::event::now_us(), Ordering::Relaxed);
                    }
                    tracing::debug!(connector = %connector, position = %position.to_json(), "durable");
                    durable = Some(position.clone());
                    durable_tx.send_replace(Some(position));
                }
                () = shutdown.cancelled(), if !source_stop.is_cancelled() => {
                    tracing::info!(connector = %connector, "stopping pipeline");
                    source_stop.cancel();
                }
                batch = async {
                    match held.take() {
                        Some(batch) => Some(batch),
                        None => rx.recv().await.map(crate::source::QueuedBatch::into_batch),
                    }
                }, if !source_done && in_flight.len() < config.max_in_flight => {
                    let Some(mut batch) = batch else {
                        source_done = true;
                        continue;
                    };
                    // Small batches waiting behind this one (single-row transactions)
                    // join it: one sink write and one in-flight slot for all of them. A
                    // batch that does not continue it in order waits for its own turn
                    // (and its own error), so what came before it still gets written.
                    while batch.len() < config.max_batch_events.max(1) && held.is_none() {
                        match rx.try_recv().map(crate::source::QueuedBatch::into_batch) {
                            Ok(next)
                                if next.events.first().map(|e| &e.position)
                                    > batch.last_position() =>
                            {
                                batch.events.extend(next.events);
                            }
                            Ok(next) => held = Some(next),
                            Err(_) => break,
                        }
                    }
                    metrics.events_received.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    let batch = admit(batch, resume.as_ref(), &mut last_emitted, &metrics)?;
                    metrics.queue_batches.store(rx.len() as u64, Ordering::Relaxed);
                    let Some(last) = batch.last_position().cloned() else { continue };
                    let summary = BatchSummary::of(&batch);
                    let handle = sink.write(batch).await?;
                    metrics.batches_in_flight.fetch_add(1, Ordering::Relaxed);
                    unflushed = true;
                    in_flight.push_back(async move { ((last, summary), handle.wait().await) });
                    // Nothing more is read until a batch is durable: flush now rather
                    // than at the next tick (a sink durable only on flush would
                    // otherwise cap throughput at max_in_flight batches per interval).
                    if in_flight.len() >= config.max_in_flight {
                        sink.flush().await?;
                        unflushed = false;
                        ticker.reset();
                    }
                }
                _ = ticker.tick(), if unflushed => {
                    sink.flush().await?;
                    unflushed = false;
                }
            }
        }

        if let Some(task) = source_task.take() {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e.into()),
                Err(e) => return Err(PipelineError::SourceTask(e.to_string())),
            }
        }
        Ok(PipelineReport { durable })
    }
}

/// Drops events at or before the resume position and checks that the rest increase.
fn admit(
    mut batch: EventBatch,
    resume: Option<&SourcePosition>,
    last_emitted: &mut Option<SourcePosition>,
    metrics: &PipelineMetrics,
) -> Result<EventBatch, PipelineError> {
    let before = batch.len();
    if let (None, Some(resume)) = (last_emitted.as_ref(), resume) {
        batch.events.retain(|e| e.position > *resume);
    }
    metrics
        .events_skipped
        .fetch_add((before - batch.len()) as u64, Ordering::Relaxed);
    for event in &batch.events {
        if let Some(previous) = last_emitted.as_ref()
            && event.position <= *previous
        {
            return Err(PipelineError::OutOfOrder {
                previous: Box::new(previous.clone()),
                next: Box::new(event.position.clone()),
            });
        }
        *last_emitted = Some(event.position.clone());
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Classify, ErrorClass, SourceError};
    use crate::event::{ChangeEvent, EventKind};
    use crate::offsets::MemoryOffsetStore;
    use crate::position::SequenceFamily;
    use crate::sink::{MemorySink, MemorySinkMode};
    use std::sync::Mutex;

    fn pos(n: u64) -> SourcePosition {
        SequenceFamily::at(n, false)
    }

    fn heartbeat(n: u64) -> ChangeEvent {
        ChangeEvent {
            position: pos(n),
            source_ts_us: None,
            kind: EventKind::Heartbeat,
        }
    }

    /// Sends fixed batches, then (optionally) waits for cancellation, recording every
    /// durable position it is told about and how many batches it managed to send.
    #[derive(Clone)]
    struct ScriptedSource {
        batches: Vec<Vec<u64>>,
        wait_for_cancel: bool,
        seen_durable: Arc<Mutex<Vec<SourcePosition>>>,
        sent: Arc<AtomicU64>,
        resume_seen: Arc<Mutex<Option<Option<SourcePosition>>>>,
    }

    impl ScriptedSource {
        fn new(batches: Vec<Vec<u64>>, wait_for_cancel: bool) -> Self {
            Self {
                batches,
                wait_for_cancel,
                seen_durable: Arc::default(),
                sent: Arc::default(),
                resume_seen: Arc::default(),
            }
        }
    }

    impl Source for ScriptedSource {
        async fn run(&mut self, mut ctx: SourceContext) -> Result<(), SourceError> {
            *self.resume_seen.lock().unwrap() = Some(ctx.resume_after.clone());
            for batch in self.batches.clone() {
                let batch = EventBatch::new(batch.into_iter().map(heartbeat).collect());
                tokio::select! {
                    r = ctx.events.send(batch) => {
                        if r.is_err() { return Ok(()) }
                    }
                    () = ctx.shutdown.cancelled() => return Ok(()),
                }
                self.sent.fetch_add(1, Ordering::SeqCst);
            }
            if !self.wait_for_cancel {
                return Ok(());
            }
            loop {
                tokio::select! {
                    d = ctx.durable.changed() => match d {
                        Some(p) => self.seen_durable.lock().unwrap().push(p),
                        None => return Ok(()),
                    },
                    () = ctx.shutdown.cancelled() => return Ok(()),
                }
            }
        }
    }

    fn positions(events: &[ChangeEvent]) -> Vec<SourcePosition> {
        events.iter().map(|e| e.position.clone()).collect()
    }

    #[tokio::test]
    async fn delivers_in_order_and_commits_the_last_durable_position() {
        let sink = MemorySink::new(MemorySinkMode::Immediate);
        let offsets = Arc::new(MemoryOffsetStore::new());
        let source = ScriptedSource::new(vec![vec![1, 2], vec![3], vec![4, 5, 6]], false);
        let pipeline = Pipeline::new(
            "c1",
            source,
            sink.clone(),
            offsets.clone(),
            PipelineConfig::default(),
        );
        let metrics = pipeline.metrics();
        let report = pipeline.run(CancellationToken::new()).await.unwrap();
        assert_eq!(
            positions(&sink.durable()),
            (1..=6).map(pos).collect::<Vec<_>>()
        );
        assert_eq!(report.durable, Some(pos(6)));
        assert_eq!(offsets.load("c1").await.unwrap(), Some(pos(6)));
        assert_eq!(metrics.events_durable.load(Ordering::Relaxed), 6);
        assert_eq!(metrics.batches_in_flight.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn durable_batches_are_counted_per_table_and_operation() {
        let metrics = PipelineMetrics::default();
        let events = crate::fixtures::inserts(0, 5);
        let last_ts = events[4].source_ts_us;
        BatchSummary::of(&EventBatch::new(events)).record(&metrics);
        BatchSummary::of(&EventBatch::new(crate::fixtures::inserts(5, 2))).record(&metrics);
        let ops = metrics.table_ops();
        assert_eq!(ops["public.bench"].create, 7);
        assert_eq!(ops["public.bench"].update, 0);
        assert_eq!(metrics.events_durable.load(Ordering::Relaxed), 7);
        assert_eq!(metrics.batches_durable.load(Ordering::Relaxed), 2);
        assert!(metrics.last_event_source_us.load(Ordering::Relaxed) > last_ts.unwrap());
    }

    #[tokio::test]
    async fn resume_skips_what_is_already_durable() {
        let sink = MemorySink::new(MemorySinkMode::Immediate);
        let offsets = Arc::new(MemoryOffsetStore::new());
        offsets.commit("c1", &pos(4)).await.unwrap();
        let source = ScriptedSource::new(vec![vec![1, 2, 3], vec![4, 5], vec![6]], false);
        let resume_seen = source.resume_seen.clone();
        let pipeline = Pipeline::new(
            "c1",
            source,
            sink.clone(),
            offsets.clone(),
            PipelineConfig::default(),
        );
        let metrics = pipeline.metrics();
        pipeline.run(CancellationToken::new()).await.unwrap();
        assert_eq!(*resume_seen.lock().unwrap(), Some(Some(pos(4))));
        assert_eq!(positions(&sink.durable()), vec![pos(5), pos(6)]);
        assert_eq!(metrics.events_skipped.load(Ordering::Relaxed), 4);
        assert_eq!(offsets.load("c1").await.unwrap(), Some(pos(6)));
    }

    #[tokio::test]
    async fn positions_that_do_not_increase_are_a_definite_error() {
        let sink = MemorySink::new(MemorySinkMode::Immediate);
        let offsets = Arc::new(MemoryOffsetStore::new());
        let source = ScriptedSource::new(vec![vec![1, 2], vec![2, 3]], false);
        let err = Pipeline::new(
            "c1",
            source,
            sink.clone(),
            offsets.clone(),
            PipelineConfig::default(),
        )
        .run(CancellationToken::new())
        .await
        .unwrap_err();
        assert!(matches!(err, PipelineError::OutOfOrder { .. }), "{err}");
        assert_eq!(err.class(), ErrorClass::Definite);
        // What was durable before the fault stays committed; nothing after it.
        assert_eq!(offsets.load("c1").await.unwrap(), Some(pos(2)));
    }

    #[tokio::test(start_paused = true)]
    async fn only_durable_batches_advance_offsets_and_the_source_ack() {
        let sink = MemorySink::new(MemorySinkMode::OnFlush);
        let offsets = Arc::new(MemoryOffsetStore::new());
        let source = ScriptedSource::new(vec![vec![1], vec![2, 3]], true);
        let seen = source.seen_durable.clone();
        let sent = source.sent.clone();
        let config = PipelineConfig {
            checkpoint_interval: Duration::from_secs(60),
            ..PipelineConfig::default()
        };
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(
            Pipeline::new("c1", source, sink.clone(), offsets.clone(), config)
                .run(shutdown.clone()),
        );
        // Wait (on the condition, not a clock) until both batches were accepted.
        while sink.accepted().len() < 3 || sent.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        // Accepted is not durable: nothing committed, nothing acknowledged.
        assert!(sink.durable().is_empty());
        assert_eq!(offsets.load("c1").await.unwrap(), None);
        assert!(seen.lock().unwrap().is_empty());

        // The checkpoint interval passes: the runner flushes; now it is durable.
        tokio::time::advance(Duration::from_secs(61)).await;
        while offsets.load("c1").await.unwrap() != Some(pos(3)) {
            tokio::task::yield_now().await;
        }
        while seen.lock().unwrap().last() != Some(&pos(3)) {
            tokio::task::yield_now().await;
        }
        shutdown.cancel();
        let report = task.await.unwrap().unwrap();
        assert_eq!(report.durable, Some(pos(3)));
        // The source only ever heard of positions that were committed, in order.
        let seen = seen.lock().unwrap().clone();
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
        // Both batches became durable in one flush: one offset write, at the end.
        assert_eq!(seen, vec![pos(3)]);
    }

    type Stalled = (
        MemorySink,
        Arc<MemoryOffsetStore>,
        CancellationToken,
        tokio::task::JoinHandle<Result<PipelineReport, PipelineError>>,
    );

    /// Runs `source` into a sink that holds everything (nothing becomes durable), with
    /// 3 batches in flight and the given channel bounds, until the pipeline has settled.
    async fn run_stalled(source: ScriptedSource, batches: usize, events: usize) -> Stalled {
        let sink = MemorySink::new(MemorySinkMode::OnFlush);
        sink.hold(true);
        let offsets = Arc::new(MemoryOffsetStore::new());
        let config = PipelineConfig {
            channel_capacity: batches,
            channel_events: events,
            max_in_flight: 3,
            checkpoint_interval: Duration::from_secs(3600),
            ..PipelineConfig::default()
        };
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(
            Pipeline::new("c1", source, sink.clone(), offsets.clone(), config)
                .run(shutdown.clone()),
        );
        while sink.accepted().len() < 3 {
            tokio::task::yield_now().await;
        }
        for _ in 0..1000 {
            tokio::task::yield_now().await;
        }
        (sink, offsets, shutdown, task)
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_sink_holds_the_source_back() {
        // A sink that never becomes durable on its own, tiny buffers, many batches.
        let source = ScriptedSource::new((1..=100).map(|n| vec![n]).collect(), true);
        let sent = source.sent.clone();
        let (sink, offsets, shutdown, task) = run_stalled(source, 2, 4096).await;
        // 3 batches in flight (queued ones merge into them) + 2 queued + at most 1
        // being handed over; then nothing moves while nothing becomes durable.
        let accepted = sink.accepted().len();
        assert!(accepted < 100, "accepted {accepted}");
        assert!(
            sent.load(Ordering::SeqCst) <= accepted as u64 + 3,
            "sent {}, accepted {accepted}",
            sent.load(Ordering::SeqCst)
        );
        for _ in 0..1000 {
            tokio::task::yield_now().await;
        }
        assert_eq!(sink.accepted().len(), accepted);
        sink.hold(false);
        shutdown.cancel();
        task.await.unwrap().unwrap();
        // On shutdown whatever was sent is written, flushed and committed.
        let durable = sink.durable();
        assert_eq!(durable.len() as u64, sent.load(Ordering::SeqCst));
        assert_eq!(
            offsets.load("c1").await.unwrap(),
            durable.last().map(|e| e.position.clone())
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_event_budget_bounds_what_waits_in_the_channel() {
        // Room for 100 batches but only 25 events: with the sink stalled, at most two
        // 10-event batches wait in the channel.
        let batches = (0..100u64)
            .map(|b| (b * 10 + 1..=b * 10 + 10).collect())
            .collect();
        let source = ScriptedSource::new(batches, true);
        let sent = source.sent.clone();
        let (sink, _offsets, shutdown, task) = run_stalled(source, 100, 25).await;
        let accepted = sink.accepted().len() as u64;
        let sent_events = sent.load(Ordering::SeqCst) * 10;
        assert!(
            sent_events < 1000,
            "everything was sent: the budget did not hold"
        );
        assert!(
            sent_events <= accepted + 20,
            "sent {sent_events} events, accepted {accepted}"
        );
        sink.hold(false);
        shutdown.cancel();
        task.await.unwrap().unwrap();
        assert_eq!(
            sink.durable().len() as u64,
            sent.load(Ordering::SeqCst) * 10
        );
    }
}
