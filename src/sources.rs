//! The source registry: the databases a worker can capture.
//!
//! Each entry is a [`SourcePlugin`] from the database's own crate; it names the
//! connector classes it runs (Debezium's class names and Kafka Connect's aliases),
//! validates a connector's properties and builds its source for each task attempt. The
//! daemon learns nothing else about the database: adding one is its crate, the
//! workspace entry and a line here.

use outflow_core::PositionFamily;
use outflow_core::connector::{ConnectorClass, SourcePlugin, find_class, position_families};

/// Every registered source.
static PLUGINS: &[&dyn SourcePlugin] = &[
    &outflow_postgres::plugin::PostgresPlugin,
    &outflow_mysql::MySqlPlugin,
];

/// The plugin and class that answer to `class` (a full class name, a simple class name,
/// Kafka Connect's alias or outflow's short name).
pub fn class(class: &str) -> Option<(&'static dyn SourcePlugin, &'static ConnectorClass)> {
    find_class(PLUGINS, class)
}

/// The full class name of a connector class given by any of its names.
pub fn canonical_class(name: &str) -> Option<&'static str> {
    class(name).map(|(_, class)| class.name)
}

/// Every class the worker runs, by full name, in registry order.
pub fn class_names() -> impl Iterator<Item = &'static str> {
    PLUGINS
        .iter()
        .flat_map(|plugin| plugin.classes().iter().map(|class| class.name))
}

/// The position families of every registered class: what stored positions can be.
pub fn positions() -> Vec<&'static dyn PositionFamily> {
    position_families(PLUGINS)
}
