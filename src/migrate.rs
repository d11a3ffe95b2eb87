//! `outflow migrate`: moves a running Debezium connector from a Kafka Connect worker to an
//! outflow worker without a new snapshot.
//!
//! Everything goes through the two workers' REST APIs, in an order that never leaves two
//! writers on one slot or binlog stream and never loses the hand-over point:
//!
//! 1. read the connector's config from Kafka Connect (`GET /connectors/{name}/config`),
//!    adapt it ([`takeover_config`]: a Postgres connector adopts Debezium's slot) and
//!    validate it on outflow (`PUT /connector-plugins/{class}/config/validate`); a config
//!    outflow refuses stops here, with Debezium untouched;
//! 2. stop Debezium (`PUT /connectors/{name}/stop`, Kafka Connect 3.5+), which flushes its
//!    records and commits its offsets, and wait until it reports STOPPED;
//! 3. read its offsets (`GET /connectors/{name}/offsets`);
//! 4. create the connector on outflow with those offsets (`POST /connectors` with
//!    `offsets`, outflow's extension): it streams from Debezium's position on the same
//!    slot or binlog, to the same topics, with no snapshot.
//!
//! If step 4 fails, Debezium stays STOPPED with its offsets and slot intact and the
//! error says how to resume it. Without a reachable Connect worker the same hand-over
//! runs from files: the connector as `GET /connectors/{name}` gives it and the offsets
//! as `GET /connectors/{name}/offsets` gave them (`--config`, `--offsets`).
//!
//! Changes Debezium had produced but whose offsets it had not committed when it stopped
//! are produced again by outflow (at least once at the hand-over, as Kafka Connect itself
//! behaves after a restart); a graceful stop commits them, so normally none repeat.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

/// How long Kafka Connect may take to report the stopped connector.
const STOP_TIMEOUT: Duration = Duration::from_secs(120);

/// Where the connector comes from.
#[derive(Debug, Clone)]
pub enum MigrationSource {
    /// A Kafka Connect worker's REST URL and the connector's name there.
    Connect {
        /// `http://host:8083`.
        url: String,
        /// The connector's name on that worker.
        connector: String,
    },
    /// Files: the connector (`{"name", "config"}`) and its offsets
    /// (`{"offsets": [...]}`), as Kafka Connect's REST API gives them.
    Files {
        /// The connector file.
        config: PathBuf,
        /// The offsets file.
        offsets: PathBuf,
    },
}

/// Why a migration stopped.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// A worker could not be reached or answered with an error.
    #[error("{what}: {message}")]
    Request {
        /// The step.
        what: String,
        /// The worker's answer or the transport error.
        message: String,
    },
    /// outflow refuses the connector's config; nothing was changed on either worker.
    #[error(
        "outflow does not accept the connector's config (nothing was changed; Debezium still runs):\n{0}"
    )]
    Invalid(String),
    /// An input file could not be read.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

/// What a finished migration did.
#[derive(Debug)]
pub struct Migrated {
    /// The connector's name on outflow.
    pub name: String,
    /// The Debezium offset outflow starts from.
    pub offset: Value,
    /// What [`takeover_config`] changed in the config.
    pub changes: Vec<String>,
}

/// The Debezium config adapted to take over from Debezium itself, by the source plugin
/// of its class ([`outflow_core::connector::SourcePlugin::takeover_from_debezium`]: a
/// Postgres connector adopts the slot Debezium created). Returns the config and a line
/// per change. Pure.
pub fn takeover_config(
    mut config: BTreeMap<String, String>,
) -> (BTreeMap<String, String>, Vec<String>) {
    let changes = config
        .get("connector.class")
        .and_then(|class| crate::sources::class(class))
        .map(|(plugin, _)| plugin.takeover_from_debezium(&mut config))
        .unwrap_or_default();
    (config, changes)
}

/// Runs the hand-over from `source` to the outflow worker at `outflow_url`, naming the
/// connector `name` there (its name on the source when `None`).
pub async fn migrate(
    source: &MigrationSource,
    outflow_url: &str,
    name: Option<&str>,
) -> Result<Migrated, MigrateError> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| request_error("starting the HTTP client", e))?;
    let outflow_url = outflow_url.trim_end_matches('/');
    let (source_name, config) = match source {
        MigrationSource::Connect { url, connector } => {
            let url = url.trim_end_matches('/');
            let config = call(
                &client,
                reqwest::Method::GET,
                &format!("{url}/connectors/{connector}/config"),
                None,
                "reading the connector's config from Kafka Connect",
            )
            .await?;
            (connector.clone(), config)
        }
        MigrationSource::Files { config, .. } => {
            let file = read_json(config)?;
            let source_name = file
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            (source_name, file.get("config").cloned().unwrap_or(file))
        }
    };
    let config = string_map(&config);
    let name = name.map_or(source_name.clone(), str::to_owned);
    let (mut config, changes) = takeover_config(config);
    config.insert("name".into(), name.clone());
    let class = config.get("connector.class").cloned().unwrap_or_default();
    let report = call(
        &client,
        reqwest::Method::PUT,
        &format!("{outflow_url}/connector-plugins/{class}/config/validate"),
        Some(&json!(config)),
        "validating the config on outflow",
    )
    .await?;
    if report["error_count"].as_u64() != Some(0) {
        return Err(MigrateError::Invalid(validation_errors(&report)));
    }
    let offsets = match source {
        MigrationSource::Connect { url, connector } => {
            let url = url.trim_end_matches('/');
            stop_and_wait(&client, url, connector).await?;
            call(
                &client,
                reqwest::Method::GET,
                &format!("{url}/connectors/{connector}/offsets"),
                None,
                "reading Debezium's offsets",
            )
            .await?
        }
        MigrationSource::Files { offsets, .. } => read_json(offsets)?,
    };
    let offset = offsets["offsets"][0]["offset"].clone();
    let created = call(
        &client,
        reqwest::Method::POST,
        &format!("{outflow_url}/connectors"),
        Some(&json!({"name": name, "config": config, "offsets": offsets})),
        "creating the connector on outflow",
    )
    .await;
    if let Err(e) = created {
        let resume = match source {
            MigrationSource::Connect { url, connector } => format!(
                "; Debezium's connector is STOPPED with its offsets and slot intact: resume it with PUT {}/connectors/{connector}/resume",
                url.trim_end_matches('/')
            ),
            MigrationSource::Files { .. } => String::new(),
        };
        return Err(MigrateError::Request {
            what: "creating the connector on outflow".into(),
            message: format!("{e}{resume}"),
        });
    }
    Ok(Migrated {
        name,
        offset,
        changes,
    })
}

/// `PUT /connectors/{name}/stop` on Kafka Connect, then waits for STOPPED.
async fn stop_and_wait(
    client: &reqwest::Client,
    url: &str,
    connector: &str,
) -> Result<(), MigrateError> {
    call(
        client,
        reqwest::Method::PUT,
        &format!("{url}/connectors/{connector}/stop"),
        None,
        "stopping the connector on Kafka Connect (needs Kafka Connect 3.5 or later)",
    )
    .await?;
    let deadline = tokio::time::Instant::now() + STOP_TIMEOUT;
    loop {
        let status = call(
            client,
            reqwest::Method::GET,
            &format!("{url}/connectors/{connector}/status"),
            None,
            "reading the connector's status on Kafka Connect",
        )
        .await?;
        if status["connector"]["state"] == "STOPPED" {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(MigrateError::Request {
                what: "stopping the connector on Kafka Connect".into(),
                message: format!(
                    "not STOPPED after {} s (state {}); nothing was created on outflow",
                    STOP_TIMEOUT.as_secs(),
                    status["connector"]["state"]
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// One REST call; the JSON answer (`null` for an empty one), or the status and body.
async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<&Value>,
    what: &str,
) -> Result<Value, MigrateError> {
    let mut request = client.request(method, url);
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.map_err(|e| request_error(what, e))?;
    let status = response.status();
    let text = response.text().await.map_err(|e| request_error(what, e))?;
    if !status.is_success() {
        return Err(MigrateError::Request {
            what: what.to_owned(),
            message: format!("{url} answered {status}: {}", text.trim()),
        });
    }
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).map_err(|e| MigrateError::Request {
        what: what.to_owned(),
        message: format!("{url} answered with something other than JSON: {e}"),
    })
}

fn request_error(what: &str, error: reqwest::Error) -> MigrateError {
    MigrateError::Request {
        what: what.to_owned(),
        message: error.to_string(),
    }
}

fn read_json(path: &std::path::Path) -> Result<Value, MigrateError> {
    let text = std::fs::read_to_string(path).map_err(|e| MigrateError::File {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| MigrateError::File {
        path: path.to_owned(),
        message: format!("not JSON: {e}"),
    })
}

/// A JSON object's values as strings (Kafka Connect's config map).
fn string_map(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .map(|object| {
            object
                .iter()
                .map(|(k, v)| {
                    let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                    (k.clone(), v)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The errors of a `ConfigInfos` report, one line per property.
fn validation_errors(report: &Value) -> String {
    report["configs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let errors = c["value"]["errors"].as_array()?;
            (!errors.is_empty()).then(|| {
                let errors: Vec<&str> = errors.iter().filter_map(Value::as_str).collect();
                format!(
                    "  {}: {}",
                    c["value"]["name"].as_str().unwrap_or("?"),
                    errors.join("; ")
                )
            })
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_postgres_connector_adopts_debeziums_slot() {
        let (taken, changes) = takeover_config(config(&[
            (
                "connector.class",
                "io.debezium.connector.postgresql.PostgresConnector",
            ),
            ("slot.name", "inventory"),
        ]));
        assert_eq!(taken["slot.adopt.existing"], "true");
        assert_eq!(changes.len(), 1);
        assert!(changes[0].contains("inventory"), "{changes:?}");
    }

    #[test]
    fn an_explicit_choice_and_other_classes_are_kept() {
        let explicit = config(&[
            (
                "connector.class",
                "io.debezium.connector.postgresql.PostgresConnector",
            ),
            ("slot.adopt.existing", "false"),
        ]);
        assert_eq!(takeover_config(explicit.clone()), (explicit, vec![]));
        let mariadb = config(&[(
            "connector.class",
            "io.debezium.connector.mariadb.MariaDbConnector",
        )]);
        assert_eq!(takeover_config(mariadb.clone()), (mariadb, vec![]));
    }

    #[test]
    fn validation_errors_name_each_property() {
        let report = json!({"configs": [
            {"value": {"name": "a", "errors": []}},
            {"value": {"name": "b", "errors": ["bad", "worse"]}},
        ]});
        assert_eq!(validation_errors(&report), "  b: bad; worse");
    }
}
