//! Property validation primitives that every connector and every layer shares.
//!
//! Connector configuration arrives as Debezium's flat string map. Each layer (a source,
//! the record stage, a sink) validates the properties it acts on in a pure function and
//! reports a bad value as a [`PropertyError`] naming the property, which the daemon turns
//! into HTTP 400. [`NameFilter`] is Debezium's include/exclude list pair, used for tables
//! by the sources and for columns by the envelope.

use std::collections::BTreeMap;

/// A property with a bad value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value {value:?} for configuration {property}: {message}")]
pub struct PropertyError {
    /// The property name.
    pub property: String,
    /// The value given.
    pub value: String,
    /// What is allowed.
    pub message: String,
}

impl PropertyError {
    /// An error for `property` with the given `value`; `message` says what is allowed.
    pub fn new(
        property: impl Into<String>,
        value: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            property: property.into(),
            value: value.into(),
            message: message.into(),
        }
    }
}

/// A property map from `(key, value)` pairs (tests and examples build configs this way).
pub fn properties(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Two properties that are set together or not at all (a user and its password, a
/// certificate and its key): both values, or `None` for neither; one without the other
/// is an error naming the missing one.
pub fn both_or_neither<'a>(
    (first, first_value): (&str, Option<&'a str>),
    (second, second_value): (&str, Option<&'a str>),
) -> Result<Option<(&'a str, &'a str)>, PropertyError> {
    match (first_value, second_value) {
        (Some(a), Some(b)) => Ok(Some((a, b))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(PropertyError::new(
            second,
            "",
            format!("required when {first} is set"),
        )),
        (None, Some(_)) => Err(PropertyError::new(
            first,
            "",
            format!("required when {second} is set"),
        )),
    }
}

/// Parses a comma-separated list of regular expressions, each matched against a whole
/// name (as Debezium's `*.include.list` / `*.exclude.list` properties are).
pub fn regex_list(property: &str, list: &str) -> Result<Vec<regex::Regex>, PropertyError> {
    list.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            regex::Regex::new(&format!("^(?:{p})$")).map_err(|e| PropertyError {
                property: property.into(),
                value: list.into(),
                message: format!("invalid regular expression {p:?}: {e}"),
            })
        })
        .collect()
}

/// A Debezium `<kind>.include.list` / `<kind>.exclude.list` pair: names (fully qualified)
/// pass when they match an include pattern, or, without an include list, when they
/// match no exclude pattern. Setting both is an error, as in Debezium.
#[derive(Debug, Clone, Default)]
pub struct NameFilter {
    include: Option<Vec<regex::Regex>>,
    exclude: Vec<regex::Regex>,
}

impl NameFilter {
    /// Reads `<kind>.include.list` and `<kind>.exclude.list` (e.g. kind `table`).
    pub fn from_properties(
        props: &BTreeMap<String, String>,
        kind: &str,
    ) -> Result<Self, PropertyError> {
        let (include_key, exclude_key) = (
            format!("{kind}.include.list"),
            format!("{kind}.exclude.list"),
        );
        let include = props
            .get(&include_key)
            .map(|l| regex_list(&include_key, l))
            .transpose()?;
        let exclude = props
            .get(&exclude_key)
            .map(|l| regex_list(&exclude_key, l))
            .transpose()?
            .unwrap_or_default();
        if include.is_some() && !exclude.is_empty() {
            return Err(PropertyError {
                property: exclude_key.clone(),
                value: props.get(&exclude_key).cloned().unwrap_or_default(),
                message: format!("cannot be used together with {include_key}"),
            });
        }
        Ok(Self { include, exclude })
    }

    /// Whether `name` passes.
    pub fn matches(&self, name: &str) -> bool {
        match &self.include {
            Some(include) => include.iter().any(|r| r.is_match(name)),
            None => !self.exclude.iter().any(|r| r.is_match(name)),
        }
    }

    /// The patterns, for comparisons.
    pub fn patterns(&self) -> (Option<Vec<&str>>, Vec<&str>) {
        (
            self.include
                .as_ref()
                .map(|v| v.iter().map(regex::Regex::as_str).collect()),
            self.exclude.iter().map(regex::Regex::as_str).collect(),
        )
    }
}

/// Whether the value of property `key` is a secret that must never be shown (in REST
/// responses, logs, `Debug` output or the console): passwords, secrets, private keys
/// (`*.key`, `*_key`, `sslkey`, inline `*key.pem`, but not an access key's `*key_id`),
/// JAAS configs, tokens, SAS signatures, `user:password` pairs (`*user.info`) and
/// credentials other than their `.source` selector. The one rule for every layer.
pub fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.contains("password")
        || key.contains("secret")
        || key.ends_with(".key")
        || key.ends_with("_key")
        || key.ends_with("sslkey")
        || key.ends_with("key.pem")
        || key.contains("jaas")
        || key.contains("token")
        || key.contains("sas_")
        || key.ends_with("_sas")
        || key.contains("user.info")
        || (key.contains("credential") && !key.ends_with(".source"))
}

/// What a config shows outside the process (REST answers, `Debug`, the console): every
/// value whose key [`is_secret`] replaced by `********`.
pub fn masked(config: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    config
        .iter()
        .map(|(k, v)| {
            let value = if is_secret(k) {
                "********".to_owned()
            } else {
                v.clone()
            };
            (k.clone(), value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::is_secret;

    #[test]
    fn secret_properties_are_recognised() {
        for key in [
            "database.password",
            "database.sslpassword",
            "database.sslkey",
            "value.converter.basic.auth.user.info",
            "schema.registry.basic.auth.user.info",
            "sasl.jaas.config",
            "kafka.sasl.password",
            "kafka.ssl.key.pem",
            "lake.s3.secret_access_key",
            "lake.store.aws_secret_access_key",
            "lake.store.azure_storage_account_key",
            "lake.store.azure_storage_sas_key",
            "lake.store.google_service_account_key",
            "lake.store.aws_session_token",
            "aws.credentials",
            "rest.token",
            "ssl.key",
        ] {
            assert!(is_secret(key), "{key}");
        }
        for key in [
            "database.user",
            "database.hostname",
            "value.converter.basic.auth.credentials.source",
            "topic.prefix",
            "table.include.list",
            "message.key.columns",
            "key.converter",
            "lake.store.aws_access_key_id",
            "kafka.ssl.key.location",
        ] {
            assert!(!is_secret(key), "{key}");
        }
    }
}
