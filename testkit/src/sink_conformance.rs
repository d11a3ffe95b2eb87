//! The sink conformance suite: the durability contract of `outflow_core::Sink`, checked
//! the same way against every destination.
//!
//! A sink's test binary implements [`SinkUnderTest`] for its destination (how to open an
//! instance as a restarted process would, and how a consumer reads back what the
//! destination holds), then calls each scenario. The scenarios write the
//! [`outflow_core::fixtures`] inserts (ids from 1) through the sink — which, for a
//! destination of records, is the record stage around it — so each destination is held
//! to the same numbers:
//!
//! - [`durable_means_stored`]: when a batch's handle resolves, a consumer reads every record
//!   of it and of the batches before, in order, once;
//! - [`exactly_once_across_an_abrupt_stop`]: an instance is dropped without a flush after
//!   durable batches the pipeline stored, durable batches it had not stored yet, and batches
//!   only accepted; a new instance opened at the stored position is sent everything after
//!   it again (as the source would) and then new events: a consumer reads each event
//!   exactly once, in order;
//! - [`an_outage_is_transient_and_loses_nothing`]: the destination's server paused
//!   (SIGSTOP) while batches are written: what was accepted meanwhile is not durable,
//!   whatever fails says transient (a restart, not a FAILED connector), writes may wait
//!   (backpressure) but do not fail otherwise; after the server resumes, an instance
//!   reopened at the stored position, as the supervisor's restart makes it, leaves each
//!   event stored exactly once. A destination without a server process (the local lake)
//!   skips it.
//!
//! Failures print counts and the first differences, never the records.

use std::future::Future;
use std::time::Duration;

use outflow_core::{
    ChangeEvent, Classify, DurableHandle, ErrorClass, EventBatch, Sink, SinkError, SourcePosition,
    fixtures,
};

/// A destination under test.
pub trait SinkUnderTest: Sync {
    /// The sink, formatting included.
    type Sink: Sink;

    /// A new instance, as a restarted connector makes it: `committed` is the position the
    /// pipeline stored last (`None`: nothing stored). Panics if the lab cannot open it.
    fn open(&self, committed: Option<SourcePosition>) -> impl Future<Output = Self::Sink> + Send;

    /// The `id` of every insert a consumer reads from the destination, in the order it
    /// reads them. Waits until at least `at_least` are there (or a deadline of a minute
    /// passes, then returns what is there).
    fn stored_ids(&self, at_least: usize) -> impl Future<Output = Vec<i64>> + Send;

    /// The OS process of the destination's server, which the outage scenario pauses;
    /// `None` (the default) for a destination without one.
    fn server_pid(&self) -> Option<u32> {
        None
    }
}

fn events(first: u64, n: u64) -> Vec<ChangeEvent> {
    fixtures::inserts(first, n)
}

/// Asserts `got` is `1..=n` exactly; the message gives counts and the first difference.
fn assert_exactly(got: &[i64], n: i64, scenario: &str) {
    let expected: Vec<i64> = (1..=n).collect();
    if got == expected.as_slice() {
        return;
    }
    let mut seen = std::collections::BTreeMap::<i64, usize>::new();
    for id in got {
        *seen.entry(*id).or_default() += 1;
    }
    let repeated: Vec<_> = seen.iter().filter(|(_, c)| **c > 1).take(5).collect();
    let missing: Vec<_> = (1..=n)
        .filter(|id| !seen.contains_key(id))
        .take(5)
        .collect();
    let first_difference = got
        .iter()
        .zip(&expected)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(expected.len()));
    panic!(
        "{scenario}: the destination holds {} records for {n} events; {} distinct; repeated (first 5): {repeated:?}; missing (first 5): {missing:?}; first difference at index {first_difference}",
        got.len(),
        seen.len()
    );
}

async fn write_batches<S: Sink>(
    sink: &mut S,
    first: u64,
    batches: u64,
    size: u64,
) -> Vec<DurableHandle> {
    let mut handles = Vec::new();
    for b in 0..batches {
        let batch = EventBatch::new(events(first + b * size, size));
        handles.push(sink.write(batch).await.expect("the sink refused a batch"));
    }
    handles
}

async fn wait_all(handles: Vec<DurableHandle>, scenario: &str) {
    for (i, handle) in handles.into_iter().enumerate() {
        let outcome = tokio::time::timeout(std::time::Duration::from_secs(120), handle.wait())
            .await
            .unwrap_or_else(|_| panic!("{scenario}: batch {i} not durable after 120 s"));
        if let Err(e) = outcome {
            panic!("{scenario}: batch {i} failed: {e}");
        }
    }
}

fn position_of(id: u64) -> SourcePosition {
    events(id, 1).remove(0).position
}

/// When a batch's handle resolves, a consumer reads all of it (and everything before it).
pub async fn durable_means_stored<H: SinkUnderTest>(harness: &H) {
    let scenario = "durable_means_stored";
    let mut sink = harness.open(None).await;
    let size = 200u64;
    for b in 0..5u64 {
        let handle = sink
            .write(EventBatch::new(events(1 + b * size, size)))
            .await
            .expect("the sink refused a batch");
        sink.flush().await.expect("flush failed");
        wait_all(vec![handle], scenario).await;
        let n = (b + 1) * size;
        let got = harness
            .stored_ids(usize::try_from(n).unwrap_or(usize::MAX))
            .await;
        assert_exactly(&got, i64::try_from(n).unwrap_or(i64::MAX), scenario);
    }
}

/// Dropped without a flush, reopened at the stored position and sent everything after it
/// again: each event is stored exactly once.
pub async fn exactly_once_across_an_abrupt_stop<H: SinkUnderTest>(harness: &H) {
    let scenario = "exactly_once_across_an_abrupt_stop";
    let size = 100u64;
    let mut first = harness.open(None).await;
    // Batches 1-5 durable and stored by the pipeline (position of event 500).
    let handles = write_batches(&mut first, 1, 5, size).await;
    first.flush().await.expect("flush failed");
    wait_all(handles, scenario).await;
    let stored = position_of(5 * size);
    // Batches 6-8 durable, but the crash came before the pipeline stored their position.
    let handles = write_batches(&mut first, 1 + 5 * size, 3, size).await;
    first.flush().await.expect("flush failed");
    wait_all(handles, scenario).await;
    // Batches 9-10 only accepted; then the process is gone (no flush, nothing awaited).
    let unresolved = write_batches(&mut first, 1 + 8 * size, 2, size).await;
    drop(first);
    drop(unresolved);

    // The restarted connector: the source resends everything after the stored position,
    // then new events.
    let mut second = harness.open(Some(stored)).await;
    let mut handles = write_batches(&mut second, 1 + 5 * size, 5, size).await;
    handles.extend(write_batches(&mut second, 1 + 10 * size, 2, size).await);
    second.flush().await.expect("flush failed");
    wait_all(handles, scenario).await;
    let got = harness.stored_ids(12 * 100).await;
    assert_exactly(&got, 1200, scenario);

    // A third instance at the newest position with nothing to send changes nothing.
    let mut third = harness.open(Some(position_of(12 * size))).await;
    third.flush().await.expect("flush failed");
    drop(third);
    let got = harness.stored_ids(12 * 100).await;
    assert_exactly(&got, 1200, scenario);
}

fn assert_transient(error: &SinkError, scenario: &str, what: &str) {
    assert_eq!(
        error.class(),
        ErrorClass::Transient,
        "{scenario}: {what} failed with a definite error while the destination was paused: {error}"
    );
}

/// Resumes a paused process when dropped, so that a failing scenario does not leave the
/// lab's server stopped for the tests after it.
struct Paused(u32);

impl Paused {
    fn new(pid: u32) -> Self {
        crate::sys::signal(pid, libc::SIGSTOP).expect("cannot pause the destination's server");
        Self(pid)
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        let _ = crate::sys::signal(self.0, libc::SIGCONT);
    }
}

/// The destination's server paused while batches are written: nothing accepted then is
/// durable, every failure is transient, and a reopened instance loses and repeats nothing.
pub async fn an_outage_is_transient_and_loses_nothing<H: SinkUnderTest>(harness: &H) {
    let scenario = "an_outage_is_transient_and_loses_nothing";
    let Some(pid) = harness.server_pid() else {
        return;
    };
    let size = 100u64;
    let mut first = harness.open(None).await;
    let handles = write_batches(&mut first, 1, 3, size).await;
    first.flush().await.expect("flush failed");
    wait_all(handles, scenario).await;
    let stored = position_of(3 * size);

    let paused = Paused::new(pid);
    let mut pending = Vec::new();
    for b in 0..2u64 {
        let batch = EventBatch::new(events(1 + (3 + b) * size, size));
        match tokio::time::timeout(Duration::from_secs(5), first.write(batch)).await {
            // The write waits for the destination: backpressure, as it should.
            Err(_) => break,
            Ok(Err(e)) => {
                assert_transient(&e, scenario, "a write");
                break;
            }
            Ok(Ok(handle)) => pending.push(Box::pin(handle.wait())),
        }
    }
    if let Ok(Err(e)) = tokio::time::timeout(Duration::from_secs(5), first.flush()).await {
        assert_transient(&e, scenario, "a flush");
    }
    for (i, wait) in pending.iter_mut().enumerate() {
        match tokio::time::timeout(Duration::from_secs(2), wait).await {
            Ok(Ok(())) => panic!(
                "{scenario}: batch {} was reported durable while the destination was paused",
                4 + i
            ),
            Ok(Err(e)) => assert_transient(&e, scenario, "a batch"),
            Err(_) => {}
        }
    }
    drop(paused);
    // The pipeline saw a transient error (or is being stopped): the supervisor drops the
    // instance and opens a new one at the stored position; the source sends everything
    // after it again, then new events.
    drop(pending);
    drop(first);
    let mut second = harness.open(Some(stored)).await;
    let handles = write_batches(&mut second, 1 + 3 * size, 4, size).await;
    second.flush().await.expect("flush failed after the outage");
    wait_all(handles, scenario).await;
    let got = harness.stored_ids(7 * 100).await;
    assert_exactly(&got, 700, scenario);
}

/// The conformance scenarios as `#[tokio::test]`s of the calling test module, one per
/// scenario: `sink_conformance_tests!(Harness::new());`, or with a guard held for the
/// test's length: `sink_conformance_tests!(Harness::new(), guard = BROKER.read().await);`,
/// and one that the outage scenario holds instead (it pauses the destination's server,
/// which tests sharing it must not see): `…, exclusive = BROKER.write().await)`.
#[macro_export]
macro_rules! sink_conformance_tests {
    ($harness:expr $(, guard = $guard:expr)? $(, exclusive = $exclusive:expr)?) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn conformance_durable_means_stored() {
            $(let _guard = $guard;)?
            Box::pin($crate::sink_conformance::durable_means_stored(&$harness)).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn conformance_exactly_once_across_an_abrupt_stop() {
            $(let _guard = $guard;)?
            Box::pin($crate::sink_conformance::exactly_once_across_an_abrupt_stop(&$harness))
                .await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn conformance_an_outage_is_transient_and_loses_nothing() {
            $(let _exclusive = $exclusive;)?
            Box::pin($crate::sink_conformance::an_outage_is_transient_and_loses_nothing(
                &$harness,
            ))
            .await;
        }
    };
}
