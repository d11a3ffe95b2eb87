//! Debezium's `io.debezium.connector.postgresql.Source` block.
//!
//! After the common fields: `db` (the connector's database), `sequence`
//! (`["<previous transaction's end LSN>","<LSN>"]` as decimal strings, `null` where unknown, as
//! Debezium writes it; snapshot rows have no previous commit), `ts_us`, `ts_ns`, `schema`,
//! `table`, `txId`, `lsn`, `xmin` (always null: outflow does not read it), and, as
//! Debezium 3.6 adds them, `origin` and `origin_lsn` (the replication origin of a
//! transaction applied by another replication system; null: outflow does not yet read
//! pgoutput's Origin message). An envelope's `transaction.id` is `<xid>:<the event's
//! own LSN>`, as Debezium writes it.

use outflow_core::source_block::{
    SourceBlock, SourceBlockInput, SourceField, SourceFieldKind, SourceValue, timestamps,
};

use crate::position::PgPosition;

/// The Postgres connector's source block.
#[derive(Debug)]
pub struct PostgresSourceBlock;

/// The one [`PostgresSourceBlock`].
pub static POSTGRES_SOURCE_BLOCK: PostgresSourceBlock = PostgresSourceBlock;

static FIELDS: [SourceField; 11] = [
    SourceField::required("db", SourceFieldKind::String),
    SourceField::optional("sequence", SourceFieldKind::String),
    SourceField::optional("ts_us", SourceFieldKind::Int64),
    SourceField::optional("ts_ns", SourceFieldKind::Int64),
    SourceField::required("schema", SourceFieldKind::String),
    SourceField::required("table", SourceFieldKind::String),
    SourceField::optional("txId", SourceFieldKind::Int64),
    SourceField::optional("lsn", SourceFieldKind::Int64),
    SourceField::optional("xmin", SourceFieldKind::Int64),
    SourceField::optional("origin", SourceFieldKind::String),
    SourceField::optional("origin_lsn", SourceFieldKind::Int64),
];

impl SourceBlock for PostgresSourceBlock {
    fn connector(&self) -> &'static str {
        "postgresql"
    }

    /// Debezium's Postgres connector names each event's transaction by its xid and the
    /// event's own LSN (its BEGIN by the first record's, its END by the commit's): seen
    /// from Debezium 3.6 on a transaction of many rows.
    fn transaction_id(&self, event: &outflow_core::ChangeEvent, _begin_id: &str) -> Option<String> {
        let xid = PgPosition::tx_id_of(&event.position)?;
        let lsn = PgPosition::lsn_of(&event.position)?;
        Some(format!("{xid}:{}", lsn.0))
    }

    fn fields(&self) -> &'static [SourceField] {
        &FIELDS
    }

    fn values(&self, input: SourceBlockInput<'_>, out: &mut Vec<SourceValue>) {
        let position = &input.event.position;
        let lsn = PgPosition::lsn_of(position).map_or(0, |l| l.0);
        let previous = if position.is_snapshot() {
            None
        } else {
            // The previous transaction's end (its Commit message's WAL position), as
            // Debezium writes it (checked by tests/debezium_oracle.rs).
            input.previous_commit.and_then(PgPosition::lsn_of)
        };
        let mut sequence = String::with_capacity(48);
        sequence.push('[');
        match previous {
            Some(prev) => {
                sequence.push('"');
                push_decimal(&mut sequence, prev.0);
                sequence.push('"');
            }
            None => sequence.push_str("null"),
        }
        sequence.push_str(",\"");
        push_decimal(&mut sequence, lsn);
        sequence.push_str("\"]");
        out.push(SourceValue::Text(input.database.clone()));
        out.push(SourceValue::String(sequence));
        out.extend(timestamps(input.event));
        out.extend([
            SourceValue::Text(input.namespace.clone()),
            SourceValue::Text(input.table.clone()),
            PgPosition::tx_id_of(position)
                .map_or(SourceValue::Null, |x| SourceValue::Int64(i64::from(x))),
            i64::try_from(lsn).map_or(SourceValue::Null, SourceValue::Int64),
            SourceValue::Null,
            SourceValue::Null,
            SourceValue::Null,
        ]);
    }
}

/// Appends the decimal digits of `v` without the formatting machinery.
fn push_decimal(out: &mut String, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for &d in &digits[i..] {
        out.push(char::from(d));
    }
}
