//! The sink registry: the destinations a worker can write to besides its built-in lake
//! and Kafka sinks.
//!
//! Each entry is a [`SinkPlugin`] from the destination's own crate. The worker config's
//! `sink = "<name>"` selects one; its `<name>.*` keys (TOML, or `OUTFLOW_<NAME>_*` in the
//! environment) are defaults for every connector's properties of the same name; the
//! plugin validates the merged properties when a connector is submitted and starts the
//! sink, with its record stage, for each task attempt. The daemon learns nothing else
//! about the destination: adding one is its crate, the workspace entry and a line here.

use outflow_interchange::stage::SinkPlugin;

/// Every registered destination.
static PLUGINS: &[&dyn SinkPlugin] = &[&outflow_nats::NatsPlugin];

/// The plugin registered as `name`.
pub fn plugin(name: &str) -> Option<&'static dyn SinkPlugin> {
    PLUGINS.iter().copied().find(|plugin| plugin.name() == name)
}

/// The names of the registered plugins.
pub fn names() -> impl Iterator<Item = &'static str> {
    PLUGINS.iter().map(|plugin| plugin.name())
}
