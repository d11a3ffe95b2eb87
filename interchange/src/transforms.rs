//! Single message transforms, configured as in Kafka Connect (`transforms=a,b`,
//! `transforms.a.type=<class>`, `transforms.a.<property>`, optional
//! `transforms.a.predicate` / `negate` with `predicates=p`, `predicates.p.type=<class>`).
//!
//! Supported, with Debezium's and Kafka's class names and property names:
//! - `io.debezium.transforms.ExtractNewRecordState` — unwrap `after`; deletes by
//!   `delete.tombstone.handling.mode` (or legacy `delete.handling.mode`), `drop.tombstones`,
//!   `add.fields`, `add.fields.prefix`, `add.headers`, `add.headers.prefix`;
//! - `org.apache.kafka.connect.transforms.RegexRouter` — `regex`, `replacement`;
//! - `io.debezium.transforms.ByLogicalTableRouter` — `topic.regex`, `topic.replacement`,
//!   `key.enforce.uniqueness`, `key.field.name`, `key.field.regex`, `key.field.replacement`;
//! - `org.apache.kafka.connect.transforms.Filter` with the predicates
//!   `…predicates.TopicNameMatches` (`pattern`), `…predicates.RecordIsTombstone`,
//!   `…predicates.HasHeaderKey` (`name`), and outflow's `io.outflow.predicates.OperationIs`
//!   (`ops=c,u,d,r,t`) — filtering by table and by operation without a scripting engine;
//! - `io.debezium.transforms.outbox.EventRouter` — the outbox pattern.
//!
//! Transforms work on the Connect-level [`Record`]s, between the envelope formatter and the
//! encoder. Schemas they derive are cached per input schema, so the registry serialiser's
//! per-schema id cache keeps working (one registration per derived schema).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use regex::Regex;

use crate::connect::{ConnectSchema, Datum, Field, SchemaKind};
use crate::envelope::{Payload, PropertyError, Record, RecordKind};

fn full_regex(property: &str, pattern: &str) -> Result<Regex, PropertyError> {
    Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
        PropertyError::new(
            property,
            pattern,
            format!("invalid regular expression: {e}"),
        )
    })
}

/// Java's `$1` replacement syntax to the regex crate's `${1}` (so `$1_x` keeps working).
fn java_replacement(replacement: &str) -> String {
    let mut out = String::with_capacity(replacement.len() + 4);
    let mut chars = replacement.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push_str("${");
            while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                out.push(d);
                chars.next();
            }
            out.push('}');
        } else if c == '\\' {
            if let Some(next) = chars.next() {
                if next == '$' {
                    out.push_str("$$");
                } else {
                    out.push(next);
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn field_index(schema: &ConnectSchema, name: &str) -> Option<usize> {
    schema.fields().iter().position(|f| f.name == name)
}

fn struct_field<'a>(
    payload: &'a Payload,
    name: &str,
) -> Option<(&'a Arc<ConnectSchema>, &'a Datum)> {
    let index = field_index(&payload.schema, name)?;
    let Datum::Struct(values) = &payload.datum else {
        return None;
    };
    Some((&payload.schema.fields()[index].schema, values.get(index)?))
}

fn is_envelope(payload: &Payload) -> bool {
    payload
        .schema
        .name
        .as_deref()
        .is_some_and(|n| n.ends_with(".Envelope"))
        && field_index(&payload.schema, "after").is_some()
        && field_index(&payload.schema, "op").is_some()
}

fn op_of(record: &Record) -> Option<String> {
    let value = record.value.as_ref()?;
    if !is_envelope(value) {
        return None;
    }
    struct_field(value, "op")
        .and_then(|(_, d)| d.as_str())
        .map(str::to_owned)
}

/// Text form of a datum for a header (as Kafka Connect's SimpleHeaderConverter writes
/// primitives).
fn header_text(datum: &Datum) -> Option<String> {
    Some(match datum {
        Datum::Null => return None,
        Datum::Boolean(b) => b.to_string(),
        Datum::Int8(v) => v.to_string(),
        Datum::Int16(v) => v.to_string(),
        Datum::Int32(v) => v.to_string(),
        Datum::Int64(v) => v.to_string(),
        Datum::Float32(v) => v.to_string(),
        Datum::Float64(v) => v.to_string(),
        Datum::String(s) => s.clone(),
        Datum::Text(s) => s.to_string(),
        other => {
            let mut s = String::new();
            crate::encoding::json::write_plain_datum(&mut s, other);
            s
        }
    })
}

/// A schema derived by a transform, with the input schema it came from (kept alive so
/// the pointer used as cache key cannot be reused).
type DerivedSchema = (Arc<ConnectSchema>, Arc<ConnectSchema>);

/// A condition on a record.
#[derive(Debug, Clone)]
pub enum Predicate {
    /// The topic matches the pattern.
    TopicNameMatches(Regex),
    /// The value is null.
    RecordIsTombstone,
    /// A header with this name exists.
    HasHeaderKey(String),
    /// The envelope's `op` is one of these.
    OperationIs(Vec<String>),
}

impl Predicate {
    fn from_properties(
        name: &str,
        props: &BTreeMap<String, String>,
    ) -> Result<Self, PropertyError> {
        let key = |k: &str| format!("predicates.{name}.{k}");
        let type_key = key("type");
        let class = props
            .get(&type_key)
            .ok_or_else(|| PropertyError::new(&type_key, "", "required"))?;
        let short = class.rsplit('.').next().unwrap_or(class);
        Ok(match short {
            "TopicNameMatches" => {
                let pattern_key = key("pattern");
                let pattern = props
                    .get(&pattern_key)
                    .ok_or_else(|| PropertyError::new(&pattern_key, "", "required"))?;
                Self::TopicNameMatches(full_regex(&pattern_key, pattern)?)
            }
            "RecordIsTombstone" => Self::RecordIsTombstone,
            "HasHeaderKey" => {
                let name_key = key("name");
                Self::HasHeaderKey(
                    props
                        .get(&name_key)
                        .ok_or_else(|| PropertyError::new(&name_key, "", "required"))?
                        .clone(),
                )
            }
            "OperationIs" => {
                let ops_key = key("ops");
                let ops = props
                    .get(&ops_key)
                    .ok_or_else(|| PropertyError::new(&ops_key, "", "required: e.g. c,u,d"))?;
                let ops: Vec<String> = ops
                    .split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect();
                if let Some(wrong) = ops
                    .iter()
                    .find(|o| !["c", "u", "d", "r", "t"].contains(&o.as_str()))
                {
                    return Err(PropertyError::new(
                        &ops_key,
                        wrong,
                        "operations are c, u, d, r, t",
                    ));
                }
                Self::OperationIs(ops)
            }
            _ => {
                return Err(PropertyError::new(
                    &type_key,
                    class,
                    "unknown predicate class",
                ));
            }
        })
    }

    /// Whether the record satisfies the predicate.
    pub fn test(&self, record: &Record) -> bool {
        match self {
            Self::TopicNameMatches(re) => re.is_match(&record.topic),
            Self::RecordIsTombstone => record.value.is_none(),
            Self::HasHeaderKey(name) => record.headers.iter().any(|(k, _)| k == name),
            Self::OperationIs(ops) => op_of(record).is_some_and(|op| ops.contains(&op)),
        }
    }
}

/// What ExtractNewRecordState does with deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DeleteMode {
    Drop,
    Tombstone,
    Rewrite,
    RewriteWithTombstone,
    DeleteToTombstone,
}

/// A field or header added by `add.fields` / `add.headers`.
#[derive(Debug, Clone)]
struct FieldReference {
    /// `None` = the envelope; `Some(struct)` = a struct field of the envelope.
    within: Option<String>,
    field: String,
    output: String,
}

impl FieldReference {
    fn parse(spec: &str, prefix: &str) -> Self {
        let (within, field) = match spec.split_once('.') {
            Some((s, f)) => (Some(s.to_owned()), f.to_owned()),
            None => (None, spec.to_owned()),
        };
        Self {
            output: format!("{prefix}{}", spec.replace('.', "_")),
            within,
            field,
        }
    }

    /// The field's schema and value in an envelope: envelope field, else `source` field.
    fn resolve<'a>(&self, envelope: &'a Payload) -> Option<(&'a Arc<ConnectSchema>, &'a Datum)> {
        let lookup = |holder: &'a Payload, within: &str, field: &str| {
            let (schema, datum) = struct_field(holder, within)?;
            let index = field_index(schema, field)?;
            let Datum::Struct(values) = datum else {
                return None;
            };
            Some((&schema.fields()[index].schema, values.get(index)?))
        };
        match &self.within {
            Some(within) => lookup(envelope, within, &self.field),
            None => struct_field(envelope, &self.field)
                .or_else(|| lookup(envelope, "source", &self.field)),
        }
    }
}

#[derive(Debug)]
struct ExtractNewRecordState {
    delete_mode: DeleteMode,
    drop_tombstones: bool,
    add_fields: Vec<FieldReference>,
    add_headers: Vec<FieldReference>,
    /// Derived value schemas, by the envelope schema they come from.
    schemas: HashMap<usize, DerivedSchema>,
}

impl ExtractNewRecordState {
    fn from_properties(
        get: &dyn Fn(&str) -> Option<String>,
        key: &dyn Fn(&str) -> String,
    ) -> Result<Self, PropertyError> {
        let delete_mode = match (
            get("delete.tombstone.handling.mode"),
            get("delete.handling.mode"),
        ) {
            (Some(mode), _) => match mode.as_str() {
                "drop" => DeleteMode::Drop,
                "tombstone" => DeleteMode::Tombstone,
                "rewrite" => DeleteMode::Rewrite,
                "rewrite-with-tombstone" => DeleteMode::RewriteWithTombstone,
                "delete-to-tombstone" => DeleteMode::DeleteToTombstone,
                _ => {
                    return Err(PropertyError::new(
                        key("delete.tombstone.handling.mode"),
                        &mode,
                        "expected drop, tombstone, rewrite, rewrite-with-tombstone or delete-to-tombstone",
                    ));
                }
            },
            (None, Some(legacy)) => match legacy.as_str() {
                "drop" => DeleteMode::Drop,
                "none" => DeleteMode::Tombstone,
                "rewrite" => DeleteMode::Rewrite,
                _ => {
                    return Err(PropertyError::new(
                        key("delete.handling.mode"),
                        &legacy,
                        "expected drop, none or rewrite",
                    ));
                }
            },
            (None, None) => DeleteMode::Drop,
        };
        let drop_tombstones = match get("drop.tombstones").as_deref() {
            None | Some("true") => !matches!(delete_mode, DeleteMode::RewriteWithTombstone),
            Some("false") => false,
            Some(other) => {
                return Err(PropertyError::new(
                    key("drop.tombstones"),
                    other,
                    "expected true or false",
                ));
            }
        };
        let list = |name: &str, prefix_key: &str| -> Vec<FieldReference> {
            let prefix = get(prefix_key).unwrap_or_else(|| "__".into());
            get(name)
                .map(|l| {
                    l.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| FieldReference::parse(s, &prefix))
                        .collect()
                })
                .unwrap_or_default()
        };
        Ok(Self {
            delete_mode,
            drop_tombstones,
            add_fields: list("add.fields", "add.fields.prefix"),
            add_headers: list("add.headers", "add.headers.prefix"),
            schemas: HashMap::new(),
        })
    }

    fn rewrites(&self) -> bool {
        matches!(
            self.delete_mode,
            DeleteMode::Rewrite | DeleteMode::RewriteWithTombstone
        )
    }

    fn value_schema(
        &mut self,
        envelope: &Payload,
        row_schema: &Arc<ConnectSchema>,
    ) -> Arc<ConnectSchema> {
        if self.add_fields.is_empty() && !self.rewrites() {
            return Arc::clone(row_schema);
        }
        let key = Arc::as_ptr(&envelope.schema) as usize;
        if let Some((_, derived)) = self.schemas.get(&key) {
            return Arc::clone(derived);
        }
        let mut fields = row_schema.fields().to_vec();
        // `__deleted` comes before the added fields, as Debezium 3.6 writes them.
        if self.rewrites() {
            fields.push(Field::new(
                "__deleted",
                ConnectSchema::new(SchemaKind::String).optional(),
            ));
        }
        for reference in &self.add_fields {
            if let Some((schema, _)) = reference.resolve(envelope) {
                let mut schema = (**schema).clone();
                schema.optional = true;
                schema.default = None;
                fields.push(Field::new(reference.output.clone(), schema));
            }
        }
        let mut derived =
            ConnectSchema::record(row_schema.name.clone().unwrap_or_default(), fields);
        derived.version = row_schema.version;
        derived.doc = row_schema.doc.clone();
        let derived = Arc::new(derived);
        self.schemas
            .insert(key, (Arc::clone(&envelope.schema), Arc::clone(&derived)));
        derived
    }

    fn apply(&mut self, mut record: Record, out: &mut Vec<Record>) {
        let Some(envelope) = record.value.take() else {
            if !self.drop_tombstones && self.delete_mode != DeleteMode::DeleteToTombstone {
                out.push(record);
            }
            return;
        };
        if !is_envelope(&envelope) {
            record.value = Some(envelope);
            out.push(record);
            return;
        }
        let op = struct_field(&envelope, "op")
            .and_then(|(_, d)| d.as_str())
            .unwrap_or_default()
            .to_owned();
        for reference in &self.add_headers {
            if let Some(text) = reference
                .resolve(&envelope)
                .and_then(|(_, d)| header_text(d))
            {
                record.headers.push((reference.output.clone(), text));
            }
        }
        let deleted = op == "d";
        if op == "t" {
            return;
        }
        if deleted {
            match self.delete_mode {
                DeleteMode::Drop => return,
                DeleteMode::Tombstone | DeleteMode::DeleteToTombstone => {
                    record.kind = RecordKind::Tombstone;
                    out.push(record);
                    return;
                }
                DeleteMode::Rewrite | DeleteMode::RewriteWithTombstone => {}
            }
        }
        let row_field = if deleted { "before" } else { "after" };
        let Some((row_schema, row)) =
            struct_field(&envelope, row_field).map(|(s, d)| (Arc::clone(s), d.clone()))
        else {
            return;
        };
        let schema = self.value_schema(&envelope, &row_schema);
        let datum = if Arc::ptr_eq(&schema, &row_schema) {
            row
        } else {
            let mut values = match row {
                Datum::Struct(values) => values,
                _ => vec![Datum::Null; row_schema.fields().len()],
            };
            if self.rewrites() {
                values.push(Datum::String(deleted.to_string()));
            }
            for reference in &self.add_fields {
                if let Some((_, datum)) = reference.resolve(&envelope) {
                    values.push(datum.clone());
                }
            }
            Datum::Struct(values)
        };
        record.value = Some(Payload { schema, datum });
        out.push(record);
    }
}

#[derive(Debug)]
struct TopicRouter {
    regex: Regex,
    replacement: String,
}

impl TopicRouter {
    fn route(&self, topic: &str) -> Option<String> {
        self.regex.is_match(topic).then(|| {
            self.regex
                .replace(topic, self.replacement.as_str())
                .into_owned()
        })
    }
}

#[derive(Debug)]
struct ByLogicalTableRouter {
    router: TopicRouter,
    enforce_key_uniqueness: bool,
    key_field_name: String,
    key_field: Option<TopicRouter>,
    /// (old schema, new topic) → renamed schema.
    schemas: HashMap<(usize, Arc<str>), DerivedSchema>,
}

impl ByLogicalTableRouter {
    fn renamed(
        &mut self,
        schema: &Arc<ConnectSchema>,
        topic: &Arc<str>,
        extra_key_field: bool,
    ) -> Arc<ConnectSchema> {
        let cache_key = (Arc::as_ptr(schema) as usize, Arc::clone(topic));
        if let Some((_, renamed)) = self.schemas.get(&cache_key) {
            return Arc::clone(renamed);
        }
        let rename = |s: &ConnectSchema, suffix: &str| {
            let mut s = s.clone();
            s.name = Some(format!("{topic}.{suffix}"));
            s
        };
        let suffix = schema
            .name
            .as_deref()
            .and_then(|n| n.rsplit('.').next())
            .unwrap_or("Value")
            .to_owned();
        let mut renamed = rename(schema, &suffix);
        if suffix == "Envelope" {
            let value = schema
                .fields()
                .iter()
                .find(|f| f.name == "before")
                .map(|f| Arc::new(rename(&f.schema, "Value")));
            if let (Some(value), SchemaKind::Struct(fields)) = (value, &mut renamed.kind) {
                for field in fields
                    .iter_mut()
                    .filter(|f| f.name == "before" || f.name == "after")
                {
                    field.schema = Arc::clone(&value);
                }
            }
        }
        if extra_key_field && let SchemaKind::Struct(fields) = &mut renamed.kind {
            fields.push(Field::new(
                self.key_field_name.clone(),
                ConnectSchema::new(SchemaKind::String),
            ));
        }
        let renamed = Arc::new(renamed);
        self.schemas
            .insert(cache_key, (Arc::clone(schema), Arc::clone(&renamed)));
        renamed
    }

    fn apply(&mut self, mut record: Record, out: &mut Vec<Record>) {
        let Some(topic) = self.router.route(&record.topic) else {
            out.push(record);
            return;
        };
        let old_topic = Arc::clone(&record.topic);
        let topic: Arc<str> = topic.into();
        if let Some(key) = record.key.take() {
            let unique =
                self.enforce_key_uniqueness && matches!(key.schema.kind, SchemaKind::Struct(_));
            let schema = self.renamed(&key.schema, &topic, unique);
            let datum = match (unique, key.datum) {
                (true, Datum::Struct(mut values)) => {
                    let identifier = match &self.key_field {
                        Some(router) => router
                            .route(&old_topic)
                            .unwrap_or_else(|| old_topic.to_string()),
                        None => old_topic.to_string(),
                    };
                    values.push(Datum::String(identifier));
                    Datum::Struct(values)
                }
                (_, datum) => datum,
            };
            record.key = Some(Payload { schema, datum });
        }
        if let Some(value) = record.value.take() {
            let schema = if is_envelope(&value) {
                self.renamed(&value.schema, &topic, false)
            } else {
                value.schema
            };
            record.value = Some(Payload {
                schema,
                datum: value.datum,
            });
        }
        record.topic = topic;
        out.push(record);
    }
}

#[derive(Debug)]
struct EventRouter {
    id_field: String,
    key_field: String,
    payload_field: String,
    route_by: String,
    topic_template: String,
    header_fields: Vec<(String, String)>,
}

impl EventRouter {
    fn apply(&self, record: Record, out: &mut Vec<Record>) {
        let Some(envelope) = record.value.as_ref() else {
            return;
        };
        if !is_envelope(envelope) {
            out.push(record);
            return;
        }
        let op = struct_field(envelope, "op")
            .and_then(|(_, d)| d.as_str())
            .unwrap_or_default();
        if op != "c" && op != "r" {
            // The outbox pattern only publishes inserted events; updates and deletes of
            // the outbox table are housekeeping.
            if op == "u" {
                tracing::warn!(topic = %record.topic, "outbox EventRouter ignores an update of the outbox table");
            }
            return;
        }
        let Some((row_schema, row)) = struct_field(envelope, "after") else {
            return;
        };
        let row = Payload {
            schema: Arc::clone(row_schema),
            datum: row.clone(),
        };
        let field = |name: &str| struct_field(&row, name).map(|(s, d)| (Arc::clone(s), d.clone()));
        let routed_by = field(&self.route_by)
            .and_then(|(_, d)| d.as_str().map(str::to_owned))
            .unwrap_or_default();
        let mut headers = record.headers.clone();
        if let Some(id) = field(&self.id_field).and_then(|(_, d)| header_text(&d)) {
            headers.push(("id".into(), id));
        }
        for (column, header) in &self.header_fields {
            if let Some(text) = field(column).and_then(|(_, d)| header_text(&d)) {
                headers.push((header.clone(), text));
            }
        }
        // The key keeps the column's schema, optional when the column is (as Debezium's
        // EventRouter writes it).
        let key = field(&self.key_field).map(|(schema, datum)| Payload { schema, datum });
        let value = field(&self.payload_field)
            .and_then(|(schema, datum)| (!datum.is_null()).then_some(Payload { schema, datum }));
        out.push(Record {
            topic: self
                .topic_template
                .replace("${routedByValue}", &routed_by)
                .into(),
            key,
            value,
            position: record.position,
            kind: RecordKind::Change,
            headers,
        });
    }
}

#[derive(Debug)]
enum Transform {
    Unwrap(ExtractNewRecordState),
    Regex(TopicRouter),
    LogicalTable(ByLogicalTableRouter),
    Filter,
    Outbox(EventRouter),
}

#[derive(Debug)]
struct Step {
    transform: Transform,
    predicate: Option<(Predicate, bool)>,
}

/// The configured transforms, applied in order.
#[derive(Debug, Default)]
pub struct TransformChain {
    steps: Vec<Step>,
}

impl TransformChain {
    /// Reads `transforms`, `transforms.*` and `predicates.*`. Pure: no I/O.
    pub fn from_properties(props: &BTreeMap<String, String>) -> Result<Self, PropertyError> {
        let names = |key: &str| -> Vec<String> {
            props
                .get(key)
                .map(|l| {
                    l.split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut predicates = HashMap::new();
        for name in names("predicates") {
            predicates.insert(name.clone(), Predicate::from_properties(&name, props)?);
        }
        let mut steps = Vec::new();
        for name in names("transforms") {
            let key = |k: &str| format!("transforms.{name}.{k}");
            let get = |k: &str| props.get(&key(k)).cloned();
            let type_key = key("type");
            let class = get("type").ok_or_else(|| PropertyError::new(&type_key, "", "required"))?;
            let required =
                |k: &str| get(k).ok_or_else(|| PropertyError::new(key(k), "", "required"));
            let transform = match class.as_str() {
                "io.debezium.transforms.ExtractNewRecordState" => {
                    Transform::Unwrap(ExtractNewRecordState::from_properties(&get, &key)?)
                }
                "org.apache.kafka.connect.transforms.RegexRouter" => {
                    Transform::Regex(TopicRouter {
                        regex: full_regex(&key("regex"), &required("regex")?)?,
                        replacement: java_replacement(&required("replacement")?),
                    })
                }
                "io.debezium.transforms.ByLogicalTableRouter" => {
                    let key_field = match (get("key.field.regex"), get("key.field.replacement")) {
                        (Some(regex), Some(replacement)) => Some(TopicRouter {
                            regex: full_regex(&key("key.field.regex"), &regex)?,
                            replacement: java_replacement(&replacement),
                        }),
                        (None, None) => None,
                        _ => {
                            return Err(PropertyError::new(
                                key("key.field.replacement"),
                                "",
                                "key.field.regex and key.field.replacement go together",
                            ));
                        }
                    };
                    Transform::LogicalTable(ByLogicalTableRouter {
                        router: TopicRouter {
                            regex: full_regex(&key("topic.regex"), &required("topic.regex")?)?,
                            replacement: java_replacement(&required("topic.replacement")?),
                        },
                        enforce_key_uniqueness: get("key.enforce.uniqueness")
                            .is_none_or(|v| v != "false"),
                        key_field_name: get("key.field.name")
                            .unwrap_or_else(|| "__dbz__physicalTableIdentifier".into()),
                        key_field,
                        schemas: HashMap::new(),
                    })
                }
                "org.apache.kafka.connect.transforms.Filter" => Transform::Filter,
                "io.debezium.transforms.outbox.EventRouter" => {
                    let mut header_fields = Vec::new();
                    if let Some(spec) = get("table.fields.additional.placement") {
                        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                            let parts: Vec<&str> = entry.split(':').collect();
                            match parts.as_slice() {
                                [column, "header"] => {
                                    header_fields.push(((*column).to_owned(), (*column).to_owned()))
                                }
                                [column, "header", alias] => {
                                    header_fields.push(((*column).to_owned(), (*alias).to_owned()))
                                }
                                _ => {
                                    return Err(PropertyError::new(
                                        key("table.fields.additional.placement"),
                                        &spec,
                                        "only <column>:header[:<alias>] placements are supported",
                                    ));
                                }
                            }
                        }
                    }
                    Transform::Outbox(EventRouter {
                        id_field: get("table.field.event.id").unwrap_or_else(|| "id".into()),
                        key_field: get("table.field.event.key")
                            .unwrap_or_else(|| "aggregateid".into()),
                        payload_field: get("table.field.event.payload")
                            .unwrap_or_else(|| "payload".into()),
                        route_by: get("route.by.field").unwrap_or_else(|| "aggregatetype".into()),
                        topic_template: get("route.topic.replacement")
                            .unwrap_or_else(|| "outbox.event.${routedByValue}".into()),
                        header_fields,
                    })
                }
                other => {
                    return Err(PropertyError::new(
                        &type_key,
                        other,
                        "unknown or unsupported transform class",
                    ));
                }
            };
            let predicate = match get("predicate") {
                Some(p) => {
                    let predicate = predicates.get(&p).cloned().ok_or_else(|| {
                        PropertyError::new(key("predicate"), &p, "not listed in `predicates`")
                    })?;
                    let negate = match get("negate").as_deref() {
                        None | Some("false") => false,
                        Some("true") => true,
                        Some(other) => {
                            return Err(PropertyError::new(
                                key("negate"),
                                other,
                                "expected true or false",
                            ));
                        }
                    };
                    Some((predicate, negate))
                }
                None => None,
            };
            steps.push(Step {
                transform,
                predicate,
            });
        }
        Ok(Self { steps })
    }

    /// True when no transform is configured.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Runs `record` through every transform, appending what comes out (zero or more
    /// records) to `out`.
    pub fn apply(&mut self, record: Record, out: &mut Vec<Record>) {
        let mut current = vec![record];
        let mut next = Vec::new();
        for step in &mut self.steps {
            for record in current.drain(..) {
                let applies = step
                    .predicate
                    .as_ref()
                    .is_none_or(|(p, negate)| p.test(&record) != *negate);
                if !applies {
                    next.push(record);
                    continue;
                }
                match &mut step.transform {
                    Transform::Unwrap(t) => t.apply(record, &mut next),
                    Transform::Regex(router) => {
                        let mut record = record;
                        if let Some(topic) = router.route(&record.topic) {
                            record.topic = topic.into();
                        }
                        next.push(record);
                    }
                    Transform::LogicalTable(t) => t.apply(record, &mut next),
                    Transform::Filter => {}
                    Transform::Outbox(t) => t.apply(record, &mut next),
                }
            }
            std::mem::swap(&mut current, &mut next);
        }
        out.append(&mut current);
    }
}

#[cfg(test)]
mod tests;
