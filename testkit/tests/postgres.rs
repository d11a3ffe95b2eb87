use outflow_testkit::postgres;

#[tokio::test]
async fn logical_decoding_with_pgoutput_is_on() {
    let server = postgres();
    assert_ne!(
        server.port(),
        5432,
        "must never be the machine's own server"
    );
    let db = server.create_database("smoke").await;
    let client = db.connect().await;

    let wal_level: String = client
        .query_one("SHOW wal_level", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(wal_level, "logical");

    // One statement per call: a multi-statement query is one implicit transaction, and a
    // slot cannot be created in a transaction that wrote.
    for statement in [
        "CREATE TABLE items (id int PRIMARY KEY, name text)",
        "CREATE PUBLICATION smoke_pub FOR TABLE items",
        "SELECT pg_create_logical_replication_slot('smoke_slot', 'pgoutput')",
        "INSERT INTO items VALUES (1, 'one'), (2, 'two')",
        "UPDATE items SET name = 'uno' WHERE id = 1",
        "DELETE FROM items WHERE id = 2",
    ] {
        client.batch_execute(statement).await.unwrap();
    }

    let rows = client
        .query(
            "SELECT data FROM pg_logical_slot_peek_binary_changes('smoke_slot', NULL, NULL, \
             'proto_version', '1', 'publication_names', 'smoke_pub')",
            &[],
        )
        .await
        .unwrap();
    // pgoutput message tags: Begin, Relation, Insert, Update, Delete, Commit.
    let tags: Vec<char> = rows
        .iter()
        .map(|r| r.get::<_, Vec<u8>>(0))
        .filter_map(|data| data.first().map(|b| char::from(*b)))
        .collect();
    for tag in ['B', 'R', 'I', 'U', 'D', 'C'] {
        assert!(tags.contains(&tag), "no {tag:?} message in {tags:?}");
    }
    assert_eq!(tags.iter().filter(|t| **t == 'I').count(), 2, "{tags:?}");
}

#[tokio::test]
async fn each_test_gets_its_own_database() {
    let a = postgres().create_database("iso").await;
    let b = postgres().create_database("iso").await;
    assert_ne!(a.name(), b.name());
    a.connect()
        .await
        .batch_execute("CREATE TABLE only_in_a (x int)")
        .await
        .unwrap();
    let found: i64 = b
        .connect()
        .await
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(found, 0);
}

/// The lab runs the major `OUTFLOW_PG_VERSION` names, else the newest installed (18 in
/// CI), and says so truthfully.
#[tokio::test]
async fn the_server_is_the_version_asked_for() {
    let server = postgres();
    let db = server.create_database("version").await;
    let number: String = db
        .connect()
        .await
        .query_one("SHOW server_version_num", &[])
        .await
        .unwrap()
        .get(0);
    let major = number.parse::<u32>().unwrap() / 10_000;
    assert_eq!(major, server.major_version());
    match std::env::var("OUTFLOW_PG_VERSION") {
        Ok(wanted) if !wanted.trim().is_empty() => {
            assert_eq!(major.to_string(), wanted.trim());
        }
        _ => assert!(
            major >= 18,
            "the default is the newest installed, got {major}"
        ),
    }
    eprintln!("PostgreSQL {number}");
}
