//! Which connector properties outflow acts on, and the report of those it accepts but
//! does not act on.
//!
//! Every connector crate lists the properties it reads (a source plugin's
//! `SourcePlugin::properties`, the envelope's
//! `outflow_interchange::envelope::config::PROPERTIES`, a registered sink's `<name>.*`);
//! the daemon adds its own (converters, the built-in sinks, pipeline tuning). A property a connector's validation refuses is a 400 naming
//! it; a property on none of the lists is accepted (a Debezium config must load as it
//! is) and reported: in the validate response (`warnings`), in the connector's status
//! (`warnings`) and in the log when the connector starts. Nothing is ignored silently.

use std::collections::BTreeMap;

/// Properties the daemon itself acts on (an entry ending in `.` is a prefix).
const DAEMON: &[&str] = &[
    "name",
    "connector.class",
    "tasks.max",
    "key.converter",
    "key.converter.",
    "value.converter",
    "value.converter.",
    "schema.registry.",
    "producer.",
    "topic.creation.",
    "transaction.max.bytes",
    "lake.",
    "flush.interval.ms",
    "offset.flush.interval.ms",
    "max.queue.size",
    "max.batch.size",
];

fn listed(list: &[&str], key: &str) -> bool {
    list.iter().any(|entry| {
        if entry.ends_with('.') {
            key.starts_with(entry)
        } else {
            key == *entry
        }
    })
}

/// Whether a connector of `class` acts on property `key`: the daemon's, the source
/// plugin's, the envelope's, or a registered sink's (`<sink>.*`, whichever sink the
/// worker writes to: a connector's config stays valid when the worker's sink changes).
pub fn acted_on(class: &str, key: &str) -> bool {
    let source: &[&str] =
        crate::sources::class(class).map_or(&[], |(plugin, _)| plugin.properties());
    listed(DAEMON, key)
        || listed(source, key)
        || listed(outflow_interchange::envelope::config::PROPERTIES, key)
        || crate::sinks::names().any(|sink| {
            key.strip_prefix(sink)
                .is_some_and(|rest| rest.starts_with('.'))
        })
}

/// The properties of `config` that a connector of `class` accepts but does not act on,
/// each with the sentence the reports show.
pub fn not_acted_on(class: &str, config: &BTreeMap<String, String>) -> Vec<(String, String)> {
    config
        .keys()
        .filter(|key| !acted_on(class, key))
        .map(|key| {
            (
                key.clone(),
                format!(
                    "{key} is accepted but outflow does not act on it (its value has no effect)"
                ),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::connectors::{MARIADB_CLASS, MYSQL_CLASS, POSTGRES_CLASS, validation_report};

    /// Debezium 3.6.1's documented connector properties (see the file's header).
    const CATALOGUE: &str = include_str!("testdata/debezium-3.6.1-properties.tsv");

    fn worker() -> crate::config::WorkerConfig {
        crate::config::RawWorkerConfig::load(None, std::iter::empty())
            .unwrap()
            .validate()
            .unwrap()
    }

    fn base(class: &str) -> BTreeMap<String, String> {
        let mut config: BTreeMap<String, String> = [
            ("connector.class", class),
            ("database.hostname", "localhost"),
            ("database.user", "u"),
            ("topic.prefix", "p"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        if class == POSTGRES_CLASS {
            config.insert("database.dbname".into(), "d".into());
        } else {
            config.insert("database.server.id".into(), "7".into());
        }
        config
    }

    #[test]
    fn the_source_plugins_and_the_registered_sinks_properties_are_acted_on() {
        assert!(super::acted_on(POSTGRES_CLASS, "slot.name"));
        assert!(super::acted_on(MARIADB_CLASS, "database.server.id"));
        assert!(!super::acted_on(MYSQL_CLASS, "slot.name"));
        assert!(super::acted_on(POSTGRES_CLASS, "nats.subjects"));
        assert!(!super::acted_on(POSTGRES_CLASS, "natsy.subjects"));
    }

    #[derive(Debug, Default)]
    struct Tally {
        implemented: usize,
        refused: usize,
        warned: usize,
    }

    /// Every documented property of the three connectors, set on its own: implemented
    /// (no warning, no error), refused (a 400 that names it) or warned about (accepted,
    /// reported as not acted on); never silent.
    #[test]
    fn every_debezium_property_is_implemented_refused_or_warned_about() {
        let worker = worker();
        let mut tallies: BTreeMap<&str, Tally> = BTreeMap::new();
        let mut silent = Vec::new();
        for line in CATALOGUE
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let mut fields = line.split('\t');
            let (Some(pattern), Some(connectors)) = (fields.next(), fields.next()) else {
                panic!("malformed catalogue line {line:?}");
            };
            let default = fields.next().unwrap_or("");
            // Placeholders get a sample; a prefix family gets one member.
            let property = pattern
                .replace("<length>", "3")
                .replace(['<', '>'], "")
                .replace(".*", ".sample");
            let value = if default.is_empty() || default.contains(['=', ';', ' ']) {
                "1".to_owned()
            } else {
                default.to_owned()
            };
            for (short, class) in [
                ("pg", POSTGRES_CLASS),
                ("mysql", MYSQL_CLASS),
                ("mariadb", MARIADB_CLASS),
            ] {
                if !connectors.split(',').any(|c| c == short) {
                    continue;
                }
                let mut config = base(class);
                config.insert(property.clone(), value.clone());
                let report = validation_report(&worker, class, &config);
                let errors: Vec<String> = report["configs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|c| !c["value"]["errors"].as_array().unwrap().is_empty())
                    .map(|c| c["value"]["name"].as_str().unwrap().to_owned())
                    .collect();
                let warned = report["warnings"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|w| w["name"] == property.as_str());
                let tally = tallies.entry(short).or_default();
                if !errors.is_empty() {
                    // Refused: the error is on a named property (this one, or one it
                    // needs, as Connect's validation reports).
                    tally.refused += 1;
                } else if warned {
                    tally.warned += 1;
                } else if super::acted_on(class, &property) {
                    tally.implemented += 1;
                } else {
                    silent.push(format!("{short}: {property}"));
                }
            }
        }
        assert!(
            silent.is_empty(),
            "{} silent: {:?}",
            silent.len(),
            &silent[..silent.len().min(10)]
        );
        eprintln!("Debezium 3.6.1 properties: {tallies:?}");
        // The ones users rely on are acted on, not warned about.
        for (class, property, value) in [
            (POSTGRES_CLASS, "schema.include.list", "inventory"),
            (POSTGRES_CLASS, "schema.exclude.list", "private"),
            (POSTGRES_CLASS, "hstore.handling.mode", "json"),
            (POSTGRES_CLASS, "hstore.handling.mode", "map"),
            (POSTGRES_CLASS, "snapshot.fetch.size", "500"),
            (MARIADB_CLASS, "snapshot.locking.mode", "none"),
            (MYSQL_CLASS, "snapshot.fetch.size", "500"),
            (POSTGRES_CLASS, "offset.flush.interval.ms", "5000"),
            (POSTGRES_CLASS, "transaction.max.bytes", "1048576"),
            (MYSQL_CLASS, "max.batch.size", "2048"),
            (MYSQL_CLASS, "max.queue.size", "8192"),
        ] {
            let mut config = base(class);
            config.insert(property.into(), value.into());
            let report = validation_report(&worker, class, &config);
            assert_eq!(report["error_count"], 0, "{property}: {report}");
            assert_eq!(
                report["warnings"].as_array().unwrap().len(),
                0,
                "{property}: {report}"
            );
        }
        // Values outflow cannot honour are refused, naming the property.
        for (class, property, value) in [
            (POSTGRES_CLASS, "hstore.handling.mode", "hash"),
            (MARIADB_CLASS, "snapshot.locking.mode", "custom"),
            (MYSQL_CLASS, "max.queue.size", "0"),
        ] {
            let mut config = base(class);
            config.insert(property.into(), value.into());
            let report = validation_report(&worker, class, &config);
            assert_eq!(report["error_count"], 1, "{property}={value}: {report}");
        }
        // And one that is only accepted: warned, by name.
        let mut config = base(POSTGRES_CLASS);
        config.insert("signal.data.collection".into(), "public.signals".into());
        let report = validation_report(&worker, POSTGRES_CLASS, &config);
        assert_eq!(
            report["warnings"][0]["name"], "signal.data.collection",
            "{report}"
        );
    }
}
