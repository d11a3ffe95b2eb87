//! The decoder against what a real Postgres sends: every message the server produces for
//! a mixed workload decodes, with the values and tuple markers the workload implies.

use outflow_postgres::pgoutput::{ColumnData, Decoder, Message, OldTupleKind};
use outflow_testkit::postgres;

#[tokio::test]
async fn decodes_a_real_pgoutput_stream() {
    let _lab = crate::LAB.shared().await;
    let db = postgres().create_database("pgo").await;
    let client = db.connect().await;
    for statement in [
        "CREATE TABLE items (id int PRIMARY KEY, name text, note text)",
        // Stored out of line, uncompressed: an unchanged value is not sent on update.
        "ALTER TABLE items ALTER COLUMN note SET STORAGE EXTERNAL",
        "CREATE TABLE audit (id int, what text)",
        "ALTER TABLE audit REPLICA IDENTITY FULL",
        "CREATE PUBLICATION pub FOR ALL TABLES",
        &format!(
            "SELECT pg_create_logical_replication_slot('{}', 'pgoutput')",
            db.name()
        ),
        "INSERT INTO items VALUES (1, 'one', repeat('x', 10000)), (2, NULL, 'two')",
        "UPDATE items SET name = 'uno' WHERE id = 1",
        "UPDATE items SET id = 10 WHERE id = 2",
        "INSERT INTO audit VALUES (1, 'a')",
        "DELETE FROM audit WHERE id = 1",
        "DELETE FROM items WHERE id = 10",
        "SELECT pg_logical_emit_message(true, 'outflow', 'signal')",
        "TRUNCATE items",
    ] {
        client
            .batch_execute(statement)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    let rows = client
        .query(
            &format!(
                "SELECT data FROM pg_logical_slot_peek_binary_changes('{}', NULL, NULL, \
                 'proto_version', '1', 'publication_names', 'pub', 'messages', 'true')",
                db.name()
            ),
            &[],
        )
        .await
        .unwrap();
    let payloads: Vec<Vec<u8>> = rows.iter().map(|r| r.get(0)).collect();
    let mut decoder = Decoder::new();
    let messages: Vec<Message<'_>> = payloads
        .iter()
        .map(|p| decoder.decode(p).unwrap())
        .collect();

    let inserts: Vec<_> = messages
        .iter()
        .filter_map(|m| match m {
            Message::Insert { new, .. } => Some(new),
            _ => None,
        })
        .collect();
    assert_eq!(inserts.len(), 3);
    assert_eq!(inserts[0][0], ColumnData::Text(b"1"));
    assert!(matches!(inserts[0][2], ColumnData::Text(t) if t.len() == 10_000));
    assert_eq!(inserts[1][1], ColumnData::Null);

    let updates: Vec<_> = messages
        .iter()
        .filter_map(|m| match m {
            Message::Update { old, new, .. } => Some((old, new)),
            _ => None,
        })
        .collect();
    // Name changed, TOASTed note untouched: sent as unchanged, no old tuple (key unchanged).
    assert!(updates[0].0.is_none());
    assert!(
        matches!(updates[0].1[2], ColumnData::UnchangedToast),
        "TOASTed note was sent"
    );
    // Key changed: the old key is sent.
    let (kind, old) = updates[1].0.as_ref().unwrap();
    assert_eq!(*kind, OldTupleKind::Key);
    assert_eq!(old[0], ColumnData::Text(b"2"));

    let deletes: Vec<_> = messages
        .iter()
        .filter_map(|m| match m {
            Message::Delete { old, .. } => Some(old),
            _ => None,
        })
        .collect();
    assert_eq!(
        deletes[0].0,
        OldTupleKind::Full,
        "REPLICA IDENTITY FULL sends the whole row"
    );
    assert_eq!(
        deletes[0].1,
        vec![ColumnData::Text(b"1"), ColumnData::Text(b"a")]
    );
    assert_eq!(deletes[1].0, OldTupleKind::Key);

    assert!(messages.iter().any(|m| matches!(
        m,
        Message::LogicalMessage {
            prefix: "outflow",
            content: b"signal",
            transactional: true,
            ..
        }
    )));
    assert!(
        messages.iter().any(
            |m| matches!(m, Message::Truncate { relation_ids, .. } if relation_ids.len() == 1)
        )
    );
    let begins = messages
        .iter()
        .filter(|m| matches!(m, Message::Begin { .. }))
        .count();
    let commits = messages
        .iter()
        .filter(|m| matches!(m, Message::Commit { .. }))
        .count();
    assert_eq!(begins, commits);
    assert!(begins >= 8);
}
