//! A sink that drops everything, durably at once: the baseline for benchmarks of the
//! source side.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::SinkError;
use crate::event::EventBatch;
use crate::sink::{DurableHandle, Sink};

/// Discards events and reports them durable immediately; counts what it saw.
#[derive(Debug, Clone, Default)]
pub struct NullSink {
    events: Arc<AtomicU64>,
}

impl NullSink {
    /// A new null sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Events received so far (shared between clones).
    pub fn events(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }
}

impl Sink for NullSink {
    async fn write(&mut self, batch: EventBatch) -> Result<DurableHandle, SinkError> {
        self.events.fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(DurableHandle::ready())
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}
