//! Kafka Connect's JSON shapes: connector files (`{"name", "config"}`) and the
//! validate endpoint's `ConfigInfos`.

use std::collections::BTreeMap;

use outflow_core::config::{is_secret, masked};
use serde_json::{Value, json};

use super::RuntimeError;
use super::settings::{invalid, validate};
use crate::config::WorkerConfig;
use crate::sources::canonical_class;

/// A JSON object's values as Kafka Connect keeps config values: strings as they are,
/// `null` as empty, any other JSON value as its JSON text.
pub fn connect_strings(object: &serde_json::Map<String, Value>) -> BTreeMap<String, String> {
    object
        .iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (k.clone(), text)
        })
        .collect()
}

/// Reads a connector file: Kafka Connect's `{"name": …, "config": {…}}`, or a flat
/// config object holding `name`. Values of any JSON type become strings, as Connect
/// keeps them.
pub fn parse_connector_json(text: &str) -> Result<(String, BTreeMap<String, String>), String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let config = value.get("config").unwrap_or(&value);
    let Some(object) = config.as_object() else {
        return Err("expected a JSON object with \"name\" and \"config\"".to_owned());
    };
    let config = connect_strings(object);
    let name = value
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| config.get("name").cloned())
        .ok_or_else(|| "the connector has no \"name\"".to_owned())?;
    Ok((name, config))
}

/// `PUT /connector-plugins/{class}/config/validate` and `outflow validate`: Kafka
/// Connect's `ConfigInfos` shape for `config` under this worker. Every given property is
/// listed (secret values masked); the first invalid property found carries the error
/// (validation stops there, so `error_count` is 0 or 1), and a required property that is
/// missing is added with its error.
pub fn validation_report(
    worker: &WorkerConfig,
    class: &str,
    config: &BTreeMap<String, String>,
) -> Value {
    let mut config = config.clone();
    config
        .entry("connector.class".to_owned())
        .or_insert_with(|| class.to_owned());
    let name = config
        .get("name")
        .cloned()
        .unwrap_or_else(|| "validate".to_owned());
    let error = match config.get("connector.class") {
        Some(given) if canonical_class(given) != canonical_class(class) => Some(invalid(
            "connector.class",
            format!("{given} does not match the plugin {class} of the request"),
        )),
        _ => validate(worker, &name, &config).err(),
    };
    let (bad_property, message) = match &error {
        Some(RuntimeError::Invalid { property, message }) => {
            (Some(property.clone()), Some(message.clone()))
        }
        Some(other) => (None, Some(other.to_string())),
        None => (None, None),
    };
    if let Some(property) = &bad_property {
        config.entry(property.clone()).or_default();
    }
    let shown = masked(&config);
    let configs: Vec<Value> = shown
        .iter()
        .map(|(key, value)| {
            let errors: Vec<&str> = match (&bad_property, &message) {
                (Some(p), Some(m)) if p == key => vec![m.as_str()],
                _ => Vec::new(),
            };
            json!({
                "definition": {
                    "name": key,
                    "type": if is_secret(key) { "PASSWORD" } else { "STRING" },
                    "required": key == "connector.class" || key == "topic.prefix",
                    "default_value": null,
                    "importance": "MEDIUM",
                    "documentation": "",
                    "group": "Common",
                    "width": "NONE",
                    "display_name": key,
                    "dependents": [],
                    "order": -1,
                },
                "value": {
                    "name": key,
                    "value": value,
                    "recommended_values": [],
                    "errors": errors,
                    "visible": true,
                },
            })
        })
        .collect();
    let error_count = usize::from(message.is_some());
    let warnings: Vec<Value> = canonical_class(class)
        .map(|class| crate::properties::not_acted_on(class, &config))
        .unwrap_or_default()
        .into_iter()
        .map(|(name, message)| json!({"name": name, "message": message}))
        .collect();
    json!({
        "name": class,
        "error_count": error_count,
        "groups": ["Common"],
        "configs": configs,
        "warnings": warnings,
    })
}

/// `GET /connectors/{name}` and the answer to a create: Kafka Connect's `ConnectorInfo`
/// (secret values masked; one task per connector).
pub(super) fn connector_info(name: &str, config: &BTreeMap<String, String>) -> Value {
    json!({
        "name": name,
        "config": masked(config),
        "tasks": [{"connector": name, "task": 0}],
        "type": "source",
    })
}
