//! An in-memory sink for tests: keeps every event and, on request, only makes batches
//! durable on `flush`, so tests can tell Accepted from Durable.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::error::SinkError;
use crate::event::{ChangeEvent, EventBatch};
use crate::sink::{DurableHandle, DurableNotifier, Sink, durability};

/// When the memory sink reports a batch durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MemorySinkMode {
    /// As soon as it is written.
    #[default]
    Immediate,
    /// Only when `flush` is called (like a transactional sink between checkpoints).
    OnFlush,
}

#[derive(Debug, Default)]
struct State {
    accepted: Vec<ChangeEvent>,
    durable_len: usize,
    pending: Vec<(usize, DurableNotifier)>,
    held: bool,
}

/// Keeps events in memory; clones share the same store.
#[derive(Debug, Clone, Default)]
pub struct MemorySink {
    mode: MemorySinkMode,
    state: Arc<Mutex<State>>,
}

impl MemorySink {
    /// A memory sink with the given durability mode.
    pub fn new(mode: MemorySinkMode) -> Self {
        Self {
            mode,
            state: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// While held, `flush` makes nothing durable (a sink whose commits hang); releasing
    /// makes everything accepted so far durable at once.
    pub fn hold(&self, held: bool) {
        let mut state = self.lock();
        state.held = held;
        if !held {
            Self::make_durable(&mut state);
        }
    }

    fn make_durable(state: &mut State) {
        let pending = std::mem::take(&mut state.pending);
        for (end, notifier) in pending {
            state.durable_len = state.durable_len.max(end);
            notifier.durable();
        }
    }

    /// Every event accepted so far, durable or not.
    pub fn accepted(&self) -> Vec<ChangeEvent> {
        self.lock().accepted.clone()
    }

    /// The events that are durable.
    pub fn durable(&self) -> Vec<ChangeEvent> {
        let state = self.lock();
        state.accepted[..state.durable_len].to_vec()
    }
}

impl Sink for MemorySink {
    async fn write(&mut self, batch: EventBatch) -> Result<DurableHandle, SinkError> {
        let mut state = self.lock();
        state.accepted.extend(batch.events);
        let end = state.accepted.len();
        match self.mode {
            MemorySinkMode::Immediate => {
                state.durable_len = end;
                Ok(DurableHandle::ready())
            }
            MemorySinkMode::OnFlush => {
                let (notifier, handle) = durability();
                state.pending.push((end, notifier));
                Ok(handle)
            }
        }
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        let mut state = self.lock();
        if !state.held {
            Self::make_durable(&mut state);
        }
        Ok(())
    }
}
