use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running `outflow serve`, killed on drop if a test fails before stopping it.
struct Daemon {
    child: Child,
    base: String,
    _data: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(extra_env: &[(&str, &str)]) -> Daemon {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_outflow"));
    command
        .arg("serve")
        .env("OUTFLOW_REST_LISTEN", format!("127.0.0.1:{port}"))
        .env("OUTFLOW_DATA_DIR", data.path())
        .current_dir(data.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in extra_env {
        command.env(k, v);
    }
    let child = command.spawn().unwrap();
    Daemon {
        child,
        base: format!("http://127.0.0.1:{port}"),
        _data: data,
    }
}

async fn wait_until_up(daemon: &mut Daemon) {
    let client = reqwest::Client::new();
    let up = outflow_testkit::wait_for(Duration::from_secs(30), || {
        let request = client.get(format!("{}/health", daemon.base)).send();
        async move { request.await.is_ok_and(|r| r.status().is_success()) }
    })
    .await;
    assert!(up, "outflow serve did not come up");
}

fn wait_exit(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn serve_answers_like_kafka_connect_and_stops_on_sigterm() {
    let mut daemon = start(&[]);
    wait_until_up(&mut daemon).await;
    let client = reqwest::Client::new();

    let root: Value = client
        .get(&daemon.base)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(root["version"], env!("CARGO_PKG_VERSION"));
    assert!(
        root["commit"].as_str().is_some_and(|c| !c.is_empty()),
        "{root}"
    );
    assert!(
        root.get("kafka_cluster_id").is_some_and(Value::is_null),
        "{root}"
    );

    let health: Value = client
        .get(format!("{}/health", daemon.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "healthy");

    let missing = client
        .get(format!("{}/no/such/path", daemon.base))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error_code"], 404);

    let wrong_method = client.delete(&daemon.base).send().await.unwrap();
    assert_eq!(wrong_method.status(), 405);

    // The OpenAPI document, and a body over the limit (413 in Connect's shape).
    let spec = client
        .get(format!("{}/openapi.yaml", daemon.base))
        .send()
        .await
        .unwrap();
    assert_eq!(spec.status(), 200);
    assert_eq!(spec.headers()["content-type"], "application/yaml");
    assert!(spec.text().await.unwrap().starts_with("openapi: 3"));
    let huge = client
        .post(format!("{}/connectors", daemon.base))
        .header("content-type", "application/json")
        .body(vec![b' '; 2 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), 413);
    let body: Value = huge.json().await.unwrap();
    assert_eq!(body["error_code"], 413);

    assert!(
        daemon._data.path().join(".lock").exists(),
        "state dir not created"
    );

    let status = Command::new("kill")
        .args(["-TERM", &daemon.child.id().to_string()])
        .status();
    assert!(status.unwrap().success());
    let exit = wait_exit(&mut daemon.child, Duration::from_secs(10)).expect("did not stop");
    assert!(exit.success(), "exit status {exit:?}");
}

#[tokio::test]
async fn rest_auth_when_configured() {
    let mut daemon = start(&[
        ("OUTFLOW_REST_AUTH", "bearer"),
        ("OUTFLOW_REST_TOKEN", "s3cret"),
    ]);
    let client = reqwest::Client::new();
    let up = outflow_testkit::wait_for(Duration::from_secs(30), || {
        let request = client.get(format!("{}/health", daemon.base)).send();
        async move { request.await.is_ok_and(|r| r.status() == 401) }
    })
    .await;
    assert!(up, "no 401 without a token");
    let ok = client
        .get(&daemon.base)
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let wrong = client
        .get(&daemon.base)
        .bearer_auth("guess")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let _ = daemon.child.kill();
}

#[test]
fn bad_worker_config_exits_2_naming_the_key() {
    let data = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_outflow"))
        .arg("serve")
        .env("OUTFLOW_DATA_DIR", data.path())
        .env("OUTFLOW_SINK", "carrier-pigeon")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("`sink`"), "{stderr}");
}

#[test]
fn second_daemon_on_the_same_data_dir_is_refused() {
    let daemon = start(&[]);
    let data = daemon._data.path().to_owned();
    // Wait until the first daemon serves (it takes the lock before it listens).
    let addr = daemon.base.trim_start_matches("http://").to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(&addr).is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = Command::new(env!("CARGO_BIN_EXE_outflow"))
        .arg("serve")
        .env("OUTFLOW_DATA_DIR", &data)
        .env("OUTFLOW_REST_LISTEN", format!("127.0.0.1:{}", free_port()))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("in use"));
}

#[test]
fn help_documents_the_subcommands() {
    let output = Command::new(env!("CARGO_BIN_EXE_outflow"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("serve") && help.contains("version"), "{help}");
}
