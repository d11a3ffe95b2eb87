//! The [`Sink`] trait and explicit durability acknowledgement.
//!
//! Writing a batch has two outcomes at two moments:
//! - **Accepted**: `write` returned `Ok(handle)`. The sink took the batch (it may sit in
//!   a producer queue, an open Kafka transaction or an unfinished file). Nothing about
//!   progress may change yet.
//! - **Durable**: the [`DurableHandle`] resolved `Ok`. The batch survives a crash of
//!   outflow (Kafka committed the transaction; the lake file is fsynced and renamed).
//!   Only now does the pipeline store the batch's last position as the resume point.
//!
//! Handles resolve in the order batches were written. A sink that fails a batch after
//! accepting it resolves the handle with the error; a handle dropped unresolved counts
//! as a transient failure. `write` itself returns `Err` only for immediate dispatch
//! failures. `write` may wait (backpressure) while the sink's own bounded buffers are
//! full; sinks never buffer without bound.

pub mod memory;
pub mod null;

use std::future::Future;

use tokio::sync::oneshot;

use crate::error::SinkError;
use crate::event::EventBatch;

pub use memory::{MemorySink, MemorySinkMode};
pub use null::NullSink;

/// The sink's side of an acknowledgement: resolve it once the batch is durable.
#[derive(Debug)]
pub struct DurableNotifier {
    tx: oneshot::Sender<Result<(), SinkError>>,
}

impl DurableNotifier {
    /// The batch is durable.
    pub fn durable(self) {
        // The pipeline may already be gone; then nobody needs to know.
        let _ = self.tx.send(Ok(()));
    }

    /// The batch could not be made durable.
    pub fn failed(self, error: SinkError) {
        let _ = self.tx.send(Err(error));
    }
}

/// The pipeline's side of an acknowledgement: resolves once the batch is durable.
#[derive(Debug)]
pub struct DurableHandle {
    rx: oneshot::Receiver<Result<(), SinkError>>,
}

impl DurableHandle {
    /// A handle that is already durable (for sinks that persist synchronously).
    pub fn ready() -> Self {
        let (notifier, handle) = durability();
        notifier.durable();
        handle
    }

    /// Waits until the batch is durable or failed.
    pub async fn wait(self) -> Result<(), SinkError> {
        match self.rx.await {
            Ok(result) => result,
            Err(_) => Err(SinkError::transient(
                "the sink dropped a batch's acknowledgement before making it durable",
                "acknowledgement dropped",
            )),
        }
    }
}

/// A connected pair: the sink keeps the notifier, `write` returns the handle.
pub fn durability() -> (DurableNotifier, DurableHandle) {
    let (tx, rx) = oneshot::channel();
    (DurableNotifier { tx }, DurableHandle { rx })
}

/// A destination for change events.
pub trait Sink: Send + 'static {
    /// Accepts a batch; the returned handle resolves when the batch is durable.
    fn write(
        &mut self,
        batch: EventBatch,
    ) -> impl Future<Output = Result<DurableHandle, SinkError>> + Send;

    /// Makes every accepted batch durable soon (ends the open transaction, rolls the
    /// file). Called at each checkpoint interval and at shutdown; the handles report
    /// the outcome.
    fn flush(&mut self) -> impl Future<Output = Result<(), SinkError>> + Send;
}

/// A [`Sink`] behind a pointer, for a caller that picks the destination at run time (the
/// daemon's sink registry). Dispatch is dynamic once per batch, never per event: the
/// sink inside keeps its static per-event loop.
pub struct BoxedSink {
    inner: Box<dyn ErasedSink>,
}

impl std::fmt::Debug for BoxedSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoxedSink").finish_non_exhaustive()
    }
}

type BoxedFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The object-safe face of a [`Sink`].
trait ErasedSink: Send {
    fn write(&mut self, batch: EventBatch) -> BoxedFuture<'_, Result<DurableHandle, SinkError>>;
    fn flush(&mut self) -> BoxedFuture<'_, Result<(), SinkError>>;
}

impl<S: Sink> ErasedSink for S {
    fn write(&mut self, batch: EventBatch) -> BoxedFuture<'_, Result<DurableHandle, SinkError>> {
        Box::pin(Sink::write(self, batch))
    }

    fn flush(&mut self) -> BoxedFuture<'_, Result<(), SinkError>> {
        Box::pin(Sink::flush(self))
    }
}

impl BoxedSink {
    /// Boxes `sink`.
    pub fn new(sink: impl Sink) -> Self {
        Self {
            inner: Box::new(sink),
        }
    }
}

impl Sink for BoxedSink {
    async fn write(&mut self, batch: EventBatch) -> Result<DurableHandle, SinkError> {
        self.inner.write(batch).await
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        self.inner.flush().await
    }
}
