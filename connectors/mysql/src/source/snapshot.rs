//! Snapshots: consistent, parallel across tables and key ranges, resumable.
//!
//! **Views.** Every reading connection holds a REPEATABLE READ transaction started with
//! `START TRANSACTION WITH CONSISTENT SNAPSHOT`. On MariaDB each view reports its own
//! binlog coordinates (`binlog_snapshot_file` / `binlog_snapshot_position`), so no lock
//! is needed: the views of several connections are one view when their coordinates
//! agree (retried a few times); when commits keep falling between them, a brief
//! `FLUSH TABLES WITH READ LOCK` around the starts makes them agree, and without the
//! privilege for it the snapshot reads on one connection. MySQL always takes the brief
//! lock and reads `SHOW MASTER STATUS` and `@@gtid_executed` under it. That is
//! `snapshot.locking.mode=minimal`, the default; `extended` holds the lock until the
//! snapshot's connections close after the last row (both servers, RELOAD needed);
//! `none` never locks: MariaDB falls back to one connection instead, MySQL reads the
//! position before its single view starts (a change committed in between may arrive
//! twice).
//!
//! **Units.** Tables in `(database, table)` byte order; with `snapshot.max.threads` > 1, a
//! table with a single integer primary key and more than 8 × `snapshot.fetch.size` rows
//! (`information_schema` estimate) is cut into key ranges between its `MIN` and `MAX` in
//! the view. Up to that many units are read at once, each on its own connection, and
//! emitted strictly in order through small bounded channels (memory: threads × 4 × 512
//! rows), so positions and marks are the same as a one-connection snapshot's.
//!
//! **Resume.** A snapshot row that ends a batch carries [`SnapshotReads`]: the segments
//! read so far, each with the binlog coordinates of its view and the last row it reached
//! (table, and integer key values; a table with another kind of key counts only once
//! read whole). A restart inside a snapshot opens a new view, reads what follows the last
//! segment's end, and continues the stored sequence at the first view's coordinates.
//! The stream then starts at the first view's coordinates; until it passes the last
//! view's, a change is dropped when the snapshot read its row in a view whose
//! coordinates are after the change ([`already_read`]): that view already shows it. Those
//! streamed positions carry the segments too, so a restart inside that window filters
//! the same way. An update whose old and new keys fall in different views passes.

use std::cmp::Ordering as CmpOrdering;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use outflow_core::event::SnapshotMark;
use outflow_core::snapshot::{
    CHUNK_ROWS, Merged, OrderedReads, SnapshotMarks, SnapshotUnit, UnitChunk, UnitSender,
};
use outflow_core::{ChangeEvent, DataType, EventKind, SourceContext, SourceError, Value};

use crate::position::{BinlogPlace, BinlogPosition, SnapshotReads, SnapshotSegment};

use super::{
    BATCH_EVENTS, MySqlSource, SNAPSHOT_COMPLETE_ROW, StreamStart, Table, mysql_error, quote_ident,
    send,
};
use crate::config::{Flavor, SnapshotLocking};
use crate::gtid::{GtidState, MySqlGtidSet};

/// Attempts at lock-free agreeing views (MariaDB) before taking the brief lock.
const VIEW_ATTEMPTS: usize = 5;

/// The numeric suffix of a binlog file name (`binlog.000012` → 12).
fn file_number(name: &str) -> u64 {
    name.rsplit_once('.')
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(0)
}

/// Whether binlog coordinates `a` come before `b`.
pub(super) fn coordinates_before(a: (&str, u64), b: (&str, u64)) -> bool {
    (file_number(a.0), a.0, a.1) < (file_number(b.0), b.0, b.1)
}

/// A row's primary key as integers, when every key column is an integer whose order
/// in Rust is the server's (not BIGINT UNSIGNED read as a wrapped i64).
pub(super) fn int_key(table: &Table, row: &[Value]) -> Option<Vec<i128>> {
    let keys = &table.schema.primary_key;
    if keys.is_empty() {
        return None;
    }
    keys.iter()
        .map(|&i| {
            let codec = table.codecs.get(i)?;
            if codec.unsigned && codec.data_type == DataType::Int64 {
                return None;
            }
            match row.get(i)? {
                Value::Int16(v) => Some(i128::from(*v)),
                Value::Int32(v) => Some(i128::from(*v)),
                Value::Int64(v) => Some(i128::from(*v)),
                _ => None,
            }
        })
        .collect()
}

/// Whether a table's key is made of integer columns [`int_key`] can order.
fn int_keyed(table: &Table) -> bool {
    !table.schema.primary_key.is_empty()
        && table.schema.primary_key.iter().all(|&i| {
            table.codecs.get(i).is_some_and(|c| {
                matches!(
                    c.data_type,
                    DataType::Int16 | DataType::Int32 | DataType::Int64
                ) && !(c.unsigned && c.data_type == DataType::Int64)
            })
        })
}

fn parse_key(key: &[String]) -> Option<Vec<i128>> {
    key.iter().map(|k| k.parse().ok()).collect()
}

/// The segment whose view the snapshot read this row in; `None` when the snapshot did
/// not read it, or when that cannot be told (a key that is not an integer).
pub(super) fn read_in<'a>(
    reads: &'a SnapshotReads,
    database: &str,
    table: &str,
    key: Option<&[i128]>,
) -> Option<&'a SnapshotSegment> {
    for segment in &reads.segments {
        match (database, table).cmp(&(segment.database.as_str(), segment.table.as_str())) {
            CmpOrdering::Less => return Some(segment),
            CmpOrdering::Greater => {}
            CmpOrdering::Equal => match &segment.key {
                None => return Some(segment),
                Some(end) => {
                    let (Some(key), Some(end)) = (key, parse_key(end)) else {
                        return None;
                    };
                    if key <= end.as_slice() {
                        return Some(segment);
                    }
                }
            },
        }
    }
    None
}

/// Whether a change of this row, in the transaction starting at `at`, is already in
/// what the snapshot read (so it must not be emitted again).
pub(super) fn already_read(
    reads: &SnapshotReads,
    at: (&str, u64),
    database: &str,
    table: &str,
    key: Option<&[i128]>,
) -> bool {
    read_in(reads, database, table, key)
        .is_some_and(|s| coordinates_before(at, (s.file.as_str(), s.pos)))
}

/// The coordinates of the latest view: past them no change can have been read.
pub(super) fn window_end(reads: &SnapshotReads) -> Option<(String, u64)> {
    reads
        .segments
        .iter()
        .map(|s| (s.file.as_str(), s.pos))
        .reduce(|a, b| if coordinates_before(a, b) { b } else { a })
        .map(|(f, p)| (f.to_owned(), p))
}

/// Connections holding one consistent view, and its binlog coordinates.
struct Views {
    conns: Vec<Conn>,
    file: String,
    pos: u64,
    mysql_gtids: Option<GtidState>,
}

/// A loaded captured table.
struct SnapshotTable {
    database: String,
    name: String,
    table: Arc<Table>,
    int_keyed: bool,
}

async fn read_unit(
    mut conn: Conn,
    query: String,
    table: Arc<Table>,
    tx: UnitSender<Vec<Value>, Conn>,
) {
    let result: Result<(), SourceError> = async {
        let mut rows = conn
            .exec_iter(query.as_str(), ())
            .await
            .map_err(|e| mysql_error(format!("reading {}", table.schema.id), e))?;
        let mut chunk = Vec::with_capacity(CHUNK_ROWS);
        while let Some(row) = rows
            .next()
            .await
            .map_err(|e| mysql_error(format!("reading {}", table.schema.id), e))?
        {
            chunk.push(MySqlSource::decode_row(&table, row.unwrap(), false)?);
            if chunk.len() >= CHUNK_ROWS {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_ROWS));
                if tx.send(Ok(UnitChunk::Rows(full))).await.is_err() {
                    return Ok(());
                }
            }
        }
        drop(rows);
        if !chunk.is_empty() && tx.send(Ok(UnitChunk::Rows(chunk))).await.is_err() {
            return Ok(());
        }
        Ok(())
    }
    .await;
    let _ = match result {
        Ok(()) => tx.send(Ok(UnitChunk::Done(conn))).await,
        Err(e) => tx.send(Err(e)).await,
    };
}

/// The `WHERE` condition "key after these values" (row comparison for several columns).
fn after_condition(table: &Table, key: &[String]) -> Option<String> {
    let columns: Vec<String> = table
        .schema
        .primary_key
        .iter()
        .map(|&i| quote_ident(&table.schema.columns[i].name))
        .collect();
    let values = parse_key(key)?;
    if values.len() != columns.len() {
        return None;
    }
    let values: Vec<String> = values.iter().map(ToString::to_string).collect();
    Some(if columns.len() == 1 {
        format!("{} > {}", columns[0], values[0])
    } else {
        format!("({}) > ({})", columns.join(", "), values.join(", "))
    })
}

impl MySqlSource {
    async fn mariadb_view_coordinates(conn: &mut Conn) -> Result<(String, u64), SourceError> {
        let status: Vec<(String, String)> = conn
            .query("SHOW STATUS LIKE 'binlog_snapshot_%'")
            .await
            .map_err(|e| mysql_error("reading the snapshot's binlog position", e))?;
        let get = |name: &str| {
            status
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        match (
            get("binlog_snapshot_file"),
            get("binlog_snapshot_position").and_then(|p| p.parse().ok()),
        ) {
            (Some(file), Some(pos)) if !file.is_empty() => Ok((file, pos)),
            _ => Err(SourceError::definite(
                "reading the snapshot's binlog position",
                "the server reports no binlog_snapshot_file; set log_bin",
            )),
        }
    }

    async fn start_view(conn: &mut Conn) -> Result<(), SourceError> {
        conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
            .await
            .map_err(|e| mysql_error("starting the snapshot", e))
    }

    /// Starts every connection's view under a brief global read lock; the coordinates
    /// (and MySQL's executed GTIDs) are read under it.
    async fn locked_views(
        conns: &mut [Conn],
        hold: bool,
    ) -> Result<(String, u64, Option<GtidState>), SourceError> {
        let Some((first, rest)) = conns.split_first_mut() else {
            return Err(SourceError::definite(
                "starting the snapshot",
                "no connection",
            ));
        };
        first
            .query_drop("FLUSH TABLES WITH READ LOCK")
            .await
            .map_err(|e| {
                mysql_error("locking for the snapshot (FLUSH TABLES WITH READ LOCK)", e)
            })?;
        let started: Result<(), SourceError> = async {
            Self::start_view(first).await?;
            for conn in rest.iter_mut() {
                Self::start_view(conn).await?;
            }
            Ok(())
        }
        .await;
        let position = match started {
            Ok(()) => Self::current_position(first).await,
            Err(e) => Err(e),
        };
        let executed: Result<Option<(String, String)>, _> = first
            .query_first("SELECT @@GLOBAL.gtid_mode, @@GLOBAL.gtid_executed")
            .await;
        // snapshot.locking.mode=extended: the lock stays until the snapshot's
        // connections close, after the last row.
        if !hold || position.is_err() {
            first
                .query_drop("UNLOCK TABLES")
                .await
                .map_err(|e| mysql_error("unlocking after the snapshot started", e))?;
        }
        let gtids = match executed {
            Ok(Some((mode, set))) if mode.eq_ignore_ascii_case("ON") => {
                MySqlGtidSet::parse(&set).ok().map(GtidState::MySql)
            }
            _ => None,
        };
        let (file, pos) = position?;
        Ok((file, pos, gtids))
    }

    /// Opens up to `wanted` connections in one consistent view.
    async fn open_views(&self, wanted: usize) -> Result<Views, SourceError> {
        let mut conns = Vec::with_capacity(wanted);
        for _ in 0..wanted.max(1) {
            let mut conn = self.connect("snapshot").await?;
            conn.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                .await
                .map_err(|e| mysql_error("starting the snapshot", e))?;
            conns.push(conn);
        }
        let locking = self.config.snapshot_locking;
        let extended = locking == SnapshotLocking::Extended;
        if locking == SnapshotLocking::None && self.config.flavor == Flavor::MySql {
            // No lock: the position is read before the view starts, so a change
            // committed in between is both in the view and streamed (at least once).
            conns.truncate(1);
            let conn = &mut conns[0];
            let (file, pos) = Self::current_position(conn).await?;
            let executed: Option<(String, String)> = conn
                .query_first("SELECT @@GLOBAL.gtid_mode, @@GLOBAL.gtid_executed")
                .await
                .map_err(|e| mysql_error("reading the executed GTIDs", e))?;
            Self::start_view(conn).await?;
            tracing::warn!(
                "snapshot.locking.mode=none on MySQL: a change committed while the snapshot starts may be delivered twice"
            );
            let mysql_gtids = match executed {
                Some((mode, set)) if mode.eq_ignore_ascii_case("ON") => {
                    MySqlGtidSet::parse(&set).ok().map(GtidState::MySql)
                }
                _ => None,
            };
            return Ok(Views {
                conns,
                file,
                pos,
                mysql_gtids,
            });
        }
        if self.config.flavor == Flavor::MariaDb && !extended {
            for _ in 0..VIEW_ATTEMPTS {
                let mut coordinates = Vec::with_capacity(conns.len());
                for conn in &mut conns {
                    Self::start_view(conn).await?;
                    coordinates.push(Self::mariadb_view_coordinates(conn).await?);
                }
                if coordinates.iter().all(|c| *c == coordinates[0]) {
                    let (file, pos) = coordinates.swap_remove(0);
                    return Ok(Views {
                        conns,
                        file,
                        pos,
                        mysql_gtids: None,
                    });
                }
                for conn in &mut conns {
                    conn.query_drop("ROLLBACK")
                        .await
                        .map_err(|e| mysql_error("restarting the snapshot", e))?;
                }
            }
            let locked = if locking == SnapshotLocking::None {
                Err(SourceError::definite(
                    "starting a parallel snapshot",
                    "snapshot.locking.mode=none takes no lock",
                ))
            } else {
                Self::locked_views(&mut conns, false).await
            };
            match locked {
                Ok((file, pos, _)) => {
                    return Ok(Views {
                        conns,
                        file,
                        pos,
                        mysql_gtids: None,
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "no agreeing views without a lock; reading the snapshot on one connection");
                    conns.truncate(1);
                    let conn = &mut conns[0];
                    let _ = conn.query_drop("ROLLBACK").await;
                    Self::start_view(conn).await?;
                    let (file, pos) = Self::mariadb_view_coordinates(conn).await?;
                    return Ok(Views {
                        conns,
                        file,
                        pos,
                        mysql_gtids: None,
                    });
                }
            }
        }
        let (file, pos, mysql_gtids) = Self::locked_views(&mut conns, extended).await?;
        Ok(Views {
            conns,
            file,
            pos,
            mysql_gtids,
        })
    }

    /// Key ranges of a large single-integer-key table (`condition` already applies).
    async fn split_ranges(
        &self,
        admin: &mut Conn,
        view: &mut Conn,
        table: &SnapshotTable,
        condition: Option<&str>,
        threads: usize,
    ) -> Result<Vec<String>, SourceError> {
        let schema = &table.table.schema;
        if threads < 2 || !table.int_keyed || schema.primary_key.len() != 1 {
            return Ok(Vec::new());
        }
        let estimate: Option<Option<u64>> = admin
            .exec_first(
                "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (&table.database, &table.name),
            )
            .await
            .map_err(|e| mysql_error("estimating table sizes", e))?;
        let estimate = estimate.flatten().unwrap_or(0);
        let fetch = self.config.snapshot_fetch_size.max(1) as u64;
        if estimate <= 8 * fetch {
            return Ok(Vec::new());
        }
        let key = quote_ident(&schema.columns[schema.primary_key[0]].name);
        let filter = condition.map(|c| format!(" WHERE {c}")).unwrap_or_default();
        let bounds: Option<(Option<i128>, Option<i128>)> = view
            .query_first(format!(
                "SELECT CAST(MIN({key}) AS CHAR), CAST(MAX({key}) AS CHAR) FROM {}.{}{filter}",
                quote_ident(&table.database),
                quote_ident(&table.name)
            ))
            .await
            .map_err(|e| mysql_error(format!("reading the key range of {}", schema.id), e))
            .map(|row: Option<(Option<String>, Option<String>)>| {
                row.map(|(a, b)| {
                    (
                        a.and_then(|a| a.parse().ok()),
                        b.and_then(|b| b.parse().ok()),
                    )
                })
            })?;
        let Some((Some(low), Some(high))) = bounds else {
            return Ok(Vec::new());
        };
        let ranges = (threads as u64 * 4).min(estimate / fetch).max(2);
        let width = ((high - low) / i128::from(ranges)).max(1);
        let mut cuts: Vec<i128> = (1..i128::from(ranges))
            .map(|i| low + width * i)
            .filter(|c| *c > low && *c <= high)
            .collect();
        cuts.dedup();
        let mut conditions = Vec::with_capacity(cuts.len() + 1);
        let mut previous: Option<i128> = None;
        for cut in cuts {
            conditions.push(match previous {
                None => format!("{key} < {cut}"),
                Some(p) => format!("{key} >= {p} AND {key} < {cut}"),
            });
            previous = Some(cut);
        }
        if let Some(p) = previous {
            conditions.push(format!("{key} >= {p}"));
        }
        Ok(conditions)
    }

    /// Takes (or, given a stored position inside an unfinished snapshot that records its
    /// reads, continues) the snapshot; returns where streaming starts.
    pub(super) async fn snapshot(
        &self,
        admin: &mut Conn,
        ctx: &SourceContext,
        resume: Option<&BinlogPosition>,
    ) -> Result<StreamStart, SourceError> {
        let resume = resume.filter(|p| {
            p.snapshot
                && p.snapshot_reads
                    .as_ref()
                    .is_some_and(|r| !r.segments.is_empty())
        });
        let threads = self.config.snapshot_max_threads.max(1);
        let Views {
            mut conns,
            file: view_file,
            pos: view_pos,
            mysql_gtids,
        } = self.open_views(threads).await?;
        let view_gtids = match self.config.flavor {
            Flavor::MariaDb => self.gtid_state_at(admin, &view_file, view_pos).await?,
            Flavor::MySql => mysql_gtids,
        };
        // Positions: the first view's coordinates and GTIDs, the stored sequence.
        let (base_file, base_pos, base_gtids, mut seq, mut segments) = match resume {
            Some(p) => (
                p.file.clone(),
                p.pos,
                p.gtid_set.clone(),
                p.event,
                p.snapshot_reads
                    .as_ref()
                    .map(|r| r.segments.clone())
                    .unwrap_or_default(),
            ),
            None => (
                view_file.clone(),
                view_pos,
                view_gtids.as_ref().map(ToString::to_string),
                0,
                Vec::new(),
            ),
        };
        let resumed_segments = segments.len();
        let continue_after = segments.last().cloned();

        let names = self.captured_tables(admin).await?;
        let mut tables: Vec<SnapshotTable> = Vec::new();
        let mut units: Vec<SnapshotUnit<String>> = Vec::new();
        let mut tables_total = 0u64;
        for (database, name) in names {
            let mut condition = None;
            if let Some(end) = &continue_after {
                match (database.as_str(), name.as_str())
                    .cmp(&(end.database.as_str(), end.table.as_str()))
                {
                    CmpOrdering::Less => continue,
                    CmpOrdering::Equal if end.key.is_none() => continue,
                    _ => {}
                }
            }
            let Some(table) = Self::load_table(admin, &self.config, &database, &name, 1).await?
            else {
                continue;
            };
            let table = SnapshotTable {
                int_keyed: int_keyed(&table),
                table: Arc::new(table),
                database,
                name,
            };
            if let Some(end) = &continue_after
                && (table.database.as_str(), table.name.as_str())
                    == (end.database.as_str(), end.table.as_str())
                && let Some(key) = &end.key
            {
                condition = after_condition(&table.table, key);
                if condition.is_none() {
                    tracing::warn!(table = %table.table.schema.id, "the stored snapshot key does not fit the table's key; reading the table again whole");
                }
            }
            tables_total += 1;
            let ranges = self
                .split_ranges(admin, &mut conns[0], &table, condition.as_deref(), threads)
                .await?;
            let schema = &table.table.schema;
            let columns: Vec<String> = schema
                .columns
                .iter()
                .map(|c| quote_ident(&c.name))
                .collect();
            let order = if schema.primary_key.is_empty() {
                String::new()
            } else {
                let keys: Vec<String> = schema
                    .primary_key
                    .iter()
                    .map(|&i| quote_ident(&schema.columns[i].name))
                    .collect();
                format!(" ORDER BY {}", keys.join(", "))
            };
            let select = |extra: Option<&str>| {
                let mut conditions: Vec<&str> = Vec::new();
                if let Some(c) = condition.as_deref() {
                    conditions.push(c);
                }
                if let Some(c) = extra {
                    conditions.push(c);
                }
                let filter = if conditions.is_empty() {
                    String::new()
                } else {
                    format!(" WHERE {}", conditions.join(" AND "))
                };
                format!(
                    "SELECT {} FROM {}.{}{filter}{order}",
                    columns.join(", "),
                    quote_ident(&table.database),
                    quote_ident(&table.name)
                )
            };
            let index = tables.len();
            if ranges.is_empty() {
                units.push(SnapshotUnit {
                    table: index,
                    work: select(None),
                    last_of_table: true,
                });
            } else {
                let n = ranges.len();
                for (i, range) in ranges.iter().enumerate() {
                    units.push(SnapshotUnit {
                        table: index,
                        work: select(Some(range)),
                        last_of_table: i + 1 == n,
                    });
                }
            }
            tables.push(table);
        }
        self.metrics
            .snapshot_tables
            .store(tables_total, Ordering::Relaxed);
        self.metrics
            .snapshot_tables_done
            .store(0, Ordering::Relaxed);
        self.metrics.snapshot_rows.store(0, Ordering::Relaxed);
        self.metrics
            .snapshot_units
            .store(units.len() as u64, Ordering::Relaxed);
        self.metrics
            .snapshot_connections
            .store(conns.len() as u64, Ordering::Relaxed);
        tracing::info!(
            tables = tables.len(),
            units = units.len(),
            connections = conns.len(),
            file = %view_file,
            pos = view_pos,
            resumed = resume.is_some(),
            "snapshot started"
        );

        let started_us = outflow_core::now_us();
        // Every row's position shares one place: no allocation per row.
        let place = Arc::new(BinlogPlace {
            file: base_file.clone(),
            gtid_set: base_gtids.clone(),
            ..BinlogPlace::default()
        });
        let position = |seq: u64, row: u32| place.position(base_pos, seq, row, true);
        // The segment this view is reading; its end moves with every batch.
        let segment_at = |database: &str, table: &str, key: Option<Vec<String>>| SnapshotSegment {
            file: view_file.clone(),
            pos: view_pos,
            database: database.to_owned(),
            table: table.to_owned(),
            key,
        };
        let mut batch: Vec<ChangeEvent> = Vec::with_capacity(BATCH_EVENTS);
        // The batch's last row comes from this table (for its reads).
        let mut batch_table: Option<usize> = None;
        // Tables completely read in this view, the last of them.
        let mut completed: Option<usize> = None;
        // Held rows carry their table.
        let mut marks = SnapshotMarks::new(resume.is_none());
        let names: Vec<String> = tables
            .iter()
            .map(|t| t.table.schema.id.to_string())
            .collect();
        let mut reads = OrderedReads::new(std::mem::take(&mut conns), units, |conn, unit, tx| {
            read_unit(
                conn,
                unit.work.clone(),
                Arc::clone(&tables[unit.table].table),
                tx,
            )
        });
        while let Some(merged) = reads.next(&ctx.shutdown, |t| names[t].clone()).await? {
            match merged {
                Merged::Rows { table: index, rows } => {
                    let table = &tables[index];
                    self.metrics
                        .snapshot_rows
                        .fetch_add(rows.len() as u64, Ordering::Relaxed);
                    for after in rows {
                        seq += 1;
                        let event = ChangeEvent {
                            position: position(seq, 0),
                            source_ts_us: Some(started_us),
                            kind: EventKind::Read {
                                table: Arc::clone(&table.table.schema),
                                after,
                                mark: SnapshotMark::True,
                            },
                        };
                        if let Some((previous, previous_table)) = marks.push(event, index) {
                            batch.push(previous);
                            batch_table = Some(previous_table);
                        }
                        if batch.len() >= BATCH_EVENTS {
                            self.mark_reads(
                                &mut batch,
                                batch_table,
                                completed,
                                &tables,
                                &segments,
                                (&view_file, view_pos),
                            );
                            send(ctx, &mut batch).await?;
                        }
                    }
                }
                Merged::UnitDone {
                    table: index,
                    last_of_table,
                } => {
                    if last_of_table {
                        marks.end_table();
                        completed = Some(index);
                        self.metrics
                            .snapshot_tables_done
                            .fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        let conns_after = reads.into_connections();
        if let Some((last, index)) = marks.finish() {
            batch.push(last);
            batch_table = Some(index);
        }
        self.mark_reads(
            &mut batch,
            batch_table,
            completed,
            &tables,
            &segments,
            (&view_file, view_pos),
        );
        // Complete: a marker past every snapshot row (`row` = SNAPSHOT_COMPLETE_ROW) with
        // everything read, so a restart streams (filtering by the reads) instead of
        // snapshotting again.
        if let Some(last) = completed.and_then(|i| tables.get(i)) {
            segments.push(segment_at(&last.database, &last.name, None));
        }
        let reads = SnapshotReads { segments };
        let done = Arc::new(BinlogPlace {
            snapshot_reads: Some(Box::new(reads.clone())),
            ..(*place).clone()
        });
        batch.push(ChangeEvent {
            position: done.position(base_pos, seq + 1, SNAPSHOT_COMPLETE_ROW, true),
            source_ts_us: Some(outflow_core::now_us()),
            kind: EventKind::Heartbeat,
        });
        send(ctx, &mut batch).await?;
        for mut conn in conns_after {
            let _ = conn.query_drop("COMMIT").await;
            let _ = conn.disconnect().await;
        }
        tracing::info!(rows = seq, tables = tables.len(), "snapshot finished");
        let gtids = match &base_gtids {
            Some(text) => self.parse_gtids(Some(text))?,
            None => None,
        };
        Ok(StreamStart {
            file: base_file,
            pos: base_pos,
            gtids,
            by_gtid: false,
            // A snapshot read in one view needs no filtering: the stream starts there.
            reads: (reads.segments.len() > 1 || resumed_segments > 0).then_some(reads),
        })
    }

    /// Puts the reads so far on the batch's last row.
    fn mark_reads(
        &self,
        batch: &mut [ChangeEvent],
        batch_table: Option<usize>,
        completed: Option<usize>,
        tables: &[SnapshotTable],
        segments: &[SnapshotSegment],
        view: (&str, u64),
    ) {
        let segment_at = |database: &str, table: &str, key: Option<Vec<String>>| SnapshotSegment {
            file: view.0.to_owned(),
            pos: view.1,
            database: database.to_owned(),
            table: table.to_owned(),
            key,
        };
        let Some(last) = batch.last_mut() else { return };
        let Some(index) = batch_table else { return };
        let Some(table) = tables.get(index) else {
            return;
        };
        let current = match &last.kind {
            EventKind::Read { after, .. } if table.int_keyed => {
                int_key(&table.table, after).map(|key| {
                    segment_at(
                        &table.database,
                        &table.name,
                        Some(key.iter().map(ToString::to_string).collect()),
                    )
                })
            }
            _ => None,
        }
        // A table whose key cannot be ordered here counts once read whole.
        .or_else(|| {
            completed
                .and_then(|i| tables.get(i))
                .map(|t| segment_at(&t.database, &t.name, None))
        });
        let mut all = segments.to_vec();
        all.extend(current);
        if all.is_empty() {
            return;
        }
        if let Some(mut p) = BinlogPosition::of(&last.position) {
            p.snapshot_reads = Some(Box::new(SnapshotReads { segments: all }));
            last.position = p.into();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(file: &str, pos: u64, table: &str, key: Option<i64>) -> SnapshotSegment {
        SnapshotSegment {
            file: file.into(),
            pos,
            database: "db".into(),
            table: table.into(),
            key: key.map(|k| vec![k.to_string()]),
        }
    }

    #[test]
    fn changes_already_read_by_a_later_view_are_dropped() {
        // Read up to b.id 10 in the view at binlog.1:100, the rest in the view at
        // binlog.2:50 (tables a < b < c).
        let reads = SnapshotReads {
            segments: vec![
                segment("binlog.000001", 100, "b", Some(10)),
                segment("binlog.000002", 50, "c", None),
            ],
        };
        let early = ("binlog.000001", 500);
        // Read in the first view: a change after it passes.
        assert!(!already_read(&reads, early, "db", "a", Some(&[1])));
        assert!(!already_read(&reads, early, "db", "b", Some(&[10])));
        // Read in the second view, which already shows the change: dropped.
        assert!(already_read(&reads, early, "db", "b", Some(&[11])));
        assert!(already_read(&reads, early, "db", "c", Some(&[1])));
        // Not read by the snapshot (a later table) or not comparable: passes.
        assert!(!already_read(&reads, early, "db", "d", Some(&[1])));
        assert!(!already_read(&reads, early, "db", "b", None));
        // After the second view: everything passes.
        let late = ("binlog.000002", 50);
        assert!(!already_read(&reads, late, "db", "c", Some(&[1])));
        assert_eq!(window_end(&reads), Some(("binlog.000002".to_owned(), 50)));
    }

    #[test]
    fn coordinates_order_by_file_number_then_offset() {
        assert!(coordinates_before(
            ("binlog.000009", 900),
            ("binlog.000010", 4)
        ));
        assert!(coordinates_before(
            ("binlog.000010", 4),
            ("binlog.000010", 5)
        ));
        assert!(!coordinates_before(
            ("binlog.000010", 5),
            ("binlog.000010", 5)
        ));
    }
}
