//! What every source's snapshot shares: parts read on several connections at once and
//! emitted strictly in order, and Debezium's snapshot marks on the rows.
//!
//! A source splits its snapshot into [`SnapshotUnit`]s (a table, or a key range of a
//! large one) in emission order and opens its connections inside one consistent view.
//! [`OrderedReads`] keeps up to one unit in flight per connection: each unit is read by
//! the source's reader function into a small bounded channel, and the units are consumed
//! strictly in order, so a reader ahead of the current unit stops when its channel is
//! full. Memory is bounded by connections × channel capacity × chunk size. A shutdown
//! while the snapshot runs ends it at once with a transient error: what was delivered is
//! durable, and the restart resumes from the stored position.
//!
//! [`SnapshotMarks`] holds back the latest row so that the marks Debezium writes in
//! `source.snapshot` can be set when it is known what follows: `first` on the very first
//! row of a snapshot, `first_in_data_collection` / `last_in_data_collection` on a
//! table's first and last rows, `last` on the snapshot's last row, `true` in between.
//!
//! The source keeps what is its own: the queries, the decoding of rows, the positions
//! and where a restart resumes.

use std::collections::VecDeque;
use std::future::Future;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::error::SourceError;
use crate::event::{ChangeEvent, EventKind, SnapshotMark};

/// Rows per chunk a reader sends.
pub const CHUNK_ROWS: usize = 512;
/// Chunks a reader may have waiting.
pub const CHUNK_QUEUE: usize = 4;

/// One part of a snapshot, read by one connection.
#[derive(Debug, Clone)]
pub struct SnapshotUnit<W> {
    /// Index of the unit's table in the source's table list.
    pub table: usize,
    /// What the reader reads (a query).
    pub work: W,
    /// The unit ends its table.
    pub last_of_table: bool,
}

/// A reader's message about its unit.
#[derive(Debug)]
pub enum UnitChunk<R, C> {
    /// Rows, in read order.
    Rows(Vec<R>),
    /// The unit is read; its connection is free again.
    Done(C),
}

/// Where a reader sends its unit's chunks (an error ends the snapshot).
pub type UnitSender<R, C> = mpsc::Sender<Result<UnitChunk<R, C>, SourceError>>;

/// What [`OrderedReads::next`] hands over, in unit order.
#[derive(Debug)]
pub enum Merged<R> {
    /// Rows of the current unit, of table `table`.
    Rows {
        /// The table's index.
        table: usize,
        /// The rows.
        rows: Vec<R>,
    },
    /// The current unit is read.
    UnitDone {
        /// The table's index.
        table: usize,
        /// The unit ended its table.
        last_of_table: bool,
    },
}

struct InFlight<R, C> {
    table: usize,
    last_of_table: bool,
    rx: mpsc::Receiver<Result<UnitChunk<R, C>, SourceError>>,
}

/// Units read on several connections, consumed strictly in order.
pub struct OrderedReads<W, R, C, F> {
    free: Vec<C>,
    idle: Vec<C>,
    queue: std::vec::IntoIter<SnapshotUnit<W>>,
    in_flight: VecDeque<InFlight<R, C>>,
    readers: JoinSet<()>,
    read: F,
}

impl<W, R, C, F> std::fmt::Debug for OrderedReads<W, R, C, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderedReads")
            .field("in_flight", &self.in_flight.len())
            .field("queued", &self.queue.len())
            .finish_non_exhaustive()
    }
}

impl<W, R, C, F, Fut> OrderedReads<W, R, C, F>
where
    R: Send + 'static,
    C: Send + 'static,
    F: FnMut(C, &SnapshotUnit<W>, UnitSender<R, C>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    /// Reads `units` (in emission order) on `connections`, one unit per connection at a
    /// time; `read(connection, unit, tx)` reads a unit, sending its rows in chunks and
    /// then [`UnitChunk::Done`] with the connection (or an error).
    pub fn new(connections: Vec<C>, units: Vec<SnapshotUnit<W>>, read: F) -> Self {
        Self {
            free: connections,
            idle: Vec::new(),
            queue: units.into_iter(),
            in_flight: VecDeque::new(),
            readers: JoinSet::new(),
            read,
        }
    }

    /// The next rows, or the end of the current unit, in unit order; `None` once every
    /// unit is read. `describe(table)` names a table in errors. A cancelled `shutdown`
    /// ends the snapshot with a transient error.
    pub async fn next(
        &mut self,
        shutdown: &CancellationToken,
        describe: impl Fn(usize) -> String,
    ) -> Result<Option<Merged<R>>, SourceError> {
        while let Some(connection) = self.free.pop() {
            let Some(unit) = self.queue.next() else {
                self.idle.push(connection);
                break;
            };
            let (tx, rx) = mpsc::channel(CHUNK_QUEUE);
            self.readers.spawn((self.read)(connection, &unit, tx));
            self.in_flight.push_back(InFlight {
                table: unit.table,
                last_of_table: unit.last_of_table,
                rx,
            });
        }
        let Some(current) = self.in_flight.front_mut() else {
            return Ok(None);
        };
        let message = tokio::select! {
            message = current.rx.recv() => message,
            () = shutdown.cancelled() => {
                return Err(SourceError::transient("the snapshot was interrupted", "shutdown"));
            }
        };
        let (table, last_of_table) = (current.table, current.last_of_table);
        match message {
            None => Err(SourceError::definite(
                format!("the snapshot reader of {} stopped", describe(table)),
                "see the log for a panic and report it",
            )),
            Some(Err(e)) => Err(e),
            Some(Ok(UnitChunk::Rows(rows))) => Ok(Some(Merged::Rows { table, rows })),
            Some(Ok(UnitChunk::Done(connection))) => {
                self.in_flight.pop_front();
                self.free.push(connection);
                Ok(Some(Merged::UnitDone {
                    table,
                    last_of_table,
                }))
            }
        }
    }

    /// Every connection, once [`Self::next`] returned `None`.
    pub fn into_connections(mut self) -> Vec<C> {
        self.readers.abort_all();
        self.idle.append(&mut self.free);
        self.idle
    }
}

/// Debezium's snapshot marks, set on rows held back one at a time.
#[derive(Debug)]
pub struct SnapshotMarks<T> {
    /// A snapshot started from nothing (a resumed one has no `first` row).
    fresh: bool,
    rows: u64,
    in_table: u64,
    held: Option<(ChangeEvent, T)>,
}

fn set_mark(event: &mut ChangeEvent, to: SnapshotMark) {
    if let EventKind::Read { mark, .. } = &mut event.kind {
        *mark = to;
    }
}

fn mark_of(event: &ChangeEvent) -> Option<SnapshotMark> {
    match &event.kind {
        EventKind::Read { mark, .. } => Some(*mark),
        _ => None,
    }
}

impl<T> SnapshotMarks<T> {
    /// Marks for a snapshot that starts from nothing (`fresh`) or resumes.
    pub fn new(fresh: bool) -> Self {
        Self {
            fresh,
            rows: 0,
            in_table: 0,
            held: None,
        }
    }

    /// Holds `event` (a [`EventKind::Read`], with `tag`: what the source needs to know
    /// about it later) with its mark set, and returns the row held before it, whose mark
    /// is now final.
    pub fn push(&mut self, mut event: ChangeEvent, tag: T) -> Option<(ChangeEvent, T)> {
        self.rows += 1;
        let mark = if self.fresh && self.rows == 1 {
            SnapshotMark::First
        } else if self.in_table == 0 {
            SnapshotMark::FirstInDataCollection
        } else {
            SnapshotMark::True
        };
        set_mark(&mut event, mark);
        self.in_table += 1;
        self.held.replace((event, tag))
    }

    /// The current table is complete: its last row (held) is marked as such.
    pub fn end_table(&mut self) {
        if let Some((event, _)) = self.held.as_mut()
            && self.in_table > 1
            && mark_of(event) != Some(SnapshotMark::First)
        {
            set_mark(event, SnapshotMark::LastInDataCollection);
        }
        self.in_table = 0;
    }

    /// The snapshot is complete: its last row, marked `last`.
    pub fn finish(&mut self) -> Option<(ChangeEvent, T)> {
        let mut last = self.held.take()?;
        set_mark(&mut last.0, SnapshotMark::Last);
        Some(last)
    }

    /// Rows pushed so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    fn read(id: u64) -> ChangeEvent {
        let mut event = fixtures::inserts(id, 1).remove(0);
        if let EventKind::Insert { table, after } = event.kind {
            event.kind = EventKind::Read {
                table,
                after,
                mark: SnapshotMark::True,
            };
        }
        event
    }

    #[test]
    fn marks_follow_debezium() {
        use SnapshotMark::*;
        let mut marks = SnapshotMarks::new(true);
        let mut out = Vec::new();
        // Table 0: three rows; table 1: one row; table 2: two rows.
        for (table, n) in [(0, 3), (1, 1), (2, 2)] {
            for i in 0..n {
                if let Some((e, t)) = marks.push(read(i + 1), table) {
                    out.push((mark_of(&e), t));
                }
            }
            marks.end_table();
        }
        if let Some((e, t)) = marks.finish() {
            out.push((mark_of(&e), t));
        }
        let expected = [
            (First, 0),
            (True, 0),
            (LastInDataCollection, 0),
            (FirstInDataCollection, 1),
            (FirstInDataCollection, 2),
            (Last, 2),
        ];
        let got: Vec<(SnapshotMark, i32)> = out.into_iter().map(|(m, t)| (m.unwrap(), t)).collect();
        assert_eq!(got, expected);
        assert_eq!(marks.rows(), 6);
        let mut resumed = SnapshotMarks::new(false);
        assert!(resumed.push(read(1), ()).is_none());
        assert_eq!(
            resumed.finish().map(|(e, ())| mark_of(&e)),
            Some(Some(Last))
        );
    }

    #[tokio::test]
    async fn units_come_in_order_whatever_order_readers_finish_in() {
        // Unit i sends i rows after a delay that makes later units finish first.
        let units: Vec<SnapshotUnit<u64>> = (0..6)
            .map(|i| SnapshotUnit {
                table: (i / 2) as usize,
                work: i,
                last_of_table: i % 2 == 1,
            })
            .collect();
        let mut reads = OrderedReads::new(vec![0u8, 1, 2], units, |conn, unit, tx| {
            let n = unit.work;
            async move {
                tokio::time::sleep(std::time::Duration::from_millis(30 - 5 * n)).await;
                let _ = tx.send(Ok(UnitChunk::Rows(vec![n; n as usize]))).await;
                let _ = tx.send(Ok(UnitChunk::Done(conn))).await;
            }
        });
        let shutdown = CancellationToken::new();
        let mut seen = Vec::new();
        let mut ends = Vec::new();
        while let Some(m) = reads.next(&shutdown, |t| t.to_string()).await.unwrap() {
            match m {
                Merged::Rows { rows, .. } => seen.extend(rows),
                Merged::UnitDone {
                    table,
                    last_of_table,
                } => ends.push((table, last_of_table)),
            }
        }
        assert_eq!(seen, [1, 2, 2, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 5]);
        assert_eq!(ends.len(), 6);
        assert_eq!(ends[5], (2, true));
        assert_eq!(reads.into_connections().len(), 3);
    }

    #[tokio::test]
    async fn shutdown_interrupts_a_snapshot_at_once() {
        let units = vec![SnapshotUnit {
            table: 0,
            work: (),
            last_of_table: true,
        }];
        let mut reads = OrderedReads::new(
            vec![()],
            units,
            |_conn, _unit, tx: UnitSender<u8, ()>| async move {
                // A reader that never finishes.
                let _keep = tx;
                std::future::pending::<()>().await;
            },
        );
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        let e = reads.next(&shutdown, |t| t.to_string()).await.unwrap_err();
        assert_eq!(crate::Classify::class(&e), crate::ErrorClass::Transient);
    }
}
