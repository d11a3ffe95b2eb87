//! Source positions: where in the database's change stream an event comes from.
//!
//! Every event carries a [`SourcePosition`]. Within one connector positions are totally
//! ordered and strictly increasing in emission order, which is what makes exactly-once
//! resume work: after a restart the pipeline skips every event at or before the durable
//! position, and sinks that find a position in their own output (the Kafka partition tail,
//! a lake file name) skip what they already hold.
//!
//! Order rules:
//! - Postgres ([`PgPosition`]): by commit LSN of the transaction, then snapshot rows
//!   before streamed changes, then the event's sequence number within its transaction
//!   (or within the snapshot). The commit LSN comes first because logical decoding emits
//!   whole transactions in commit order, and a restart from `confirmed_flush_lsn` resends
//!   whole transactions. Several changes can share one WAL record (multi-insert), so the
//!   event LSN alone is not unique; the sequence number is.
//! - MySQL/MariaDB ([`BinlogPosition`]): by binlog file number, then the position of the
//!   transaction's first event in that file, then snapshot before stream, then the event
//!   index within the transaction, then the row within a rows event.
//!
//! The serialised form ([`SourcePosition::to_json`]) is stable: it is what offset stores
//! persist and what Kafka record headers carry, so field names never change meaning.
//! It uses Debezium's offset field names where Debezium has one (`lsn`, `lsn_commit`,
//! `txId`, `file`, `pos`, `row`, `event`, `gtids`).

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A Postgres log sequence number.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Lsn(pub u64);

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

/// Error parsing an LSN in `XXX/XXX` form.
#[derive(Debug, thiserror::Error)]
#[error("invalid LSN {0:?}: expected two hexadecimal halves separated by '/', like 16/B374D848")]
pub struct InvalidLsn(pub String);

impl FromStr for Lsn {
    type Err = InvalidLsn;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (hi, lo) = s.split_once('/').ok_or_else(|| InvalidLsn(s.to_owned()))?;
        let hi = u32::from_str_radix(hi, 16).map_err(|_| InvalidLsn(s.to_owned()))?;
        let lo = u32::from_str_radix(lo, 16).map_err(|_| InvalidLsn(s.to_owned()))?;
        Ok(Self((u64::from(hi) << 32) | u64::from(lo)))
    }
}

/// Position of an event in a Postgres logical replication stream or snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PgPosition {
    /// LSN of the commit record of the event's transaction; for snapshot rows, the
    /// consistent point of the slot the snapshot was exported from.
    pub lsn_commit: Lsn,
    /// LSN of the event's own WAL record (for snapshot rows, the consistent point).
    pub lsn: Lsn,
    /// Index of the event within its transaction (`Begin` is 0) or, for snapshot rows,
    /// within the whole snapshot.
    pub seq: u64,
    /// Transaction id, when known.
    #[serde(rename = "txId", default, skip_serializing_if = "Option::is_none")]
    pub tx_id: Option<u32>,
    /// True for rows read by the snapshot.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub snapshot: bool,
    /// On snapshot rows that end a batch: where the snapshot stood, so a restart can
    /// continue after this row instead of reading the table again.
    #[serde(rename = "cursor", default, skip_serializing_if = "Option::is_none")]
    pub snapshot_cursor: Option<Box<SnapshotCursor>>,
}

/// Where a snapshot stood after a row: the table, and the row's primary-key values as
/// the database writes them in text (`None` for NULL). Rows of a table are read in key
/// order, so every row with a key at or before this one has been emitted. A table
/// without a primary key has no key here; a restart reads it again.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SnapshotCursor {
    /// `schema.table`.
    pub table: String,
    /// Primary-key values in key order, as text.
    pub key: Option<Vec<Option<String>>>,
}

impl Ord for PgPosition {
    fn cmp(&self, other: &Self) -> Ordering {
        self.lsn_commit
            .cmp(&other.lsn_commit)
            .then_with(|| other.snapshot.cmp(&self.snapshot))
            .then_with(|| self.seq.cmp(&other.seq))
            // Tie-breakers so that the order agrees with `Eq`; within one connector the
            // fields above already decide.
            .then_with(|| self.lsn.cmp(&other.lsn))
            .then_with(|| self.tx_id.cmp(&other.tx_id))
            .then_with(|| self.snapshot_cursor.cmp(&other.snapshot_cursor))
    }
}

impl PartialOrd for PgPosition {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Position of an event in a MySQL or MariaDB binlog, or in a snapshot taken at a binlog
/// position.
///
/// Equality and order are those of the place in the binlog (`file`, `pos`, `snapshot`,
/// `event`, `row`); `gtid` and `gtids` describe that place and do not take part, so an
/// offset stored without GTIDs (an older offset, one set by hand) still matches the same
/// event read again with them.
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

impl BinlogPosition {
    /// The numeric suffix of the binlog file name (`binlog.000012` → 12); files of one
    /// server sort by it. A name without a numeric suffix counts as 0.
    pub fn file_number(&self) -> u64 {
        self.file
            .rsplit_once('.')
            .and_then(|(_, n)| n.parse().ok())
            .unwrap_or(0)
    }
}

impl Ord for BinlogPosition {
    fn cmp(&self, other: &Self) -> Ordering {
        self.file_number()
            .cmp(&other.file_number())
            .then_with(|| self.file.cmp(&other.file))
            .then_with(|| self.pos.cmp(&other.pos))
            .then_with(|| other.snapshot.cmp(&self.snapshot))
            .then_with(|| self.event.cmp(&other.event))
            .then_with(|| self.row.cmp(&other.row))
    }
}

impl PartialEq for BinlogPosition {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for BinlogPosition {}

impl std::hash::Hash for BinlogPosition {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.file.hash(state);
        self.pos.hash(state);
        self.snapshot.hash(state);
        self.event.hash(state);
        self.row.hash(state);
    }
}

impl PartialOrd for BinlogPosition {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Where an event comes from; totally ordered within a connector.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourcePosition {
    /// Postgres logical replication.
    Postgres(PgPosition),
    /// MySQL or MariaDB binlog.
    Binlog(BinlogPosition),
}

/// Error reading a serialised [`SourcePosition`].
#[derive(Debug, thiserror::Error)]
#[error("invalid stored source position: {0}")]
pub struct InvalidPosition(#[from] serde_json::Error);

impl SourcePosition {
    /// The stable serialised form (compact JSON).
    pub fn to_json(&self) -> String {
        // Serialising plain structs of strings and integers cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses the form written by [`Self::to_json`].
    pub fn from_json(text: &str) -> Result<Self, InvalidPosition> {
        Ok(serde_json::from_str(text)?)
    }

    /// True for positions of snapshot rows.
    pub fn is_snapshot(&self) -> bool {
        match self {
            Self::Postgres(p) => p.snapshot,
            Self::Binlog(p) => p.snapshot,
        }
    }

    /// The position as fixed-width text whose byte order is the positions' order (for
    /// names that must sort as the positions do: the lake's files).
    ///
    /// - Postgres: `<lsn_commit, 16 hex>-<0 snapshot | 1 stream>-<seq, 20 digits>`;
    /// - binlog: `<file number, 10 digits>-<pos, 20 digits>-<0|1>-<event, 20 digits>-<row, 10 digits>`.
    ///
    /// The fields are the ones that order positions (see the module's order rules).
    pub fn sort_token(&self) -> String {
        match self {
            Self::Postgres(p) => format!(
                "{:016x}-{}-{:020}",
                p.lsn_commit.0,
                u8::from(!p.snapshot),
                p.seq
            ),
            Self::Binlog(b) => format!(
                "{:010}-{:020}-{}-{:020}-{:010}",
                b.file_number(),
                b.pos,
                u8::from(!b.snapshot),
                b.event,
                b.row
            ),
        }
    }

    /// Debezium's offset object for this position (what Kafka Connect's offsets topic and
    /// `GET /connectors/{name}/offsets` show), plus `outflow_position`, the exact form.
    pub fn debezium_offset(&self) -> serde_json::Value {
        let mut value = match self {
            Self::Postgres(p) => serde_json::json!({
                "lsn_proc": p.lsn.0,
                "lsn_commit": p.lsn_commit.0,
                "lsn": p.lsn.0,
                "txId": p.tx_id,
            }),
            Self::Binlog(b) => serde_json::json!({
                "file": b.file,
                "pos": b.pos,
                "row": b.row,
                "event": b.event,
                "gtids": b.gtid_set,
            }),
        };
        if let Some(object) = value.as_object_mut() {
            // Debezium marks offsets taken inside a snapshot with `snapshot: true`.
            if self.is_snapshot() {
                object.insert("snapshot".into(), serde_json::Value::Bool(true));
            }
            object.insert(
                "outflow_position".into(),
                serde_json::to_value(self).unwrap_or(serde_json::Value::Null),
            );
        }
        value
    }

    /// Reads an offset object: outflow's own position when it has one, else Debezium's
    /// fields (an offset Debezium stored, or one set by hand); `None` when it is neither.
    pub fn from_debezium_offset(value: &serde_json::Value) -> Option<Self> {
        if let Some(own) = value.get("outflow_position") {
            return serde_json::from_value(own.clone()).ok();
        }
        let number = |name: &str| value.get(name).and_then(serde_json::Value::as_u64);
        if let Some(lsn) = number("lsn") {
            // Debezium resumes after the last fully processed transaction's commit.
            let commit = number("lsn_commit").unwrap_or(lsn);
            return Some(Self::Postgres(PgPosition {
                snapshot_cursor: None,
                lsn_commit: Lsn(commit),
                lsn: Lsn(lsn),
                seq: u64::MAX,
                tx_id: number("txId").and_then(|t| u32::try_from(t).ok()),
                snapshot: false,
            }));
        }
        let file = value.get("file")?.as_str()?.to_owned();
        Some(Self::Binlog(BinlogPosition {
            file,
            pos: number("pos")?,
            event: number("event").unwrap_or(0),
            row: number("row")
                .and_then(|r| u32::try_from(r).ok())
                .unwrap_or(0),
            gtid: None,
            gtid_set: value
                .get("gtids")
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned),
            snapshot: false,
            snapshot_reads: None,
        }))
    }
}

impl Ord for SourcePosition {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Self::Postgres(a), Self::Postgres(b)) => a.cmp(b),
            (Self::Binlog(a), Self::Binlog(b)) => a.cmp(b),
            // Never compared within one connector; any fixed order keeps `Ord` total.
            (Self::Postgres(_), Self::Binlog(_)) => Ordering::Less,
            (Self::Binlog(_), Self::Postgres(_)) => Ordering::Greater,
        }
    }
}

impl PartialOrd for SourcePosition {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pg(lsn_commit: u64, seq: u64, snapshot: bool) -> PgPosition {
        PgPosition {
            snapshot_cursor: None,
            lsn_commit: Lsn(lsn_commit),
            lsn: Lsn(lsn_commit),
            seq,
            tx_id: None,
            snapshot,
        }
    }

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

    #[test]
    fn lsn_text_round_trip() {
        let lsn: Lsn = "16/B374D848".parse().unwrap();
        assert_eq!(lsn, Lsn(0x16_B374_D848));
        assert_eq!(lsn.to_string(), "16/B374D848");
        assert!("16B374D848".parse::<Lsn>().is_err());
        assert!("x/1".parse::<Lsn>().is_err());
    }

    #[test]
    fn postgres_order() {
        // Commit LSN first; snapshot rows before streamed changes at the same point;
        // sequence within a transaction.
        assert!(pg(10, 5, false) < pg(11, 0, false));
        assert!(pg(10, 99, true) < pg(10, 0, false));
        assert!(pg(10, 1, false) < pg(10, 2, false));
    }

    #[test]
    fn binlog_order_uses_file_number_not_text() {
        assert!(binlog("binlog.000009", 900, 0, 0) < binlog("binlog.000010", 4, 0, 0));
        assert!(binlog("binlog.999999", 4, 0, 0) < binlog("binlog.1000000", 4, 0, 0));
        assert!(binlog("b.1", 100, 2, 0) < binlog("b.1", 100, 2, 1));
        assert!(binlog("b.1", 100, 2, 7) < binlog("b.1", 100, 3, 0));
        let mut snap = binlog("b.1", 100, 50, 0);
        snap.snapshot = true;
        assert!(snap < binlog("b.1", 100, 0, 0));
    }

    #[test]
    fn serialised_form_is_stable() {
        let p = SourcePosition::Postgres(PgPosition {
            snapshot_cursor: None,
            lsn_commit: Lsn(200),
            lsn: Lsn(150),
            seq: 3,
            tx_id: Some(771),
            snapshot: false,
        });
        assert_eq!(
            p.to_json(),
            r#"{"postgres":{"lsn_commit":200,"lsn":150,"seq":3,"txId":771}}"#
        );
        let b = SourcePosition::Binlog(BinlogPosition {
            gtid: Some("0-1-7".into()),
            ..binlog("binlog.000002", 342, 1, 0)
        });
        assert_eq!(
            b.to_json(),
            r#"{"binlog":{"file":"binlog.000002","pos":342,"event":1,"row":0,"gtid":"0-1-7"}}"#
        );
        assert!(SourcePosition::from_json("{\"postgres\":{}}").is_err());
    }

    fn any_position() -> impl Strategy<Value = SourcePosition> {
        prop_oneof![
            (
                any::<u64>(),
                any::<u64>(),
                any::<u64>(),
                any::<Option<u32>>(),
                any::<bool>()
            )
                .prop_map(|(c, l, seq, tx_id, snapshot)| SourcePosition::Postgres(
                    PgPosition {
                        snapshot_cursor: None,
                        lsn_commit: Lsn(c),
                        lsn: Lsn(l),
                        seq,
                        tx_id,
                        snapshot
                    }
                )),
            (
                "[a-z-]{1,8}\\.[0-9]{6}",
                any::<u64>(),
                any::<u64>(),
                any::<u32>(),
                proptest::option::of("[0-9]-[0-9]-[0-9]{1,5}"),
                any::<bool>()
            )
                .prop_map(|(file, pos, event, row, gtid, snapshot)| {
                    SourcePosition::Binlog(BinlogPosition {
                        file,
                        pos,
                        event,
                        row,
                        gtid_set: gtid.clone(),
                        gtid,
                        snapshot,
                        snapshot_reads: None,
                    })
                }),
        ]
    }

    proptest! {
        #[test]
        fn json_round_trip(p in any_position()) {
            prop_assert_eq!(SourcePosition::from_json(&p.to_json()).unwrap(), p);
        }

        #[test]
        fn order_is_total_and_consistent(a in any_position(), b in any_position(), c in any_position()) {
            // Antisymmetry and transitivity of the total order.
            prop_assert_eq!(a.cmp(&b), b.cmp(&a).reverse());
            if a <= b && b <= c {
                prop_assert!(a <= c);
            }
            // The order agrees with equality.
            prop_assert_eq!(a.cmp(&b) == Ordering::Equal, a == b);
        }

        #[test]
        fn sort_tokens_sort_as_positions(a in any_position(), b in any_position()) {
            // Same-named binlog files only: across names the token orders by number alone.
            prop_assume!(match (&a, &b) {
                (SourcePosition::Binlog(x), SourcePosition::Binlog(y)) => x.file == y.file || x.file_number() != y.file_number(),
                _ => true,
            });
            if std::mem::discriminant(&a) == std::mem::discriminant(&b) && a.sort_token() != b.sort_token() {
                prop_assert_eq!(a.cmp(&b), a.sort_token().cmp(&b.sort_token()));
            }
        }

        #[test]
        fn debezium_offsets_round_trip(p in any_position()) {
            prop_assert_eq!(SourcePosition::from_debezium_offset(&p.debezium_offset()), Some(p));
        }

        #[test]
        fn lsn_display_round_trips(v in any::<u64>()) {
            prop_assert_eq!(Lsn(v).to_string().parse::<Lsn>().unwrap(), Lsn(v));
        }
    }
}
