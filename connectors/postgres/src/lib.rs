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
//! [`outflow_core::PgPosition`]s.
//!
//! Implemented so far: [`pgoutput`], the protocol decoder.

pub mod catalog;
pub mod config;
pub mod copy;
pub mod pgoutput;
pub mod relation;
pub mod replication;
pub mod source;
pub mod types;
