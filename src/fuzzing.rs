//! Entry points for fuzzing the daemon's inputs, shared by the cargo-fuzz targets in
//! `fuzz/` and the replay of their corpora in the tests (`tests/fuzz_corpus.rs`): any
//! bytes must give a typed error or a valid config, never a panic.
//!
//! Each input is checked against three workers (the default lake worker, Kafka with
//! JSON, Kafka with Avro and a registry) so that every validation path runs. Nothing
//! here connects anywhere: validation is pure.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use crate::config::{RawWorkerConfig, WorkerConfig};
use crate::connectors::{check, parse_connector_json};

static WORKERS: LazyLock<Vec<WorkerConfig>> = LazyLock::new(|| {
    let kafka = |converter: &str| {
        vec![
            ("OUTFLOW_SINK".to_owned(), "kafka".to_owned()),
            (
                "OUTFLOW_KAFKA_BOOTSTRAP_SERVERS".to_owned(),
                "127.0.0.1:9".to_owned(),
            ),
            ("OUTFLOW_CONVERTER".to_owned(), converter.to_owned()),
            (
                "OUTFLOW_SCHEMA_REGISTRY_URL".to_owned(),
                "http://127.0.0.1:9".to_owned(),
            ),
        ]
    };
    [Vec::new(), kafka("json"), kafka("avro")]
        .into_iter()
        .filter_map(|env| RawWorkerConfig::load(None, env).ok()?.validate().ok())
        .collect()
});

fn check_everywhere(name: &str, config: &BTreeMap<String, String>) {
    for worker in WORKERS.iter() {
        let _ = check(worker, name, config);
    }
}

/// The `rest_body` fuzz target: a `POST /connectors` body as the REST API reads it, and
/// as a connector file (`outflow connector create --file`) is read, then validated.
pub fn rest_body(data: &[u8]) {
    if let Ok(request) = crate::rest::connector_request(data) {
        check_everywhere(&request.name, &request.config);
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok((name, config)) = parse_connector_json(text)
    {
        check_everywhere(&name, &config);
    }
}

/// The `connector_config` fuzz target: `key=value` lines as a connector's property map;
/// without a `connector.class` line it is tried with each class.
pub fn connector_config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let config: BTreeMap<String, String> = text
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    if config.contains_key("connector.class") {
        check_everywhere("fuzz", &config);
    } else {
        for class in crate::sources::class_names() {
            let mut config = config.clone();
            config.insert("connector.class".to_owned(), class.to_owned());
            check_everywhere("fuzz", &config);
        }
    }
}
