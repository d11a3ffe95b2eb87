//! The Postgres source: preflight, publication and slot, the initial snapshot, and the
//! pgoutput stream, as an [`outflow_core::Source`].
//!
//! Consistency: on a first start the slot is created with an exported snapshot on the
//! replication connection, which then stays idle while the snapshot reads every captured
//! table inside that snapshot (`SET TRANSACTION SNAPSHOT`, REPEATABLE READ); streaming
//! then starts on the same slot. The snapshot sees exactly the transactions committed
//! before the slot's consistent point, the stream exactly those after, so no row is missed
//! or repeated at the handover.
//!
//! Positions: streamed events carry `(commit LSN, sequence in the transaction)`; pgoutput's
//! Begin message already names the commit LSN, so nothing is buffered. Snapshot rows carry
//! the consistent point and a running sequence.
//!
//! Acknowledgement: the slot's `confirmed_flush_lsn` only advances to the end LSN of a
//! transaction whose Commit event the pipeline reported durable (the [`DurableWatch`]); while
//! nothing is in flight, keepalives let it follow the server's WAL end so an idle
//! connector does not hold WAL back.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use outflow_core::event::{SchemaChange, SchemaChangeKind};
use outflow_core::source::{DurableWatch, SourceContext};
use outflow_core::{
    ChangeEvent, Classify, ErrorClass, EventBatch, EventKind, RetryPolicy, Source, SourceError,
    SourcePosition, TransactionBoundary,
};

use crate::position::{DebeziumPartial, Lsn, PgPosition};

use crate::catalog::Catalog;
use crate::config::{PostgresConfig, PublicationAutocreate, SnapshotMode};
use crate::pgoutput::{Decoder, Message, unix_micros};
use crate::relation::RelationCache;
use crate::replication::{
    ConnectOptions, ReplicationConnection, ReplicationError, ReplicationStream, StreamMessage,
    postgres_now,
};
use crate::spool::{SpooledMessage, TransactionSpool};
use crate::types::SESSION_SETTINGS;

mod snapshot;

use snapshot::ResumeWindow;

const BATCH_EVENTS: usize = 1024;

/// SQLSTATEs (whole codes, or classes of two characters) that pass by themselves: a
/// retry with backoff, not a FAILED connector. The one table for both connections.
const TRANSIENT_SQLSTATES: &[(&str, &str)] = &[
    ("08", "connection exception (refused, broken, lost)"),
    (
        "57",
        "operator intervention: admin/crash shutdown (57P01/57P02), starting up (57P03), cancelled (57014)",
    ),
    ("53000", "insufficient resources"),
    ("53100", "disk full"),
    ("53200", "out of memory"),
    (
        "53300",
        "too many connections (max_connections, or the role's or database's CONNECTION LIMIT)",
    ),
    ("40001", "serialization failure"),
    ("40P01", "deadlock detected"),
    (
        "55006",
        "object in use: the slot is active for a PID (the previous walsender, not yet gone after a network drop)",
    ),
    ("55P03", "lock not available"),
    ("58000", "system error"),
    ("58030", "I/O error"),
    ("XX000", "internal error"),
];

/// Whether a server error with SQLSTATE `code` is transient ([`TRANSIENT_SQLSTATES`]).
pub(crate) fn transient_sqlstate(code: &str) -> bool {
    TRANSIENT_SQLSTATES.iter().any(|(entry, _)| {
        if entry.len() == 2 {
            code.starts_with(entry)
        } else {
            code == *entry
        }
    })
}

fn replication_error(context: &str, e: ReplicationError) -> SourceError {
    let transient = match &e {
        ReplicationError::Io(_) => true,
        // A server that restarts or shuts down under the handshake: it comes back.
        ReplicationError::Tls { .. } => outflow_core::peer_hung_up(&e),
        ReplicationError::Server { code, .. } => transient_sqlstate(code),
        _ => false,
    };
    if transient {
        SourceError::transient(context.to_owned(), e)
    } else {
        let hint = match e.sqlstate() {
            Some(code) if code.starts_with("28") => "check database.user and database.password",
            Some("42501") => "grant the REPLICATION attribute: ALTER ROLE <user> REPLICATION",
            _ if matches!(e, ReplicationError::Tls { .. }) => {
                "check database.sslmode, database.sslrootcert and the server's certificate"
            }
            _ => "see the server's message",
        };
        SourceError::definite_with(context.to_owned(), hint, e)
    }
}

/// The server's `server_version_num` (e.g. 180004): what its catalog and protocol offer.
pub(crate) async fn server_version(client: &tokio_postgres::Client) -> Result<i32, SourceError> {
    Ok(client
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .map_err(|e| query_error("reading the server version", e))?
        .get(0))
}

fn query_error(context: &str, e: tokio_postgres::Error) -> SourceError {
    if outflow_core::peer_hung_up(&e) {
        return SourceError::transient(context.to_owned(), e);
    }
    if e.to_string().contains("TLS") {
        return SourceError::definite_with(
            context.to_owned(),
            "check database.sslmode, database.sslrootcert and the server's certificate",
            e,
        );
    }
    match e.code() {
        Some(code) if !transient_sqlstate(code.code()) => {
            let hint = if code.code().starts_with("28") {
                "check database.user and database.password"
            } else {
                "see the server's message"
            };
            SourceError::definite_with(context.to_owned(), hint, e)
        }
        _ => SourceError::transient(context.to_owned(), e),
    }
}

/// Identifier quoting for SQL and replication commands (one rule, in `replication`).
pub(crate) use crate::replication::quote_identifier as quote;

/// Counters and progress of a Postgres source, for the daemon's status and `/metrics`.
#[derive(Debug, Default)]
pub struct PostgresMetrics {
    /// Times the replication stream was re-established after a transient error.
    pub reconnects: AtomicU64,
    /// Snapshot rows read so far.
    pub snapshot_rows: AtomicU64,
    /// Estimated rows of the snapshot (from `pg_class.reltuples`).
    pub snapshot_rows_estimate: AtomicU64,
    /// Tables of the snapshot completely read.
    pub snapshot_tables_done: AtomicU64,
    /// Tables in the snapshot.
    pub snapshot_tables: AtomicU64,
    /// The snapshot is finished (or not taken) and changes are streaming.
    pub streaming: AtomicBool,
    /// Bytes of WAL the server has that the slot has not confirmed (the server's last
    /// reported WAL end minus the confirmed flush LSN), updated at each status update.
    pub slot_lag_bytes: AtomicU64,
    /// The slot's `wal_status` as a number: 0 unknown, 1 `reserved`, 2 `extended`,
    /// 3 `unreserved` (about to be lost), 4 `lost` (invalidated); checked at start and
    /// at every status update.
    pub slot_wal_status: AtomicU64,
    /// The slot's `safe_wal_size`: bytes of WAL that may still be written before the
    /// slot is invalidated by `max_slot_wal_keep_size` (`u64::MAX` when unlimited).
    pub slot_safe_wal_size: AtomicU64,
    /// The server's decoding statistics for the slot (`pg_stat_replication_slots`,
    /// cumulative until the server resets them): bytes of transactions it spilled to
    /// disk (`spill_bytes`, past `logical_decoding_work_mem`), streamed in progress
    /// (`stream_bytes`) and decoded (`total_bytes`, as the server counts it: measured
    /// far below `stream_bytes` when transactions were streamed). Read with the slot's
    /// health.
    pub slot_spill_bytes: AtomicU64,
    /// See [`PostgresMetrics::slot_spill_bytes`].
    pub slot_stream_bytes: AtomicU64,
    /// See [`PostgresMetrics::slot_spill_bytes`].
    pub slot_decoded_bytes: AtomicU64,
}

/// The health of a replication slot, from `pg_replication_slots`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SlotHealth {
    wal_status: Option<String>,
    safe_wal_size: Option<i64>,
    /// `invalidation_reason` (Postgres 17+).
    invalidation_reason: Option<String>,
    restart_lsn: Option<String>,
    confirmed_flush_lsn: Option<String>,
}

impl SlotHealth {
    fn lost(&self) -> bool {
        self.wal_status.as_deref() == Some("lost")
    }

    fn status_code(&self) -> u64 {
        match self.wal_status.as_deref() {
            Some("reserved") => 1,
            Some("extended") => 2,
            Some("unreserved") => 3,
            Some("lost") => 4,
            _ => 0,
        }
    }
}

/// A Postgres change stream.
#[derive(Debug)]
pub struct PostgresSource {
    config: PostgresConfig,
    metrics: Arc<PostgresMetrics>,
    /// Built from the TLS settings when the source starts (it reads certificate files).
    tls: Option<native_tls::TlsConnector>,
}

impl PostgresSource {
    /// A source for a validated config.
    pub fn new(config: PostgresConfig) -> Self {
        Self {
            config,
            metrics: Arc::default(),
            tls: None,
        }
    }

    /// Counts into `metrics` (kept by the caller across restarts of the connector).
    #[must_use]
    pub fn with_metrics(mut self, metrics: Arc<PostgresMetrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The source's counters, shared with the running source.
    pub fn metrics(&self) -> Arc<PostgresMetrics> {
        Arc::clone(&self.metrics)
    }

    fn connect_options(&self) -> ConnectOptions {
        ConnectOptions {
            host: self.config.host.clone(),
            port: self.config.port,
            user: self.config.user.clone(),
            password: self.config.password.clone(),
            dbname: self.config.dbname.clone(),
            application_name: format!("outflow {}", self.config.slot_name),
            settings: SESSION_SETTINGS
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            tls: self.tls.clone().map(|connector| {
                (
                    tokio_native_tls::TlsConnector::from(connector),
                    self.config.tls.mode.required(),
                )
            }),
        }
    }

    async fn catalog(&self) -> Result<Catalog, SourceError> {
        let mut pg = tokio_postgres::Config::new();
        pg.host(&self.config.host)
            .port(self.config.port)
            .user(&self.config.user)
            .dbname(&self.config.dbname);
        if let Some(password) = &self.config.password {
            pg.password(password);
        }
        pg.application_name("outflow catalog");
        let client = match &self.tls {
            None => {
                pg.ssl_mode(tokio_postgres::config::SslMode::Disable);
                spawn_connection(pg.connect(tokio_postgres::NoTls).await)?
            }
            Some(connector) => {
                pg.ssl_mode(if self.config.tls.mode.required() {
                    tokio_postgres::config::SslMode::Require
                } else {
                    tokio_postgres::config::SslMode::Prefer
                });
                let tls = postgres_native_tls::MakeTlsConnector::new(connector.clone());
                spawn_connection(pg.connect(tls).await)?
            }
        };
        // The snapshot reads values as text on these connections: the same settings as
        // the replication session, so each type has the one text form `parse_text` reads
        // (without them a server's default `IntervalStyle=postgres` fails every interval).
        let settings: String = SESSION_SETTINGS
            .iter()
            .map(|(name, value)| format!("SET \"{name}\" TO '{value}'; "))
            .collect();
        client.batch_execute(&settings).await.map_err(|e| {
            query_error("setting the session's date, interval and number formats", e)
        })?;
        Ok(Catalog::new(client).with_hstore(self.config.hstore_handling))
    }

    async fn preflight(&self, catalog: &Catalog) -> Result<(), SourceError> {
        let client = catalog.client();
        let wal_level: String = client
            .query_one("SHOW wal_level", &[])
            .await
            .map_err(|e| query_error("reading wal_level", e))?
            .get(0);
        if wal_level != "logical" {
            return Err(SourceError::definite(
                format!("wal_level is {wal_level:?}, logical decoding needs \"logical\""),
                "set wal_level = logical in postgresql.conf and restart Postgres",
            ));
        }
        let can_replicate: bool = client
            .query_one(
                "SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user",
                &[],
            )
            .await
            .map_err(|e| query_error("reading role attributes", e))?
            .get(0);
        if !can_replicate {
            return Err(SourceError::definite(
                format!("user {} lacks the REPLICATION attribute", self.config.user),
                format!("ALTER ROLE {} REPLICATION", quote(&self.config.user)),
            ));
        }
        Ok(())
    }

    /// Applies `replica.identity.autoset.values`, then checks that every captured table
    /// can be identified in UPDATE and DELETE messages.
    async fn replica_identities(&self, catalog: &Catalog) -> Result<(), SourceError> {
        let client = catalog.client();
        let rows = client
            .query(
                "SELECT n.nspname::text, c.relname::text, c.relreplident::text, \
                 EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary), \
                 EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident) \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
                 AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                 AND n.nspname NOT LIKE 'pg\\_toast%' ORDER BY 1, 2",
                &[],
            )
            .await
            .map_err(|e| query_error("reading replica identities", e))?;
        let publishes_changes = client
            .query_opt(
                "SELECT pubupdate OR pubdelete FROM pg_publication WHERE pubname = $1",
                &[&self.config.publication_name],
            )
            .await
            .map_err(|e| query_error("reading the publication", e))?;
        // A publication FOR ALL TABLES that outflow is about to create publishes tables
        // it does not capture too: each of those must be identifiable, or the user's
        // UPDATE/DELETE on it fail from then on.
        let creating_all_tables = publishes_changes.is_none()
            && self.config.publication_autocreate == PublicationAutocreate::AllTables;
        let publishes_changes = publishes_changes.is_none_or(|r| r.get::<_, bool>(0));
        let mut unusable = Vec::new();
        let mut uncaptured = Vec::new();
        for row in &rows {
            let (schema, table): (String, String) = (row.get(0), row.get(1));
            if !self.config.captures(&schema, &table) {
                if creating_all_tables
                    && let Some(why) =
                        unusable_identity(&row.get::<_, String>(2), row.get(3), row.get(4))
                {
                    uncaptured.push(format!("{schema}.{table} ({why})"));
                }
                continue;
            }
            let mut identity: String = row.get(2);
            let (has_key, has_index): (bool, bool) = (row.get(3), row.get(4));
            let full_name = format!("{schema}.{table}");
            if let Some((_, wanted)) = self
                .config
                .replica_identity_autoset
                .iter()
                .find(|(r, _)| r.is_match(&full_name))
                && (identity != wanted.code().to_string()
                    || matches!(wanted, crate::config::ReplicaIdentity::Index(_)))
            {
                let statement = format!(
                    "ALTER TABLE {}.{} REPLICA IDENTITY {}",
                    quote(&schema),
                    quote(&table),
                    wanted.clause()
                );
                tracing::info!(table = %full_name, identity = %wanted.clause(), "setting replica identity");
                client.batch_execute(&statement).await.map_err(|e| {
                    SourceError::definite_with(
                        format!("{statement} failed"),
                        "the user must own the table, or fix replica.identity.autoset.values",
                        e,
                    )
                })?;
                identity = wanted.code().to_string();
                if matches!(wanted, crate::config::ReplicaIdentity::Index(_)) {
                    continue;
                }
            }
            if let Some(why) = unusable_identity(&identity, has_key, has_index) {
                unusable.push((full_name, why));
            }
        }
        if !uncaptured.is_empty() {
            return Err(SourceError::definite(
                format!(
                    "publication.autocreate.mode=all_tables would publish tables that have no usable replica identity, and UPDATE and DELETE on them would then fail in your applications: {}",
                    uncaptured.join(", ")
                ),
                format!(
                    "set publication.autocreate.mode=filtered (publishes only the captured tables), create the publication {} yourself, or give those tables a primary key or REPLICA IDENTITY FULL",
                    self.config.publication_name
                ),
            ));
        }
        if publishes_changes && !unusable.is_empty() {
            let list: Vec<String> = unusable
                .iter()
                .map(|(t, why)| format!("{t} ({why})"))
                .collect();
            let first = &unusable[0].0;
            return Err(SourceError::definite(
                format!(
                    "captured tables without a usable replica identity (UPDATE and DELETE on them fail once published): {}",
                    list.join(", ")
                ),
                format!(
                    "ALTER TABLE {first} REPLICA IDENTITY FULL (or add a primary key), set replica.identity.autoset.values={first}:FULL, or leave the table out with table.exclude.list"
                ),
            ));
        }
        Ok(())
    }

    /// The identity of this connector's slot in its ledger: name, database and the
    /// cluster's system identifier (`IDENTIFY_SYSTEM`; slot names are per cluster).
    async fn slot_resource(&self, conn: &mut ReplicationConnection) -> Result<String, SourceError> {
        let rows = conn
            .simple_query("IDENTIFY_SYSTEM")
            .await
            .map_err(|e| replication_error("identifying the server (IDENTIFY_SYSTEM)", e))?;
        let system = rows
            .first()
            .and_then(|r| r.first().cloned().flatten())
            .unwrap_or_default();
        Ok(format!(
            "postgres slot {} in database {} of system {system}",
            self.config.slot_name, self.config.dbname
        ))
    }

    /// Checks that the existing slot `slot.name` is this connector's (recorded in its
    /// ledger when it was created) and idle; returns its ledger identity. A slot that
    /// someone else made, or one the ledger does not know, is a definite error naming
    /// who holds it; this connector's own slot still held by a walsender (its previous
    /// connection, not yet gone after a network drop) is transient.
    async fn own_slot(
        &self,
        catalog: &Catalog,
        conn: &mut ReplicationConnection,
        ctx: &SourceContext,
        to_drop: bool,
    ) -> Result<String, SourceError> {
        let slot = &self.config.slot_name;
        let resource = self.slot_resource(conn).await?;
        let owned =
            ctx.resources.owns(&resource).await.map_err(|e| {
                SourceError::transient("reading which slots this connector made", e)
            })?;
        let row = catalog
            .client()
            .query_opt(
                "SELECT s.active, s.active_pid, s.database::text, s.plugin::text, \
                 r.application_name::text, r.client_addr::text, r.usename::text \
                 FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid \
                 WHERE s.slot_name = $1",
                &[slot],
            )
            .await
            .map_err(|e| query_error("looking up who holds the replication slot", e))?;
        let Some(row) = row else {
            return Err(SourceError::transient(
                "checking the replication slot",
                format!("slot {slot} vanished while it was being checked"),
            ));
        };
        let (active, pid, database, plugin): (bool, Option<i32>, Option<String>, Option<String>) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        let (application, address, user): (Option<String>, Option<String>, Option<String>) =
            (row.get(4), row.get(5), row.get(6));
        let holder = if active {
            let pid = pid.map_or_else(|| "?".to_owned(), |p| p.to_string());
            format!(
                "in use by PID {pid} ({}{}{})",
                application.filter(|a| !a.is_empty()).map_or_else(
                    || "application unknown".to_owned(),
                    |a| format!("application {a:?}")
                ),
                user.map(|u| format!(", user {u}")).unwrap_or_default(),
                address.map(|a| format!(", from {a}")).unwrap_or_default(),
            )
        } else {
            "not in use right now".to_owned()
        };
        let wrong_database = database.as_deref() != Some(self.config.dbname.as_str());
        if !owned && !wrong_database && !active && self.config.slot_adopt_existing {
            ctx.resources.record(&resource).await.map_err(|e| {
                SourceError::transient("recording the adopted slot as this connector's", e)
            })?;
            tracing::warn!(slot = %slot, "adopted an existing replication slot this connector did not create (slot.adopt.existing=true)");
            return Ok(resource);
        }
        if !owned || wrong_database {
            let what = if to_drop {
                "outflow drops only slots it created, and this connector has no offsets to resume it from"
            } else {
                "streaming from it would take its changes away from whoever reads it"
            };
            return Err(SourceError::definite(
                format!(
                    "replication slot {slot} already exists and was not created by this connector ({holder}; database {}, plugin {}): {what}",
                    database.as_deref().unwrap_or("none"),
                    plugin.as_deref().unwrap_or("none"),
                ),
                format!(
                    "give this connector a slot of its own with slot.name, or, if nobody needs {slot}, drop it yourself: SELECT pg_drop_replication_slot('{slot}'); a slot made for this connector by hand is taken over with slot.adopt.existing=true"
                ),
            ));
        }
        if active {
            return Err(SourceError::transient(
                "taking over this connector's replication slot",
                format!("slot {slot} is {holder}; waiting for it to be released"),
            ));
        }
        Ok(resource)
    }

    /// The slot's WAL status (Postgres 13+; the reason on 17+), published as metrics;
    /// `None` if the slot does not exist.
    async fn slot_health(&self, catalog: &Catalog) -> Result<Option<SlotHealth>, SourceError> {
        let client = catalog.client();
        let version = server_version(client).await?;
        let reason = if version >= 170_000 {
            "invalidation_reason::text"
        } else {
            "NULL::text"
        };
        let row = client
            .query_opt(
                &format!(
                    "SELECT wal_status::text, safe_wal_size::bigint, {reason}, \
                     restart_lsn::text, confirmed_flush_lsn::text \
                     FROM pg_replication_slots WHERE slot_name = $1"
                ),
                &[&self.config.slot_name],
            )
            .await
            .map_err(|e| query_error("reading the replication slot's WAL status", e))?;
        let Some(row) = row else { return Ok(None) };
        let health = SlotHealth {
            wal_status: row.get(0),
            safe_wal_size: row.get(1),
            invalidation_reason: row.get(2),
            restart_lsn: row.get(3),
            confirmed_flush_lsn: row.get(4),
        };
        self.metrics
            .slot_wal_status
            .store(health.status_code(), Ordering::Relaxed);
        self.metrics.slot_safe_wal_size.store(
            health
                .safe_wal_size
                .map_or(u64::MAX, |b| u64::try_from(b).unwrap_or(0)),
            Ordering::Relaxed,
        );
        // Decoding statistics exist from 14 on; a row appears once the slot decoded.
        if version >= 140_000
            && let Some(stats) = client
                .query_opt(
                    "SELECT spill_bytes, stream_bytes, total_bytes \
                     FROM pg_stat_replication_slots WHERE slot_name = $1",
                    &[&self.config.slot_name],
                )
                .await
                .map_err(|e| query_error("reading the slot's decoding statistics", e))?
        {
            for (i, gauge) in [
                &self.metrics.slot_spill_bytes,
                &self.metrics.slot_stream_bytes,
                &self.metrics.slot_decoded_bytes,
            ]
            .into_iter()
            .enumerate()
            {
                let bytes: Option<i64> = stats.get(i);
                gauge.store(
                    bytes.map_or(0, |b| u64::try_from(b).unwrap_or(0)),
                    Ordering::Relaxed,
                );
            }
        }
        Ok(Some(health))
    }

    /// The error for an invalidated slot: changes after its last confirmed position
    /// are gone from the server.
    fn slot_lost(&self, health: &SlotHealth, resumable: bool) -> SourceError {
        let slot = &self.config.slot_name;
        let from = health
            .confirmed_flush_lsn
            .as_deref()
            .or(health.restart_lsn.as_deref())
            .unwrap_or("its last confirmed position");
        let reason = health
            .invalidation_reason
            .as_deref()
            .map_or_else(String::new, |r| format!(", reason {r}"));
        let what = format!(
            "replication slot {slot} was invalidated by the server (wal_status lost{reason}): the changes after {from} are lost"
        );
        if resumable {
            SourceError::transient(
                "restarting to take a new snapshot with a new slot (snapshot.mode=when_needed)",
                what,
            )
        } else {
            SourceError::definite(
                what,
                "set snapshot.mode=when_needed to take a new snapshot with a new slot (or reset the connector's offsets); raise max_slot_wal_keep_size, or keep the connector running, so that it does not happen again",
            )
        }
    }

    /// Fails with a definite error when a new slot cannot be created.
    async fn slot_capacity(&self, catalog: &Catalog) -> Result<(), SourceError> {
        let row = catalog
            .client()
            .query_one(
                "SELECT current_setting('max_replication_slots')::int, \
                 (SELECT count(*)::int FROM pg_replication_slots), \
                 current_setting('max_wal_senders')::int, \
                 (SELECT count(*)::int FROM pg_stat_replication)",
                &[],
            )
            .await
            .map_err(|e| query_error("reading max_replication_slots", e))?;
        let (max_slots, slots, max_senders, senders): (i32, i32, i32, i32) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        if slots >= max_slots {
            return Err(SourceError::definite(
                format!("all {max_slots} replication slots are in use (max_replication_slots)"),
                "raise max_replication_slots in postgresql.conf and restart Postgres, or drop unused slots (SELECT pg_drop_replication_slot(name))",
            ));
        }
        if senders >= max_senders {
            return Err(SourceError::definite(
                format!("all {max_senders} WAL senders are in use (max_wal_senders)"),
                "raise max_wal_senders in postgresql.conf and restart Postgres",
            ));
        }
        Ok(())
    }

    /// The `schema.table` names the filters capture, quoted for SQL.
    async fn filtered_tables(&self, catalog: &Catalog) -> Result<Vec<String>, SourceError> {
        let rows = catalog
            .client()
            .query(
                "SELECT schemaname::text, tablename::text FROM pg_tables \
                 WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2",
                &[],
            )
            .await
            .map_err(|e| query_error("listing tables", e))?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
            .filter(|(s, t)| self.config.captures(s, t))
            .map(|(s, t)| format!("{}.{}", quote(&s), quote(&t)))
            .collect())
    }

    async fn ensure_publication(&self, catalog: &Catalog) -> Result<(), SourceError> {
        let client = catalog.client();
        let name = &self.config.publication_name;
        let exists = client
            .query_opt("SELECT 1 FROM pg_publication WHERE pubname = $1", &[name])
            .await
            .map_err(|e| query_error("looking up the publication", e))?
            .is_some();
        if exists {
            if self.config.publication_autocreate == PublicationAutocreate::Filtered {
                self.refresh_publication(catalog).await?;
            }
            return Ok(());
        }
        let statement = match self.config.publication_autocreate {
            PublicationAutocreate::Disabled => {
                return Err(SourceError::definite(
                    format!(
                        "publication {name} does not exist and publication.autocreate.mode=disabled"
                    ),
                    format!(
                        "CREATE PUBLICATION {} FOR TABLE …, or set publication.autocreate.mode",
                        quote(name)
                    ),
                ));
            }
            PublicationAutocreate::AllTables => {
                format!("CREATE PUBLICATION {} FOR ALL TABLES", quote(name))
            }
            PublicationAutocreate::Filtered => {
                let tables = self.filtered_tables(catalog).await?;
                if tables.is_empty() {
                    return Err(SourceError::definite(
                        "no table matches table.include.list / table.exclude.list",
                        "fix the table filters or create the tables first",
                    ));
                }
                format!(
                    "CREATE PUBLICATION {} FOR TABLE {}",
                    quote(name),
                    tables.join(", ")
                )
            }
        };
        tracing::info!(publication = %name, "creating publication");
        client
            .batch_execute(&statement)
            .await
            .map_err(|e| query_error("creating the publication", e))
    }

    /// `publication.autocreate.mode=filtered`: adds captured tables missing from the
    /// publication (created, or newly included, since it was made). Tables are only ever
    /// added, so a filter change never silently stops another connector's capture.
    async fn refresh_publication(&self, catalog: &Catalog) -> Result<(), SourceError> {
        let client = catalog.client();
        let published: std::collections::HashSet<String> = client
            .query(
                "SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1",
                &[&self.config.publication_name],
            )
            .await
            .map_err(|e| query_error("reading the publication's tables", e))?
            .iter()
            .map(|r| format!("{}.{}", quote(&r.get::<_, String>(0)), quote(&r.get::<_, String>(1))))
            .collect();
        let missing: Vec<String> = self
            .filtered_tables(catalog)
            .await?
            .into_iter()
            .filter(|t| !published.contains(t))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        tracing::info!(publication = %self.config.publication_name, tables = %missing.join(", "), "adding tables to the publication");
        client
            .batch_execute(&format!(
                "ALTER PUBLICATION {} ADD TABLE {}",
                quote(&self.config.publication_name),
                missing.join(", ")
            ))
            .await
            .map_err(|e| query_error("adding tables to the publication", e))
    }
}

/// Why a table with replica identity `identity` (`pg_class.relreplident`) cannot be
/// identified in UPDATE and DELETE messages, if it cannot.
fn unusable_identity(identity: &str, has_key: bool, has_index: bool) -> Option<&'static str> {
    match identity {
        "f" => None,
        "d" if has_key => None,
        "i" if has_index => None,
        "d" => Some("REPLICA IDENTITY DEFAULT without a primary key"),
        "i" => Some("REPLICA IDENTITY INDEX whose index is gone"),
        _ => Some("REPLICA IDENTITY NOTHING"),
    }
}

/// Commits in flight: the Commit event's position and the transaction's end LSN.
#[derive(Debug, Default)]
struct Acknowledger {
    pending: VecDeque<(SourcePosition, Lsn)>,
    flushed: Lsn,
    idle_wal_end: Lsn,
}

impl Acknowledger {
    /// Advances `flushed` over the commits that are durable; returns whether it moved.
    fn durable(&mut self, durable: &SourcePosition) -> bool {
        let before = self.flushed;
        while let Some((position, end)) = self.pending.front() {
            if position > durable {
                break;
            }
            self.flushed = self.flushed.max(*end);
            self.pending.pop_front();
        }
        self.flushed != before
    }
}

struct StreamState {
    decoder: Decoder,
    relations: RelationCache,
    transaction: Option<(u64, u32, i64, u64)>,
    /// Where the open transaction's Begin message stands in the WAL (its first record):
    /// with the xid, Debezium's transaction id (`<xid>:<lsn>`).
    transaction_start: Lsn,
    wal_start: Lsn,
    last_position: Option<PgPosition>,
    heartbeat_seq: u64,
    batch: Vec<ChangeEvent>,
    described: std::collections::HashSet<u32>,
    /// Streamed in-progress transactions by top-level xid.
    spools: std::collections::HashMap<u32, TransactionSpool>,
    /// The top-level xid of the streamed chunk being received.
    streaming: Option<u32>,
    /// The last emitted event is inside a transaction (its Commit is still to come, maybe
    /// after a reconnect): no heartbeat and no idle advance of the slot until it is.
    mid_transaction: bool,
    /// After a resumed snapshot: stream changes its reads already contain.
    window: Option<ResumeWindow>,
    /// Taking over from Debezium stopped inside a transaction: its changes Debezium
    /// already emitted are skipped, as Debezium skips them on its own restart; cleared
    /// at that transaction's commit.
    debezium_partial: Option<DebeziumPartial>,
}

impl StreamState {
    /// Forgets what belongs to the lost connection; keeps what was emitted.
    fn reconnected(&mut self) {
        self.decoder = Decoder::new();
        self.transaction = None;
        self.spools.clear();
        self.streaming = None;
    }
}

/// Runs a tokio-postgres connection in the background and returns its client.
fn spawn_connection<T>(
    connected: Result<
        (
            tokio_postgres::Client,
            tokio_postgres::Connection<tokio_postgres::Socket, T>,
        ),
        tokio_postgres::Error,
    >,
) -> Result<tokio_postgres::Client, SourceError>
where
    T: tokio_postgres::tls::TlsStream + Unpin + Send + 'static,
{
    let (client, connection) = connected.map_err(|e| query_error("connecting to Postgres", e))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "catalog connection ended");
        }
    });
    Ok(client)
}

impl Source for PostgresSource {
    async fn run(&mut self, mut ctx: SourceContext) -> Result<(), SourceError> {
        self.tls = self.config.tls.connector().map_err(|e| {
            let property = e.property();
            SourceError::definite_with(
                format!("TLS settings ({property})"),
                format!(
                    "check {property}: the file must exist and hold PEM data (the key as PKCS#8)"
                ),
                e,
            )
        })?;
        let mut catalog = self.catalog().await?;
        self.preflight(&catalog).await?;
        // Identities before the publication: publishing a table without one makes its
        // UPDATEs and DELETEs fail on the database.
        self.replica_identities(&catalog).await?;
        self.ensure_publication(&catalog).await?;

        let slot = self.config.slot_name.clone();
        let slot_row = catalog
            .client()
            .query_opt(
                "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .await
            .map_err(|e| query_error("looking up the replication slot", e))?;
        let resume = match &ctx.resume_after {
            Some(position) => match PgPosition::of(position) {
                Some(p) => Some(p),
                None => {
                    return Err(SourceError::definite(
                        format!("the stored offset is not a Postgres position: {position:?}"),
                        "reset the connector's offsets (DELETE /connectors/<name>/offsets) or use a new name",
                    ));
                }
            },
            None => None,
        };
        // A stop inside the snapshot: it continues where it stood (see `snapshot`).
        let mut resume_snapshot = resume.clone().filter(|p| p.snapshot);
        let wants_snapshot = matches!(
            self.config.snapshot_mode,
            SnapshotMode::Initial | SnapshotMode::InitialOnly | SnapshotMode::WhenNeeded
        );

        let mut conn = ReplicationConnection::connect(&self.connect_options())
            .await
            .map_err(|e| replication_error("opening the replication connection", e))?;
        // An invalidated slot (max_slot_wal_keep_size) cannot stream: its changes are
        // gone. when_needed recovers with a new slot and snapshot; else it is an error.
        let mut slot_row = slot_row;
        if let Some(health) = self.slot_health(&catalog).await?
            && health.lost()
        {
            if resume.is_none() || self.config.snapshot_mode != SnapshotMode::WhenNeeded {
                if resume.is_some() {
                    return Err(self.slot_lost(&health, false));
                }
                // No offsets: the slot is recreated below if it is ours (and refused
                // if it is not), as any stale slot.
            } else {
                tracing::warn!(slot = %slot, "replication slot invalidated; taking a new snapshot with a new slot (snapshot.mode=when_needed)");
                self.own_slot(&catalog, &mut conn, &ctx, true).await?;
                conn.simple_query(&format!("DROP_REPLICATION_SLOT {}", quote(&slot)))
                    .await
                    .map_err(|e| {
                        replication_error("dropping the invalidated replication slot", e)
                    })?;
                slot_row = None;
            }
        }
        let mut snapshot = None;
        match (&slot_row, &resume) {
            (Some(_), Some(_)) => {}
            (None, Some(p)) if self.config.snapshot_mode != SnapshotMode::WhenNeeded => {
                return Err(SourceError::definite(
                    format!(
                        "replication slot {slot} is gone; changes after {} are lost",
                        p.lsn_commit
                    ),
                    "set snapshot.mode=when_needed to take a new snapshot, or reset the connector's offsets",
                ));
            }
            (Some(_), None) if !wants_snapshot => {
                // Streaming from it takes its changes from whoever else reads it.
                self.own_slot(&catalog, &mut conn, &ctx, false).await?;
            }
            (existing, _) => {
                // A new slot: a resume position from the old one means nothing to it.
                resume_snapshot = None;
                if existing.is_some() {
                    // Ours, with no durable offset: nothing was delivered from it; start
                    // over. Someone else's: an error, never a drop.
                    let resource = self.own_slot(&catalog, &mut conn, &ctx, true).await?;
                    conn.simple_query(&format!("DROP_REPLICATION_SLOT {}", quote(&slot)))
                        .await
                        .map_err(|e| replication_error("dropping the stale replication slot", e))?;
                    tracing::info!(slot = %slot, %resource, "dropped this connector's own stale replication slot");
                } else {
                    self.slot_capacity(&catalog).await?;
                }
                let resource = self.slot_resource(&mut conn).await?;
                let recorded = ctx.resources.record(&resource).await.map_err(|e| {
                    SourceError::transient("recording the slot as this connector's", e)
                })?;
                if !recorded {
                    tracing::warn!(slot = %slot, "the offset store keeps no record of created slots: a later start without offsets will refuse this slot as unknown");
                }
                let created = conn
                    .create_slot(&slot, wants_snapshot)
                    .await
                    .map_err(|e| replication_error("creating the replication slot", e))?;
                tracing::info!(slot = %slot, consistent_point = %created.consistent_point, "replication slot created");
                snapshot = wants_snapshot.then_some(created);
            }
        }

        // The slot's WAL status as metrics from the start (the status updates keep it).
        self.slot_health(&catalog).await?;
        let mut state = StreamState {
            decoder: Decoder::new(),
            relations: RelationCache::new(),
            transaction: None,
            transaction_start: Lsn(0),
            wal_start: Lsn(0),
            // Events at or before the resume point are resent by the server; skip them here.
            last_position: resume.clone(),
            debezium_partial: resume.as_ref().and_then(PgPosition::debezium_partial),
            heartbeat_seq: 0,
            batch: Vec::new(),
            described: std::collections::HashSet::new(),
            spools: std::collections::HashMap::new(),
            streaming: None,
            mid_transaction: false,
            window: None,
        };
        if let Some(created) = snapshot {
            let Some(name) = created.snapshot.clone() else {
                return Err(SourceError::definite(
                    "the server exported no snapshot",
                    "use Postgres 10 or newer",
                ));
            };
            self.snapshot(
                &mut catalog,
                &name,
                created.consistent_point,
                None,
                &mut state,
                &ctx,
            )
            .await?;
            if self.config.snapshot_mode == SnapshotMode::InitialOnly {
                return Ok(());
            }
        } else if let Some(position) = resume_snapshot {
            // The slot still stands at the interrupted snapshot's consistent point; a
            // temporary slot exports a view of now for the rest of the reads.
            self.slot_capacity(&catalog).await?;
            let mut exporter = ReplicationConnection::connect(&self.connect_options())
                .await
                .map_err(|e| replication_error("opening a second replication connection", e))?;
            let temporary: String = slot.chars().take(56).collect::<String>() + "_resume";
            let created = exporter
                .create_temporary_slot(&temporary)
                .await
                .map_err(|e| {
                    replication_error("creating a temporary slot to resume the snapshot", e)
                })?;
            let Some(name) = created.snapshot.clone() else {
                return Err(SourceError::definite(
                    "the server exported no snapshot",
                    "use Postgres 10 or newer",
                ));
            };
            tracing::info!(slot = %slot, resumed_at = %created.consistent_point, "resuming the snapshot");
            let window = self
                .snapshot(
                    &mut catalog,
                    &name,
                    position.lsn_commit,
                    Some(&position),
                    &mut state,
                    &ctx,
                )
                .await?;
            drop(exporter);
            state.window = window.map(|(reread, partial)| ResumeWindow {
                until: created.consistent_point,
                reread,
                partial,
            });
            if self.config.snapshot_mode == SnapshotMode::InitialOnly {
                return Ok(());
            }
        }

        self.metrics.streaming.store(true, Ordering::Relaxed);
        let version = server_version(catalog.client()).await?;
        let mut stream = Some(self.start_stream(conn, version).await?);
        let mut ack = Acknowledger::default();
        let mut backoff = RetryPolicy::RECONNECT.schedule();
        loop {
            let started = tokio::time::Instant::now();
            let result = match stream.take() {
                Some(stream) => {
                    self.stream(stream, &mut catalog, &mut state, &mut ack, &mut ctx)
                        .await
                }
                None => self.reconnect(&mut catalog, version).await.map(|s| {
                    stream = Some(s);
                }),
            };
            match result {
                Ok(()) if stream.is_some() => continue,
                Ok(()) => break,
                Err(e) if e.class() == ErrorClass::Transient && !ctx.shutdown.is_cancelled() => {
                    // An invalidated slot does not come back by reconnecting: the
                    // connector restarts (when_needed: with a new snapshot) or fails.
                    if let Ok(Some(health)) = self.slot_health(&catalog).await
                        && health.lost()
                    {
                        return Err(self.slot_lost(
                            &health,
                            self.config.snapshot_mode == SnapshotMode::WhenNeeded,
                        ));
                    }
                    backoff.attempt_ended(started.elapsed(), false);
                    let delay = backoff.next_delay();
                    self.metrics.reconnects.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, retry_in = ?delay, slot = %slot, "replication stream lost; reconnecting");
                    state.reconnected();
                    tokio::select! {
                        () = ctx.shutdown.cancelled() => return Ok(()),
                        () = tokio::time::sleep(delay) => {}
                    }
                }
                Err(e) => return Err(e),
            }
        }
        if self.config.slot_drop_on_stop {
            self.drop_slot(&catalog).await?;
        }
        Ok(())
    }
}

impl PostgresSource {
    /// Starts streaming from the slot's confirmed position. Protocol v2 streams large
    /// in-progress transactions (Postgres 14+), so neither the server nor outflow holds
    /// them in memory until commit.
    async fn start_stream(
        &self,
        conn: ReplicationConnection,
        server_version: i32,
    ) -> Result<ReplicationStream, SourceError> {
        let publication = self.config.publication_name.as_str();
        let mut options = vec![
            ("proto_version", "1"),
            ("publication_names", publication),
            ("messages", "true"),
        ];
        if server_version >= 140_000 {
            options[0].1 = "2";
            options.push(("streaming", "on"));
        }
        conn.start_replication(&self.config.slot_name, Lsn(0), &options)
            .await
            .map_err(|e| replication_error("starting replication", e))
    }

    /// A new replication stream (and catalog connection, if it was lost) after a
    /// transient error.
    async fn reconnect(
        &self,
        catalog: &mut Catalog,
        server_version: i32,
    ) -> Result<ReplicationStream, SourceError> {
        if catalog.client().is_closed() {
            *catalog = self.catalog().await?;
        }
        let conn = ReplicationConnection::connect(&self.connect_options())
            .await
            .map_err(|e| replication_error("reopening the replication connection", e))?;
        match self.start_stream(conn, server_version).await {
            Ok(stream) => Ok(stream),
            // The checkpointer ends the walsender of a slot it invalidates: say so
            // rather than pass on START_REPLICATION's refusal.
            Err(e) => match self.slot_health(catalog).await {
                Ok(Some(health)) if health.lost() => Err(self.slot_lost(
                    &health,
                    self.config.snapshot_mode == SnapshotMode::WhenNeeded,
                )),
                _ => Err(e),
            },
        }
    }

    /// `slot.drop.on.stop`: drops the slot once its walsender has exited.
    async fn drop_slot(&self, catalog: &Catalog) -> Result<(), SourceError> {
        let slot = &self.config.slot_name;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let result = catalog
                .client()
                .execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
                    &[slot],
                )
                .await;
            match result {
                Ok(_) => {
                    tracing::info!(slot = %slot, "replication slot dropped (slot.drop.on.stop)");
                    return Ok(());
                }
                // 55006: still active while the walsender winds down.
                Err(e)
                    if e.code().is_some_and(|c| c.code() == "55006")
                        && tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Err(e) => return Err(query_error("dropping the replication slot", e)),
            }
        }
    }

    async fn stream(
        &self,
        mut stream: ReplicationStream,
        catalog: &mut Catalog,
        state: &mut StreamState,
        ack: &mut Acknowledger,
        ctx: &mut SourceContext,
    ) -> Result<(), SourceError> {
        let mut status = tokio::time::interval(self.config.status_update_interval);
        status.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let heartbeat_period = self
            .config
            .heartbeat_interval
            .unwrap_or(std::time::Duration::from_secs(3600 * 24 * 365));
        let mut heartbeat = tokio::time::interval(heartbeat_period);
        heartbeat.reset();
        let mut durable: DurableWatch = ctx.durable.clone();
        let mut last_confirm = tokio::time::Instant::now() - CONFIRM_GAP;
        let mut confirm_due: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                () = ctx.shutdown.cancelled() => {
                    flush(state, ctx).await?;
                    // Tell the server the last durable position before leaving.
                    if let Some(position) = durable.current() {
                        ack.durable(&position);
                    }
                    let _ = send_status(&mut stream, ack).await;
                    return Ok(());
                }
                changed = durable.changed() => {
                    if let Some(position) = changed
                        && ack.durable(&position)
                    {
                        // At most one reply per CONFIRM_GAP: each makes the walsender
                        // update (and may make it save) the slot, which cost the server
                        // more than decoding when a fast sink acknowledged every batch.
                        let now = tokio::time::Instant::now();
                        if now >= last_confirm + CONFIRM_GAP {
                            send_status(&mut stream, ack).await?;
                            last_confirm = now;
                            confirm_due = None;
                        } else if confirm_due.is_none() {
                            confirm_due = Some(last_confirm + CONFIRM_GAP);
                        }
                    }
                }
                () = sleep_until_due(confirm_due) => {
                    send_status(&mut stream, ack).await?;
                    last_confirm = tokio::time::Instant::now();
                    confirm_due = None;
                }
                _ = status.tick() => {
                    if ack.pending.is_empty() && state.transaction.is_none() && state.batch.is_empty()
                        && state.spools.is_empty() && !state.mid_transaction
                        && durable.current() .as_ref() == state.last_position.clone().map(SourcePosition::from).as_ref()
                    {
                        ack.flushed = ack.flushed.max(ack.idle_wal_end);
                    }
                    self.metrics.slot_lag_bytes.store(
                        ack.idle_wal_end.0.saturating_sub(ack.flushed.0),
                        Ordering::Relaxed,
                    );
                    send_status(&mut stream, ack).await?;
                    if let Some(health) = self.slot_health(catalog).await?
                        && health.lost()
                    {
                        return Err(self.slot_lost(
                            &health,
                            self.config.snapshot_mode == SnapshotMode::WhenNeeded,
                        ));
                    }
                    if self.config.publication_autocreate == PublicationAutocreate::Filtered {
                        self.refresh_publication(catalog).await?;
                    }
                }
                _ = heartbeat.tick(), if self.config.heartbeat_interval.is_some() && state.transaction.is_none() && !state.mid_transaction => {
                    let base = state.last_position.clone().unwrap_or(PgPosition { snapshot_cursor: None,
                        lsn_commit: ack.flushed, lsn: ack.flushed, seq: 0, tx_id: None, snapshot: false,
                    });
                    state.heartbeat_seq += 1;
                    let position = PgPosition { seq: base.seq.max(1 << 32) + state.heartbeat_seq, tx_id: None, snapshot: false, ..base };
                    state.last_position = Some(position.clone());
                    state.batch.push(ChangeEvent {
                        position: SourcePosition::from(position),
                        source_ts_us: Some(outflow_core::now_us()),
                        kind: EventKind::Heartbeat,
                    });
                    flush(state, ctx).await?;
                    if let Some(query) = &self.config.heartbeat_action_query {
                        catalog.client().batch_execute(query).await.map_err(|e| match query_error("running heartbeat.action.query", e) {
                            SourceError::Definite { context, source, .. } => SourceError::Definite {
                                context,
                                hint: "fix heartbeat.action.query (it runs as database.user in database.dbname)".into(),
                                source,
                            },
                            other => other,
                        })?;
                    }
                }
                message = stream.next() => {
                    let Some(message) = message.map_err(|e| replication_error("reading the replication stream", e))? else {
                        return Err(SourceError::transient("the server ended the replication stream", "CopyDone"));
                    };
                    match message {
                        StreamMessage::Keepalive { wal_end, reply_requested, .. } => {
                            ack.idle_wal_end = wal_end;
                            if reply_requested {
                                send_status(&mut stream, ack).await?;
                            }
                        }
                        StreamMessage::XLogData { wal_start, data, .. } => {
                            state.wal_start = wal_start;
                            self.handle(&data, state, catalog, ack, ctx).await?;
                        }
                    }
                }
            }
        }
    }

    /// Handles one XLogData payload: changes inside a streamed chunk go to their
    /// transaction's spool; a Stream Commit replays the spool; everything else applies.
    async fn handle(
        &self,
        data: &[u8],
        state: &mut StreamState,
        catalog: &mut Catalog,
        ack: &mut Acknowledger,
        ctx: &SourceContext,
    ) -> Result<(), SourceError> {
        let message = state.decoder.decode(data).map_err(decode_error)?;
        // Disk trouble (full, I/O error): a restart re-streams the transaction.
        let spool_error =
            |e: std::io::Error| SourceError::transient("spooling a streamed transaction", e);
        match message {
            Message::StreamStart { xid, first_segment } => {
                if first_segment {
                    let spool = TransactionSpool::create(&self.config.spool_dir).map_err(|e| {
                        SourceError::definite_with(
                            format!(
                                "creating a spool file in {}",
                                self.config.spool_dir.display()
                            ),
                            "make the directory writable, with room for the largest transaction",
                            e,
                        )
                    })?;
                    state.spools.insert(xid, spool);
                } else if !state.spools.contains_key(&xid) {
                    return Err(SourceError::definite(
                        format!("streamed transaction {xid} continues but its start was not seen"),
                        "report this as a bug",
                    ));
                }
                state.streaming = Some(xid);
                Ok(())
            }
            Message::StreamStop => {
                state.streaming = None;
                Ok(())
            }
            Message::StreamAbort { xid, subxid } => {
                if xid == subxid {
                    if let Some(spool) = state.spools.remove(&xid) {
                        tracing::debug!(
                            xid,
                            messages = spool.messages(),
                            "streamed transaction aborted"
                        );
                    }
                } else if let Some(spool) = state.spools.get_mut(&xid) {
                    spool.abort_subtransaction(subxid);
                }
                Ok(())
            }
            Message::StreamCommit {
                xid,
                commit_lsn,
                end_lsn,
                commit_time,
                ..
            } => {
                let Some(spool) = state.spools.remove(&xid) else {
                    return Err(SourceError::definite(
                        format!("commit of streamed transaction {xid} that was never started"),
                        "report this as a bug",
                    ));
                };
                tracing::debug!(
                    xid,
                    messages = spool.messages(),
                    bytes = spool.bytes(),
                    "replaying a streamed transaction"
                );
                // The Begin stands where the transaction's first record does, as the
                // Begin of a transaction sent at its commit does.
                if let Some(first) = spool.first_wal_start() {
                    state.wal_start = first;
                }
                let mut reader = spool.replay().map_err(spool_error)?;
                self.apply(
                    Message::Begin {
                        final_lsn: commit_lsn,
                        commit_time,
                        xid,
                    },
                    state,
                    catalog,
                    ack,
                    ctx,
                )
                .await?;
                let mut decoder = Decoder::streaming();
                let mut spooled = SpooledMessage {
                    xid,
                    wal_start: Lsn(0),
                    data: Vec::new(),
                };
                while reader.next_into(&mut spooled).map_err(spool_error)? {
                    state.wal_start = spooled.wal_start;
                    let message = decoder.decode(&spooled.data).map_err(decode_error)?;
                    self.apply(message, state, catalog, ack, ctx).await?;
                }
                // The commit stands where the transaction ends, as a plain Commit's
                // message does (the next transaction's `source.sequence` names it).
                state.wal_start = Lsn(end_lsn);
                self.apply(
                    Message::Commit {
                        flags: 0,
                        commit_lsn,
                        end_lsn,
                        commit_time,
                    },
                    state,
                    catalog,
                    ack,
                    ctx,
                )
                .await
            }
            message => match state.streaming {
                Some(top) => {
                    let xid = stream_xid(&message).unwrap_or(top);
                    let wal_start = state.wal_start;
                    let Some(spool) = state.spools.get_mut(&top) else {
                        return Err(SourceError::definite(
                            format!("change of streamed transaction {top} outside its spool"),
                            "report this as a bug",
                        ));
                    };
                    spool.append(xid, wal_start, data).map_err(spool_error)
                }
                None => self.apply(message, state, catalog, ack, ctx).await,
            },
        }
    }

    /// Applies one message of a committed transaction (or a relation description).
    async fn apply(
        &self,
        message: Message<'_>,
        state: &mut StreamState,
        catalog: &mut Catalog,
        ack: &mut Acknowledger,
        ctx: &SourceContext,
    ) -> Result<(), SourceError> {
        let row_error = |e: crate::relation::RowError| {
            SourceError::definite(e.to_string(), "check the column's type mapping")
        };
        let kind = match message {
            Message::Begin {
                final_lsn,
                commit_time,
                xid,
            } => {
                if state
                    .window
                    .as_ref()
                    .is_some_and(|w| Lsn(final_lsn) >= w.until)
                {
                    state.window = None;
                }
                state.transaction = Some((final_lsn, xid, unix_micros(commit_time), 0));
                state.transaction_start = state.wal_start;
                EventKind::Begin(TransactionBoundary {
                    id: format!("{xid}:{}", state.transaction_start.0),
                    event_count: 0,
                })
            }
            Message::Commit { end_lsn, .. } => {
                let Some((_, xid, _, seq)) = state.transaction else {
                    return Err(SourceError::definite(
                        "Commit without Begin in the stream",
                        "report this as a bug",
                    ));
                };
                let event = self.event(
                    state,
                    // Debezium names the END by the transaction's end (the Commit
                    // message's WAL position), the BEGIN by its first record.
                    EventKind::Commit(TransactionBoundary {
                        id: format!("{xid}:{}", state.wal_start.0),
                        event_count: seq,
                    }),
                );
                if let Some(event) = event {
                    ack.pending
                        .push_back((event.position.clone(), Lsn(end_lsn)));
                    state.batch.push(event);
                } else {
                    // A resent transaction entirely at or before the resume point.
                    ack.flushed = ack.flushed.max(Lsn(end_lsn));
                }
                state.transaction = None;
                return flush(state, ctx).await;
            }
            Message::Relation {
                relation_id,
                namespace,
                name,
                columns,
                ..
            } => {
                let mut types = Vec::with_capacity(columns.len());
                for c in &columns {
                    types.push((
                        catalog
                            .resolve_type(c.type_oid)
                            .await
                            .map_err(|e| query_error("resolving a type", e))?,
                        c.type_modifier,
                    ));
                }
                let info = catalog
                    .table_info(relation_id)
                    .await
                    .map_err(|e| query_error("reading the primary key", e))?;
                let (table, changed) =
                    state
                        .relations
                        .define(relation_id, namespace, name, &columns, types, &info);
                let first = state.described.insert(relation_id);
                if !changed || first || !self.config.captures(namespace, name) {
                    return Ok(());
                }
                EventKind::SchemaChange(SchemaChange {
                    table,
                    kind: SchemaChangeKind::Alter,
                    ddl: None,
                })
            }
            Message::Insert {
                relation_id, new, ..
            } => {
                if self.resent_change(state, relation_id) {
                    return Ok(());
                }
                let (table, after) = state.relations.row(relation_id, &new).map_err(row_error)?;
                if !self.config.captures(&table.id.namespace, &table.id.table)
                    || in_window(state, &table, &[&after])
                {
                    return Ok(());
                }
                EventKind::Insert { table, after }
            }
            Message::Update {
                relation_id,
                old,
                new,
                ..
            } => {
                if self.resent_change(state, relation_id) {
                    return Ok(());
                }
                let (table, after) = state.relations.row(relation_id, &new).map_err(row_error)?;
                if !self.config.captures(&table.id.namespace, &table.id.table) {
                    return Ok(());
                }
                let before = match old {
                    Some((_, tuple)) => Some(
                        state
                            .relations
                            .row(relation_id, &tuple)
                            .map_err(row_error)?
                            .1,
                    ),
                    None => None,
                };
                // Unchanged TOAST columns: take them from a full old image when there is one.
                let after = match &before {
                    Some(before) => after
                        .into_iter()
                        .zip(before)
                        .map(|(a, b)| {
                            if matches!(a, outflow_core::Value::Unavailable)
                                && !matches!(b, outflow_core::Value::Null)
                            {
                                b.clone()
                            } else {
                                a
                            }
                        })
                        .collect(),
                    None => after,
                };
                let rows: Vec<&Vec<outflow_core::Value>> = before.iter().chain([&after]).collect();
                if in_window(state, &table, &rows) {
                    return Ok(());
                }
                EventKind::Update {
                    table,
                    before,
                    after,
                }
            }
            Message::Delete {
                relation_id, old, ..
            } => {
                if self.resent_change(state, relation_id) {
                    return Ok(());
                }
                // Key-only old tuples (REPLICA IDENTITY DEFAULT/INDEX) have the other
                // columns null, as Debezium's `before` has them.
                let (_, tuple) = old;
                let (table, before) = state
                    .relations
                    .row(relation_id, &tuple)
                    .map_err(row_error)?;
                if !self.config.captures(&table.id.namespace, &table.id.table)
                    || in_window(state, &table, &[&before])
                {
                    return Ok(());
                }
                EventKind::Delete { table, before }
            }
            Message::Truncate { relation_ids, .. } => {
                let tables: Vec<_> = relation_ids
                    .iter()
                    .filter_map(|id| state.relations.get(*id).ok().map(|r| Arc::clone(&r.schema)))
                    .filter(|t| self.config.captures(&t.id.namespace, &t.id.table))
                    .filter(|t| !in_window(state, t, &[]))
                    .collect();
                if tables.is_empty() {
                    return Ok(());
                }
                EventKind::Truncate { tables }
            }
            Message::Origin { .. } | Message::Type { .. } | Message::LogicalMessage { .. } => {
                return Ok(());
            }
            Message::StreamStart { .. }
            | Message::StreamStop
            | Message::StreamCommit { .. }
            | Message::StreamAbort { .. } => {
                return Err(SourceError::definite(
                    "stream control message inside a streamed transaction",
                    "report this as a bug",
                ));
            }
        };
        if let Some(event) = self.event(state, kind) {
            state.batch.push(event);
            if state.batch.len() >= BATCH_EVENTS {
                flush(state, ctx).await?;
            }
        }
        Ok(())
    }

    /// Whether a row change of `relation_id` is one the server sends again after a
    /// reconnect (at or before the last emitted position): it is then counted and
    /// skipped before its tuple is decoded, so a large transaction that is streamed
    /// again costs the source little until it reaches what is new. Only for captured
    /// tables outside a resumed snapshot's window, exactly where [`Self::event`] would
    /// have positioned it.
    fn resent_change(&self, state: &mut StreamState, relation_id: u32) -> bool {
        if state.window.is_some() {
            return false;
        }
        let (Some((final_lsn, xid, _, seq)), Some(last)) =
            (state.transaction.as_mut(), state.last_position.as_ref())
        else {
            return false;
        };
        if Lsn(*final_lsn) > last.lsn_commit {
            return false;
        }
        let Ok(relation) = state.relations.get(relation_id) else {
            return false;
        };
        let table = &relation.schema.id;
        if !self.config.captures(&table.namespace, &table.table) {
            return false;
        }
        let position = change_position(*final_lsn, *xid, *seq, state.wal_start);
        if &position <= last {
            *seq += 1;
            true
        } else {
            false
        }
    }

    /// Positions an event of the open transaction; `None` for events at or before the
    /// last emitted position (a resent transaction after a restart).
    fn event(&self, state: &mut StreamState, kind: EventKind) -> Option<ChangeEvent> {
        let (final_lsn, xid, commit_us, seq) = state.transaction.as_mut()?;
        let position = change_position(*final_lsn, *xid, *seq, state.wal_start);
        *seq += 1;
        if let Some(partial) = state.debezium_partial
            && Lsn(*final_lsn) > partial.after_commit
        {
            if matches!(kind, EventKind::Commit(_)) {
                state.debezium_partial = None;
            }
            if partial.emitted(Lsn(*final_lsn), *xid, state.wal_start) {
                tracing::trace!(lsn = %state.wal_start, xid = *xid, "skipping a change Debezium already emitted");
                return None;
            }
        }
        if state
            .last_position
            .as_ref()
            .is_some_and(|last| &position <= last)
        {
            return None;
        }
        state.last_position = Some(position.clone());
        match kind {
            EventKind::Begin(_) => state.mid_transaction = true,
            EventKind::Commit(_) => state.mid_transaction = false,
            _ => {}
        }
        Some(ChangeEvent {
            position: SourcePosition::from(position),
            source_ts_us: Some(*commit_us),
            kind,
        })
    }
}

/// The position of the `seq`-th event of the streamed transaction that commits at
/// `final_lsn` (its WAL record at `wal_start`): the one place a change is positioned.
fn change_position(final_lsn: u64, xid: u32, seq: u64, wal_start: Lsn) -> PgPosition {
    PgPosition {
        snapshot_cursor: None,
        lsn_commit: Lsn(final_lsn),
        lsn: wal_start,
        seq,
        tx_id: Some(xid),
        snapshot: false,
    }
}

/// Whether a change of `table` with these row images is already in a resumed snapshot's
/// reads (see [`ResumeWindow`]); no rows: a truncate.
fn in_window(
    state: &StreamState,
    table: &outflow_core::TableSchema,
    rows: &[&Vec<outflow_core::Value>],
) -> bool {
    let (Some(window), Some((final_lsn, ..))) = (&state.window, state.transaction) else {
        return false;
    };
    let keys: Vec<Option<Vec<outflow_core::Value>>> = rows
        .iter()
        .map(|row| {
            (!table.primary_key.is_empty()).then(|| {
                table
                    .primary_key
                    .iter()
                    .map(|&i| row.get(i).cloned().unwrap_or(outflow_core::Value::Null))
                    .collect()
            })
        })
        .collect();
    if keys.is_empty() {
        // A truncate: covered only for tables read whole.
        return Lsn(final_lsn) < window.until && window.reread.contains(&table.id);
    }
    window.covers(Lsn(final_lsn), &table.id, &keys)
}

fn decode_error(e: crate::pgoutput::DecodeError) -> SourceError {
    SourceError::definite_with(
        "decoding pgoutput",
        "report this as a bug with the server version",
        e,
    )
}

/// The (sub)transaction xid a change inside a streamed chunk carries.
fn stream_xid(message: &Message<'_>) -> Option<u32> {
    match message {
        Message::Relation { xid, .. }
        | Message::Type { xid, .. }
        | Message::Insert { xid, .. }
        | Message::Update { xid, .. }
        | Message::Delete { xid, .. }
        | Message::Truncate { xid, .. }
        | Message::LogicalMessage { xid, .. } => *xid,
        _ => None,
    }
}

async fn flush(state: &mut StreamState, ctx: &SourceContext) -> Result<(), SourceError> {
    if state.batch.is_empty() {
        return Ok(());
    }
    let batch = EventBatch::new(std::mem::take(&mut state.batch));
    ctx.events
        .send(batch)
        .await
        .map_err(|e| SourceError::transient("handing events to the pipeline", e))
}

/// Shortest time between two standby status updates that confirm newly durable
/// positions (the periodic `status.update.interval.ms` update comes on top).
const CONFIRM_GAP: std::time::Duration = std::time::Duration::from_millis(100);

/// Waits until `due`, or forever without one.
async fn sleep_until_due(due: Option<tokio::time::Instant>) {
    match due {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn send_status(
    stream: &mut ReplicationStream,
    ack: &Acknowledger,
) -> Result<(), SourceError> {
    stream
        .send_status(ack.flushed, ack.flushed, postgres_now(), false)
        .await
        .map_err(|e| replication_error("sending a standby status update", e))
}

async fn futures_next<S: futures_util::Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    use futures_util::StreamExt as _;
    stream.next().await
}

#[cfg(test)]
mod classification_tests {
    use super::transient_sqlstate;

    #[test]
    fn server_errors_that_pass_by_themselves_are_transient() {
        for code in [
            "53300", // too many connections
            "55006", // replication slot is active for PID …
            "57P01", // terminating connection due to administrator command
            "57P02", // crash shutdown
            "57P03", // the database system is starting up / shutting down
            "57014", // cancelled
            "08006", // connection failure
            "08P01", // protocol violation on a broken link
            "40001", "40P01", "53100", "53200", "55P03", "58030",
        ] {
            assert!(transient_sqlstate(code), "{code}");
        }
        for code in [
            "28P01", // wrong password
            "28000", // no pg_hba.conf entry
            "42501", // insufficient privilege
            "42704", // undefined object (a missing slot or publication)
            "42P01", // undefined table
            "53400", // configuration limit exceeded (max_replication_slots)
            "55000", // object not in prerequisite state (wal_level, invalidated slot)
            "0A000", // feature not supported
        ] {
            assert!(!transient_sqlstate(code), "{code}");
        }
    }
}
