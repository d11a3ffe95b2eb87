//! outflow-postgres: the PostgreSQL source connector.
//!
//! It will own everything Postgres-specific: connecting (tokio-postgres for queries and
//! `COPY`, a replication-protocol client for the stream, TLS per `database.sslmode`),
//! preflight checks (`wal_level`, replication privilege, slots, REPLICA IDENTITY),
//! replication slot and publication management (`slot.name`, `publication.name`,
//! `publication.autocreate.mode`), pgoutput decoding (protocol v1 and v2 streaming), the
//! snapshot consistent with the slot's exported snapshot, Postgres type mapping into
//! [`outflow_core::Value`], and acknowledging `confirmed_flush_lsn` only for durable
//! positions. It implements [`outflow_core::Source`] and emits
//! [`position::PgPosition`]s, with Debezium's source block in [`source_block`].
//!
//! Modules: [`config`] (validated properties), [`tls`], [`replication`] (the
//! replication-protocol client), [`pgoutput`] (the decoder), [`spool`] (streamed transactions on disk),
//! [`catalog`], [`relation`] and [`types`] (schemas and values), [`copy`] (snapshot rows),
//! and [`source`], which ties them into the [`outflow_core::Source`].

pub mod catalog;
pub mod config;
pub mod copy;
pub mod fuzzing;
pub mod pgoutput;
pub mod plugin;
pub mod position;
pub mod relation;
pub mod replication;
pub mod source;
pub mod source_block;
pub mod spool;
pub mod tls;
pub mod types;
