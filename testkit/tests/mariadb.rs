use mysql_async::Row;
use mysql_async::prelude::Queryable;
use outflow_testkit::mariadb;

#[tokio::test]
async fn row_binlog_with_full_metadata_and_gtids() {
    let server = mariadb();
    assert_ne!(
        server.port(),
        3306,
        "must never be the machine's own server"
    );
    let db = server.create_database("smoke").await;
    let mut conn = db.connect().await;

    let settings: Vec<(String, String)> = conn
        .query(
            "SELECT VARIABLE_NAME, VARIABLE_VALUE FROM information_schema.GLOBAL_VARIABLES \
             WHERE VARIABLE_NAME IN ('LOG_BIN', 'BINLOG_FORMAT', 'BINLOG_ROW_IMAGE', \
             'BINLOG_ROW_METADATA', 'GTID_STRICT_MODE') ORDER BY VARIABLE_NAME",
        )
        .await
        .unwrap();
    let expected = [
        ("BINLOG_FORMAT", "ROW"),
        ("BINLOG_ROW_IMAGE", "FULL"),
        ("BINLOG_ROW_METADATA", "FULL"),
        ("GTID_STRICT_MODE", "ON"),
        ("LOG_BIN", "ON"),
    ];
    let got: Vec<(&str, &str)> = settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(got, expected);

    conn.query_drop("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20))")
        .await
        .unwrap();
    conn.query_drop("INSERT INTO items VALUES (1, 'one'), (2, 'two')")
        .await
        .unwrap();
    conn.query_drop("UPDATE items SET name = 'uno' WHERE id = 1")
        .await
        .unwrap();

    let (file,): (String,) = conn
        .query_first("SHOW MASTER STATUS")
        .await
        .unwrap()
        .map(|row: Row| (row.get::<String, _>(0).unwrap(),))
        .unwrap();
    let events: Vec<Row> = conn
        .query(format!("SHOW BINLOG EVENTS IN '{file}'"))
        .await
        .unwrap();
    let types: Vec<String> = events
        .iter()
        .map(|r| r.get::<String, _>("Event_type").unwrap())
        .collect();
    for kind in [
        "Gtid",
        "Table_map",
        "Write_rows_v1",
        "Update_rows_v1",
        "Xid",
    ] {
        assert!(
            types.iter().any(|t| t == kind),
            "no {kind} event in {types:?}"
        );
    }
    let gtid: String = conn
        .query_first("SELECT @@gtid_binlog_pos")
        .await
        .unwrap()
        .unwrap();
    assert!(gtid.starts_with("0-1-"), "gtid position {gtid:?}");
}
