//! The snapshot: every captured table read inside one exported snapshot, in parallel,
//! emitted in a fixed order, and resumable after a stop.
//!
//! Order: tables by `schema.table`; rows of a table with a primary key in key order
//! (`ORDER BY` the key, which an index serves). Units of work are a table, or a key range
//! of a large one (split points sampled with `TABLESAMPLE`), read with `COPY (SELECT …)`.
//! Up to `snapshot.max.threads` units are read at once, each on its own connection that
//! imported the snapshot; each reader parses rows into values and hands them over a small
//! bounded channel; the units are consumed strictly in order, so readers ahead of the
//! current unit stop when their channel is full. Memory is bounded by threads × channel.
//!
//! Resume: the last row of every batch carries a [`SnapshotCursor`] (table and key). A
//! restart finds the stored position inside the snapshot; the slot has not moved (nothing
//! is acknowledged before the snapshot completes), so it still streams from the original
//! consistent point L1. A temporary slot exports a new snapshot at L2; in it, the tables
//! not started are read whole and the interrupted table from after the cursor's key.
//! Changes the stream then delivers with a commit LSN below L2 are already in what was
//! read at L2, so they are dropped for those rows ([`ResumeWindow`]); changes to the
//! finished tables and to the interrupted table's rows at or before the cursor pass.

use std::cmp::Ordering as KeyOrdering;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use outflow_core::snapshot::{
    CHUNK_ROWS, Merged, OrderedReads, SnapshotMarks, SnapshotUnit, UnitChunk, UnitSender,
};
use outflow_core::source::SourceContext;
use outflow_core::{
    ChangeEvent, EventKind, SnapshotMark, SourceError, SourcePosition, TableId, Value,
};

use crate::position::{Lsn, PgPosition, SnapshotCursor};

use super::{BATCH_EVENTS, PostgresSource, StreamState, flush, futures_next, query_error, quote};
use crate::catalog::Catalog;
use crate::copy::CopyField;
use crate::pgoutput::RelationColumn;
use crate::relation::Relation;

/// Changes of the stream that a resumed snapshot already read.
#[derive(Debug)]
pub(super) struct ResumeWindow {
    /// Consistent point of the resumed snapshot: transactions committed before it are in
    /// what it read.
    pub(super) until: Lsn,
    /// Tables read whole by the resumed snapshot.
    pub(super) reread: HashSet<TableId>,
    /// The interrupted table, read from after `key`; `None` key: not comparable here, so
    /// its changes all pass (a row may then show a change before its read).
    pub(super) partial: Option<(TableId, Option<Vec<Value>>)>,
}

impl ResumeWindow {
    /// Whether a change of `table` with these key values, committed at `commit`, is
    /// already reflected in the resumed snapshot's reads.
    pub(super) fn covers(&self, commit: Lsn, table: &TableId, keys: &[Option<Vec<Value>>]) -> bool {
        if commit >= self.until {
            return false;
        }
        if self.reread.contains(table) {
            return true;
        }
        match &self.partial {
            Some((id, Some(cursor))) if id == table => keys.iter().all(|key| {
                key.as_ref().is_some_and(|k| {
                    compare_keys(k, cursor).is_some_and(|o| o == KeyOrdering::Greater)
                })
            }),
            _ => false,
        }
    }
}

/// Orders two keys as Postgres orders them, for the value kinds where that is the
/// natural order of the value (numbers, booleans, dates and times, UUIDs, bytes, and text
/// under the C collation); `None` otherwise.
fn compare_keys(a: &[Value], b: &[Value]) -> Option<KeyOrdering> {
    if a.len() != b.len() {
        return None;
    }
    for (x, y) in a.iter().zip(b) {
        let ordering = match (x, y) {
            (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
            (Value::Int16(x), Value::Int16(y)) => x.cmp(y),
            (Value::Int32(x), Value::Int32(y)) => x.cmp(y),
            (Value::Int64(x), Value::Int64(y)) => x.cmp(y),
            (Value::Date(x), Value::Date(y)) => x.cmp(y),
            (Value::Timestamp(x), Value::Timestamp(y))
            | (Value::TimestampTz(x), Value::TimestampTz(y)) => x.cmp(y),
            (Value::Uuid(x), Value::Uuid(y)) => x.cmp(y),
            (Value::Bytes(x), Value::Bytes(y)) => x.cmp(y),
            (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
            _ => return None,
        };
        if ordering != KeyOrdering::Equal {
            return Some(ordering);
        }
    }
    Some(KeyOrdering::Equal)
}

/// A captured table as the snapshot reads it.
#[derive(Debug, Clone)]
struct SnapshotTable {
    id: TableId,
    columns: Vec<String>,
    /// Primary-key columns: name, position in `columns`, SQL type (`format_type`), and
    /// whether their text order is the byte order (non-collatable, or C collation).
    key: Vec<(String, usize, String, bool)>,
    relation: Relation,
    estimate: u64,
}

impl SnapshotTable {
    fn name(&self) -> String {
        format!("{}.{}", self.id.namespace, self.id.table)
    }

    fn key_list(&self) -> String {
        self.key
            .iter()
            .map(|(name, ..)| quote(name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `ROW(k1, k2) <op> ROW('v1'::t1, 'v2'::t2)`.
    fn key_condition(&self, op: &str, values: &[Option<String>]) -> String {
        let literals: Vec<String> = self
            .key
            .iter()
            .zip(values)
            .map(|((_, _, sql_type, _), v)| match v {
                Some(v) => format!("'{}'::{sql_type}", v.replace('\'', "''")),
                None => format!("NULL::{sql_type}"),
            })
            .collect();
        format!("ROW({}) {op} ROW({})", self.key_list(), literals.join(", "))
    }

    /// The `COPY` reading the rows after `lo` up to and including `hi`, in key order.
    fn copy_statement(
        &self,
        lo: Option<&[Option<String>]>,
        hi: Option<&[Option<String>]>,
    ) -> String {
        let columns = if self.columns.is_empty() {
            "*".to_owned()
        } else {
            self.columns
                .iter()
                .map(|c| quote(c))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut conditions = Vec::new();
        if let Some(lo) = lo {
            conditions.push(self.key_condition(">", lo));
        }
        if let Some(hi) = hi {
            conditions.push(self.key_condition("<=", hi));
        }
        let mut select = format!(
            "SELECT {columns} FROM {}.{}",
            quote(&self.id.namespace),
            quote(&self.id.table)
        );
        if !conditions.is_empty() {
            select.push_str(" WHERE ");
            select.push_str(&conditions.join(" AND "));
        }
        if !self.key.is_empty() {
            select.push_str(" ORDER BY ");
            select.push_str(&self.key_list());
        }
        format!("COPY ({select}) TO STDOUT")
    }
}

/// One unit of work: a table or a key range of one.
#[derive(Debug, Clone)]

/// A snapshot row with its key as text (for the cursor).
struct ReadRow {
    row: Vec<Value>,
    key: Option<Vec<Option<String>>>,
}

/// Reads one unit with `client`, sending parsed rows; returns the client when done.
async fn read_unit(
    client: Arc<tokio_postgres::Client>,
    statement: String,
    table: SnapshotTable,
    tx: UnitSender<ReadRow, Arc<tokio_postgres::Client>>,
) {
    let result = async {
        let stream = client
            .copy_out(&statement)
            .await
            .map_err(|e| query_error("starting COPY", e))?;
        let mut stream = std::pin::pin!(stream);
        let mut carry = Vec::new();
        let mut rows = Vec::with_capacity(CHUNK_ROWS);
        let name = table.name();
        while let Some(chunk) = futures_next(&mut stream).await {
            let chunk = chunk.map_err(|e| query_error("reading COPY data", e))?;
            // The server sends a row per message: parse straight from the message and
            // keep only a partial line for the next one.
            let from_chunk = carry.is_empty();
            if !from_chunk {
                carry.extend_from_slice(&chunk);
            }
            let data: &[u8] = if from_chunk { &chunk } else { &carry };
            let mut start = 0;
            while let Some(end) = memchr::memchr(b'\n', &data[start..]) {
                let line = &data[start..start + end];
                let fields = crate::copy::parse_line(line).map_err(|e| {
                    SourceError::definite(
                        format!("COPY of {name}: {e}"),
                        "report this as a bug with the row",
                    )
                })?;
                let row = table
                    .relation
                    .row(&fields.iter().map(CopyField::as_column).collect::<Vec<_>>())
                    .map_err(|e| {
                        SourceError::definite(e.to_string(), "check the column's type mapping")
                    })?;
                let key = (!table.key.is_empty()).then(|| {
                    table
                        .key
                        .iter()
                        .map(|(_, index, ..)| match fields.get(*index) {
                            Some(CopyField::Text(bytes)) => {
                                Some(String::from_utf8_lossy(bytes).into_owned())
                            }
                            _ => None,
                        })
                        .collect()
                });
                rows.push(ReadRow { row, key });
                if rows.len() == CHUNK_ROWS
                    && tx
                        .send(Ok(UnitChunk::Rows(std::mem::replace(
                            &mut rows,
                            Vec::with_capacity(CHUNK_ROWS),
                        ))))
                        .await
                        .is_err()
                {
                    return Ok(None);
                }
                start += end + 1;
            }
            if from_chunk {
                carry.extend_from_slice(&chunk[start..]);
            } else {
                carry.drain(..start);
            }
        }
        if !rows.is_empty() && tx.send(Ok(UnitChunk::Rows(rows))).await.is_err() {
            return Ok(None);
        }
        Ok(Some(()))
    }
    .await;
    let message = match result {
        Ok(Some(())) => Ok(UnitChunk::Done(client)),
        Ok(None) => return,
        Err(e) => Err(e),
    };
    let _ = tx.send(message).await;
}

impl PostgresSource {
    /// Opens `threads` connections inside the exported snapshot.
    async fn snapshot_readers(
        &self,
        exported: &str,
        threads: usize,
    ) -> Result<Vec<Arc<tokio_postgres::Client>>, SourceError> {
        let mut readers = Vec::with_capacity(threads);
        for _ in 0..threads {
            let reader = self.catalog().await?;
            let client = reader.into_client();
            client
                .batch_execute(&format!(
                    "SET standard_conforming_strings = on; \
                     BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; \
                     SET TRANSACTION SNAPSHOT '{}'",
                    exported.replace('\'', "''")
                ))
                .await
                .map_err(|e| query_error("importing the exported snapshot", e))?;
            readers.push(Arc::new(client));
        }
        Ok(readers)
    }

    /// The captured tables, in snapshot order, with their relations defined in `state`.
    async fn snapshot_tables(
        &self,
        catalog: &mut Catalog,
        client: &tokio_postgres::Client,
        state: &mut StreamState,
    ) -> Result<Vec<SnapshotTable>, SourceError> {
        // The snapshot reads exactly the columns the publication streams: from 15 on,
        // `pg_publication_tables.attnames` lists them (a publication's column list;
        // stored generated columns on 18 with `publish_generated_columns = stored`);
        // before, every column but the generated ones.
        let version = super::server_version(client).await?;
        let published_columns = if version >= 150_000 {
            "p.attnames::text[]"
        } else {
            "NULL::text[]"
        };
        let rows = client
            .query(
                &format!(
                    "SELECT c.oid, n.nspname::text, c.relname::text, greatest(c.reltuples, 0)::int8, \
                     {published_columns} \
                     FROM pg_publication_tables p \
                     JOIN pg_namespace n ON n.nspname = p.schemaname \
                     JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = p.tablename \
                     WHERE p.pubname = $1 ORDER BY 2, 3"
                ),
                &[&self.config.publication_name],
            )
            .await
            .map_err(|e| query_error("listing published tables", e))?;
        let database_collation_is_c: bool = client
            .query_one(
                "SELECT datcollate IN ('C', 'POSIX') FROM pg_database WHERE datname = current_database()",
                &[],
            )
            .await
            .map_err(|e| query_error("reading the database collation", e))?
            .get(0);
        let mut tables = Vec::new();
        for row in &rows {
            let (oid, schema, name, estimate): (u32, String, String, i64) =
                (row.get(0), row.get(1), row.get(2), row.get(3));
            let published: Option<Vec<String>> = row.get(4);
            if !self.config.captures(&schema, &name) {
                continue;
            }
            let columns = client
                .query(
                    "SELECT a.attname::text, a.atttypid, a.atttypmod, \
                     format_type(a.atttypid, a.atttypmod), \
                     a.attcollation = 0 OR co.collname IN ('C', 'POSIX') \
                       OR (co.collname = 'default' AND $2::bool) \
                     FROM pg_attribute a LEFT JOIN pg_collation co ON co.oid = a.attcollation \
                     WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped \
                     AND CASE WHEN $3::text[] IS NULL THEN a.attgenerated = '' \
                         ELSE a.attname = ANY($3::text[]) END \
                     ORDER BY a.attnum",
                    &[&oid, &database_collation_is_c, &published],
                )
                .await
                .map_err(|e| query_error("reading table columns", e))?;
            let names: Vec<String> = columns.iter().map(|r| r.get(0)).collect();
            let mut types = Vec::with_capacity(columns.len());
            let mut relation_columns = Vec::with_capacity(columns.len());
            for (row, name) in columns.iter().zip(&names) {
                let type_oid: u32 = row.get(1);
                let modifier: i32 = row.get(2);
                types.push((
                    catalog
                        .resolve_type(type_oid)
                        .await
                        .map_err(|e| query_error("resolving a type", e))?,
                    modifier,
                ));
                relation_columns.push(RelationColumn {
                    is_key: false,
                    name,
                    type_oid,
                    type_modifier: modifier,
                });
            }
            let info = catalog
                .table_info(oid)
                .await
                .map_err(|e| query_error("reading the primary key", e))?;
            state
                .relations
                .define(oid, &schema, &name, &relation_columns, types, &info);
            state.described.insert(oid);
            let relation = state
                .relations
                .get(oid)
                .map_err(|e| SourceError::definite(e.to_string(), "report this as a bug"))?
                .clone();
            let key = info
                .primary_key
                .iter()
                .filter_map(|k| {
                    let index = names.iter().position(|n| n == k)?;
                    let row = &columns[index];
                    Some((
                        k.clone(),
                        index,
                        row.get::<_, String>(3),
                        row.get::<_, bool>(4),
                    ))
                })
                .collect::<Vec<_>>();
            // A key column that is not read (generated, or left out of the publication's
            // column list) cannot order the reads.
            let key = if key.len() == info.primary_key.len() {
                key
            } else {
                Vec::new()
            };
            tables.push(SnapshotTable {
                id: relation.schema.id.clone(),
                columns: names,
                key,
                relation,
                estimate: u64::try_from(estimate).unwrap_or(0),
            });
        }
        Ok(tables)
    }

    /// Split points for reading a large table in key ranges: keys of a sample, evenly
    /// spaced, strictly after `after`.
    async fn split_points(
        &self,
        client: &tokio_postgres::Client,
        table: &SnapshotTable,
        after: Option<&[Option<String>]>,
        threads: usize,
    ) -> Result<Vec<Vec<Option<String>>>, SourceError> {
        let unit_rows = self.config.snapshot_fetch_size.saturating_mul(4).max(1);
        let wanted = usize::try_from(table.estimate / unit_rows)
            .unwrap_or(usize::MAX)
            .min(threads * 8);
        if threads < 2 || table.key.is_empty() || wanted < 2 {
            return Ok(Vec::new());
        }
        // About 100 sampled rows per split point. SYSTEM samples whole pages, cheap on a
        // large table but clustered; BERNOULLI samples rows, for tables up to a million.
        let percent =
            ((wanted as f64 * 100.0) / table.estimate.max(1) as f64 * 100.0).clamp(0.01, 100.0);
        let method = if table.estimate > 1_000_000 {
            "SYSTEM"
        } else {
            "BERNOULLI"
        };
        let keys: Vec<String> = table
            .key
            .iter()
            .enumerate()
            // Aliased: `ORDER BY "k"` would otherwise sort by the text output column.
            .map(|(i, (name, ..))| format!("{}::text AS split_{i}", quote(name)))
            .collect();
        let mut sql = format!(
            "SELECT {} FROM {}.{} TABLESAMPLE {method} ({percent})",
            keys.join(", "),
            quote(&table.id.namespace),
            quote(&table.id.table)
        );
        if let Some(after) = after {
            sql.push_str(" WHERE ");
            sql.push_str(&table.key_condition(">", after));
        }
        sql.push_str(" ORDER BY ");
        sql.push_str(&table.key_list());
        let rows = client
            .query(&sql, &[])
            .await
            .map_err(|e| query_error("sampling split points", e))?;
        let step = (rows.len() / wanted).max(1);
        let mut points: Vec<Vec<Option<String>>> = rows
            .iter()
            .skip(step)
            .step_by(step)
            .map(|r| {
                (0..table.key.len())
                    .map(|i| r.get::<_, Option<String>>(i))
                    .collect()
            })
            .collect();
        points.dedup();
        Ok(points)
    }

    /// Reads the snapshot exported as `exported` and emits every row as op `r`, then a
    /// completion marker. `position_lsn` is the consistent point positions carry (the
    /// slot's, also when resuming); `resume` is the stored position inside an interrupted
    /// snapshot. Returns what the stream must drop when resuming.
    pub(super) async fn snapshot(
        &self,
        catalog: &mut Catalog,
        exported: &str,
        position_lsn: Lsn,
        resume: Option<&PgPosition>,
        state: &mut StreamState,
        ctx: &SourceContext,
    ) -> Result<Option<(HashSet<TableId>, Option<(TableId, Option<Vec<Value>>)>)>, SourceError>
    {
        let threads = self.config.snapshot_max_threads.max(1);
        let readers = self.snapshot_readers(exported, threads).await?;
        let tables = self.snapshot_tables(catalog, &readers[0], state).await?;

        // Where to start: after the tables an interrupted snapshot finished.
        let cursor = resume.and_then(|p| p.snapshot_cursor.as_deref());
        let (first_table, first_after) = match cursor {
            None if resume.is_some() => {
                // A stop before the first batch ended: nothing to keep.
                (0, None)
            }
            None => (0, None),
            Some(SnapshotCursor { table, key }) => {
                match tables.iter().position(|t| &t.name() == table) {
                    Some(i) => (i, key.clone()),
                    // The table is gone: continue with the ones after it.
                    None => (
                        tables
                            .iter()
                            .position(|t| &t.name() > table)
                            .unwrap_or(tables.len()),
                        None,
                    ),
                }
            }
        };
        let mut window = None;
        if resume.is_some() {
            let partial = cursor
                .filter(|c| c.key.is_some())
                .and_then(|_| tables.get(first_table))
                .map(|t| {
                    let comparable = t.key.iter().all(|(.., c)| *c);
                    let values = first_after.as_ref().and_then(|key| {
                        let columns: Vec<crate::pgoutput::ColumnData<'_>> = key
                            .iter()
                            .map(|v| match v {
                                Some(v) => crate::pgoutput::ColumnData::Text(v.as_bytes()),
                                None => crate::pgoutput::ColumnData::Null,
                            })
                            .collect();
                        let values: Option<Vec<Value>> = t
                            .key
                            .iter()
                            .zip(&columns)
                            .map(|((_, index, ..), column)| {
                                let (pg_type, modifier) = t.relation.types.get(*index)?;
                                match column {
                                    crate::pgoutput::ColumnData::Text(text) => {
                                        crate::types::parse_text(pg_type, *modifier, text).ok()
                                    }
                                    _ => Some(Value::Null),
                                }
                            })
                            .collect();
                        values.filter(|_| comparable)
                    });
                    if values.is_none() {
                        tracing::warn!(table = %t.name(), "resumed snapshot: the key cannot be compared outside Postgres; changes made to rows after the cursor while the connector was stopped are emitted before those rows' reads");
                    }
                    (t.id.clone(), values)
                });
            let skip_partial = usize::from(partial.is_some());
            let reread = tables
                .iter()
                .skip(first_table + skip_partial)
                .map(|t| t.id.clone())
                .collect();
            window = Some((reread, partial));
            if cursor.is_some_and(|c| c.key.is_none()) {
                tracing::warn!(table = %tables.get(first_table).map(SnapshotTable::name).unwrap_or_default(), "resumed snapshot: a table without a primary key is read again from its start; its rows read before the stop are emitted again");
            }
        }

        // Units of work, in emission order.
        let mut units = Vec::new();
        for (index, table) in tables.iter().enumerate().skip(first_table) {
            let after = if index == first_table {
                first_after.clone()
            } else {
                None
            };
            let points = self
                .split_points(&readers[0], table, after.as_deref(), threads)
                .await?;
            let mut lo = after;
            for hi in points.iter().map(Some).chain(std::iter::once(None)) {
                units.push(SnapshotUnit {
                    table: index,
                    work: table.copy_statement(lo.as_deref(), hi.map(Vec::as_slice)),
                    last_of_table: hi.is_none(),
                });
                lo = hi.cloned();
            }
        }
        let remaining: &[SnapshotTable] = tables.get(first_table..).unwrap_or(&[]);
        self.metrics
            .snapshot_tables
            .store(tables.len() as u64, Ordering::Relaxed);
        self.metrics
            .snapshot_tables_done
            .store(first_table as u64, Ordering::Relaxed);
        self.metrics.snapshot_rows_estimate.store(
            remaining.iter().map(|t| t.estimate).sum(),
            Ordering::Relaxed,
        );
        // Rows done count against the estimate of this run's remaining tables.
        self.metrics.snapshot_rows.store(0, Ordering::Relaxed);
        tracing::info!(
            tables = tables.len(),
            starting_at = first_table,
            units = units.len(),
            threads,
            resumed = resume.is_some(),
            "snapshot started"
        );

        // Read with up to `threads` units in flight, consumed in order.
        let names: Vec<String> = tables.iter().map(SnapshotTable::name).collect();
        let mut reads = OrderedReads::new(readers, units, |client, unit, tx| {
            read_unit(client, unit.work.clone(), tables[unit.table].clone(), tx)
        });
        let mut seq = resume.map_or(0, |p| p.seq);
        // Held rows carry their key (for the cursor) and their table.
        let mut marks = SnapshotMarks::new(resume.is_none());
        while let Some(merged) = reads.next(&ctx.shutdown, |t| names[t].clone()).await? {
            match merged {
                Merged::Rows { table: index, rows } => {
                    let table = &tables[index];
                    self.metrics
                        .snapshot_rows
                        .fetch_add(rows.len() as u64, Ordering::Relaxed);
                    for ReadRow { row, key } in rows {
                        seq += 1;
                        let event = ChangeEvent {
                            position: SourcePosition::from(PgPosition {
                                snapshot_cursor: None,
                                lsn_commit: position_lsn,
                                lsn: position_lsn,
                                seq,
                                tx_id: None,
                                snapshot: true,
                            }),
                            source_ts_us: Some(outflow_core::now_us()),
                            kind: EventKind::Read {
                                table: Arc::clone(&table.relation.schema),
                                after: row,
                                mark: SnapshotMark::True,
                            },
                        };
                        if let Some((previous, (previous_key, previous_table))) =
                            marks.push(event, (key, index))
                        {
                            self.push_snapshot_row(
                                state,
                                ctx,
                                previous,
                                previous_key,
                                &tables[previous_table],
                            )
                            .await?;
                        }
                    }
                }
                Merged::UnitDone { last_of_table, .. } => {
                    if last_of_table {
                        // The table's last row is marked as such.
                        marks.end_table();
                        self.metrics
                            .snapshot_tables_done
                            .fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        drop(reads);
        if let Some((last, _)) = marks.finish() {
            state.batch.push(last);
        }
        // The snapshot is complete: a position past every snapshot row (and before any
        // streamed transaction) becomes durable, so a restart streams instead of
        // snapshotting again.
        let done = PgPosition {
            snapshot_cursor: None,
            lsn_commit: position_lsn,
            lsn: position_lsn,
            seq: 0,
            tx_id: None,
            snapshot: false,
        };
        state.last_position = Some(done.clone());
        state.batch.push(ChangeEvent {
            position: SourcePosition::from(done),
            source_ts_us: Some(outflow_core::now_us()),
            kind: EventKind::Heartbeat,
        });
        flush(state, ctx).await?;
        tracing::info!(rows = seq, tables = tables.len(), "snapshot done");
        Ok(window)
    }

    /// Adds a snapshot row to the batch; a row that ends a batch carries the cursor.
    async fn push_snapshot_row(
        &self,
        state: &mut StreamState,
        ctx: &SourceContext,
        mut event: ChangeEvent,
        key: Option<Vec<Option<String>>>,
        table: &SnapshotTable,
    ) -> Result<(), SourceError> {
        if state.batch.len() + 1 >= BATCH_EVENTS {
            if let Some(mut p) = PgPosition::of(&event.position) {
                p.snapshot_cursor = Some(Box::new(SnapshotCursor {
                    table: table.name(),
                    key,
                }));
                event.position = p.into();
            }
            state.batch.push(event);
            return flush(state, ctx).await;
        }
        state.batch.push(event);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_compare_as_postgres_orders_them_where_that_is_plain() {
        use KeyOrdering::*;
        let cases = [
            (vec![Value::Int32(1)], vec![Value::Int32(2)], Some(Less)),
            (
                vec![Value::Int64(5), Value::String("b".into())],
                vec![Value::Int64(5), Value::String("a".into())],
                Some(Greater),
            ),
            (
                vec![Value::String("B".into())],
                vec![Value::String("a".into())],
                Some(Less),
            ),
            (
                vec![Value::Uuid([1; 16])],
                vec![Value::Uuid([1; 16])],
                Some(Equal),
            ),
            (vec![Value::Float64(1.0)], vec![Value::Float64(2.0)], None),
            (vec![Value::Int32(1)], vec![Value::Int64(1)], None),
        ];
        for (a, b, expected) in cases {
            assert_eq!(compare_keys(&a, &b), expected, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn window_drops_only_what_the_resumed_snapshot_read() {
        let t = |name: &str| TableId::new("public", name);
        let window = ResumeWindow {
            until: Lsn(100),
            reread: [t("later")].into_iter().collect(),
            partial: Some((t("partial"), Some(vec![Value::Int32(10)]))),
        };
        let key = |k: i32| Some(vec![Value::Int32(k)]);
        assert!(window.covers(Lsn(99), &t("later"), &[key(1)]));
        assert!(
            !window.covers(Lsn(100), &t("later"), &[key(1)]),
            "committed after L2"
        );
        assert!(!window.covers(Lsn(50), &t("done"), &[key(1)]));
        assert!(window.covers(Lsn(50), &t("partial"), &[key(11)]));
        assert!(!window.covers(Lsn(50), &t("partial"), &[key(10)]));
        assert!(
            !window.covers(Lsn(50), &t("partial"), &[key(5), key(50)]),
            "a key moving across the cursor: the change passes"
        );
    }
}
