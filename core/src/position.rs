//! Source positions: where in the database's change stream an event comes from.
//!
//! Every event carries a [`SourcePosition`]. Within one connector positions are totally
//! ordered and strictly increasing in emission order, which is what makes exactly-once
//! resume work: after a restart the pipeline skips every event at or before the durable
//! position, and sinks that find a position in their own output (the Kafka partition tail,
//! a lake file name) skip what they already hold.
//!
//! # Design
//!
//! `core` knows no database, so a position is opaque here: a [`PositionFamily`] (supplied
//! by the source crate, one `static` per kind of stream), a fixed array of
//! [`ORDER_WORDS`] unsigned *order words*, a snapshot flag, and an optional shared
//! [`PositionDetail`] (what the words cannot hold: a binlog file name, a snapshot cursor,
//! the facts Debezium's `source` block reports). Positions order by family tag, then by
//! the words, then by the family's comparison of the details, so the hot path (the
//! pipeline's exactly-once guard compares every event with the one before it) compares
//! integers and makes no dynamic call unless the words are equal. A source shares one
//! detail per transaction (`Arc`), so making a position allocates nothing.
//!
//! The family gives the rest of a position's meaning: its serialised form (under its
//! [`tag`](PositionFamily::tag): `{"postgres": {…}}`), its fixed-width sortable text (the
//! lake's file names) and Debezium's offset form and back. The serialised form is stable:
//! it is what offset stores persist and what Kafka record headers carry. Reading it needs
//! the family, so readers are handed the families they may meet
//! ([`SourcePosition::from_json`]): the worker all of its sources', a sink its
//! connector's ([`PositionFamily`] comes with the sink's `StageParts`).

use std::any::Any;
use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

/// How many order words a position has; a family leaves the words it does not need 0.
pub const ORDER_WORDS: usize = 5;

/// What a position holds besides its order words: shared by the positions of one
/// transaction, read back by the family that made it (see [`SourcePosition::detail`]).
pub trait PositionDetail: Any + fmt::Debug + Send + Sync {}

/// One kind of position (Postgres LSNs, binlog coordinates, …), supplied by the source
/// crate as a `static`: the meaning of the order words and the detail.
pub trait PositionFamily: fmt::Debug + Send + Sync + 'static {
    /// The key of the serialised form: `{"<tag>": <object>}`. Unique per family.
    fn tag(&self) -> &'static str;

    /// The object under the tag in the serialised form.
    fn to_json(&self, position: &SourcePosition) -> serde_json::Value;

    /// Appends the object under the tag as compact JSON text to `out`: the same object
    /// as [`Self::to_json`], written without building a JSON tree (a Kafka record
    /// carries one per event). The default goes through [`Self::to_json`].
    fn write_json(&self, position: &SourcePosition, out: &mut String) {
        out.push_str(&self.to_json(position).to_string());
    }

    /// Reads an object written by [`Self::to_json`].
    fn read_json(&self, object: serde_json::Value) -> Result<SourcePosition, InvalidPosition>;

    /// Orders the details of two positions of this family whose words are equal (a
    /// tie-breaker: within one connector the words decide); must agree with itself.
    fn cmp_detail(&self, a: &SourcePosition, b: &SourcePosition) -> Ordering;

    /// Fixed-width text whose byte order is the positions' order, for names that must
    /// sort as the positions do (the lake's files). Made of the fields that order
    /// positions, so two positions with equal words have equal tokens.
    fn sort_token(&self, position: &SourcePosition) -> String;

    /// Debezium's offset fields for this position (what Kafka Connect's offsets topic
    /// and `GET /connectors/{name}/offsets` show), without `snapshot` and
    /// `outflow_position`, which [`SourcePosition::debezium_offset`] adds.
    fn debezium_offset(
        &self,
        position: &SourcePosition,
    ) -> serde_json::Map<String, serde_json::Value>;

    /// Reads Debezium's offset fields (an offset Debezium stored, or one set by hand);
    /// `None` when they are not this family's.
    fn read_debezium_offset(&self, offset: &serde_json::Value) -> Option<SourcePosition>;
}

/// Where an event comes from; totally ordered within a connector. Cheap to clone (the
/// detail is shared).
#[derive(Clone)]
pub struct SourcePosition {
    family: &'static dyn PositionFamily,
    order: [u64; ORDER_WORDS],
    snapshot: bool,
    detail: Option<Arc<dyn PositionDetail>>,
}

/// Error reading a serialised [`SourcePosition`].
#[derive(Debug, thiserror::Error)]
#[error("invalid stored source position: {0}")]
pub struct InvalidPosition(pub String);

impl From<serde_json::Error> for InvalidPosition {
    fn from(e: serde_json::Error) -> Self {
        Self(e.to_string())
    }
}

impl SourcePosition {
    /// A position of `family`: its order words, whether it is a snapshot row's, and its
    /// detail. The family decides what the words mean.
    pub fn new(
        family: &'static dyn PositionFamily,
        order: [u64; ORDER_WORDS],
        snapshot: bool,
        detail: Option<Arc<dyn PositionDetail>>,
    ) -> Self {
        Self {
            family,
            order,
            snapshot,
            detail,
        }
    }

    /// The family that made this position.
    pub fn family(&self) -> &'static dyn PositionFamily {
        self.family
    }

    /// True when `family` made this position (same tag).
    pub fn is_of(&self, family: &dyn PositionFamily) -> bool {
        self.family.tag() == family.tag()
    }

    /// The order words.
    pub fn order(&self) -> &[u64; ORDER_WORDS] {
        &self.order
    }

    /// True for positions of snapshot rows.
    pub fn is_snapshot(&self) -> bool {
        self.snapshot
    }

    /// The detail, when it is a `T`.
    pub fn detail<T: PositionDetail>(&self) -> Option<&T> {
        let detail: &dyn Any = self.detail.as_deref()?;
        detail.downcast_ref()
    }

    /// The shared detail, when it is a `T`.
    pub fn detail_arc<T: PositionDetail>(&self) -> Option<Arc<T>> {
        let detail: Arc<dyn Any + Send + Sync> = self.detail.clone()?;
        detail.downcast().ok()
    }

    /// The stable serialised form (compact JSON): `{"<tag>": <object>}`.
    pub fn to_json(&self) -> String {
        let tag = self.family.tag();
        let mut out = String::with_capacity(tag.len() + 96);
        // A tag is a plain name (`postgres`, `binlog`): nothing in it needs escaping.
        out.push_str("{\"");
        out.push_str(tag);
        out.push_str("\":");
        self.family.write_json(self, &mut out);
        out.push('}');
        out
    }

    fn to_json_value(&self) -> serde_json::Value {
        let mut object = serde_json::Map::with_capacity(1);
        object.insert(self.family.tag().to_owned(), self.family.to_json(self));
        serde_json::Value::Object(object)
    }

    /// Parses the form written by [`Self::to_json`], for a position of one of `families`.
    pub fn from_json(
        text: &str,
        families: &[&'static dyn PositionFamily],
    ) -> Result<Self, InvalidPosition> {
        Self::from_json_value(serde_json::from_str(text)?, families)
    }

    fn from_json_value(
        value: serde_json::Value,
        families: &[&'static dyn PositionFamily],
    ) -> Result<Self, InvalidPosition> {
        let serde_json::Value::Object(object) = value else {
            return Err(InvalidPosition("expected an object".into()));
        };
        let mut entries = object.into_iter();
        let (Some((tag, inner)), None) = (entries.next(), entries.next()) else {
            return Err(InvalidPosition(
                "expected an object with one key, the kind of position".into(),
            ));
        };
        let family = families
            .iter()
            .find(|f| f.tag() == tag)
            .ok_or_else(|| InvalidPosition(format!("no source here writes {tag:?} positions")))?;
        family.read_json(inner)
    }

    /// The position as fixed-width text whose byte order is the positions' order (see
    /// [`PositionFamily::sort_token`]).
    pub fn sort_token(&self) -> String {
        self.family.sort_token(self)
    }

    /// Debezium's offset object for this position, with `snapshot: true` inside a
    /// snapshot (as Debezium marks it) and `outflow_position`, the exact form.
    pub fn debezium_offset(&self) -> serde_json::Value {
        let mut object = self.family.debezium_offset(self);
        if self.snapshot {
            object.insert("snapshot".into(), serde_json::Value::Bool(true));
        }
        object.insert("outflow_position".into(), self.to_json_value());
        serde_json::Value::Object(object)
    }

    /// Reads an offset object: outflow's own position when it has one, else the
    /// Debezium fields of the first of `families` that knows them; `None` when it is
    /// neither, or when Debezium took it inside its initial snapshot (it cannot be
    /// continued: Debezium itself snapshots again from it).
    pub fn from_debezium_offset(
        value: &serde_json::Value,
        families: &[&'static dyn PositionFamily],
    ) -> Option<Self> {
        if let Some(own) = value.get("outflow_position") {
            return Self::from_json_value(own.clone(), families).ok();
        }
        if debezium_snapshot_unfinished(value) {
            return None;
        }
        families.iter().find_map(|f| f.read_debezium_offset(value))
    }
}

/// Whether a Debezium offset was taken during its initial snapshot, before the last row
/// (`snapshot` set, `last_snapshot_record` not; the fields every Debezium connector
/// writes): Debezium itself takes the snapshot again from such an offset, and streaming
/// from it would lose the rows not yet read, so no position is read from it.
fn debezium_snapshot_unfinished(offset: &serde_json::Value) -> bool {
    let snapshot = match offset.get("snapshot") {
        Some(serde_json::Value::Bool(b)) => *b,
        Some(serde_json::Value::String(s)) => !s.eq_ignore_ascii_case("false"),
        _ => false,
    };
    snapshot && offset.get("last_snapshot_record") != Some(&serde_json::Value::Bool(true))
}

impl fmt::Debug for SourcePosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_json())
    }
}

impl Ord for SourcePosition {
    fn cmp(&self, other: &Self) -> Ordering {
        // The same static family (data and vtable pointer) needs no tag comparison: the
        // common case, one connector's positions compared with each other.
        let same_family = std::ptr::eq(self.family, other.family);
        let by_family = if same_family {
            Ordering::Equal
        } else {
            self.family.tag().cmp(other.family.tag())
        };
        by_family
            .then_with(|| self.order.cmp(&other.order))
            .then_with(|| other.snapshot.cmp(&self.snapshot))
            .then_with(|| self.family.cmp_detail(self, other))
    }
}

impl PartialOrd for SourcePosition {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for SourcePosition {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for SourcePosition {}

impl std::hash::Hash for SourcePosition {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // Equal positions have equal tags, words and flags; the detail only breaks ties.
        self.family.tag().hash(state);
        self.order.hash(state);
        self.snapshot.hash(state);
    }
}

impl serde::Serialize for SourcePosition {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json_value().serialize(serializer)
    }
}

/// A family for tests and benchmarks that need positions but no database: one counter
/// (`{"sequence": {"n": 7}}`), snapshot rows before streamed ones at the same counter.
#[derive(Debug)]
pub struct SequenceFamily;

/// The one [`SequenceFamily`].
pub static SEQUENCE: SequenceFamily = SequenceFamily;

impl SequenceFamily {
    /// The position at counter `n`.
    pub fn at(n: u64, snapshot: bool) -> SourcePosition {
        SourcePosition::new(&SEQUENCE, [n, 0, 0, 0, 0], snapshot, None)
    }
}

impl PositionFamily for SequenceFamily {
    fn tag(&self) -> &'static str {
        "sequence"
    }

    fn to_json(&self, position: &SourcePosition) -> serde_json::Value {
        let mut object = serde_json::Map::new();
        object.insert("n".into(), position.order()[0].into());
        if position.is_snapshot() {
            object.insert("snapshot".into(), true.into());
        }
        serde_json::Value::Object(object)
    }

    fn read_json(&self, object: serde_json::Value) -> Result<SourcePosition, InvalidPosition> {
        let n = object
            .get("n")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| InvalidPosition("sequence position without n".into()))?;
        let snapshot = object
            .get("snapshot")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        Ok(Self::at(n, snapshot))
    }

    fn cmp_detail(&self, _: &SourcePosition, _: &SourcePosition) -> Ordering {
        Ordering::Equal
    }

    fn sort_token(&self, position: &SourcePosition) -> String {
        format!(
            "{:020}-{}",
            position.order()[0],
            u8::from(!position.is_snapshot())
        )
    }

    fn debezium_offset(
        &self,
        position: &SourcePosition,
    ) -> serde_json::Map<String, serde_json::Value> {
        let mut object = serde_json::Map::new();
        object.insert("n".into(), position.order()[0].into());
        object
    }

    fn read_debezium_offset(&self, offset: &serde_json::Value) -> Option<SourcePosition> {
        Some(Self::at(offset.get("n")?.as_u64()?, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug)]
    struct Named(String);
    impl PositionDetail for Named {}

    /// A second family with a detail, to check ordering across families and ties.
    #[derive(Debug)]
    struct NamedFamily;
    static NAMED: NamedFamily = NamedFamily;

    fn named(word: u64, name: &str) -> SourcePosition {
        SourcePosition::new(
            &NAMED,
            [word, 0, 0, 0, 0],
            false,
            Some(Arc::new(Named(name.into()))),
        )
    }

    impl PositionFamily for NamedFamily {
        fn tag(&self) -> &'static str {
            "named"
        }
        fn to_json(&self, p: &SourcePosition) -> serde_json::Value {
            let name = p.detail::<Named>().map(|n| n.0.clone()).unwrap_or_default();
            serde_json::json!({"w": p.order()[0], "name": name})
        }
        fn read_json(&self, o: serde_json::Value) -> Result<SourcePosition, InvalidPosition> {
            Ok(named(
                o["w"].as_u64().unwrap_or(0),
                o["name"].as_str().unwrap_or(""),
            ))
        }
        fn cmp_detail(&self, a: &SourcePosition, b: &SourcePosition) -> Ordering {
            let name = |p: &SourcePosition| p.detail::<Named>().map(|n| n.0.clone());
            name(a).cmp(&name(b))
        }
        fn sort_token(&self, p: &SourcePosition) -> String {
            format!("{:020}", p.order()[0])
        }
        fn debezium_offset(
            &self,
            p: &SourcePosition,
        ) -> serde_json::Map<String, serde_json::Value> {
            let mut m = serde_json::Map::new();
            m.insert("w".into(), p.order()[0].into());
            m
        }
        fn read_debezium_offset(&self, _: &serde_json::Value) -> Option<SourcePosition> {
            None
        }
    }

    const FAMILIES: &[&'static dyn PositionFamily] = &[&SEQUENCE, &NAMED];

    #[test]
    fn serialised_form_names_the_family() {
        assert_eq!(
            SequenceFamily::at(7, false).to_json(),
            r#"{"sequence":{"n":7}}"#
        );
        assert_eq!(
            SourcePosition::from_json(r#"{"sequence":{"n":7,"snapshot":true}}"#, FAMILIES).unwrap(),
            SequenceFamily::at(7, true)
        );
        for bad in [
            r#"{"other":{"n":1}}"#,
            r#"{}"#,
            r#"[1]"#,
            r#"{"sequence":{}}"#,
        ] {
            assert!(SourcePosition::from_json(bad, FAMILIES).is_err(), "{bad}");
        }
    }

    #[test]
    fn snapshot_rows_sort_first_and_details_break_ties() {
        assert!(SequenceFamily::at(5, true) < SequenceFamily::at(5, false));
        assert!(SequenceFamily::at(4, false) < SequenceFamily::at(5, true));
        assert!(named(1, "a") < named(1, "b"));
        assert_ne!(named(1, "a"), named(1, "b"));
        assert_eq!(
            named(1, "a").detail::<Named>().map(|n| n.0.as_str()),
            Some("a")
        );
        assert!(named(1, "a").detail::<Unrelated>().is_none());
    }

    #[derive(Debug)]
    struct Unrelated;
    impl PositionDetail for Unrelated {}

    fn any_position() -> impl Strategy<Value = SourcePosition> {
        prop_oneof![
            (any::<u64>(), any::<bool>()).prop_map(|(n, s)| SequenceFamily::at(n, s)),
            (0u64..4, "[ab]{1,2}").prop_map(|(w, name)| named(w, &name)),
        ]
    }

    proptest! {
        #[test]
        fn json_round_trip(p in any_position()) {
            prop_assert_eq!(SourcePosition::from_json(&p.to_json(), FAMILIES).unwrap(), p);
        }

        #[test]
        fn order_is_total_and_consistent(a in any_position(), b in any_position(), c in any_position()) {
            prop_assert_eq!(a.cmp(&b), b.cmp(&a).reverse());
            if a <= b && b <= c {
                prop_assert!(a <= c);
            }
            prop_assert_eq!(a.cmp(&b) == Ordering::Equal, a == b);
        }

        #[test]
        fn debezium_offsets_round_trip(p in any_position()) {
            prop_assert_eq!(SourcePosition::from_debezium_offset(&p.debezium_offset(), FAMILIES), Some(p));
        }
    }
}
