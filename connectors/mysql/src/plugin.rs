//! The MySQL and MariaDB connectors' entry in the worker's source registry.
//!
//! [`MySqlPlugin`] answers to Debezium's `MySqlConnector` and `MariaDbConnector`
//! classes (the flavor follows the class), validates their properties into a
//! [`MySqlConfig`], and exposes [`MySqlMetrics`] as `outflow_mysql_*` families.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use outflow_core::config::PropertyError;
use outflow_core::connector::{
    BoxedSource, ConnectorClass, SnapshotProgress, SourceEnv, SourceMetrics, SourcePlan,
    SourcePlugin,
};
use outflow_core::metrics::{MetricKind, MetricSample, own_counters};

use crate::config::{MARIADB_CLASS, MYSQL_CLASS, MySqlConfig};
use crate::source::{MySqlMetrics, MySqlSource};

static CLASSES: [ConnectorClass; 2] = [
    ConnectorClass {
        name: MYSQL_CLASS,
        aliases: &["MySqlConnector", "MySql", "mysql"],
        source_block: &crate::source_block::MYSQL_SOURCE_BLOCK,
        positions: &crate::position::BINLOG_POSITIONS,
    },
    ConnectorClass {
        name: MARIADB_CLASS,
        aliases: &["MariaDbConnector", "MariaDb", "mariadb"],
        source_block: &crate::source_block::MARIADB_SOURCE_BLOCK,
        positions: &crate::position::BINLOG_POSITIONS,
    },
];

/// The MySQL / MariaDB source plugin.
#[derive(Debug, Clone, Copy, Default)]
pub struct MySqlPlugin;

/// A validated MySQL or MariaDB connector.
#[derive(Debug)]
struct MySqlPlan(MySqlConfig);

impl SourcePlugin for MySqlPlugin {
    fn classes(&self) -> &'static [ConnectorClass] {
        &CLASSES
    }

    fn properties(&self) -> &'static [&'static str] {
        crate::config::PROPERTIES
    }

    fn validate(
        &self,
        class: &'static ConnectorClass,
        properties: &BTreeMap<String, String>,
        _env: &SourceEnv,
    ) -> Result<Arc<dyn SourcePlan>, PropertyError> {
        // The config tells MariaDB from MySQL by the canonical class.
        let mut properties = properties.clone();
        properties.insert("connector.class".to_owned(), class.name.to_owned());
        Ok(Arc::new(MySqlPlan(MySqlConfig::from_properties(
            &properties,
        )?)))
    }

    fn metrics(&self) -> Arc<dyn SourceMetrics> {
        Arc::new(MySqlMetrics::default())
    }
}

impl SourcePlan for MySqlPlan {
    fn build(&self, metrics: &Arc<dyn SourceMetrics>) -> BoxedSource {
        let metrics = own_counters::<MySqlMetrics>(Arc::clone(metrics).as_any_arc());
        BoxedSource::new(MySqlSource::new(self.0.clone()).with_metrics(metrics))
    }
}

impl SourceMetrics for MySqlMetrics {
    fn as_any_arc(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }

    fn samples(&self) -> Vec<MetricSample> {
        vec![
            MetricSample {
                name: "outflow_mysql_binlog_streams_by_gtid_total",
                kind: MetricKind::Counter,
                help: "Binlog dumps started by GTID (resume from stored GTIDs).",
                value: self.streams_by_gtid.load(Ordering::Relaxed) as f64,
            },
            MetricSample {
                name: "outflow_mysql_reconnects_total",
                kind: MetricKind::Counter,
                help: "Binlog stream reconnects after transient errors.",
                value: self.reconnects.load(Ordering::Relaxed) as f64,
            },
        ]
    }

    fn snapshot(&self) -> SnapshotProgress {
        SnapshotProgress {
            streaming: self.streaming.load(Ordering::Relaxed),
            rows: self.snapshot_rows.load(Ordering::Relaxed),
            rows_estimate: 0,
            tables: self.snapshot_tables.load(Ordering::Relaxed),
            tables_done: self.snapshot_tables_done.load(Ordering::Relaxed),
        }
    }
}
