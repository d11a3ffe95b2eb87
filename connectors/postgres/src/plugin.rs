//! The Postgres connector's entry in the worker's source registry.
//!
//! [`PostgresPlugin`] answers to Debezium's `PostgresConnector` class, validates its
//! properties into a [`PostgresConfig`] (spooling under the worker's spool dir for the
//! connector), and exposes [`PostgresMetrics`] as `outflow_postgres_*` families.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use outflow_core::config::PropertyError;
use outflow_core::connector::{
    BoxedSource, ConnectorClass, SnapshotProgress, SourceEnv, SourceMetrics, SourcePlan,
    SourcePlugin,
};
use outflow_core::metrics::{MetricKind, MetricSample, own_counters};

use crate::config::PostgresConfig;
use crate::source::{PostgresMetrics, PostgresSource};

/// Debezium's Postgres connector class.
pub const POSTGRES_CLASS: &str = "io.debezium.connector.postgresql.PostgresConnector";

static CLASSES: [ConnectorClass; 1] = [ConnectorClass {
    name: POSTGRES_CLASS,
    aliases: &["PostgresConnector", "Postgres", "postgres"],
    source_block: &crate::source_block::POSTGRES_SOURCE_BLOCK,
    positions: &crate::position::POSTGRES_POSITIONS,
}];

/// The Postgres source plugin.
#[derive(Debug, Clone, Copy, Default)]
pub struct PostgresPlugin;

/// A validated Postgres connector.
#[derive(Debug)]
struct PostgresPlan(PostgresConfig);

impl SourcePlugin for PostgresPlugin {
    fn classes(&self) -> &'static [ConnectorClass] {
        &CLASSES
    }

    fn properties(&self) -> &'static [&'static str] {
        crate::config::PROPERTIES
    }

    fn validate(
        &self,
        _class: &'static ConnectorClass,
        properties: &BTreeMap<String, String>,
        env: &SourceEnv,
    ) -> Result<Arc<dyn SourcePlan>, PropertyError> {
        Ok(Arc::new(plan(properties, env)?))
    }

    fn metrics(&self) -> Arc<dyn SourceMetrics> {
        Arc::new(PostgresMetrics::default())
    }

    /// Debezium's slot is idle once Debezium stopped, and outflow continues on it:
    /// `slot.adopt.existing=true`, unless the operator chose already.
    fn takeover_from_debezium(&self, properties: &mut BTreeMap<String, String>) -> Vec<String> {
        if properties.contains_key("slot.adopt.existing") {
            return Vec::new();
        }
        properties.insert("slot.adopt.existing".into(), "true".into());
        let slot = properties
            .get("slot.name")
            .map_or("debezium", String::as_str);
        vec![format!(
            "slot.adopt.existing=true: outflow continues on Debezium's replication slot {slot}"
        )]
    }
}

/// The config of a Postgres connector, spooling where the worker says.
fn plan(
    properties: &BTreeMap<String, String>,
    env: &SourceEnv,
) -> Result<PostgresPlan, PropertyError> {
    let mut config = PostgresConfig::from_properties(properties)?;
    config.spool_dir = env.spool_dir.clone();
    Ok(PostgresPlan(config))
}

impl SourcePlan for PostgresPlan {
    fn build(&self, metrics: &Arc<dyn SourceMetrics>) -> BoxedSource {
        let metrics = own_counters::<PostgresMetrics>(Arc::clone(metrics).as_any_arc());
        BoxedSource::new(PostgresSource::new(self.0.clone()).with_metrics(metrics))
    }
}

fn load(v: &AtomicU64) -> f64 {
    v.load(Ordering::Relaxed) as f64
}

impl SourceMetrics for PostgresMetrics {
    fn as_any_arc(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }

    fn samples(&self) -> Vec<MetricSample> {
        use MetricKind::{Counter, Gauge};
        let sample = |name, kind, help, value| MetricSample {
            name,
            kind,
            help,
            value,
        };
        vec![
            sample(
                "outflow_postgres_reconnects_total",
                Counter,
                "Replication stream reconnects after transient errors.",
                load(&self.reconnects),
            ),
            sample(
                "outflow_postgres_slot_lag_bytes",
                Gauge,
                "WAL bytes the server holds that the slot has not confirmed.",
                load(&self.slot_lag_bytes),
            ),
            sample(
                "outflow_postgres_slot_wal_status",
                Gauge,
                "The slot's wal_status: 0 unknown, 1 reserved, 2 extended, 3 unreserved, 4 lost (invalidated).",
                load(&self.slot_wal_status),
            ),
            sample(
                "outflow_postgres_slot_safe_wal_size_bytes",
                Gauge,
                "WAL bytes that may still be written before max_slot_wal_keep_size invalidates the slot (+Inf: no limit).",
                match self.slot_safe_wal_size.load(Ordering::Relaxed) {
                    u64::MAX => f64::INFINITY,
                    bytes => bytes as f64,
                },
            ),
            sample(
                "outflow_postgres_slot_spill_bytes_total",
                Counter,
                "Bytes of the slot's transactions the server spilled to disk while decoding (pg_stat_replication_slots.spill_bytes; resets with the server's statistics).",
                load(&self.slot_spill_bytes),
            ),
            sample(
                "outflow_postgres_slot_stream_bytes_total",
                Counter,
                "Bytes of the slot's transactions the server streamed while in progress (pg_stat_replication_slots.stream_bytes).",
                load(&self.slot_stream_bytes),
            ),
            sample(
                "outflow_postgres_slot_decoded_bytes_total",
                Counter,
                "Bytes the server decoded for the slot (pg_stat_replication_slots.total_bytes).",
                load(&self.slot_decoded_bytes),
            ),
        ]
    }

    fn snapshot(&self) -> SnapshotProgress {
        SnapshotProgress {
            streaming: self.streaming.load(Ordering::Relaxed),
            rows: self.snapshot_rows.load(Ordering::Relaxed),
            rows_estimate: self.snapshot_rows_estimate.load(Ordering::Relaxed),
            tables: self.snapshot_tables.load(Ordering::Relaxed),
            tables_done: self.snapshot_tables_done.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_spools_where_the_worker_says() {
        let props: BTreeMap<String, String> = [
            ("connector.class", POSTGRES_CLASS),
            ("database.hostname", "localhost"),
            ("database.user", "u"),
            ("database.dbname", "d"),
            ("topic.prefix", "p"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let env = SourceEnv {
            connector: "inventory".into(),
            spool_dir: "/data/spool/inventory".into(),
        };
        let PostgresPlan(config) = plan(&props, &env).unwrap();
        assert_eq!(config.spool_dir, env.spool_dir);
        assert!(PostgresPlugin.validate(&CLASSES[0], &props, &env).is_ok());
        let short = outflow_core::connector::find_class(&[&PostgresPlugin], "postgres");
        assert_eq!(short.map(|(_, c)| c.name), Some(POSTGRES_CLASS));
    }
}
