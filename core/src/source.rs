//! The [`Source`] trait: a database change stream.
//!
//! A source runs as its own task. The pipeline hands it a [`SourceContext`] with:
//! - the durable position to resume after (`resume_after`): the source restarts its
//!   stream at or before it and may resend events up to it — the pipeline drops every
//!   event at or before it, so resending is safe, skipping is not;
//! - an [`EventSender`], a channel bounded in batches and in events: `send` waits while
//!   the sink is behind, which
//!   is how backpressure reaches the database connection (the source stops reading the
//!   socket, the database buffers WAL/binlog on its side);
//! - a [`DurableWatch`] that the pipeline advances once events are durable in the sink
//!   and recorded in the offset store; only then may the source acknowledge the database
//!   (Postgres `confirmed_flush_lsn`);
//! - a cancellation token: on cancel the source stops and returns `Ok(())`;
//! - a [`ResourceLedger`]: what the connector created outside the store (its replication
//!   slot), recorded before it is created, so that nothing someone else made is ever
//!   dropped or taken over.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::error::{OffsetStoreError, SourceError};
use crate::event::EventBatch;
use crate::position::SourcePosition;

/// The pipeline stopped receiving events (it is shutting down or failed).
#[derive(Debug, thiserror::Error)]
#[error("the pipeline is no longer receiving events")]
pub struct PipelineClosed;

/// Bounded channel end a source sends its batches into.
///
/// The channel is bounded twice: in batches (the channel's capacity) and in events (a
/// budget of permits, one per event, that a batch holds while it waits in the channel
/// and gives back when the pipeline takes it). Batches range from one event (a
/// single-row transaction) to thousands (a snapshot chunk, a bulk statement), so a bound
/// in batches alone either starves small transactions or lets tens of thousands of
/// decoded events wait in memory.
#[derive(Debug, Clone)]
pub struct EventSender {
    tx: mpsc::Sender<QueuedBatch>,
    budget: Arc<Semaphore>,
    budget_events: u32,
}

/// A batch waiting in the channel, holding its share of the event budget.
#[derive(Debug)]
pub(crate) struct QueuedBatch {
    pub(crate) batch: EventBatch,
    _permit: OwnedSemaphorePermit,
}

impl QueuedBatch {
    /// The batch; its events leave the budget.
    pub(crate) fn into_batch(self) -> EventBatch {
        self.batch
    }
}

impl EventSender {
    /// A sender into `tx` whose waiting batches hold at most `budget_events` events
    /// together (a larger batch waits alone).
    pub(crate) fn new(tx: mpsc::Sender<QueuedBatch>, budget_events: usize) -> Self {
        let budget_events = u32::try_from(budget_events.max(1)).unwrap_or(u32::MAX >> 3);
        Self {
            tx,
            budget: Arc::new(Semaphore::new(budget_events as usize)),
            budget_events,
        }
    }

    /// Sends one batch, waiting while the channel or the event budget is full
    /// (backpressure).
    pub async fn send(&self, batch: EventBatch) -> Result<(), PipelineClosed> {
        if batch.is_empty() {
            return Ok(());
        }
        let wanted = u32::try_from(batch.len())
            .unwrap_or(u32::MAX)
            .min(self.budget_events);
        let permit = Arc::clone(&self.budget)
            .acquire_many_owned(wanted)
            .await
            .map_err(|_| PipelineClosed)?;
        self.tx
            .send(QueuedBatch {
                batch,
                _permit: permit,
            })
            .await
            .map_err(|_| PipelineClosed)
    }
}

/// The latest position that is durable in the sink and recorded in the offset store.
#[derive(Debug, Clone)]
pub struct DurableWatch {
    rx: watch::Receiver<Option<SourcePosition>>,
}

impl DurableWatch {
    pub(crate) fn new(rx: watch::Receiver<Option<SourcePosition>>) -> Self {
        Self { rx }
    }

    /// The current durable position.
    pub fn current(&self) -> Option<SourcePosition> {
        self.rx.borrow().clone()
    }

    /// Waits until the durable position changes and returns it; `None` once the
    /// pipeline is gone.
    pub async fn changed(&mut self) -> Option<SourcePosition> {
        self.rx.changed().await.ok()?;
        self.rx.borrow_and_update().clone()
    }
}

/// The connector's records of what it created outside the offset store (a replication
/// slot), so that a source can tell its own resources from another consumer's before it
/// drops or reuses one. Backed by the pipeline's [`crate::OffsetStore`].
#[derive(Clone)]
pub struct ResourceLedger {
    backend: Option<Arc<dyn LedgerBackend>>,
}

impl std::fmt::Debug for ResourceLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceLedger")
            .field("keeps_records", &self.backend.is_some())
            .finish()
    }
}

type LedgerFuture = futures_util::future::BoxFuture<'static, Result<bool, OffsetStoreError>>;

trait LedgerBackend: Send + Sync {
    fn owns(&self, resource: String) -> LedgerFuture;
    fn record(&self, resource: String) -> LedgerFuture;
}

struct StoreLedger<O> {
    store: Arc<O>,
    connector: String,
}

impl<O: crate::OffsetStore> LedgerBackend for StoreLedger<O> {
    fn owns(&self, resource: String) -> LedgerFuture {
        let (store, connector) = (Arc::clone(&self.store), self.connector.clone());
        Box::pin(async move { store.owns_resource(&connector, &resource).await })
    }

    fn record(&self, resource: String) -> LedgerFuture {
        let (store, connector) = (Arc::clone(&self.store), self.connector.clone());
        Box::pin(async move { store.record_resource(&connector, &resource).await })
    }
}

impl ResourceLedger {
    /// A ledger that keeps nothing: no resource is known to be the connector's.
    pub fn none() -> Self {
        Self { backend: None }
    }

    /// The ledger of `connector` in `store`.
    pub fn of<O: crate::OffsetStore>(store: Arc<O>, connector: &str) -> Self {
        Self {
            backend: Some(Arc::new(StoreLedger {
                store,
                connector: connector.to_owned(),
            })),
        }
    }

    /// Whether the connector recorded creating `resource`.
    pub async fn owns(&self, resource: &str) -> Result<bool, OffsetStoreError> {
        match &self.backend {
            Some(backend) => backend.owns(resource.to_owned()).await,
            None => Ok(false),
        }
    }

    /// Records that the connector creates `resource` (call it before creating);
    /// `false` if nothing keeps the record.
    pub async fn record(&self, resource: &str) -> Result<bool, OffsetStoreError> {
        match &self.backend {
            Some(backend) => backend.record(resource.to_owned()).await,
            None => Ok(false),
        }
    }
}

/// What a source gets to run with.
#[derive(Debug)]
pub struct SourceContext {
    /// Durable position from the offset store; `None` on the very first start.
    pub resume_after: Option<SourcePosition>,
    /// Where to send events.
    pub events: EventSender,
    /// Durable progress, for acknowledging the database.
    pub durable: DurableWatch,
    /// Cancelled when the source must stop.
    pub shutdown: CancellationToken,
    /// What the connector created outside the offset store, and recording more.
    pub resources: ResourceLedger,
}

/// A change stream of one database.
pub trait Source: Send + 'static {
    /// Streams events into `ctx.events` until cancelled (then returns `Ok`) or until a
    /// finite source (such as `snapshot.mode=initial_only`) is done. Positions of the
    /// events sent must strictly increase.
    fn run(&mut self, ctx: SourceContext) -> impl Future<Output = Result<(), SourceError>> + Send;
}
