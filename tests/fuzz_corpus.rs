//! Replays the daemon's fuzz corpora (`fuzz/corpus/*`, grown by `cargo fuzz`; see
//! docs/testing.md) through the same entry points the fuzz targets call.

use std::path::Path;

#[test]
fn rest_body_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/rest_body");
    outflow_testkit::replay_corpus(&dir, outflow::fuzzing::rest_body);
}

#[test]
fn connector_config_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/connector_config");
    outflow_testkit::replay_corpus(&dir, outflow::fuzzing::connector_config);
}
