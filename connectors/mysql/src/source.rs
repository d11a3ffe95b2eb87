//! The MySQL / MariaDB source: preflight, consistent snapshot, binlog streaming.
//!
//! Connections: an *admin* connection for preflight and `information_schema`, a
//! *snapshot* connection holding the consistent-snapshot transaction, and the *binlog*
//! connection, which mysql_async turns into the dump stream.
//!
//! Positions ([`crate::position::BinlogPosition`]): `file` and `pos` of the transaction's first event
//! (where a restart reads from), `event` the index of the event within the transaction
//! (0 for BEGIN, 1.. for the rows events, the last + 1 for COMMIT), `row` the row within
//! a rows event. Re-reading a transaction assigns the same positions, so after a restart
//! from `(file, pos)` the pipeline drops exactly what was already delivered. Snapshot rows
//! carry the snapshot's binlog coordinates with `snapshot = true` and a running `event`;
//! the last one has `row = 1` ([`SNAPSHOT_COMPLETE_ROW`]), so a restart after a complete
//! snapshot streams from its coordinates.
//!
//! Snapshot (MariaDB): `START TRANSACTION WITH CONSISTENT SNAPSHOT`, then the binlog
//! coordinates of exactly that view from `binlog_snapshot_file`/`binlog_snapshot_position`
//! (no global lock); MySQL: a brief `FLUSH TABLES WITH READ LOCK` around the same
//! (`snapshot.locking.mode=minimal`). Tables in `database.table` order, rows in primary-key
//! order. Streaming starts at the snapshot's coordinates, so nothing is missed or doubled.
//!
//! Table shapes come from `information_schema` (types, keys, charsets, defaults) and are
//! reloaded after DDL and whenever a TABLE_MAP does not match the known shape.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use mysql_async::binlog::EventType;
use mysql_async::binlog::events::{Event, EventData, RowsEventData};
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStreamRequest, Conn, OptsBuilder, Row as MyRow, Value as MyValue};
use outflow_core::event::{SchemaChange, SchemaChangeKind, TransactionBoundary};
use outflow_core::{
    ChangeEvent, Classify, ColumnSchema, ErrorClass, EventBatch, EventKind, RetryPolicy,
    SchemaVersion, Source, SourceContext, SourceError, SourcePosition, TableId, TableSchema, Value,
};

use crate::config::{Flavor, MySqlConfig, SnapshotMode, SslMode};
use crate::gtid::{GtidState, MariaDbGtidPosition, MySqlGtidSet};
use crate::mariadb;
use crate::position::{BinlogPlace, BinlogPosition, SnapshotReads};
use crate::types::ColumnCodec;

mod snapshot;

#[cfg(test)]
mod mysql8_fixtures;

/// `row` of the last snapshot row's position: the snapshot is complete.
pub const SNAPSHOT_COMPLETE_ROW: u32 = 1;

/// Events per batch sent to the pipeline.
const BATCH_EVENTS: usize = 1024;

/// Counters of a running source, for the daemon's metrics.
#[derive(Debug, Default)]
pub struct MySqlMetrics {
    /// Snapshot rows read so far.
    pub snapshot_rows: AtomicU64,
    /// Tables in the snapshot.
    pub snapshot_tables: AtomicU64,
    /// Tables completely read.
    pub snapshot_tables_done: AtomicU64,
    /// Parts the snapshot is read in (tables, and key ranges of large tables).
    pub snapshot_units: AtomicU64,
    /// Connections reading the snapshot at once.
    pub snapshot_connections: AtomicU64,
    /// Streaming the binlog.
    pub streaming: AtomicBool,
    /// Seconds between the last event's binlog timestamp and its arrival.
    pub seconds_behind: AtomicU64,
    /// Binlog dumps started by GTID (a resume from stored GTIDs).
    pub streams_by_gtid: AtomicU64,
    /// Binlog dumps started by file and position.
    pub streams_by_position: AtomicU64,
    /// Binlog streams reopened inside a running task after a transient error.
    pub reconnects: AtomicU64,
}

/// A MySQL / MariaDB change stream.
#[derive(Debug)]
pub struct MySqlSource {
    config: MySqlConfig,
    metrics: Arc<MySqlMetrics>,
}

/// A table as decoding needs it.
#[derive(Debug)]
struct Table {
    schema: Arc<TableSchema>,
    codecs: Vec<ColumnCodec>,
}

/// Server error codes that pass by themselves: retried with backoff. The one table of
/// the MySQL / MariaDB connector; other server errors are transient too unless
/// [`definite_server_error`] knows them (a retry costs little, a FAILED connector waits
/// for an operator), and so are I/O errors (2013, lost connection, and 2006, gone away,
/// arrive as I/O errors of the client).
const TRANSIENT_SERVER_ERRORS: &[(u16, &str)] = &[
    (1040, "too many connections"),
    (1203, "the user has more than max_user_connections"),
    (1205, "lock wait timeout"),
    (1213, "deadlock"),
    (1053, "server shutdown in progress"),
    (1317, "query interrupted"),
    (1927, "connection killed (MariaDB)"),
    (2006, "server has gone away"),
    (2013, "lost connection during query"),
];

/// Whether server error `code` stops the connector for good (an operator must act).
fn definite_server_error(code: u16) -> bool {
    !TRANSIENT_SERVER_ERRORS.iter().any(|(c, _)| *c == code)
        && matches!(code, 1236 | 1045 | 1044 | 1142 | 1227)
}

fn mysql_error(context: impl Into<String>, e: mysql_async::Error) -> SourceError {
    let context = context.into();
    match &e {
        mysql_async::Error::Server(s) if !definite_server_error(s.code) => {
            SourceError::transient(context, e)
        }
        mysql_async::Error::Server(s) => match s.code {
            1236 => SourceError::definite_with(
                context,
                "the binlog position the connector needs is gone (purged); set snapshot.mode=when_needed to take a new snapshot, or reset the connector's offsets",
                e,
            ),
            1045 | 1044 | 1142 | 1227 => SourceError::definite_with(
                context,
                "grant the connector's user SELECT, RELOAD, SHOW DATABASES, REPLICATION SLAVE and REPLICATION CLIENT (BINLOG MONITOR on MariaDB)",
                e,
            ),
            _ => SourceError::transient(context, e),
        },
        // A server that restarts or shuts down under the handshake: it comes back.
        mysql_async::Error::Io(mysql_async::IoError::Tls(_)) if outflow_core::peer_hung_up(&e) => {
            SourceError::transient(context, e)
        }
        // A certificate that does not verify, or a server without TLS when TLS is
        // required, stays so until someone changes a setting.
        mysql_async::Error::Io(mysql_async::IoError::Tls(_)) => SourceError::definite_with(
            context,
            "the TLS handshake failed: check database.ssl.mode, database.ssl.truststore (the CA of the server's certificate, PEM) and that database.hostname is a name the certificate holds",
            e,
        ),
        mysql_async::Error::Driver(mysql_async::DriverError::NoClientSslFlagFromServer) => {
            SourceError::definite_with(
                context,
                "the server does not offer TLS: enable it on the server, or set database.ssl.mode=preferred or disabled",
                e,
            )
        }
        _ => SourceError::transient(context, e),
    }
}

/// An event's body, decoded by mysql_common, whose readers index into the data at sizes
/// the data states and panic when those run past it (a TRANSACTION_PAYLOAD header field
/// longer than the event, found by fuzzing): the panic is caught and becomes an error, so
/// a damaged event is a definite error of the connector, never a crashed task.
pub(crate) fn read_event_data(event: &Event) -> Result<Option<EventData<'_>>, String> {
    if event.header().event_type_raw() == EventType::TRANSACTION_PAYLOAD_EVENT as u8
        && !transaction_payload_plausible(event.data())
    {
        return Err("a TRANSACTION_PAYLOAD event whose header fields run past its end".into());
    }
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| event.read_data())) {
        Ok(Ok(data)) => Ok(data),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "the body of a {:?} event ({} bytes) runs past its end",
            event.header().event_type_raw(),
            event.data().len()
        )),
    }
}

/// The event header flag that says a reader that does not know the event may skip it.
const LOG_EVENT_IGNORABLE_F: u16 = 0x80;

/// The plain event a MariaDB compressed event (`log_bin_compress=ON`) stands for, with
/// the compressed event's header fields (binlog offsets included); `None` for any other
/// event. See [`crate::mariadb::uncompressed`].
pub(crate) fn expand_compressed(
    event: &Event,
) -> Result<Option<Event>, crate::mariadb::DecodeError> {
    let header = event.header();
    let query_post_header = usize::from(
        event
            .fde()
            .get_event_type_header_length(EventType::QUERY_EVENT),
    );
    let Some((plain, body)) =
        crate::mariadb::uncompressed(header.event_type_raw(), event.data(), query_post_header)?
    else {
        return Ok(None);
    };
    let malformed = |reason: String| crate::mariadb::DecodeError {
        event: "compressed",
        reason,
    };
    // Whatever followed the body on the wire (the checksum) follows it again, so that
    // mysql_common strips as many bytes as it did from the compressed event.
    let footer = usize::try_from(header.event_size())
        .unwrap_or(usize::MAX)
        .saturating_sub(19 + event.data().len());
    let size = u32::try_from(19 + body.len() + footer)
        .map_err(|_| malformed(format!("{} bytes uncompressed", body.len())))?;
    let mut raw = Vec::with_capacity(19 + body.len() + footer);
    raw.extend(header.timestamp().to_le_bytes());
    raw.push(plain);
    raw.extend(header.server_id().to_le_bytes());
    raw.extend(size.to_le_bytes());
    raw.extend(header.log_pos().to_le_bytes());
    raw.extend(header.flags_raw().to_le_bytes());
    raw.extend(body);
    raw.resize(raw.len() + footer, 0);
    Event::read(event.fde(), raw.as_slice())
        .map(Some)
        .map_err(|e| malformed(e.to_string()))
}

/// Whether mysql_common can read a TRANSACTION_PAYLOAD body without panicking: its
/// header is (type, length, value) fields of length-encoded integers up to an end mark;
/// mysql_common unwraps a field type above 255 and a compression type other than ZSTD
/// (0) or NONE (255), and skips an unknown field's bytes unchecked.
pub(crate) fn transaction_payload_plausible(body: &[u8]) -> bool {
    let mut buf = body;
    while !buf.is_empty() {
        let Some(field) = crate::types::read_lenenc(&mut buf) else {
            return false;
        };
        match field {
            0 => return true,
            1 | 3 => {
                if crate::types::read_lenenc(&mut buf)
                    .and_then(|_| crate::types::read_lenenc(&mut buf))
                    .is_none()
                {
                    return false;
                }
            }
            2 => match crate::types::read_lenenc(&mut buf)
                .and_then(|_| crate::types::read_lenenc(&mut buf))
            {
                Some(0 | 255) => {}
                _ => return false,
            },
            4..=255 => {
                let Some(length) = crate::types::read_lenenc(&mut buf) else {
                    return false;
                };
                match usize::try_from(length).ok().and_then(|n| buf.get(n..)) {
                    Some(rest) => buf = rest,
                    None => return false,
                }
            }
            _ => return false,
        }
    }
    true
}

fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A binlog file name from a (fake) ROTATE: MariaDB's first fake ROTATE carries the 4
/// checksum bytes after the name; a name is `<base>.<digits>`.
fn clean_binlog_name(raw: &[u8]) -> String {
    let valid = |n: &[u8]| {
        n.iter().rposition(|&b| b == b'.').is_some_and(|dot| {
            let digits = &n[dot + 1..];
            !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
        })
    };
    if !valid(raw) && raw.len() > 4 && valid(&raw[..raw.len() - 4]) {
        return String::from_utf8_lossy(&raw[..raw.len() - 4]).into_owned();
    }
    String::from_utf8_lossy(raw).into_owned()
}

/// A server UUID as MySQL prints it (lowercase, 8-4-4-4-12).
pub(crate) fn uuid_text(sid: &[u8; 16]) -> String {
    let hex: String = sid.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A MySQL GTID as text: `uuid:gno`.
fn mysql_gtid(sid: &[u8; 16], gno: u64) -> String {
    format!("{}:{gno}", uuid_text(sid))
}

/// Where streaming starts: binlog coordinates and, when known, the GTIDs completed
/// before them (a GTID-based dump is used when that is non-empty).
#[derive(Debug, Clone)]
struct StreamStart {
    file: String,
    pos: u64,
    gtids: Option<GtidState>,
    /// Ask the server by `gtids` instead of `file`/`pos`.
    by_gtid: bool,
    /// What a resumed snapshot read in later views: changes it already shows are dropped
    /// until the stream passes the last view.
    reads: Option<SnapshotReads>,
}

/// The transaction being read from the binlog.
#[derive(Debug)]
struct OpenTransaction {
    file: String,
    pos: u64,
    gtid: Option<String>,
    /// Inside a resumed snapshot's window: its reads (on every position).
    reads: Option<Box<SnapshotReads>>,
    standalone: bool,
    /// Rows events seen so far (the index of the last one).
    rows_events: u64,
    /// A `BEGIN` query opened the transaction (DDL has none).
    begin_seen: bool,
    /// Row events emitted (captured rows).
    emitted: u64,
    began: bool,
    /// What the transaction's positions share (file, GTIDs, server, thread, query).
    place: Arc<BinlogPlace>,
    ts_us: i64,
}

impl MySqlSource {
    /// A source for a validated config.
    pub fn new(config: MySqlConfig) -> Self {
        Self {
            config,
            metrics: Arc::default(),
        }
    }

    /// Counts into `metrics` (kept by the caller across restarts).
    #[must_use]
    pub fn with_metrics(mut self, metrics: Arc<MySqlMetrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The source's counters.
    pub fn metrics(&self) -> Arc<MySqlMetrics> {
        Arc::clone(&self.metrics)
    }

    /// Connection options; `tls` asks for TLS as `database.ssl.*` says.
    fn opts(&self, tls: bool) -> OptsBuilder {
        let builder = OptsBuilder::default()
            .ip_or_hostname(self.config.host.clone())
            .tcp_port(self.config.port)
            .user(Some(self.config.user.clone()))
            .pass(self.config.password.clone())
            .prefer_socket(false)
            .tcp_keepalive(Some(Duration::from_secs(30)))
            .max_allowed_packet(Some(1 << 30));
        if tls {
            builder.ssl_opts(Some(self.ssl_opts()))
        } else {
            builder
        }
    }

    /// `database.ssl.mode` as mysql_async's TLS options: `preferred` and `required`
    /// check nothing, `verify_ca` the chain, `verify_identity` the chain and host name.
    fn ssl_opts(&self) -> mysql_async::SslOpts {
        let tls = &self.config.tls;
        let mut opts = mysql_async::SslOpts::default();
        match tls.mode {
            SslMode::Disabled | SslMode::Preferred | SslMode::Required => {
                opts = opts
                    .with_danger_accept_invalid_certs(true)
                    .with_danger_skip_domain_validation(true);
            }
            SslMode::VerifyCa => opts = opts.with_danger_skip_domain_validation(true),
            SslMode::VerifyIdentity => {}
        }
        if let Some(store) = &tls.truststore {
            opts = opts.with_root_certs(vec![store.clone().into()]);
        }
        if let Some(store) = &tls.keystore {
            let mut identity = mysql_async::ClientIdentity::new(store.clone().into());
            if let Some(password) = &tls.keystore_password {
                identity = identity.with_password(password.clone());
            }
            opts = opts.with_client_identity(Some(identity));
        }
        opts
    }

    async fn connect(&self, what: &str) -> Result<Conn, SourceError> {
        let tls = self.config.tls.mode != SslMode::Disabled;
        let attempt = |tls: bool| {
            let connect = Conn::new(self.opts(tls));
            tokio::time::timeout(self.config.connect_timeout, connect)
        };
        let mut result = attempt(tls).await;
        // `preferred`: plain TCP when the server has no TLS.
        if self.config.tls.mode == SslMode::Preferred
            && matches!(
                &result,
                Ok(Err(mysql_async::Error::Driver(
                    mysql_async::DriverError::NoClientSslFlagFromServer
                )))
            )
        {
            result = attempt(false).await;
        }
        let mut conn = result
            .map_err(|_| {
                SourceError::transient(
                    format!(
                        "connecting to {}:{} ({what})",
                        self.config.host, self.config.port
                    ),
                    "timed out",
                )
            })?
            .map_err(|e| {
                mysql_error(
                    format!(
                        "connecting to {}:{} ({what})",
                        self.config.host, self.config.port
                    ),
                    e,
                )
            })?;
        conn.query_drop("SET time_zone = '+00:00'")
            .await
            .map_err(|e| mysql_error("setting the session time zone", e))?;
        Ok(conn)
    }

    /// Checks the server's binlog settings and the user's privileges.
    async fn preflight(&self, conn: &mut Conn) -> Result<(), SourceError> {
        let row: Option<(String, String, String, u32)> = conn
            .query_first("SELECT @@log_bin, @@binlog_format, @@binlog_row_image, @@server_id")
            .await
            .map_err(|e| mysql_error("reading the server's binlog settings", e))?;
        let Some((log_bin, format, image, server_id)) = row else {
            return Err(SourceError::definite(
                "reading the server's binlog settings",
                "the server returned nothing",
            ));
        };
        let setting = |name: &str, value: &str, want: &str| {
            SourceError::definite(
                format!("the server has {name}={value}"),
                format!("set {name}={want} in the server's configuration and restart it"),
            )
        };
        if !matches!(log_bin.as_str(), "1" | "ON") {
            return Err(setting("log_bin", &log_bin, "ON"));
        }
        if !format.eq_ignore_ascii_case("ROW") {
            return Err(setting("binlog_format", &format, "ROW"));
        }
        if !image.eq_ignore_ascii_case("FULL") {
            return Err(setting("binlog_row_image", &image, "FULL"));
        }
        let metadata: Option<String> = conn
            .query_first("SELECT @@binlog_row_metadata")
            .await
            .map_err(|e| mysql_error("reading binlog_row_metadata", e))?;
        match metadata.as_deref() {
            Some(m) if m.eq_ignore_ascii_case("FULL") => {}
            other => {
                return Err(setting(
                    "binlog_row_metadata",
                    other.unwrap_or("(unset)"),
                    "FULL",
                ));
            }
        }
        if server_id == self.config.server_id {
            return Err(SourceError::definite(
                format!(
                    "database.server.id {} is the server's own server_id",
                    self.config.server_id
                ),
                "choose a database.server.id that no server or replica uses",
            ));
        }
        let grants: Vec<String> = conn
            .query("SHOW GRANTS FOR CURRENT_USER()")
            .await
            .map_err(|e| mysql_error("reading the user's privileges", e))?;
        let all = grants.join(" ").to_ascii_uppercase();
        if !(all.contains("ALL PRIVILEGES ON *.*")
            || all.contains("REPLICATION SLAVE")
            || all.contains("REPLICATION REPLICA"))
        {
            return Err(SourceError::definite(
                format!("user {} lacks REPLICATION SLAVE", self.config.user),
                "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO the connector's user",
            ));
        }
        Ok(())
    }

    /// The server's current binlog coordinates.
    async fn current_position(conn: &mut Conn) -> Result<(String, u64), SourceError> {
        let row: Option<MyRow> = match conn.query_first("SHOW MASTER STATUS").await {
            Ok(row) => row,
            Err(_) => conn
                .query_first("SHOW BINARY LOG STATUS")
                .await
                .map_err(|e| mysql_error("reading the binlog position", e))?,
        };
        let row = row.ok_or_else(|| {
            SourceError::definite(
                "reading the binlog position",
                "the server has no binlog; set log_bin",
            )
        })?;
        let file: Option<String> = row.get(0);
        let pos: Option<u64> = row.get(1);
        match (file, pos) {
            (Some(f), Some(p)) => Ok((f, p)),
            _ => Err(SourceError::definite(
                "reading the binlog position",
                "unexpected SHOW MASTER STATUS result",
            )),
        }
    }

    /// The stored offset's `gtids`, read in this server family's shape.
    fn parse_gtids(&self, text: Option<&str>) -> Result<Option<GtidState>, SourceError> {
        let Some(text) = text else { return Ok(None) };
        let state = match self.config.flavor {
            Flavor::MariaDb => MariaDbGtidPosition::parse(text).map(GtidState::MariaDb),
            Flavor::MySql => MySqlGtidSet::parse(text).map(GtidState::MySql),
        };
        state.map(Some).map_err(|e| {
            SourceError::definite_with(
                "reading the stored offset's gtids",
                "correct the offset (PATCH /connectors/{name}/offsets while stopped) or reset it",
                e,
            )
        })
    }

    /// The GTIDs completed before binlog coordinates `file:pos`: MariaDB computes them
    /// (`BINLOG_GTID_POS`); MySQL cannot, so they are not tracked (None) there unless a
    /// snapshot or a stored offset gave them.
    async fn gtid_state_at(
        &self,
        conn: &mut Conn,
        file: &str,
        pos: u64,
    ) -> Result<Option<GtidState>, SourceError> {
        if self.config.flavor != Flavor::MariaDb {
            return Ok(None);
        }
        let text: Option<Option<String>> = conn
            .exec_first("SELECT BINLOG_GTID_POS(?, ?)", (file, pos))
            .await
            .map_err(|e| mysql_error("reading the GTID position of the binlog coordinates", e))?;
        match text.flatten() {
            Some(text) => match MariaDbGtidPosition::parse(&text) {
                Ok(p) => Ok(Some(GtidState::MariaDb(p))),
                Err(e) => {
                    tracing::warn!(error = %e, "the server's GTID position is unreadable; positions carry no gtids");
                    Ok(None)
                }
            },
            None => Ok(None),
        }
    }

    async fn binlog_exists(conn: &mut Conn, file: &str) -> Result<bool, SourceError> {
        let rows: Vec<MyRow> = conn
            .query("SHOW BINARY LOGS")
            .await
            .map_err(|e| mysql_error("listing binlog files", e))?;
        Ok(rows
            .iter()
            .any(|r| r.get::<String, _>(0).as_deref() == Some(file)))
    }

    /// Captured tables, sorted.
    async fn captured_tables(&self, conn: &mut Conn) -> Result<Vec<(String, String)>, SourceError> {
        let rows: Vec<(String, String)> = conn
            .query(
                "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES \
                 WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN \
                 ('mysql', 'sys', 'information_schema', 'performance_schema') \
                 ORDER BY TABLE_SCHEMA, TABLE_NAME",
            )
            .await
            .map_err(|e| mysql_error("listing tables", e))?;
        // Byte order (not the server's collation): the order snapshot segments compare in.
        let mut tables: Vec<(String, String)> = rows
            .into_iter()
            .filter(|(db, t)| self.config.captures(db, t))
            .collect();
        tables.sort();
        Ok(tables)
    }

    /// A table's shape from `information_schema`; `None` if it does not exist.
    async fn load_table(
        conn: &mut Conn,
        config: &MySqlConfig,
        database: &str,
        table: &str,
        version: u64,
    ) -> Result<Option<Table>, SourceError> {
        type ColumnRow = (
            String,
            String,
            String,
            String,
            Option<u32>,
            Option<u32>,
            Option<u32>,
            Option<String>,
            Option<u64>,
            Option<String>,
            String,
        );
        let columns: Vec<ColumnRow> = conn
            .exec(
                "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, NUMERIC_PRECISION, \
                 NUMERIC_SCALE, DATETIME_PRECISION, CHARACTER_SET_NAME, CHARACTER_MAXIMUM_LENGTH, \
                 COLUMN_DEFAULT, COLUMN_COMMENT \
                 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
                 ORDER BY ORDINAL_POSITION",
                (database, table),
            )
            .await
            .map_err(|e| mysql_error(format!("reading the columns of {database}.{table}"), e))?;
        if columns.is_empty() {
            return Ok(None);
        }
        let keys: Vec<String> = conn
            .exec(
                "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? \
                 AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX",
                (database, table),
            )
            .await
            .map_err(|e| mysql_error(format!("reading the key of {database}.{table}"), e))?;
        // MariaDB's JSON is LONGTEXT with a `json_valid(col)` check. Debezium reads a
        // captured table's shape from `SHOW CREATE TABLE`, where it is `longtext`, and
        // writes a plain STRING (no `io.debezium.data.Json`): so does outflow
        // (checked against Debezium's MariaDB connector by tests/debezium_oracle.rs).
        let mut schema_columns = Vec::with_capacity(columns.len());
        let mut codecs = Vec::with_capacity(columns.len());
        for (
            name,
            data_type,
            column_type,
            nullable,
            precision,
            scale,
            fsp,
            charset,
            length,
            column_default,
            comment,
        ) in columns
        {
            let codec = ColumnCodec::from_information_schema(
                &data_type,
                &column_type,
                nullable.eq_ignore_ascii_case("YES"),
                precision,
                scale,
                fsp,
                charset.as_deref(),
                length,
            )
            .with_bigint_unsigned_precise(config.bigint_unsigned_precise);
            let mut column = ColumnSchema::new(name, codec.data_type.clone(), codec.nullable);
            column.source_type = column_type.to_ascii_uppercase();
            column.default = codec.default_value(column_default.as_deref());
            // Debezium's MariaDB connector carries a column's comment as the field's doc.
            column.comment = Some(comment).filter(|c| !c.is_empty());
            schema_columns.push(column);
            codecs.push(codec);
        }
        let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let schema = TableSchema::new(
            TableId::new(database, table),
            SchemaVersion(version),
            schema_columns,
            &key_refs,
        )
        .map_err(|e| {
            SourceError::definite_with(
                format!("reading {database}.{table}"),
                "report this as a bug",
                e,
            )
        })?;
        Ok(Some(Table {
            schema: Arc::new(schema),
            codecs,
        }))
    }

    fn decode_row(
        table: &Table,
        values: Vec<MyValue>,
        binlog: bool,
    ) -> Result<Vec<Value>, SourceError> {
        if values.len() != table.codecs.len() {
            return Err(SourceError::definite(
                format!(
                    "a row of {} has {} values for {} columns",
                    table.schema.id,
                    values.len(),
                    table.codecs.len()
                ),
                "report this as a bug with the table's definition",
            ));
        }
        values
            .into_iter()
            .zip(&table.codecs)
            .map(|(v, c)| {
                c.decode_owned(v, binlog).map_err(|e| {
                    SourceError::definite_with(
                        format!("decoding a value of {}", table.schema.id),
                        "report this as a bug with the column's type",
                        e,
                    )
                })
            })
            .collect()
    }
}

async fn send(ctx: &SourceContext, batch: &mut Vec<ChangeEvent>) -> Result<(), SourceError> {
    if batch.is_empty() {
        return Ok(());
    }
    ctx.events
        .send(EventBatch::new(std::mem::take(batch)))
        .await
        .map_err(|e| SourceError::transient("sending events to the pipeline", e))
}

/// State of the binlog reader.
struct Stream<'a> {
    source: &'a MySqlSource,
    ctx: &'a SourceContext,
    admin: Conn,
    file: String,
    tables: HashMap<(String, String), Arc<Table>>,
    /// Shapes by TABLE_MAP table id (cleared on DDL and rotation).
    by_table_id: HashMap<u64, Arc<Table>>,
    /// Row layouts by TABLE_MAP table id (cleared with `by_table_id`).
    layouts: HashMap<u64, Arc<crate::types::RowLayout>>,
    versions: HashMap<(String, String), u64>,
    txn: Option<OpenTransaction>,
    batch: Vec<ChangeEvent>,
    last: Option<BinlogPosition>,
    heartbeat_seq: u64,
    /// GTIDs completed so far (None when not tracked: MySQL without GTIDs).
    gtids: Option<GtidState>,
    /// A resumed snapshot's reads and the coordinates of its last view, until the stream
    /// passes them.
    window: Option<(SnapshotReads, (String, u64))>,
    /// Every event of the current file since its start has been read (so its
    /// PREVIOUS_GTIDS event, MySQL, gives the GTIDs before it).
    at_file_start: bool,
    /// The last position handed to the pipeline by this task, across reconnects: a
    /// stream reopened at the start of that event's transaction sends again what the
    /// pipeline has, and [`Stream::flush`] drops it.
    delivered: Option<SourcePosition>,
}

impl Stream<'_> {
    fn position(txn: &OpenTransaction, event: u64, row: u32) -> SourcePosition {
        txn.place.position(txn.pos, event, row, false)
    }

    fn begin(
        &mut self,
        pos: u64,
        gtid: Option<String>,
        standalone: bool,
        server_id: u32,
        ts_us: i64,
    ) {
        self.at_file_start = false;
        let in_window = self.window.as_ref().is_some_and(|(_, (file, end))| {
            snapshot::coordinates_before((&self.file, pos), (file, *end))
        });
        if !in_window {
            self.window = None;
        }
        let gtids_before = self.gtids.as_ref().map(ToString::to_string);
        let reads = self
            .window
            .as_ref()
            .map(|(reads, _)| Box::new(reads.clone()));
        let place = Arc::new(BinlogPlace {
            file: self.file.clone(),
            gtid: gtid.clone(),
            gtid_set: gtids_before,
            snapshot_reads: reads.clone(),
            server_id,
            thread: None,
            query: None,
        });
        self.txn = Some(OpenTransaction {
            file: self.file.clone(),
            pos,
            gtid,
            reads,
            standalone,
            rows_events: 0,
            begin_seen: false,
            emitted: 0,
            began: false,
            place,
            ts_us,
        });
    }

    /// `source.query` of the rows events that follow, with `include.query`.
    fn set_query(&mut self, query: String) {
        if let Some(txn) = self.txn.as_mut() {
            txn.place = Arc::new(BinlogPlace {
                query: Some(query),
                ..(*txn.place).clone()
            });
        }
    }

    fn transaction_id(txn: &OpenTransaction) -> String {
        txn.gtid
            .clone()
            .unwrap_or_else(|| format!("{}:{}", txn.file, txn.pos))
    }

    async fn commit(&mut self) -> Result<(), SourceError> {
        let Some(txn) = self.txn.take() else {
            return Ok(());
        };
        let position = Self::position(&txn, txn.rows_events + 1, 0);
        // Heartbeats carry the last commit read, captured or not, so an idle connector's
        // stored position follows the binlog.
        self.last = BinlogPosition::of(&position);
        if let (Some(state), Some(gtid)) = (self.gtids.as_mut(), txn.gtid.as_deref())
            && let Err(e) = state.apply(gtid)
        {
            tracing::warn!(error = %e, "cannot track GTIDs any more; a restart resumes by file and position");
            self.gtids = None;
        }
        if txn.began {
            self.batch.push(ChangeEvent {
                position,
                source_ts_us: Some(txn.ts_us),
                kind: EventKind::Commit(TransactionBoundary {
                    id: Self::transaction_id(&txn),
                    event_count: txn.emitted,
                }),
            });
        }
        if self.batch.len() >= BATCH_EVENTS {
            self.flush().await?;
        }
        Ok(())
    }

    /// Sends the batch on, without what an earlier stream of this task already sent.
    async fn flush(&mut self) -> Result<(), SourceError> {
        if let Some(delivered) = &self.delivered {
            self.batch.retain(|e| e.position > *delivered);
        }
        if let Some(last) = self.batch.last() {
            self.delivered = Some(last.position.clone());
        }
        send(self.ctx, &mut self.batch).await
    }

    /// Applies a DDL statement: re-reads the shapes of the captured tables it names and
    /// emits a schema-change event for each (Debezium's `<topic.prefix>` topic).
    async fn schema_changes(&mut self, ddl: &str, default_db: &str) -> Result<(), SourceError> {
        for change in crate::ddl::table_changes(ddl, default_db) {
            if !self.source.config.captures(&change.database, &change.table) {
                continue;
            }
            let key = (change.database.clone(), change.table.clone());
            let table = match change.kind {
                SchemaChangeKind::Drop => match self.tables.remove(&key) {
                    Some(table) => table,
                    None => continue,
                },
                SchemaChangeKind::Create | SchemaChangeKind::Alter => {
                    let version = self.versions.get(&key).copied().unwrap_or(0) + 1;
                    let Some(table) = MySqlSource::load_table(
                        &mut self.admin,
                        &self.source.config,
                        &change.database,
                        &change.table,
                        version,
                    )
                    .await?
                    else {
                        continue;
                    };
                    self.versions.insert(key.clone(), version);
                    let table = Arc::new(table);
                    self.tables.insert(key, Arc::clone(&table));
                    table
                }
            };
            tracing::info!(table = %table.schema.id, kind = ?change.kind, "table shape changed");
            let Some(txn) = self.txn.as_mut() else {
                continue;
            };
            txn.rows_events += 1;
            let position = Self::position(txn, txn.rows_events, 0);
            self.last = BinlogPosition::of(&position);
            self.batch.push(ChangeEvent {
                position,
                source_ts_us: Some(txn.ts_us),
                kind: EventKind::SchemaChange(SchemaChange {
                    table: Arc::clone(&table.schema),
                    kind: change.kind,
                    ddl: Some(ddl.to_owned()),
                }),
            });
        }
        Ok(())
    }

    /// The shape to decode a rows event of `database.name` with: the cached one, or
    /// `information_schema`'s when its columns are the TABLE_MAP's, else the TABLE_MAP's
    /// own (the table changed since this part of the binlog was written).
    async fn table(
        &mut self,
        database: &str,
        name: &str,
        tme: &mysql_async::binlog::events::TableMapEvent<'_>,
    ) -> Result<Option<Arc<Table>>, SourceError> {
        let key = (database.to_owned(), name.to_owned());
        if let Some(table) = self.by_table_id.get(&tme.table_id()) {
            return Ok(Some(Arc::clone(table)));
        }
        let precise = self.source.config.bigint_unsigned_precise;
        let shape = crate::types::table_map_shape(tme).map(|mut shape| {
            shape.codecs = shape
                .codecs
                .into_iter()
                .map(|c| c.with_bigint_unsigned_precise(precise))
                .collect();
            shape
        });
        let shape = shape.map_err(|e| {
            SourceError::definite_with(
                format!("reading the table map of {database}.{name}"),
                "set binlog_row_metadata=FULL on the server",
                e,
            )
        })?;
        let same = |table: &Table| {
            table.schema.columns.len() == shape.names.len()
                && table
                    .schema
                    .columns
                    .iter()
                    .zip(&shape.names)
                    .all(|(c, n)| c.name == *n)
        };
        let table = match self.tables.get(&key) {
            Some(table) if same(table) => Arc::clone(table),
            _ => {
                let version = self.versions.get(&key).copied().unwrap_or(0) + 1;
                let current = MySqlSource::load_table(
                    &mut self.admin,
                    &self.source.config,
                    database,
                    name,
                    version,
                )
                .await?;
                let table = match current {
                    Some(table) if same(&table) => table,
                    _ => {
                        tracing::warn!(table = %format!("{database}.{name}"), "the table has changed since this part of the binlog was written; decoding with the binlog's table map");
                        let columns: Vec<ColumnSchema> = shape
                            .names
                            .iter()
                            .zip(&shape.codecs)
                            .map(|(n, c)| {
                                ColumnSchema::new(n.clone(), c.data_type.clone(), c.nullable)
                            })
                            .collect();
                        let keys: Vec<&str> = shape
                            .key
                            .iter()
                            .filter_map(|&k| shape.names.get(k).map(String::as_str))
                            .collect();
                        let schema = TableSchema::new(
                            TableId::new(database, name),
                            SchemaVersion(version),
                            columns,
                            &keys,
                        )
                        .map_err(|e| {
                            SourceError::definite_with(
                                format!("reading {database}.{name}"),
                                "report this as a bug",
                                e,
                            )
                        })?;
                        Table {
                            schema: Arc::new(schema),
                            codecs: shape.codecs.clone(),
                        }
                    }
                };
                self.versions.insert(key.clone(), version);
                let table = Arc::new(table);
                self.tables.insert(key, Arc::clone(&table));
                table
            }
        };
        self.by_table_id.insert(tme.table_id(), Arc::clone(&table));
        Ok(Some(table))
    }

    async fn handle(
        &mut self,
        event: Event,
        stream: &mysql_async::BinlogStream,
    ) -> Result<(), SourceError> {
        let header = event.header();
        let raw_type = header.event_type_raw();
        let log_pos = u64::from(header.log_pos());
        let start = log_pos.saturating_sub(u64::from(header.event_size()));
        let ts_us = i64::from(header.timestamp()) * 1_000_000;
        let artificial = log_pos == 0;
        if ts_us > 0 && !artificial {
            let behind = (outflow_core::now_us() - ts_us).max(0) / 1_000_000;
            self.source
                .metrics
                .seconds_behind
                .store(behind as u64, Ordering::Relaxed);
        }
        match raw_type {
            mariadb::GTID_EVENT => {
                let gtid = mariadb::gtid_event(event.data(), header.server_id()).map_err(|e| {
                    SourceError::definite_with("reading a GTID event", "report this as a bug", e)
                })?;
                self.begin(
                    start,
                    Some(gtid.gtid.to_string()),
                    gtid.standalone,
                    header.server_id(),
                    ts_us,
                );
                return Ok(());
            }
            mariadb::ANNOTATE_ROWS_EVENT => {
                if self.source.config.include_query {
                    self.set_query(mariadb::annotate_rows_event(event.data()));
                }
                return Ok(());
            }
            mariadb::BINLOG_CHECKPOINT_EVENT
            | mariadb::GTID_LIST_EVENT
            | mariadb::START_ENCRYPTION_EVENT => return Ok(()),
            _ => {}
        }
        if raw_type == mysql_async::binlog::EventType::PREVIOUS_GTIDS_EVENT as u8
            && !crate::gtid::previous_gtids_plausible(event.data())
        {
            return Ok(());
        }
        // log_bin_compress=ON: the plain event, with the compressed one's offsets.
        let expanded = expand_compressed(&event).map_err(|e| {
            SourceError::definite_with(
                format!(
                    "decoding a compressed binlog event at {}:{start}",
                    self.file
                ),
                "report this as a bug with the binlog file (or set log_bin_compress=OFF)",
                e,
            )
        })?;
        let event = expanded.as_ref().unwrap_or(&event);
        let data = read_event_data(event).map_err(|e| {
            SourceError::definite(
                format!("decoding a binlog event at {}:{start}", self.file),
                format!("{e}; report this as a bug with the binlog file"),
            )
        })?;
        let data = match data {
            Some(EventData::IncidentEvent(incident)) => {
                return Err(SourceError::definite(
                    format!(
                        "the server wrote an INCIDENT event at {}:{start} ({:?}): changes may be missing from its binlog",
                        self.file,
                        incident.message()
                    ),
                    "take a new snapshot (reset the connector's offsets) once the server's problem is fixed",
                ));
            }
            Some(data) => data,
            // Flagged ignorable by the server: safe to skip whatever it is.
            None if header.flags_raw() & LOG_EVENT_IGNORABLE_F != 0 => return Ok(()),
            None if self.txn.is_some() => {
                return Err(SourceError::definite(
                    format!(
                        "unknown binlog event type {raw_type} inside a transaction at {}:{start}: its changes cannot be read",
                        self.file
                    ),
                    "report this with the server version and the binlog file; the connector stopped rather than skip changes",
                ));
            }
            None => {
                tracing::warn!(event_type = raw_type, file = %self.file, pos = start, "skipping an unknown binlog event outside any transaction");
                return Ok(());
            }
        };
        match data {
            EventData::RotateEvent(rotate) => {
                if !artificial {
                    self.at_file_start = true;
                }
                self.by_table_id.clear();
                self.layouts.clear();
                self.file = clean_binlog_name(rotate.name_raw());
            }
            EventData::QueryEvent(query) => {
                let text = query.query();
                let statement = text.trim();
                if statement.eq_ignore_ascii_case("BEGIN") {
                    if self.txn.is_none() {
                        self.begin(start, None, false, header.server_id(), ts_us);
                    }
                    if let Some(txn) = self.txn.as_mut() {
                        txn.standalone = false;
                        txn.begin_seen = true;
                        txn.place = Arc::new(BinlogPlace {
                            server_id: header.server_id(),
                            thread: Some(u64::from(query.thread_id())),
                            query: None,
                            ..(*txn.place).clone()
                        });
                    }
                } else if statement.eq_ignore_ascii_case("COMMIT") {
                    self.commit().await?;
                } else {
                    // DDL (or a statement outside a transaction).
                    let default_db = query.schema().into_owned();
                    let ddl = statement.to_owned();
                    if self.txn.is_none() {
                        self.begin(start, None, true, header.server_id(), ts_us);
                    }
                    self.by_table_id.clear();
                    self.layouts.clear();
                    self.schema_changes(&ddl, &default_db).await?;
                    // A DDL is its own transaction (no BEGIN before it, no XID after).
                    if self
                        .txn
                        .as_ref()
                        .is_none_or(|t| t.standalone || !t.begin_seen)
                    {
                        self.commit().await?;
                    }
                }
            }
            EventData::XidEvent(_) => self.commit().await?,
            // MySQL writes the statement before its rows events with
            // binlog_rows_query_log_events=ON (no dump flag needed, unlike MariaDB).
            EventData::RowsQueryEvent(query) if self.source.config.include_query => {
                self.set_query(query.query().into_owned());
            }
            // MySQL starts every file with the GTIDs executed before it: where GTIDs are
            // not yet tracked (a start by file/pos), they are from here on.
            EventData::PreviousGtidsEvent(previous)
                if self.gtids.is_none()
                    && self.at_file_start
                    && self.source.config.flavor == Flavor::MySql =>
            {
                self.gtids = Some(GtidState::MySql(MySqlGtidSet::from_previous_gtids(
                    &previous,
                )));
            }
            // MySQL's GTID event opens the transaction (MariaDB's is decoded above).
            EventData::GtidEvent(gtid) => {
                let text = mysql_gtid(&gtid.sid(), gtid.gno());
                self.begin(start, Some(text), false, header.server_id(), ts_us);
            }
            // MySQL without GTIDs writes an anonymous GTID event first: the transaction
            // starts there (also when its body is a compressed TRANSACTION_PAYLOAD, whose
            // inner events have no binlog offsets of their own).
            EventData::AnonymousGtidEvent(_) => {
                self.begin(start, None, false, header.server_id(), ts_us);
            }
            EventData::RowsEvent(rows) => {
                self.rows(&rows, stream, header.server_id(), start, ts_us)
                    .await?
            }
            _ => {}
        }
        Ok(())
    }

    async fn rows(
        &mut self,
        rows: &RowsEventData<'_>,
        stream: &mysql_async::BinlogStream,
        server_id: u32,
        start: u64,
        ts_us: i64,
    ) -> Result<(), SourceError> {
        if self.txn.is_none() {
            self.begin(start, None, false, server_id, ts_us);
        }
        let Some(tme) = stream.get_tme(rows.table_id()) else {
            return Err(SourceError::definite(
                format!("a rows event at {}:{start} has no table map", self.file),
                "report this as a bug",
            ));
        };
        let database = tme.database_name().into_owned();
        let name = tme.table_name().into_owned();
        if let Some(txn) = self.txn.as_mut() {
            txn.rows_events += 1;
        }
        if !self.source.config.captures(&database, &name) {
            return Ok(());
        }
        let Some(table) = self.table(&database, &name, tme).await? else {
            return Ok(());
        };
        let table_id = rows.table_id();
        let layout = match self.layouts.get(&table_id) {
            Some(layout) => Arc::clone(layout),
            None => {
                let layout = Arc::new(crate::types::RowLayout::new(tme, &table.codecs).map_err(
                    |e| {
                        SourceError::definite_with(
                            format!("reading the table map of {database}.{name}"),
                            "report this as a bug with the table's definition",
                            e,
                        )
                    },
                )?);
                self.layouts.insert(table_id, Arc::clone(&layout));
                layout
            }
        };
        let images = crate::types::decode_rows(rows, &layout, &table.codecs).map_err(|e| {
            SourceError::definite_with(
                format!(
                    "decoding a rows event of {database}.{name} at {}:{start}",
                    self.file
                ),
                "the rows event does not fit its table map; report this with the binlog",
                e,
            )
        })?;
        let mut decoded = Vec::with_capacity(images.len());
        for (row_index, (before, after)) in images.into_iter().enumerate() {
            // Inside a resumed snapshot's window: a change to a row that a later view
            // read is already in the snapshot (every key of the change must be).
            if let (Some(txn), Some((reads, _))) = (self.txn.as_ref(), self.window.as_ref())
                && txn.reads.is_some()
            {
                let covered = |values: &Option<Vec<Value>>| {
                    values.as_ref().is_none_or(|v| {
                        let key = snapshot::int_key(&table, v);
                        snapshot::already_read(
                            reads,
                            (&txn.file, txn.pos),
                            &database,
                            &name,
                            key.as_deref(),
                        )
                    })
                };
                if covered(&before) && covered(&after) {
                    continue;
                }
            }
            decoded.push((u32::try_from(row_index).unwrap_or(u32::MAX), before, after));
        }
        let Some(txn) = self.txn.as_mut() else {
            return Ok(());
        };
        if decoded.is_empty() {
            return Ok(());
        }
        if !txn.began {
            txn.began = true;
            self.batch.push(ChangeEvent {
                position: Self::position(txn, 0, 0),
                source_ts_us: Some(txn.ts_us),
                kind: EventKind::Begin(TransactionBoundary {
                    id: Self::transaction_id(txn),
                    event_count: 0,
                }),
            });
        }
        for (row, before, after) in decoded {
            let kind = match (before, after) {
                (None, Some(after)) => EventKind::Insert {
                    table: Arc::clone(&table.schema),
                    after,
                },
                (Some(before), Some(after)) => EventKind::Update {
                    table: Arc::clone(&table.schema),
                    before: Some(before),
                    after,
                },
                (Some(before), None) => EventKind::Delete {
                    table: Arc::clone(&table.schema),
                    before,
                },
                (None, None) => continue,
            };
            txn.emitted += 1;
            self.batch.push(ChangeEvent {
                position: Self::position(txn, txn.rows_events, row),
                source_ts_us: Some(txn.ts_us),
                kind,
            });
        }
        Ok(())
    }
}

impl MySqlSource {
    /// Without a snapshot, the position streaming starts from is the binlog's end now: it
    /// is made durable before anything is read (a marker event, as a finished snapshot's),
    /// so that a stop before the first change, or a crash, resumes here instead of at a
    /// later end, which would lose every change in between.
    async fn store_start(
        &self,
        ctx: &SourceContext,
        file: &str,
        pos: u64,
        gtids: Option<&GtidState>,
    ) -> Result<(), SourceError> {
        let marker = SourcePosition::from(BinlogPosition {
            file: file.to_owned(),
            pos,
            event: 0,
            row: SNAPSHOT_COMPLETE_ROW,
            gtid: None,
            gtid_set: gtids.map(ToString::to_string),
            snapshot: true,
            snapshot_reads: None,
        });
        let mut batch = vec![ChangeEvent {
            position: marker.clone(),
            source_ts_us: Some(outflow_core::now_us()),
            kind: EventKind::Heartbeat,
        }];
        send(ctx, &mut batch).await?;
        let mut durable = ctx.durable.clone();
        while durable.current().is_none_or(|d| d < marker) {
            tokio::select! {
                () = ctx.shutdown.cancelled() => return Ok(()),
                changed = durable.changed() => if changed.is_none() {
                    return Ok(());
                },
            }
        }
        tracing::info!(file, pos, "start position stored; streaming");
        Ok(())
    }

    /// Reads the binlog from `start` until shutdown or an error. `delivered` is the last
    /// position this task has sent (kept across reconnects: what comes again up to it
    /// is dropped here, and a reconnect starts from its transaction).
    async fn stream(
        &self,
        ctx: &SourceContext,
        admin: Conn,
        start: StreamStart,
        delivered: &mut Option<SourcePosition>,
    ) -> Result<(), SourceError> {
        let StreamStart {
            file,
            pos,
            gtids,
            by_gtid,
            reads,
        } = start;
        let window = reads.and_then(|r| snapshot::window_end(&r).map(|end| (r, end)));
        let mut conn = self.connect("binlog").await?;
        if self.config.flavor == Flavor::MariaDb {
            conn.query_drop("SET @mariadb_slave_capability = 4")
                .await
                .map_err(|e| mysql_error("preparing the binlog dump", e))?;
        }
        // Resume by GTID when the GTIDs before the start are known: the server sends
        // the first transaction not in them (the interrupted one), wherever it is now.
        let by_gtid = by_gtid
            && match &gtids {
                Some(GtidState::MariaDb(position)) if !position.is_empty() => {
                    conn.exec_drop("SET @slave_connect_state = ?", (position.to_string(),))
                        .await
                        .map_err(|e| mysql_error("preparing the binlog dump by GTID", e))?;
                    true
                }
                Some(GtidState::MySql(set)) if !set.is_empty() => true,
                _ => false,
            };
        let heartbeat = self.config.heartbeat_interval;
        let keepalive = heartbeat
            .unwrap_or(Duration::from_secs(10))
            .min(Duration::from_secs(10));
        conn.query_drop(format!(
            "SET @master_heartbeat_period = {}",
            keepalive.as_nanos()
        ))
        .await
        .map_err(|e| mysql_error("preparing the binlog dump", e))?;
        let mut request = BinlogStreamRequest::new(self.config.server_id)
            .with_filename(file.as_bytes())
            .with_pos(pos);
        if let Some(GtidState::MySql(set)) = &gtids
            && by_gtid
        {
            let sids = set.sids().map_err(|e| {
                SourceError::definite_with(
                    "reading the stored GTID set",
                    "reset the connector's offsets",
                    e,
                )
            })?;
            request = request.with_gtid().with_gtid_set(sids);
        }
        let gtid_text = gtids.as_ref().map(ToString::to_string).unwrap_or_default();
        let dump_thread = conn.id();
        let mut stream = conn.get_binlog_stream(request).await.map_err(|e| {
            if by_gtid {
                mysql_error(
                    format!("starting the binlog stream after GTIDs {gtid_text}"),
                    e,
                )
            } else {
                mysql_error(format!("starting the binlog stream at {file}:{pos}"), e)
            }
        })?;
        self.metrics.streaming.store(true, Ordering::Relaxed);
        if by_gtid {
            self.metrics.streams_by_gtid.fetch_add(1, Ordering::Relaxed);
        } else {
            self.metrics
                .streams_by_position
                .fetch_add(1, Ordering::Relaxed);
        }
        tracing::info!(file = %file, pos, by_gtid, gtids = %gtid_text, "binlog streaming started");
        let mut state = Stream {
            source: self,
            ctx,
            admin,
            file,
            tables: HashMap::new(),
            by_table_id: HashMap::new(),
            layouts: HashMap::new(),
            versions: HashMap::new(),
            txn: None,
            batch: Vec::with_capacity(BATCH_EVENTS),
            last: None,
            heartbeat_seq: 0,
            at_file_start: pos <= 4,
            gtids,
            window,
            delivered: delivered.take(),
        };
        let mut flush = tokio::time::interval(Duration::from_millis(20));
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut beat = tokio::time::interval(heartbeat.unwrap_or(Duration::from_secs(3600)));
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        beat.reset();
        let result: Result<(), SourceError> = async {
            loop {
                tokio::select! {
                    () = ctx.shutdown.cancelled() => {
                        // Whole transactions only: a partly read one is read again next time.
                        state.flush().await?;
                        return Ok(());
                    }
                    _ = flush.tick(), if !state.batch.is_empty() && state.txn.is_none() => {
                        state.flush().await?;
                    }
                    _ = beat.tick(), if heartbeat.is_some() && state.txn.is_none() => {
                        if let Some(last) = state.last.clone() {
                            state.heartbeat_seq += 1;
                            let position = BinlogPosition {
                                event: last.event.max(1 << 32) + state.heartbeat_seq,
                                ..last
                            };
                            state.last = Some(position.clone());
                            state.batch.push(ChangeEvent {
                                position: SourcePosition::from(position),
                                source_ts_us: Some(outflow_core::now_us()),
                                kind: EventKind::Heartbeat,
                            });
                            state.flush().await?;
                        }
                    }
                    // mysql_common trusts the sizes inside an event and panics on a short
                    // one: that is a damaged stream, reported, not a crash.
                    next = tokio::time::timeout(
                        keepalive * 3,
                        futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(stream.next())),
                    ) => {
                        let event = match next {
                            Err(_) => return Err(SourceError::transient("reading the binlog stream", "no event or heartbeat from the server in time")),
                            Ok(Err(_)) => return Err(SourceError::definite(
                                format!("decoding the binlog after {}", state.file),
                                "the server sent an event the client library cannot read; report it with the binlog file",
                            )),
                            Ok(Ok(None)) => return Err(SourceError::transient("reading the binlog stream", "the server ended the stream")),
                            Ok(Ok(Some(Err(e)))) => return Err(mysql_error("reading the binlog stream", e)),
                            Ok(Ok(Some(Ok(event)))) => event,
                        };
                        if event.header().event_type() == Ok(EventType::HEARTBEAT_EVENT) {
                            continue;
                        }
                        state.handle(event, &stream).await?;
                        if state.batch.len() >= BATCH_EVENTS * 4 {
                            // A very large transaction: pass rows on as they come (bounded
                            // memory); a restart inside it re-reads it and the pipeline drops
                            // what was delivered.
                            state.flush().await?;
                        }
                    }
                }
            }
        }
        .await;
        // A dump thread on the server does not end when its client goes away quietly
        // (it only notices on its next write), and mysql_async's close waits on it: end
        // it from the admin connection so it neither lingers nor pins binlog files
        // against PURGE.
        drop(stream);
        let kill = state
            .admin
            .query_drop(format!("KILL CONNECTION {dump_thread}"));
        let _ = tokio::time::timeout(Duration::from_secs(2), kill).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), state.admin.disconnect()).await;
        *delivered = state.delivered;
        result
    }

    /// Streams from `start`, and after a transient error (a dropped connection, a server
    /// restart, a missed heartbeat) reconnects inside the task on
    /// [`RetryPolicy::RECONNECT`]: from the transaction of the last event sent, or from
    /// `start` when none was, so nothing is lost or sent twice and the pipeline and
    /// the sink keep running. Definite errors, and shutdown, end it.
    async fn stream_reconnecting(
        &self,
        ctx: &SourceContext,
        admin: Conn,
        start: StreamStart,
    ) -> Result<(), SourceError> {
        let mut admin = Some(admin);
        let mut delivered: Option<SourcePosition> = None;
        let mut backoff = RetryPolicy::RECONNECT.schedule();
        loop {
            let started = tokio::time::Instant::now();
            let before = delivered.clone();
            let result = async {
                let admin = match admin.take() {
                    Some(admin) => admin,
                    None => self.connect("admin").await?,
                };
                let start = match &delivered {
                    Some(p) => match BinlogPosition::of(p) {
                        Some(p) => self.restart_at(&p)?,
                        None => start.clone(),
                    },
                    None => start.clone(),
                };
                self.stream(ctx, admin, start, &mut delivered).await
            }
            .await;
            match result {
                Ok(()) => return Ok(()),
                Err(e) if e.class() == ErrorClass::Transient && !ctx.shutdown.is_cancelled() => {
                    backoff.attempt_ended(started.elapsed(), delivered != before);
                    let delay = backoff.next_delay();
                    self.metrics.reconnects.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, retry_in = ?delay, "replication stream lost; reconnecting");
                    tokio::select! {
                        () = ctx.shutdown.cancelled() => return Ok(()),
                        () = tokio::time::sleep(delay) => {}
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Where a reconnect starts when `p` was the last event sent: the first event of its
    /// transaction, by GTID when the GTIDs before it are known, as a restart from a
    /// stored position would (the same window of a resumed snapshot included).
    fn restart_at(&self, p: &BinlogPosition) -> Result<StreamStart, SourceError> {
        let gtids = self.parse_gtids(p.gtid_set.as_deref())?;
        Ok(StreamStart {
            file: p.file.clone(),
            pos: p.pos,
            by_gtid: gtids.as_ref().is_some_and(|g| !g.to_string().is_empty()),
            gtids,
            reads: p
                .snapshot_reads
                .as_deref()
                .cloned()
                .filter(|r| r.segments.len() > 1),
        })
    }
}

impl Source for MySqlSource {
    async fn run(&mut self, ctx: SourceContext) -> Result<(), SourceError> {
        let mut admin = self.connect("admin").await?;
        self.preflight(&mut admin).await?;
        let resume = match &ctx.resume_after {
            Some(position) => match BinlogPosition::of(position) {
                Some(p) => Some(p),
                None => {
                    return Err(SourceError::definite(
                        format!("the stored offset is not a binlog position: {position:?}"),
                        "reset the connector's offsets (DELETE /connectors/{name}/offsets while stopped)",
                    ));
                }
            },
            None => None,
        };
        let mode = self.config.snapshot_mode;
        let start = match &resume {
            Some(p) if !p.snapshot || p.row == SNAPSHOT_COMPLETE_ROW => {
                // Inside (or at the end of) a resumed snapshot's window: keep filtering.
                let reads = p
                    .snapshot_reads
                    .as_deref()
                    .cloned()
                    .filter(|r| r.segments.len() > 1);
                let stored = self.parse_gtids(p.gtid_set.as_deref())?;
                let by_gtid = stored.as_ref().is_some_and(|g| !g.to_string().is_empty());
                if Self::binlog_exists(&mut admin, &p.file).await? {
                    let gtids = match stored {
                        Some(g) => Some(g),
                        None => self.gtid_state_at(&mut admin, &p.file, p.pos).await?,
                    };
                    StreamStart {
                        file: p.file.clone(),
                        pos: p.pos,
                        gtids,
                        by_gtid,
                        reads,
                    }
                } else if mode == SnapshotMode::WhenNeeded {
                    tracing::warn!(file = %p.file, "the stored binlog file is gone; taking a new snapshot (snapshot.mode=when_needed)");
                    self.snapshot(&mut admin, &ctx, None).await?
                } else if by_gtid {
                    // The file is gone here, but the GTIDs may be elsewhere (a new
                    // primary): the server decides, and says 1236 if they are purged.
                    StreamStart {
                        file: p.file.clone(),
                        pos: p.pos,
                        gtids: stored,
                        by_gtid,
                        reads,
                    }
                } else {
                    return Err(SourceError::definite(
                        format!(
                            "binlog file {} of the stored offset has been purged; changes after it are lost",
                            p.file
                        ),
                        "set snapshot.mode=when_needed to take a new snapshot, or reset the connector's offsets",
                    ));
                }
            }
            // No offset, or one inside an unfinished snapshot: take the snapshot, or
            // continue it after what the stored position says was read.
            _ => match mode {
                SnapshotMode::Initial | SnapshotMode::InitialOnly | SnapshotMode::WhenNeeded => {
                    self.snapshot(&mut admin, &ctx, resume.as_ref()).await?
                }
                SnapshotMode::NoData | SnapshotMode::Never => {
                    let (file, pos) = Self::current_position(&mut admin).await?;
                    let gtids = self.gtid_state_at(&mut admin, &file, pos).await?;
                    self.store_start(&ctx, &file, pos, gtids.as_ref()).await?;
                    StreamStart {
                        file,
                        pos,
                        gtids,
                        by_gtid: false,
                        reads: None,
                    }
                }
            },
        };
        if mode == SnapshotMode::InitialOnly || ctx.shutdown.is_cancelled() {
            return Ok(());
        }
        self.stream_reconnecting(&ctx, admin, start).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_are_classified_by_one_table() {
        for code in [1040, 1203, 1205, 1213, 1053, 1317, 1927, 2006, 2013] {
            assert!(!definite_server_error(code), "{code} is transient");
        }
        for code in [1236, 1045, 1044, 1142, 1227] {
            assert!(definite_server_error(code), "{code} is definite");
        }
        let server = |code: u16| {
            mysql_async::Error::Server(mysql_async::ServerError {
                code,
                message: "m".into(),
                state: "HY000".into(),
            })
        };
        use outflow_core::Classify as _;
        assert_eq!(
            mysql_error("x", server(1040)).class(),
            outflow_core::ErrorClass::Transient
        );
        assert_eq!(
            mysql_error("x", server(1236)).class(),
            outflow_core::ErrorClass::Definite
        );
    }

    #[test]
    fn transaction_payload_headers_that_mysql_common_cannot_read_are_refused() {
        // Compression NONE, payload size 1, end mark, then the payload byte.
        assert!(transaction_payload_plausible(&[2, 1, 255, 1, 1, 1, 0, 9]));
        // ZSTD with an uncompressed size.
        assert!(transaction_payload_plausible(&[
            2, 1, 0, 3, 1, 5, 1, 1, 1, 0, 9
        ]));
        for bad in [
            &[0xfe][..],               // a field type cut short
            &[2, 1, 7],                // an unknown compression type (unwrapped)
            &[4, 50, 1],               // an unknown field longer than the event
            &[0xfc, 0x00, 0x01, 0, 0], // field type 256 (unwrapped into a u8)
            &[1, 1],                   // a payload size field without its value
        ] {
            assert!(!transaction_payload_plausible(bad), "{bad:?}");
        }
    }

    #[test]
    fn mysql_gtids_read_as_uuid_and_sequence() {
        let sid = [
            0x3e, 0x11, 0xfa, 0x47, 0x71, 0xca, 0x11, 0xe1, 0x9e, 0x33, 0xc8, 0x0a, 0xa9, 0x42,
            0x95, 0x62,
        ];
        assert_eq!(
            mysql_gtid(&sid, 23),
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:23"
        );
    }

    #[test]
    fn binlog_names_lose_the_checksum_of_the_fake_rotate() {
        assert_eq!(clean_binlog_name(b"binlog.000003"), "binlog.000003");
        let mut with_crc = b"binlog.000003".to_vec();
        with_crc.extend([0x12, 0xab, 0x00, 0x7f]);
        assert_eq!(clean_binlog_name(&with_crc), "binlog.000003");
    }
}
