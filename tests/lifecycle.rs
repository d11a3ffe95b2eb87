//! The connector lifecycle through the REST API, every endpoint's success and error
//! cases: expand, pause/resume, restart, stop, delete (which releases the slot), 404s
//! for unknown connectors, the plugin list.

use std::time::Duration;

use outflow_testkit::{postgres, unique_name, wait_for};
use serde_json::{Value, json};

use crate::connectors::{Api, free_port, sigterm, start_with, up};

/// Durable inserts of `public.t` per the metrics.
async fn inserts(api: &Api, connector: &str) -> u64 {
    let text = api
        .client
        .get(format!("{}/metrics", api.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix = format!(
        "outflow_table_events_total{{connector=\"{connector}\",table=\"public.t\",op=\"c\"}} "
    );
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |n| n.trim().parse().unwrap_or(0))
}

async fn state(api: &Api, name: &str) -> (String, Value) {
    let (_, status) = api.get(&format!("/connectors/{name}/status")).await;
    (
        status["connector"]["state"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        status["tasks"].clone(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_restart_stop_delete_and_their_errors() {
    let db = postgres().create_database("life").await;
    let admin = db.connect().await;
    admin
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY)")
        .await
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let daemon = start_with(data.path(), free_port(), &[]);
    up(&daemon).await;
    let api = Api::new(&daemon.base);
    let name = "life";
    let body = json!({"name": name, "config": {
        "connector.class": "postgres",
        "database.hostname": "127.0.0.1",
        "database.port": db.server().port(),
        "database.user": "postgres",
        "database.dbname": db.name(),
        "topic.prefix": unique_name("life"),
        "slot.name": db.name(),
        "flush.interval.ms": "100",
    }});
    assert_eq!(api.send(api.post("/connectors").json(&body)).await.0, 201);
    let put = |path: &str| api.client.put(format!("{}{path}", api.base));

    // ?expand=status&expand=info (Kafka Connect's repeated form) and the comma form.
    for query in ["?expand=status&expand=info", "?expand=info,status"] {
        let (code, expanded) = api.get(&format!("/connectors{query}")).await;
        assert_eq!(code, 200);
        assert_eq!(expanded[name]["status"]["name"], name, "{expanded}");
        assert_eq!(expanded[name]["info"]["type"], "source", "{expanded}");
    }
    // The slot is in use once the connector streams.
    let slot_active = || async {
        admin
            .query_one(
                "SELECT coalesce(bool_or(active), false) FROM pg_replication_slots WHERE slot_name = $1",
                &[&db.name()],
            )
            .await
            .unwrap()
            .get::<_, bool>(0)
    };
    assert!(
        wait_for(Duration::from_secs(30), &slot_active).await,
        "slot never active"
    );
    admin
        .batch_execute("INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    assert!(
        wait_for(Duration::from_secs(30), || async {
            inserts(&api, name).await == 1
        })
        .await
    );

    // Pause: 202, PAUSED, the slot released; resume: 202, what was written meanwhile arrives.
    assert_eq!(
        api.send(put(&format!("/connectors/{name}/pause"))).await.0,
        202
    );
    // 202 is Accepted: the state follows (Kafka Connect's contract too).
    let paused = wait_for(Duration::from_secs(30), || async {
        let (connector_state, tasks) = state(&api, name).await;
        connector_state == "PAUSED" && tasks[0]["state"] == "PAUSED"
    })
    .await;
    let (connector_state, tasks) = state(&api, name).await;
    assert!(
        paused,
        "not PAUSED: connector {connector_state}, tasks {tasks}"
    );
    assert!(wait_for(Duration::from_secs(30), || async { !slot_active().await }).await);
    admin
        .batch_execute("INSERT INTO t VALUES (2)")
        .await
        .unwrap();
    assert_eq!(
        api.send(put(&format!("/connectors/{name}/resume"))).await.0,
        202
    );
    assert!(
        wait_for(Duration::from_secs(30), || async {
            inserts(&api, name).await == 2
        })
        .await
    );
    assert_eq!(state(&api, name).await.0, "RUNNING");

    // Restart: 204, from the durable position (nothing delivered twice).
    let restart = api.post(&format!("/connectors/{name}/restart"));
    assert_eq!(api.send(restart).await.0, 204);
    admin
        .batch_execute("INSERT INTO t VALUES (3)")
        .await
        .unwrap();
    assert!(
        wait_for(Duration::from_secs(30), || async {
            inserts(&api, name).await == 3
        })
        .await
    );

    // Stop: 202, STOPPED with no tasks.
    assert_eq!(
        api.send(put(&format!("/connectors/{name}/stop"))).await.0,
        202
    );
    let stopped = wait_for(Duration::from_secs(30), || async {
        let (connector_state, tasks) = state(&api, name).await;
        connector_state == "STOPPED" && tasks == json!([])
    })
    .await;
    let (connector_state, tasks) = state(&api, name).await;
    assert!(
        stopped,
        "not STOPPED: connector {connector_state}, tasks {tasks}"
    );

    // Unknown connectors: 404 in Connect's shape, for every per-connector endpoint.
    for (method, path) in [
        ("GET", "/connectors/nope"),
        ("GET", "/connectors/nope/config"),
        ("PUT", "/connectors/nope/pause"),
        ("PUT", "/connectors/nope/resume"),
        ("PUT", "/connectors/nope/stop"),
        ("POST", "/connectors/nope/restart"),
        ("GET", "/connectors/nope/tasks"),
        ("GET", "/connectors/nope/topics"),
        ("GET", "/connectors/nope/offsets"),
        ("DELETE", "/connectors/nope/offsets"),
        ("DELETE", "/connectors/nope"),
    ] {
        let request = api
            .client
            .request(method.parse().unwrap(), format!("{}{path}", api.base));
        let (code, body) = api.send(request).await;
        assert_eq!(
            (code, &body["error_code"]),
            (404, &json!(404)),
            "{method} {path}"
        );
    }
    // Wrong shapes: 400.
    assert_eq!(
        api.send(api.post("/connectors").json(&json!({"name": "x"})))
            .await
            .0,
        400
    );
    assert_eq!(
        api.send(api.post("/connectors").json(&json!([1, 2])))
            .await
            .0,
        400
    );
    let (_, plugins) = api.get("/connector-plugins").await;
    let classes: Vec<&str> = plugins
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["class"].as_str())
        .collect();
    assert_eq!(
        classes,
        [
            "io.debezium.connector.postgresql.PostgresConnector",
            "io.debezium.connector.mysql.MySqlConnector",
            "io.debezium.connector.mariadb.MariaDbConnector"
        ]
    );

    // Delete: 204; gone; its state removed (a new connector of that name starts afresh).
    let delete = api.client.delete(format!("{}/connectors/{name}", api.base));
    assert_eq!(api.send(delete).await.0, 204);
    assert_eq!(api.get(&format!("/connectors/{name}")).await.0, 404);
    assert_eq!(api.get("/connectors").await.1, json!([]));
    assert!(!slot_active().await);
    let mut daemon = daemon;
    sigterm(daemon.child.id());
    let _ = daemon.child.wait();
}

/// `POST /connectors` with Kafka Connect's `initial_state` (KIP-980) and outflow's
/// `offsets` (how `outflow migrate` hands a Debezium connector over): the connector is
/// stored in that state at that offset; a bad state or offset is a 400 naming it, and
/// nothing is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_in_a_state_at_an_offset() {
    let data = tempfile::tempdir().unwrap();
    let daemon = start_with(data.path(), free_port(), &[]);
    up(&daemon).await;
    let api = Api::new(&daemon.base);
    let config = |prefix: &str| {
        json!({
            "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
            "database.hostname": "127.0.0.1",
            "database.port": 1,
            "database.user": "postgres",
            "database.dbname": "nowhere",
            "topic.prefix": prefix,
        })
    };
    let offset = json!({"offsets": [{"partition": {"server": "moved"}, "offset": {
        "lsn_proc": 4096, "lsn_commit": 4000, "lsn": 4096, "txId": 700, "messageType": "INSERT"
    }}]});
    let body = json!({"name": "moved", "config": config("moved"), "initial_state": "STOPPED",
                      "offsets": offset});
    let (code, created) = api.send(api.post("/connectors").json(&body)).await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(state(&api, "moved").await.0, "STOPPED");
    let (code, offsets) = api.get("/connectors/moved/offsets").await;
    assert_eq!(code, 200);
    let stored = &offsets["offsets"][0]["offset"];
    assert_eq!(
        (&stored["lsn_commit"], &stored["lsn"], &stored["txId"]),
        (&json!(4000), &json!(4096), &json!(700)),
        "{offsets}"
    );

    let refused = [
        (
            json!({"name": "a", "config": config("a"), "initial_state": "SLEEPING"}),
            "initial_state",
        ),
        (
            json!({"name": "b", "config": config("b"), "offsets": offset}),
            "offsets",
        ),
        (
            json!({"name": "c", "config": config("c"), "offsets": {"offsets": [{
                "partition": {"server": "c"},
                "offset": {"lsn": 4096, "snapshot": true, "last_snapshot_record": false},
            }]}}),
            "initial snapshot",
        ),
    ];
    for (body, named) in refused {
        let (code, error) = api.send(api.post("/connectors").json(&body)).await;
        assert_eq!(code, 400, "{error}");
        assert!(
            error["message"].as_str().unwrap().contains(named),
            "{error}"
        );
        let (code, _) = api
            .get(&format!("/connectors/{}", body["name"].as_str().unwrap()))
            .await;
        assert_eq!(code, 404, "a refused connector was created");
    }
}
