//! Binlog positions: [`BinlogPosition`], the snapshot's [`SnapshotReads`], and the family
//! that orders them.
//!
//! Order rule: by binlog file number, then the position of the transaction's first event
//! in that file, then snapshot before stream, then the event index within the
//! transaction, then the row within a rows event. GTIDs describe a place and do not take
//! part, so an offset stored without them (an older offset, one set by hand) still
//! matches the same event read again with them.
//!
//! In core's opaque [`SourcePosition`] the order words are `[file number, pos, 0 snapshot
//! | 1 stream, event, row]`; the detail is a [`BinlogPlace`]: the file name (which breaks
//! the tie between same-numbered files of different names), the GTIDs, the snapshot's
//! reads and the facts Debezium's `source` block reports (`server_id`, `thread`,
//! `query`). The stream shares one place per transaction, so a position costs no
//! allocation. The serialised form (`{"binlog": {…}}`) uses Debezium's offset names
//! (`file`, `pos`, `row`, `event`, `gtids`) and never changes meaning.

use std::cmp::Ordering;
use std::sync::Arc;

use outflow_core::position::{InvalidPosition, PositionDetail, PositionFamily, SourcePosition};
use serde::{Deserialize, Serialize};

/// Position of an event in a MySQL or MariaDB binlog, or in a snapshot taken at a binlog
/// position: the serialised form, and what the source reasons about on resume.
///
/// Equality and order are those of the place in the binlog (`file`, `pos`, `snapshot`,
/// `event`, `row`); `gtid` and `gtids` do not take part.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BinlogPosition {
    /// Binlog file name, e.g. `binlog.000012`.
    pub file: String,
    /// Byte offset in `file` of the first event of the event's transaction (where a
    /// restart resumes reading); for snapshot rows, the binlog position of the snapshot.
    pub pos: u64,
    /// Index of the event within its transaction (for snapshot rows, within the snapshot).
    pub event: u64,
    /// Row index within a rows event.
    pub row: u32,
    /// GTID of the transaction: MySQL `uuid:n` or MariaDB `domain-server-seq`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtid: Option<String>,
    /// GTID set (MySQL) or GTID position (MariaDB) of the transactions completed before
    /// this event's transaction: a restart asks the server for what follows it, so the
    /// interrupted transaction is sent again and `event`/`row` skip what was delivered.
    #[serde(rename = "gtids", default, skip_serializing_if = "Option::is_none")]
    pub gtid_set: Option<String>,
    /// True for rows read by the snapshot.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub snapshot: bool,
    /// What the snapshot has read and in which view, when that matters for a restart: on
    /// snapshot rows that end a batch (to continue after them), and on streamed positions
    /// before the last view of a resumed snapshot (to drop changes it already read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_reads: Option<Box<SnapshotReads>>,
}

/// The parts of a snapshot read so far, in read order (tables by `(database, table)`,
/// rows by key), each with the binlog coordinates of the consistent view it was read in.
/// A snapshot resumed after a stop reads the rest in a new view: one more segment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct SnapshotReads {
    /// Segments in read order; segment *i* covers what follows segment *i − 1*'s end, up
    /// to and including its own end.
    pub segments: Vec<SnapshotSegment>,
}

/// One part of a snapshot read in one consistent view.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SnapshotSegment {
    /// Binlog file of the view: changes committed before (`file`, `pos`) are in what
    /// the segment read.
    pub file: String,
    /// Binlog offset of the view.
    pub pos: u64,
    /// Database of the last table the segment reached.
    pub database: String,
    /// The last table the segment reached.
    pub table: String,
    /// Primary-key values (integers, as text) of the last row read of `table`; `None`:
    /// the whole table was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Vec<String>>,
}

/// The numeric suffix of a binlog file name (`binlog.000012` → 12); files of one server
/// sort by it. A name without a numeric suffix counts as 0.
pub fn file_number(file: &str) -> u64 {
    file.rsplit_once('.')
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(0)
}

impl BinlogPosition {
    /// The numeric suffix of the binlog file name (see [`file_number`]).
    pub fn file_number(&self) -> u64 {
        file_number(&self.file)
    }

    /// The binlog position in `position`, if it is one.
    pub fn of(position: &SourcePosition) -> Option<Self> {
        let place = position.detail::<BinlogPlace>()?;
        let [_, pos, _, event, row] = *position.order();
        Some(Self {
            file: place.file.clone(),
            pos,
            event,
            row: u32::try_from(row).unwrap_or(u32::MAX),
            gtid: place.gtid.clone(),
            gtid_set: place.gtid_set.clone(),
            snapshot: position.is_snapshot(),
            snapshot_reads: place.snapshot_reads.clone(),
        })
    }
}

impl Ord for BinlogPosition {
    fn cmp(&self, other: &Self) -> Ordering {
        self.file_number()
            .cmp(&other.file_number())
            .then_with(|| self.pos.cmp(&other.pos))
            .then_with(|| other.snapshot.cmp(&self.snapshot))
            .then_with(|| self.event.cmp(&other.event))
            .then_with(|| self.row.cmp(&other.row))
            .then_with(|| self.file.cmp(&other.file))
    }
}

impl PartialEq for BinlogPosition {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for BinlogPosition {}

impl PartialOrd for BinlogPosition {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A binlog position's detail: what its order words do not hold. Shared by the
/// positions of one transaction.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BinlogPlace {
    /// Binlog file name.
    pub file: String,
    /// GTID of the transaction.
    pub gtid: Option<String>,
    /// GTIDs completed before the transaction.
    pub gtid_set: Option<String>,
    /// The snapshot's reads (see [`BinlogPosition::snapshot_reads`]).
    pub snapshot_reads: Option<Box<SnapshotReads>>,
    /// Id of the server that wrote the event (`source.server_id`).
    pub server_id: u32,
    /// Id of the thread (connection) that made the change (`source.thread`).
    pub thread: Option<u64>,
    /// The statement (MariaDB ANNOTATE_ROWS / MySQL ROWS_QUERY), with `include.query`.
    pub query: Option<String>,
}

impl PositionDetail for BinlogPlace {}

impl BinlogPlace {
    /// The position of `event`/`row` of the transaction at `pos` in this place.
    pub fn position(
        self: &Arc<Self>,
        pos: u64,
        event: u64,
        row: u32,
        snapshot: bool,
    ) -> SourcePosition {
        SourcePosition::new(
            &BINLOG_POSITIONS,
            [
                file_number(&self.file),
                pos,
                u64::from(!snapshot),
                event,
                u64::from(row),
            ],
            snapshot,
            Some(Arc::clone(self) as Arc<dyn PositionDetail>),
        )
    }
}

impl From<BinlogPosition> for SourcePosition {
    fn from(p: BinlogPosition) -> Self {
        let place = Arc::new(BinlogPlace {
            file: p.file,
            gtid: p.gtid,
            gtid_set: p.gtid_set,
            snapshot_reads: p.snapshot_reads,
            ..BinlogPlace::default()
        });
        place.position(p.pos, p.event, p.row, p.snapshot)
    }
}

/// The family of binlog positions.
#[derive(Debug)]
pub struct BinlogPositions;

/// The one [`BinlogPositions`].
pub static BINLOG_POSITIONS: BinlogPositions = BinlogPositions;

impl PositionFamily for BinlogPositions {
    fn tag(&self) -> &'static str {
        "binlog"
    }

    fn to_json(&self, position: &SourcePosition) -> serde_json::Value {
        BinlogPosition::of(position)
            .and_then(|p| serde_json::to_value(p).ok())
            .unwrap_or(serde_json::Value::Null)
    }

    fn write_json(&self, position: &SourcePosition, out: &mut String) {
        // Serialising a plain struct of integers and strings cannot fail.
        match BinlogPosition::of(position).and_then(|p| serde_json::to_string(&p).ok()) {
            Some(text) => out.push_str(&text),
            None => out.push_str("null"),
        }
    }

    fn read_json(&self, object: serde_json::Value) -> Result<SourcePosition, InvalidPosition> {
        Ok(serde_json::from_value::<BinlogPosition>(object)?.into())
    }

    fn cmp_detail(&self, a: &SourcePosition, b: &SourcePosition) -> Ordering {
        fn file(p: &SourcePosition) -> Option<&str> {
            p.detail::<BinlogPlace>().map(|d| d.file.as_str())
        }
        file(a).cmp(&file(b))
    }

    /// `<file number, 10 digits>-<pos, 20 digits>-<0|1>-<event, 20 digits>-<row, 10 digits>`.
    fn sort_token(&self, position: &SourcePosition) -> String {
        let [file, pos, stream, event, row] = *position.order();
        format!("{file:010}-{pos:020}-{stream}-{event:020}-{row:010}")
    }

    fn debezium_offset(
        &self,
        position: &SourcePosition,
    ) -> serde_json::Map<String, serde_json::Value> {
        let [_, pos, _, event, row] = *position.order();
        let place = position.detail::<BinlogPlace>();
        let mut object = serde_json::Map::new();
        object.insert(
            "file".into(),
            place.map(|p| p.file.as_str()).unwrap_or_default().into(),
        );
        object.insert("pos".into(), pos.into());
        object.insert("row".into(), row.into());
        object.insert("event".into(), event.into());
        object.insert(
            "gtids".into(),
            place
                .and_then(|p| p.gtid_set.clone())
                .map_or(serde_json::Value::Null, Into::into),
        );
        object
    }

    fn read_debezium_offset(&self, offset: &serde_json::Value) -> Option<SourcePosition> {
        let number = |name: &str| offset.get(name).and_then(serde_json::Value::as_u64);
        let file = offset.get("file")?.as_str()?.to_owned();
        Some(
            BinlogPosition {
                file,
                pos: number("pos")?,
                event: number("event").unwrap_or(0),
                row: number("row")
                    .and_then(|r| u32::try_from(r).ok())
                    .unwrap_or(0),
                gtid: None,
                gtid_set: offset
                    .get("gtids")
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_owned),
                snapshot: false,
                snapshot_reads: None,
            }
            .into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FAMILIES: &[&'static dyn PositionFamily] = &[&BINLOG_POSITIONS];

    fn binlog(file: &str, pos: u64, event: u64, row: u32) -> BinlogPosition {
        BinlogPosition {
            file: file.into(),
            pos,
            event,
            row,
            gtid: None,
            gtid_set: None,
            snapshot: false,
            snapshot_reads: None,
        }
    }

    fn sp(p: BinlogPosition) -> SourcePosition {
        p.into()
    }

    #[test]
    fn binlog_order_uses_file_number_not_text() {
        assert!(sp(binlog("binlog.000009", 900, 0, 0)) < sp(binlog("binlog.000010", 4, 0, 0)));
        assert!(sp(binlog("binlog.999999", 4, 0, 0)) < sp(binlog("binlog.1000000", 4, 0, 0)));
        assert!(sp(binlog("b.1", 100, 2, 0)) < sp(binlog("b.1", 100, 2, 1)));
        assert!(sp(binlog("b.1", 100, 2, 7)) < sp(binlog("b.1", 100, 3, 0)));
        let mut snap = binlog("b.1", 100, 50, 0);
        snap.snapshot = true;
        assert!(sp(snap) < sp(binlog("b.1", 100, 0, 0)));
    }

    #[test]
    fn serialised_form_is_stable() {
        let b = sp(BinlogPosition {
            gtid: Some("0-1-7".into()),
            ..binlog("binlog.000002", 342, 1, 0)
        });
        assert_eq!(
            b.to_json(),
            r#"{"binlog":{"file":"binlog.000002","pos":342,"event":1,"row":0,"gtid":"0-1-7"}}"#
        );
        // Fields are read by name, in any order.
        let stored =
            r#"{"binlog":{"event":1,"file":"binlog.000002","gtid":"0-1-7","pos":342,"row":0}}"#;
        assert_eq!(SourcePosition::from_json(stored, FAMILIES).unwrap(), b);
        // GTIDs do not take part in equality.
        assert_eq!(b, sp(binlog("binlog.000002", 342, 1, 0)));
    }

    fn any_binlog() -> impl Strategy<Value = BinlogPosition> {
        (
            "[a-z-]{1,8}\\.[0-9]{6}",
            any::<u64>(),
            any::<u64>(),
            any::<u32>(),
            proptest::option::of("[0-9]-[0-9]-[0-9]{1,5}"),
            any::<bool>(),
        )
            .prop_map(|(file, pos, event, row, gtid, snapshot)| BinlogPosition {
                file,
                pos,
                event,
                row,
                gtid_set: gtid.clone(),
                gtid,
                snapshot,
                snapshot_reads: None,
            })
    }

    proptest! {
        #[test]
        fn fields_round_trip_through_the_opaque_position(p in any_binlog()) {
            let back = BinlogPosition::of(&p.clone().into()).unwrap();
            prop_assert_eq!((&back.file, &back.gtid, &back.gtid_set, back.snapshot), (&p.file, &p.gtid, &p.gtid_set, p.snapshot));
            prop_assert_eq!(back, p);
        }

        #[test]
        fn json_round_trip(p in any_binlog()) {
            let p = sp(p);
            prop_assert_eq!(SourcePosition::from_json(&p.to_json(), FAMILIES).unwrap(), p);
        }

        #[test]
        fn order_is_the_fields_order(a in any_binlog(), b in any_binlog()) {
            let expected = a.cmp(&b);
            let (x, y) = (sp(a), sp(b));
            prop_assert_eq!(x.cmp(&y), expected);
            prop_assert_eq!(x == y, expected == Ordering::Equal);
        }

        #[test]
        fn sort_tokens_sort_as_positions(a in any_binlog(), b in any_binlog()) {
            // Same-named files only: across names the token orders by number alone.
            prop_assume!(a.file == b.file || a.file_number() != b.file_number());
            let (x, y) = (sp(a), sp(b));
            if x.sort_token() != y.sort_token() {
                prop_assert_eq!(x.cmp(&y), x.sort_token().cmp(&y.sort_token()));
            }
        }

        #[test]
        fn debezium_offsets_round_trip(p in any_binlog()) {
            let p = sp(p);
            prop_assert_eq!(SourcePosition::from_debezium_offset(&p.debezium_offset(), FAMILIES), Some(p));
        }
    }
}
