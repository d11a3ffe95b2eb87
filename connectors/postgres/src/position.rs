//! Postgres positions: LSNs, [`PgPosition`] and the family that orders them.
//!
//! Order rule: by commit LSN of the transaction, then snapshot rows before streamed
//! changes, then the event's sequence number within its transaction (or within the
//! snapshot). The commit LSN comes first because logical decoding emits whole
//! transactions in commit order, and a restart from `confirmed_flush_lsn` resends whole
//! transactions. Several changes can share one WAL record (multi-insert), so the event LSN
//! alone is not unique; the sequence number is.
//!
//! In core's opaque [`SourcePosition`] the order words are `[lsn_commit, 0 snapshot | 1
//! stream, seq, lsn, txId + 1 (0: unknown)]`; the detail is the snapshot cursor of a
//! batch-ending snapshot row ([`SnapshotCursor`]), absent on every other position, so a
//! position costs no allocation. The serialised form (`{"postgres": {…}}`) uses
//! Debezium's offset field names (`lsn`, `lsn_commit`, `txId`) and never changes meaning:
//! offset stores and Kafka headers hold it.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use outflow_core::position::{InvalidPosition, PositionDetail, PositionFamily, SourcePosition};
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

impl PositionDetail for SnapshotCursor {}

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

/// The family of Postgres positions.
#[derive(Debug)]
pub struct PostgresPositions;

/// The one [`PostgresPositions`].
pub static POSTGRES_POSITIONS: PostgresPositions = PostgresPositions;

/// The sequence of a position read from a Debezium offset that stopped inside a
/// transaction ([`DebeziumPartial`]); one read from an offset at a commit has
/// `u64::MAX`. Both sort after every event of the commit they name.
const DEBEZIUM_PARTIAL_SEQ: u64 = u64::MAX - 1;

/// What a Debezium offset says of the transaction it stopped in: Debezium's `lsn_commit`
/// is the end of the last transaction whose commit it processed, and its `lsn` the WAL
/// record of the last change it emitted. When that change is past the commit, the next
/// transaction in commit order (xid `tx_id`, when the offset names it) was emitted up to
/// and including the changes whose records are at or before `through`; Debezium itself
/// resumes by skipping them, and so does outflow after taking over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DebeziumPartial {
    /// The end of the last complete transaction (Debezium's `lsn_commit`).
    pub after_commit: Lsn,
    /// The last emitted change's WAL record (Debezium's `lsn`).
    pub through: Lsn,
    /// The partly emitted transaction's xid, when known.
    pub xid: Option<u32>,
}

impl DebeziumPartial {
    /// Whether the change of transaction `xid` committing at `final_lsn`, its WAL record at
    /// `wal_start`, is one Debezium already emitted.
    pub fn emitted(&self, final_lsn: Lsn, xid: u32, wal_start: Lsn) -> bool {
        final_lsn > self.after_commit
            && self.xid.is_none_or(|x| x == xid)
            && wal_start <= self.through
    }
}

impl PgPosition {
    /// For a position read from a Debezium offset ([`PositionFamily::read_debezium_offset`])
    /// whose last change lies past its last complete commit, the transaction Debezium
    /// was in the middle of; `None` for every position outflow writes (their sequence is
    /// an index).
    pub fn debezium_partial(&self) -> Option<DebeziumPartial> {
        (self.seq == DEBEZIUM_PARTIAL_SEQ && !self.snapshot).then_some(DebeziumPartial {
            after_commit: self.lsn_commit,
            through: self.lsn,
            xid: self.tx_id,
        })
    }

    /// The Postgres position in `position`, if it is one.
    pub fn of(position: &SourcePosition) -> Option<Self> {
        if !position.is_of(&POSTGRES_POSITIONS) {
            return None;
        }
        let [lsn_commit, _, seq, lsn, tx] = *position.order();
        Some(Self {
            lsn_commit: Lsn(lsn_commit),
            lsn: Lsn(lsn),
            seq,
            tx_id: tx.checked_sub(1).and_then(|t| u32::try_from(t).ok()),
            snapshot: position.is_snapshot(),
            snapshot_cursor: position
                .detail::<SnapshotCursor>()
                .map(|c| Box::new(c.clone())),
        })
    }

    /// The commit LSN of `position`, if it is a Postgres one (no copy of the cursor).
    pub fn commit_of(position: &SourcePosition) -> Option<Lsn> {
        position
            .is_of(&POSTGRES_POSITIONS)
            .then(|| Lsn(position.order()[0]))
    }

    /// The event LSN of `position`, if it is a Postgres one.
    pub fn lsn_of(position: &SourcePosition) -> Option<Lsn> {
        position
            .is_of(&POSTGRES_POSITIONS)
            .then(|| Lsn(position.order()[3]))
    }

    /// The transaction id of `position`, if it is a Postgres one that has it.
    pub fn tx_id_of(position: &SourcePosition) -> Option<u32> {
        if !position.is_of(&POSTGRES_POSITIONS) {
            return None;
        }
        position.order()[4]
            .checked_sub(1)
            .and_then(|t| u32::try_from(t).ok())
    }
}

impl From<PgPosition> for SourcePosition {
    fn from(p: PgPosition) -> Self {
        SourcePosition::new(
            &POSTGRES_POSITIONS,
            [
                p.lsn_commit.0,
                u64::from(!p.snapshot),
                p.seq,
                p.lsn.0,
                p.tx_id.map_or(0, |t| u64::from(t) + 1),
            ],
            p.snapshot,
            p.snapshot_cursor
                .map(|c| Arc::new(*c) as Arc<dyn PositionDetail>),
        )
    }
}

impl PositionFamily for PostgresPositions {
    fn tag(&self) -> &'static str {
        "postgres"
    }

    fn to_json(&self, position: &SourcePosition) -> serde_json::Value {
        // Serialising a plain struct of integers and strings cannot fail.
        PgPosition::of(position)
            .and_then(|p| serde_json::to_value(p).ok())
            .unwrap_or(serde_json::Value::Null)
    }

    fn write_json(&self, position: &SourcePosition, out: &mut String) {
        // Serialising a plain struct of integers and strings cannot fail.
        match PgPosition::of(position).and_then(|p| serde_json::to_string(&p).ok()) {
            Some(text) => out.push_str(&text),
            None => out.push_str("null"),
        }
    }

    fn read_json(&self, object: serde_json::Value) -> Result<SourcePosition, InvalidPosition> {
        Ok(serde_json::from_value::<PgPosition>(object)?.into())
    }

    fn cmp_detail(&self, a: &SourcePosition, b: &SourcePosition) -> Ordering {
        a.detail::<SnapshotCursor>()
            .cmp(&b.detail::<SnapshotCursor>())
    }

    /// `<lsn_commit, 16 hex>-<0 snapshot | 1 stream>-<seq, 20 digits>`.
    fn sort_token(&self, position: &SourcePosition) -> String {
        let [lsn_commit, stream, seq, ..] = *position.order();
        format!("{lsn_commit:016x}-{stream}-{seq:020}")
    }

    fn debezium_offset(
        &self,
        position: &SourcePosition,
    ) -> serde_json::Map<String, serde_json::Value> {
        let [lsn_commit, _, _, lsn, _] = *position.order();
        let mut object = serde_json::Map::new();
        object.insert("lsn_proc".into(), lsn.into());
        object.insert("lsn_commit".into(), lsn_commit.into());
        object.insert("lsn".into(), lsn.into());
        object.insert(
            "txId".into(),
            PgPosition::tx_id_of(position).map_or(serde_json::Value::Null, Into::into),
        );
        object
    }

    fn read_debezium_offset(&self, offset: &serde_json::Value) -> Option<SourcePosition> {
        let number = |name: &str| offset.get(name).and_then(serde_json::Value::as_u64);
        let lsn = number("lsn")?;
        // Debezium resumes after the last fully processed transaction's commit...
        let commit = number("lsn_commit").unwrap_or(lsn);
        // ...skipping, in the transaction after it, the changes it had already emitted:
        // the last one's type is in the offset (a COMMIT or BEGIN emitted none of them);
        // older offsets without it name one past the commit.
        let partial = match offset
            .get("messageType")
            .and_then(serde_json::Value::as_str)
        {
            Some("COMMIT" | "BEGIN") => false,
            Some(_) => true,
            None => lsn > commit,
        };
        Some(
            PgPosition {
                snapshot_cursor: None,
                lsn_commit: Lsn(commit),
                lsn: Lsn(lsn),
                seq: if partial {
                    DEBEZIUM_PARTIAL_SEQ
                } else {
                    u64::MAX
                },
                tx_id: number("txId").and_then(|t| u32::try_from(t).ok()),
                snapshot: false,
            }
            .into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FAMILIES: &[&'static dyn PositionFamily] = &[&POSTGRES_POSITIONS];

    fn pg(lsn_commit: u64, seq: u64, snapshot: bool) -> SourcePosition {
        PgPosition {
            snapshot_cursor: None,
            lsn_commit: Lsn(lsn_commit),
            lsn: Lsn(lsn_commit),
            seq,
            tx_id: None,
            snapshot,
        }
        .into()
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
    fn a_debezium_offset_inside_a_transaction_names_what_it_emitted() {
        // Debezium stopped after the change at 0x150 of transaction 771, whose previous
        // transaction ended at 0x100.
        let offset = serde_json::json!({"lsn_proc": 0x150, "lsn_commit": 0x100, "lsn": 0x150, "txId": 771, "messageType": "INSERT"});
        let position = SourcePosition::from_debezium_offset(&offset, FAMILIES).unwrap();
        let partial = PgPosition::of(&position)
            .unwrap()
            .debezium_partial()
            .unwrap();
        assert!(partial.emitted(Lsn(0x180), 771, Lsn(0x150)));
        assert!(partial.emitted(Lsn(0x180), 771, Lsn(0x120)));
        assert!(
            !partial.emitted(Lsn(0x180), 771, Lsn(0x160)),
            "a later change of it"
        );
        assert!(
            !partial.emitted(Lsn(0x180), 772, Lsn(0x150)),
            "another transaction"
        );
        assert!(
            !partial.emitted(Lsn(0x90), 771, Lsn(0x90)),
            "at or before the commit"
        );
        // The first change of a transaction that starts where the last one ended: the
        // commit's end and the change's record are the same LSN (seen from Debezium 3.6).
        let first = serde_json::json!({"lsn_commit": 0x200, "lsn": 0x200, "txId": 772, "messageType": "UPDATE"});
        let position = SourcePosition::from_debezium_offset(&first, FAMILIES).unwrap();
        let partial = PgPosition::of(&position)
            .unwrap()
            .debezium_partial()
            .unwrap();
        assert!(partial.emitted(Lsn(0x280), 772, Lsn(0x200)));
        // A commit, or an older offset without the type at a commit: nothing partial.
        for complete in [
            serde_json::json!({"lsn_commit": 0x200, "lsn": 0x200, "txId": 771, "messageType": "COMMIT"}),
            serde_json::json!({"lsn_commit": 0x200, "lsn": 0x200, "txId": 771}),
        ] {
            let position = SourcePosition::from_debezium_offset(&complete, FAMILIES).unwrap();
            assert_eq!(PgPosition::of(&position).unwrap().debezium_partial(), None);
        }
        // An offset taken inside Debezium's snapshot is refused: streaming from it would
        // lose the rows not yet read; one after its last row is taken.
        let inside =
            serde_json::json!({"lsn": 0x300, "snapshot": true, "last_snapshot_record": false});
        assert_eq!(
            SourcePosition::from_debezium_offset(&inside, FAMILIES),
            None
        );
        let after =
            serde_json::json!({"lsn": 0x300, "snapshot": "INITIAL", "last_snapshot_record": true});
        assert!(SourcePosition::from_debezium_offset(&after, FAMILIES).is_some());
        // outflow's own positions never are.
        assert_eq!(
            PgPosition::of(&pg(10, 3, false))
                .unwrap()
                .debezium_partial(),
            None
        );
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
    fn serialised_form_is_stable() {
        let p: SourcePosition = PgPosition {
            snapshot_cursor: None,
            lsn_commit: Lsn(200),
            lsn: Lsn(150),
            seq: 3,
            tx_id: Some(771),
            snapshot: false,
        }
        .into();
        assert_eq!(
            p.to_json(),
            r#"{"postgres":{"lsn_commit":200,"lsn":150,"seq":3,"txId":771}}"#
        );
        // Fields are read by name, in any order.
        let stored = r#"{"postgres":{"lsn":150,"lsn_commit":200,"seq":3,"txId":771}}"#;
        assert_eq!(SourcePosition::from_json(stored, FAMILIES).unwrap(), p);
        assert!(SourcePosition::from_json("{\"postgres\":{}}", FAMILIES).is_err());
    }

    fn any_pg() -> impl Strategy<Value = PgPosition> {
        (
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<Option<u32>>(),
            any::<bool>(),
            proptest::option::of(("[a-z]{1,3}", proptest::option::of("[0-9]{1,3}"))),
        )
            .prop_map(|(c, l, seq, tx_id, snapshot, cursor)| PgPosition {
                snapshot_cursor: cursor.map(|(table, key)| {
                    Box::new(SnapshotCursor {
                        table,
                        key: key.map(|k| vec![Some(k)]),
                    })
                }),
                lsn_commit: Lsn(c),
                lsn: Lsn(l),
                seq,
                tx_id,
                snapshot,
            })
    }

    proptest! {
        #[test]
        fn fields_round_trip_through_the_opaque_position(p in any_pg()) {
            prop_assert_eq!(PgPosition::of(&p.clone().into()), Some(p));
        }

        #[test]
        fn json_round_trip(p in any_pg()) {
            let p: SourcePosition = p.into();
            prop_assert_eq!(SourcePosition::from_json(&p.to_json(), FAMILIES).unwrap(), p);
        }

        #[test]
        fn order_is_the_fields_order(a in any_pg(), b in any_pg()) {
            let expected = a.cmp(&b);
            let (x, y): (SourcePosition, SourcePosition) = (a.into(), b.into());
            prop_assert_eq!(x.cmp(&y), expected);
            prop_assert_eq!(x == y, expected == Ordering::Equal);
        }

        #[test]
        fn sort_tokens_sort_as_positions(a in any_pg(), b in any_pg()) {
            let (x, y): (SourcePosition, SourcePosition) = (a.into(), b.into());
            if x.sort_token() != y.sort_token() {
                prop_assert_eq!(x.cmp(&y), x.sort_token().cmp(&y.sort_token()));
            }
        }

        #[test]
        fn debezium_offsets_round_trip(p in any_pg()) {
            let p: SourcePosition = p.into();
            prop_assert_eq!(SourcePosition::from_debezium_offset(&p.debezium_offset(), FAMILIES), Some(p));
        }

        #[test]
        fn lsn_display_round_trips(v in any::<u64>()) {
            prop_assert_eq!(Lsn(v).to_string().parse::<Lsn>().unwrap(), Lsn(v));
        }
    }
}
