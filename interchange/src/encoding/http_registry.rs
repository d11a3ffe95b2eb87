//! HTTP client of a Confluent-compatible schema registry.
//!
//! Only what the sink needs: `POST /subjects/{subject}/versions` (register, or get the id
//! of an identical schema). Several URLs may be given (comma-separated); a transient
//! failure on one tries the next, and a round over all of them is retried a few times
//! with jittered exponential backoff before reporting [`RegistryError::Unavailable`].
//! HTTP 409 is [`RegistryError::Incompatible`] with the registry's message; other 4xx are
//! [`RegistryError::Refused`]. Basic auth (`basic.auth.credentials.source=USER_INFO`,
//! `basic.auth.user.info`) is supported; over HTTPS the client trusts the system's CAs
//! plus `schema.registry.ssl.ca.location` (PEM) and presents
//! `schema.registry.ssl.certificate.location` + `schema.registry.ssl.key.location` (PEM)
//! when the registry demands a client certificate. These are the names Confluent's
//! librdkafka-based clients use; the Java clients' JKS `truststore`/`keystore` settings are
//! refused with the `keytool` command that converts them. A certificate that does not
//! verify is [`RegistryError::Untrusted`] (definite), not a retry. Credentials never
//! appear in `Debug` output or errors.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::encoding::registry::{RegistryError, SchemaRegistry};
use crate::envelope::PropertyError;

/// Registry client settings, read from converter properties.
#[derive(Clone)]
pub struct RegistryClientConfig {
    /// Base URLs, tried in order.
    pub urls: Vec<String>,
    /// `user`, `password` for basic auth.
    pub basic_auth: Option<(String, String)>,
    /// PEM file of a CA to trust in addition to the system's.
    pub ca_location: Option<PathBuf>,
    /// PEM certificate and PEM (PKCS#8) key presented when the registry asks for one.
    pub client_identity: Option<(PathBuf, PathBuf)>,
    /// Timeout of one request.
    pub request_timeout: Duration,
    /// Rounds over all URLs before giving up with a transient error.
    pub attempts: u32,
}

impl fmt::Debug for RegistryClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryClientConfig")
            .field("urls", &self.urls)
            .field(
                "basic_auth",
                &self.basic_auth.as_ref().map(|(user, _)| (user, "********")),
            )
            .field("ca_location", &self.ca_location)
            .field("client_identity", &self.client_identity)
            .field("request_timeout", &self.request_timeout)
            .field("attempts", &self.attempts)
            .finish()
    }
}

impl RegistryClientConfig {
    /// Reads `<prefix>schema.registry.url`, `<prefix>basic.auth.credentials.source`,
    /// `<prefix>basic.auth.user.info`, `<prefix>schema.registry.ssl.ca.location`,
    /// `<prefix>schema.registry.ssl.certificate.location` and
    /// `<prefix>schema.registry.ssl.key.location` (prefix e.g. `value.converter.`); refuses
    /// the Java clients' JKS/PKCS#12 store settings, naming them. Pure: no I/O.
    pub fn from_properties(
        prefix: &str,
        props: &BTreeMap<String, String>,
    ) -> Result<Self, PropertyError> {
        let key = |k: &str| format!("{prefix}{k}");
        let url_key = key("schema.registry.url");
        let urls_text = props.get(&url_key).cloned().unwrap_or_default();
        let urls: Vec<String> = urls_text
            .split(',')
            .map(|u| u.trim().trim_end_matches('/').to_owned())
            .filter(|u| !u.is_empty())
            .collect();
        if urls.is_empty() {
            return Err(PropertyError::new(
                url_key,
                &urls_text,
                "required: one or more http(s) URLs, comma-separated",
            ));
        }
        if let Some(bad) = urls
            .iter()
            .find(|u| !(u.starts_with("http://") || u.starts_with("https://")))
        {
            return Err(PropertyError::new(url_key, bad, "not an http(s) URL"));
        }
        let source_key = key("basic.auth.credentials.source");
        let info_key = key("basic.auth.user.info");
        let basic_auth = match props.get(&source_key).map(String::as_str) {
            None | Some("") => None,
            Some("USER_INFO") => {
                let info = props.get(&info_key).cloned().unwrap_or_default();
                let Some((user, password)) = info.split_once(':') else {
                    return Err(PropertyError::new(
                        info_key,
                        "********",
                        "expected user:password",
                    ));
                };
                Some((user.to_owned(), password.to_owned()))
            }
            Some(other) => {
                return Err(PropertyError::new(
                    source_key,
                    other,
                    "only USER_INFO is supported",
                ));
            }
        };
        for store in ["truststore", "keystore"] {
            let store_key = key(&format!("schema.registry.ssl.{store}.location"));
            if let Some(path) = props.get(&store_key) {
                let (instead, command) = if store == "truststore" {
                    (
                        "schema.registry.ssl.ca.location",
                        "keytool -exportcert -rfc -keystore <truststore> -alias <ca alias> > ca.pem",
                    )
                } else {
                    (
                        "schema.registry.ssl.certificate.location and schema.registry.ssl.key.location",
                        "openssl pkcs12 -in <keystore.p12> -nokeys > cert.pem; openssl pkcs12 -in <keystore.p12> -nocerts -nodes > key.pem (convert a JKS store to PKCS#12 first with keytool -importkeystore -deststoretype PKCS12)",
                    )
                };
                return Err(PropertyError::new(
                    store_key,
                    path,
                    format!(
                        "Java key stores are not read; give PEM files in {instead} ({command})"
                    ),
                ));
            }
        }
        let optional_path = |k: &str| {
            props
                .get(&key(k))
                .filter(|v| !v.trim().is_empty())
                .map(PathBuf::from)
        };
        let client_identity = match (
            optional_path("schema.registry.ssl.certificate.location"),
            optional_path("schema.registry.ssl.key.location"),
        ) {
            (Some(cert), Some(key_file)) => Some((cert, key_file)),
            (None, None) => None,
            (Some(_), None) | (None, Some(_)) => {
                return Err(PropertyError::new(
                    key("schema.registry.ssl.key.location"),
                    "",
                    "schema.registry.ssl.certificate.location and schema.registry.ssl.key.location go together: give both or neither",
                ));
            }
        };
        Ok(Self {
            urls,
            basic_auth,
            ca_location: optional_path("schema.registry.ssl.ca.location"),
            client_identity,
            request_timeout: Duration::from_secs(10),
            attempts: 3,
        })
    }
}

/// Error building the HTTP client (unreadable CA file, TLS setup).
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the schema registry client: {0}")]
pub struct RegistryClientError(String);

/// A schema registry reached over HTTP(S).
#[derive(Debug, Clone)]
pub struct HttpSchemaRegistry {
    client: reqwest::Client,
    config: RegistryClientConfig,
}

impl HttpSchemaRegistry {
    /// Builds the client (reads the CA file, if any).
    pub fn new(config: RegistryClientConfig) -> Result<Self, RegistryClientError> {
        let mut builder = reqwest::Client::builder().timeout(config.request_timeout);
        if let Some(path) = &config.ca_location {
            let pem = std::fs::read(path).map_err(|e| {
                RegistryClientError(format!("reading CA file {}: {e}", path.display()))
            })?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| RegistryClientError(format!("CA file {}: {e}", path.display())))?;
            builder = builder.add_root_certificate(cert);
        }
        if let Some((cert_path, key_path)) = &config.client_identity {
            let read = |path: &PathBuf| {
                std::fs::read(path)
                    .map_err(|e| RegistryClientError(format!("reading {}: {e}", path.display())))
            };
            let identity = reqwest::Identity::from_pkcs8_pem(&read(cert_path)?, &read(key_path)?)
                .map_err(|e| {
                RegistryClientError(format!(
                    "client certificate {} with key {} (PEM certificate, PEM PKCS#8 key): {e}",
                    cert_path.display(),
                    key_path.display()
                ))
            })?;
            builder = builder.identity(identity);
        }
        let client = builder
            .build()
            .map_err(|e| RegistryClientError(e.to_string()))?;
        Ok(Self { client, config })
    }

    async fn try_once(
        &self,
        url: &str,
        subject: &str,
        body: &serde_json::Value,
    ) -> Result<u32, RegistryError> {
        let endpoint = format!("{url}/subjects/{}/versions", encode_path(subject));
        let mut request = self
            .client
            .post(endpoint)
            .header("Content-Type", "application/vnd.schemaregistry.v1+json")
            .json(body);
        if let Some((user, password)) = &self.config.basic_auth {
            request = request.basic_auth(user, Some(password));
        }
        let unavailable = |message: String| RegistryError::Unavailable {
            subject: subject.to_owned(),
            message,
        };
        let response = request.send().await.map_err(|e| {
            let message = format!("{url}: {}", without_url(&e));
            if certificate_rejected(&e) {
                RegistryError::Untrusted {
                    subject: subject.to_owned(),
                    message,
                }
            } else {
                unavailable(message)
            }
        })?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| unavailable(without_url(&e)))?;
        let parsed: serde_json::Value =
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        if status.is_success() {
            return parsed
                .get("id")
                .and_then(serde_json::Value::as_u64)
                .and_then(|id| u32::try_from(id).ok())
                .ok_or_else(|| {
                    unavailable(format!("{url}: response without a schema id: {text:.200}"))
                });
        }
        let message = parsed
            .get("message")
            .and_then(serde_json::Value::as_str)
            .map_or_else(|| text.chars().take(300).collect(), str::to_owned);
        match status.as_u16() {
            409 => Err(RegistryError::Incompatible {
                subject: subject.to_owned(),
                message,
            }),
            code if status.is_server_error() || code == 408 || code == 429 => {
                Err(unavailable(format!("{url}: HTTP {code}: {message}")))
            }
            code => Err(RegistryError::Refused {
                subject: subject.to_owned(),
                status: code,
                message,
            }),
        }
    }
}

/// reqwest errors may quote the URL; ours carry no credentials, but keep messages short.
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(source) = std::error::Error::source(e) {
        text = format!("{text}: {source}");
    }
    text
}

/// Whether a request failed because the server's certificate did not verify (OpenSSL's
/// "certificate verify failed" anywhere in the error chain): a setting to fix, not an
/// outage to wait out.
fn certificate_rejected(e: &reqwest::Error) -> bool {
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(error) = source {
        if error.to_string().contains("certificate verify failed") {
            return true;
        }
        source = error.source();
    }
    false
}

fn encode_path(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl SchemaRegistry for HttpSchemaRegistry {
    async fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let body = serde_json::json!({ "schema": schema });
        let mut last = None;
        let mut backoff = outflow_core::RetryPolicy::REQUEST.schedule();
        for attempt in 0..self.config.attempts.max(1) {
            if attempt > 0 {
                tokio::time::sleep(backoff.next_delay()).await;
            }
            for url in &self.config.urls {
                match self.try_once(url, subject, &body).await {
                    Ok(id) => {
                        tracing::debug!(subject, id, "schema registered");
                        return Ok(id);
                    }
                    Err(e @ RegistryError::Unavailable { .. }) => {
                        tracing::warn!(subject, error = %e, "schema registry unavailable; trying again");
                        last = Some(e);
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Err(last.unwrap_or_else(|| RegistryError::Unavailable {
            subject: subject.to_owned(),
            message: "no registry URL".into(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    #[test]
    fn config_from_converter_properties() {
        let c = RegistryClientConfig::from_properties(
            "value.converter.",
            &props(&[
                (
                    "value.converter.schema.registry.url",
                    "http://a:8081/, https://b:8081",
                ),
                ("value.converter.basic.auth.credentials.source", "USER_INFO"),
                ("value.converter.basic.auth.user.info", "fred:letmein"),
            ]),
        )
        .unwrap();
        assert_eq!(c.urls, ["http://a:8081", "https://b:8081"]);
        let shown = format!("{c:?}");
        assert!(
            shown.contains("fred") && !shown.contains("letmein"),
            "{shown}"
        );
        let err = RegistryClientConfig::from_properties(
            "",
            &props(&[("schema.registry.url", "ftp://x")]),
        )
        .unwrap_err();
        assert_eq!(err.property, "schema.registry.url");
        let err = RegistryClientConfig::from_properties(
            "",
            &props(&[
                ("schema.registry.url", "http://x"),
                ("basic.auth.user.info", "nocolon"),
                ("basic.auth.credentials.source", "USER_INFO"),
            ]),
        )
        .unwrap_err();
        assert_eq!(err.property, "basic.auth.user.info");
        assert!(!err.to_string().contains("nocolon"));
    }

    #[test]
    fn tls_settings_pem_only_and_certificate_with_key() {
        let c = RegistryClientConfig::from_properties(
            "value.converter.",
            &props(&[
                ("value.converter.schema.registry.url", "https://r:8081"),
                ("value.converter.schema.registry.ssl.ca.location", "/ca.pem"),
                (
                    "value.converter.schema.registry.ssl.certificate.location",
                    "/c.pem",
                ),
                ("value.converter.schema.registry.ssl.key.location", "/k.pem"),
            ]),
        )
        .unwrap();
        assert_eq!(c.ca_location, Some(PathBuf::from("/ca.pem")));
        assert_eq!(
            c.client_identity,
            Some((PathBuf::from("/c.pem"), PathBuf::from("/k.pem")))
        );
        let url = ("schema.registry.url", "https://r:8081");
        let err = RegistryClientConfig::from_properties(
            "",
            &props(&[url, ("schema.registry.ssl.certificate.location", "/c.pem")]),
        )
        .unwrap_err();
        assert_eq!(err.property, "schema.registry.ssl.key.location");
        for store in ["truststore", "keystore"] {
            let key = format!("schema.registry.ssl.{store}.location");
            let err =
                RegistryClientConfig::from_properties("", &props(&[url, (key.as_str(), "/s.jks")]))
                    .unwrap_err();
            assert_eq!(err.property, key);
            assert!(err.to_string().contains("PEM"), "{err}");
        }
    }

    #[test]
    fn subjects_are_path_encoded() {
        assert_eq!(encode_path("a.b/c-value"), "a.b%2Fc-value");
    }
}
