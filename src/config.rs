//! Worker configuration (docs/design.md §5): `outflow.toml` plus `OUTFLOW_*` env overrides.
//!
//! Loading is split in two pure steps so that every mistake is reported before anything
//! connects: [`RawWorkerConfig`] gathers dotted keys from the TOML file (nested tables are
//! flattened: `kafka."bootstrap.servers"` becomes `kafka.bootstrap.servers`) and then
//! from the environment (`OUTFLOW_` + the key upper-cased with `.` as `_`; any
//! `OUTFLOW_KAFKA_*` variable becomes a `kafka.*` key); [`RawWorkerConfig::validate`]
//! turns that map into a typed [`WorkerConfig`] or an error naming the key. Unknown keys
//! are errors, not silently ignored.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// A configuration mistake, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("config file {path} is not valid TOML: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// A key outflow does not know.
    #[error("unknown config key `{key}` (from {origin})")]
    UnknownKey {
        /// The key.
        key: String,
        /// Where it came from.
        origin: String,
    },
    /// A key with a value that is not allowed.
    #[error("invalid value for `{key}`: {message}")]
    Invalid {
        /// The key.
        key: String,
        /// What is wrong and what is expected.
        message: String,
    },
}

/// A string that must never be shown: Debug and Display print `********`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("********")
    }
}

/// Where connectors write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkKind {
    /// Raw-zone files (the default).
    Lake,
    /// Kafka.
    Kafka,
    /// A destination of the sink registry ([`crate::sinks`]), by its name.
    Plugin(&'static str),
}

/// The worker's `<plugin>.*` keys (full keys), for the registry's sinks; secrets are
/// masked in Debug output.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SinkProperties(pub BTreeMap<String, String>);

impl fmt::Debug for SinkProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| {
                let shown = if outflow_core::config::is_secret(k) {
                    "********"
                } else {
                    v.as_str()
                };
                (k, shown)
            }))
            .finish()
    }
}

/// Whether `key` belongs to a registered sink plugin (`<name>.…`).
fn is_plugin_key(key: &str) -> bool {
    key.split_once('.')
        .is_some_and(|(prefix, _)| crate::sinks::plugin(prefix).is_some())
}

/// Record encoding for Kafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConverterKind {
    /// Avro with a schema registry.
    Avro,
    /// Kafka Connect JSON.
    Json,
}

/// Authentication of the REST API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestAuth {
    /// Open (bound to loopback by default).
    None,
    /// HTTP basic auth with one user.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: Secret,
    },
    /// A static bearer token.
    Bearer {
        /// The token.
        token: Secret,
    },
}

/// The REST API's TLS certificate: PEM files read when the server starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestTls {
    /// Certificate chain (PEM), the server's certificate first.
    pub cert: PathBuf,
    /// Its private key (PEM, unencrypted PKCS#8).
    pub key: PathBuf,
}

/// The validated worker configuration.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// REST listen address.
    pub rest_listen: SocketAddr,
    /// REST authentication.
    pub rest_auth: RestAuth,
    /// HTTPS for the REST API (`rest.tls.cert` + `rest.tls.key`); plain HTTP when `None`.
    pub rest_tls: Option<RestTls>,
    /// State directory.
    pub data_dir: PathBuf,
    /// Default sink.
    pub sink: SinkKind,
    /// Lake root (directory or object-store URL).
    pub lake_path: String,
    /// Lake file format, one of [`outflow_lake::config::FORMAT_NAMES`] (the lake crate
    /// parses it, with `lake.compression`).
    pub lake_format: &'static str,
    /// librdkafka settings (`kafka.` prefix removed).
    pub kafka: BTreeMap<String, String>,
    /// The registry's sinks' `<name>.*` keys.
    pub sink_properties: SinkProperties,
    /// Schema registry URL.
    pub schema_registry_url: Option<String>,
    /// The registry client's TLS settings (`schema.registry.ssl.ca.location`,
    /// `.certificate.location`, `.key.location`; full keys), given to every connector that
    /// uses the worker's registry.
    pub schema_registry_tls: BTreeMap<String, String>,
    /// Record converter.
    pub converter: ConverterKind,
    /// How long a stop (SIGTERM) waits for the connectors to flush and commit what is
    /// durable before the process exits anyway (`task.shutdown.graceful.timeout.ms`,
    /// default 10 s, as Kafka Connect).
    pub task_shutdown_timeout: std::time::Duration,
}

/// Keys accepted besides the `kafka.*` family.
const KEYS: &[&str] = &[
    "rest.listen",
    "rest.auth",
    "rest.username",
    "rest.password",
    "rest.token",
    "rest.tls.cert",
    "rest.tls.key",
    "data.dir",
    "sink",
    "lake.path",
    "lake.format",
    "converter",
    "schema.registry.url",
    "schema.registry.ssl.ca.location",
    "schema.registry.ssl.certificate.location",
    "schema.registry.ssl.key.location",
    "task.shutdown.graceful.timeout.ms",
];

/// The env var that overrides `key`.
pub fn env_var_for(key: &str) -> String {
    format!(
        "OUTFLOW_{}",
        key.to_ascii_uppercase().replace(['.', '-'], "_")
    )
}

/// Config keys and where each value came from, before validation.
#[derive(Debug, Default, Clone)]
pub struct RawWorkerConfig {
    values: BTreeMap<String, (String, String)>,
}

impl RawWorkerConfig {
    /// Reads the TOML file, if given, then applies the environment.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut raw = Self::default();
        if let Some(path) = path {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            raw.merge_toml(&text, path)?;
        }
        raw.merge_env(env);
        Ok(raw)
    }

    fn merge_toml(&mut self, text: &str, path: &Path) -> Result<(), ConfigError> {
        let table: toml::Table = text.parse().map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(e),
        })?;
        let origin = path.display().to_string();
        flatten("", &toml::Value::Table(table), &mut |key, value| {
            self.values.insert(key, (value, origin.clone()));
        });
        Ok(())
    }

    fn merge_env(&mut self, env: impl IntoIterator<Item = (String, String)>) {
        let by_var: BTreeMap<String, &str> = KEYS.iter().map(|k| (env_var_for(k), *k)).collect();
        for (var, value) in env {
            let key = if let Some(key) = by_var.get(&var) {
                (*key).to_owned()
            } else if let Some(rest) = var.strip_prefix("OUTFLOW_KAFKA_") {
                format!("kafka.{}", rest.to_ascii_lowercase().replace('_', "."))
            } else if let Some((name, rest)) = crate::sinks::names().find_map(|name| {
                var.strip_prefix(&format!("OUTFLOW_{}_", name.to_ascii_uppercase()))
                    .map(|rest| (name, rest))
            }) {
                format!("{name}.{}", rest.to_ascii_lowercase().replace('_', "."))
            } else {
                continue;
            };
            self.values.insert(key, (value, format!("env {var}")));
        }
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(|(v, _)| v.as_str())
    }

    /// Checks every key and builds the typed config. Pure: no I/O.
    pub fn validate(&self) -> Result<WorkerConfig, ConfigError> {
        for (key, (_, origin)) in &self.values {
            if !KEYS.contains(&key.as_str()) && !key.starts_with("kafka.") && !is_plugin_key(key) {
                return Err(ConfigError::UnknownKey {
                    key: key.clone(),
                    origin: origin.clone(),
                });
            }
        }
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            key: key.into(),
            message,
        };

        let listen = self.get("rest.listen").unwrap_or("127.0.0.1:8083");
        let rest_listen = listen.parse().map_err(|_| {
            invalid(
                "rest.listen",
                format!("{listen:?} is not an address like 127.0.0.1:8083"),
            )
        })?;

        let required = |key: &str, why: &str| {
            self.get(key)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| invalid(key, format!("required when {why}")))
        };
        let rest_auth = match self.get("rest.auth").unwrap_or("none") {
            "none" => RestAuth::None,
            "basic" => RestAuth::Basic {
                username: required("rest.username", "rest.auth = \"basic\"")?,
                password: Secret(required("rest.password", "rest.auth = \"basic\"")?),
            },
            "bearer" => RestAuth::Bearer {
                token: Secret(required("rest.token", "rest.auth = \"bearer\"")?),
            },
            other => {
                return Err(invalid(
                    "rest.auth",
                    format!("{other:?}: expected none, basic or bearer"),
                ));
            }
        };

        let rest_tls = match (self.get("rest.tls.cert"), self.get("rest.tls.key")) {
            (None, None) => None,
            (Some(cert), Some(key)) if !cert.is_empty() && !key.is_empty() => Some(RestTls {
                cert: PathBuf::from(cert),
                key: PathBuf::from(key),
            }),
            (Some(_), _) => {
                return Err(invalid(
                    "rest.tls.key",
                    "required (a PEM PKCS#8 key file) when rest.tls.cert is set".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "rest.tls.cert",
                    "required (a PEM certificate file) when rest.tls.key is set".into(),
                ));
            }
        };

        let task_shutdown_timeout = match self.get("task.shutdown.graceful.timeout.ms") {
            None => std::time::Duration::from_secs(10),
            Some(text) => text
                .trim()
                .parse::<u64>()
                .map(std::time::Duration::from_millis)
                .map_err(|_| {
                    invalid(
                        "task.shutdown.graceful.timeout.ms",
                        format!("{text:?}: expected milliseconds"),
                    )
                })?,
        };
        let data_dir = PathBuf::from(self.get("data.dir").unwrap_or("./data"));
        if data_dir.as_os_str().is_empty() {
            return Err(invalid("data.dir", "must not be empty".into()));
        }

        let sink = match self.get("sink").unwrap_or("lake") {
            "lake" => SinkKind::Lake,
            "kafka" => SinkKind::Kafka,
            other => match crate::sinks::plugin(other) {
                Some(plugin) => SinkKind::Plugin(plugin.name()),
                None => {
                    let mut expected = vec!["lake", "kafka"];
                    expected.extend(crate::sinks::names());
                    return Err(invalid(
                        "sink",
                        format!("{other:?}: expected one of {}", expected.join(", ")),
                    ));
                }
            },
        };
        let lake_path = self
            .get("lake.path")
            .map(str::to_owned)
            .unwrap_or_else(|| data_dir.join("lake").display().to_string());
        let requested = self.get("lake.format").unwrap_or("avro");
        let lake_format = outflow_lake::config::FORMAT_NAMES
            .into_iter()
            .find(|name| *name == requested)
            .ok_or_else(|| {
                invalid(
                    "lake.format",
                    format!(
                        "{requested:?}: expected one of {}",
                        outflow_lake::config::FORMAT_NAMES.join(", ")
                    ),
                )
            })?;

        let kafka: BTreeMap<String, String> = self
            .values
            .iter()
            .filter_map(|(k, (v, _))| k.strip_prefix("kafka.").map(|k| (k.to_owned(), v.clone())))
            .collect();
        if sink == SinkKind::Kafka && kafka.get("bootstrap.servers").is_none_or(|v| v.is_empty()) {
            return Err(invalid(
                "kafka.bootstrap.servers",
                "required when sink = \"kafka\"".into(),
            ));
        }

        let schema_registry_url = self.get("schema.registry.url").map(str::to_owned);
        if let Some(url) = &schema_registry_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(invalid(
                "schema.registry.url",
                format!("{url:?} is not an http(s) URL"),
            ));
        }
        let schema_registry_tls: BTreeMap<String, String> = self
            .values
            .iter()
            .filter(|(k, _)| k.starts_with("schema.registry.ssl."))
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect();
        let converter = match self.get("converter") {
            None if schema_registry_url.is_some() => ConverterKind::Avro,
            None | Some("json") => ConverterKind::Json,
            Some("avro") if schema_registry_url.is_some() => ConverterKind::Avro,
            Some("avro") => {
                return Err(invalid(
                    "schema.registry.url",
                    "required when converter = \"avro\"".into(),
                ));
            }
            Some(other) => {
                return Err(invalid(
                    "converter",
                    format!("{other:?}: expected avro or json"),
                ));
            }
        };

        let sink_properties = SinkProperties(
            self.values
                .iter()
                .filter(|(k, _)| is_plugin_key(k))
                .map(|(k, (v, _))| (k.clone(), v.clone()))
                .collect(),
        );
        Ok(WorkerConfig {
            task_shutdown_timeout,
            rest_listen,
            rest_auth,
            rest_tls,
            data_dir,
            sink,
            lake_path,
            lake_format,
            kafka,
            sink_properties,
            schema_registry_url,
            schema_registry_tls,
            converter,
        })
    }
}

fn flatten(prefix: &str, value: &toml::Value, out: &mut impl FnMut(String, String)) {
    match value {
        toml::Value::Table(table) => {
            for (k, v) in table {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        toml::Value::String(s) => out(prefix.to_owned(), s.clone()),
        other => out(prefix.to_owned(), other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(toml: &str, env: &[(&str, &str)]) -> Result<WorkerConfig, ConfigError> {
        let mut raw = RawWorkerConfig::default();
        raw.merge_toml(toml, Path::new("outflow.toml"))?;
        raw.merge_env(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        raw.validate()
    }

    #[test]
    fn a_registered_sink_and_its_keys_from_toml_and_environment() {
        let c = from(
            "sink = \"nats\"\n[nats]\nurl = \"nats://n:4222\"\npassword = \"hunter2\"\n",
            &[("OUTFLOW_NATS_MAX_IN_FLIGHT", "64")],
        )
        .unwrap();
        assert_eq!(c.sink, SinkKind::Plugin("nats"));
        assert_eq!(c.sink_properties.0["nats.url"], "nats://n:4222");
        assert_eq!(c.sink_properties.0["nats.max.in.flight"], "64");
        let debug = format!("{c:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        let e = from("sink = \"pigeon\"\n", &[]).unwrap_err().to_string();
        assert!(e.contains("lake, kafka, nats"), "{e}");
        assert!(matches!(
            from("[pigeon]\nurl = \"x\"\n", &[]),
            Err(ConfigError::UnknownKey { .. })
        ));
    }

    #[test]
    fn defaults_with_no_config_at_all() {
        let c = from("", &[]).unwrap();
        assert_eq!(c.rest_listen, "127.0.0.1:8083".parse().unwrap());
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(c.sink, SinkKind::Lake);
        assert_eq!(c.lake_path, "./data/lake");
        assert_eq!(c.lake_format, "avro");
        assert_eq!(c.converter, ConverterKind::Json);
        assert_eq!(c.rest_auth, RestAuth::None);
    }

    #[test]
    fn toml_keys_and_env_overrides() {
        let c = from(
            "sink = \"kafka\"\n[kafka]\n\"bootstrap.servers\" = \"b:9092\"\n[rest]\nlisten = \"0.0.0.0:1\"\n[schema.registry]\nurl = \"http://r:8081\"\n[schema.registry.ssl]\n\"ca.location\" = \"/ca.pem\"\n",
            &[
                ("OUTFLOW_SCHEMA_REGISTRY_SSL_KEY_LOCATION", "/k.pem"),
                ("OUTFLOW_REST_LISTEN", "127.0.0.1:9000"),
                ("OUTFLOW_KAFKA_LINGER_MS", "5"),
                ("OUTFLOW_DATA_DIR", "/var/lib/outflow"),
                ("UNRELATED", "x"),
            ],
        )
        .unwrap();
        assert_eq!(c.rest_listen, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(c.sink, SinkKind::Kafka);
        assert_eq!(
            c.kafka.get("bootstrap.servers").map(String::as_str),
            Some("b:9092")
        );
        assert_eq!(c.kafka.get("linger.ms").map(String::as_str), Some("5"));
        assert_eq!(c.converter, ConverterKind::Avro);
        assert_eq!(c.lake_path, "/var/lib/outflow/lake");
        assert_eq!(
            c.schema_registry_tls,
            BTreeMap::from([
                (
                    "schema.registry.ssl.ca.location".to_owned(),
                    "/ca.pem".to_owned()
                ),
                (
                    "schema.registry.ssl.key.location".to_owned(),
                    "/k.pem".to_owned()
                ),
            ])
        );
    }

    #[test]
    fn errors_name_the_key() {
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case<'_>] = &[
            ("rest.listen = \"nope\"", &[], "rest.listen"),
            ("sink = \"s3\"", &[], "sink"),
            ("sink = \"kafka\"", &[], "kafka.bootstrap.servers"),
            ("converter = \"avro\"", &[], "schema.registry.url"),
            ("lake.format = \"csv\"", &[], "lake.format"),
            ("typo = 1", &[], "typo"),
            ("", &[("OUTFLOW_REST_AUTH", "basic")], "rest.username"),
            ("rest.auth = \"magic\"", &[], "rest.auth"),
            ("rest.tls.cert = \"c.pem\"", &[], "rest.tls.key"),
            ("", &[("OUTFLOW_REST_TLS_KEY", "k.pem")], "rest.tls.cert"),
        ];
        for (toml, env, key) in cases {
            let err = from(toml, env).unwrap_err();
            assert!(
                err.to_string().contains(&format!("`{key}`")),
                "{toml}: {err}"
            );
        }
    }

    #[test]
    fn secrets_are_masked_in_debug() {
        let c = from(
            "rest.auth = \"basic\"\nrest.username = \"admin\"\nrest.password = \"hunter2\"",
            &[],
        )
        .unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("********"));
    }
}
