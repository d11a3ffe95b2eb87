//! The REST API over HTTPS (`rest.tls.cert` + `rest.tls.key`) with bearer-token auth: a
//! client that trusts the test CA gets in with the token and is refused without it; a
//! plain-HTTP client and a client that does not trust the CA get nowhere; a key that does
//! not load stops `outflow serve` with a message naming the properties.

use std::time::Duration;

use outflow_testkit::{TestCertificates, wait_for};

use crate::connectors::{binary, free_port, start_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_bearer_token() {
    let certificates = TestCertificates::new();
    let (cert, key) = certificates.server();
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let _daemon = start_with(
        data.path(),
        port,
        &[
            ("OUTFLOW_REST_TLS_CERT", cert.as_str()),
            ("OUTFLOW_REST_TLS_KEY", key.as_str()),
            ("OUTFLOW_REST_AUTH", "bearer"),
            ("OUTFLOW_REST_TOKEN", "t0ken-for-tests"),
        ],
    );
    let ca = reqwest::Certificate::from_pem(&std::fs::read(certificates.ca()).unwrap()).unwrap();
    let trusted = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .unwrap();
    // The certificate names `localhost`.
    let base = format!("https://localhost:{port}");
    let up = wait_for(Duration::from_secs(30), || {
        let request = trusted
            .get(format!("{base}/connectors"))
            .bearer_auth("t0ken-for-tests")
            .send();
        async move { request.await.is_ok_and(|r| r.status() == 200) }
    })
    .await;
    assert!(up, "no answer over HTTPS");
    let refused = trusted
        .get(format!("{base}/connectors"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let body: serde_json::Value = trusted
        .get(format!("{base}/connectors"))
        .bearer_auth("t0ken-for-tests")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body, serde_json::json!([]));

    // Plain HTTP on the HTTPS port, and HTTPS without trusting the CA: no answer.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/connectors"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(
        plain.is_err() || plain.as_ref().is_ok_and(|r| r.status() != 200),
        "{plain:?}"
    );
    let untrusted = reqwest::Client::new()
        .get(format!("{base}/connectors"))
        .send()
        .await;
    assert!(untrusted.is_err(), "{untrusted:?}");
    // The server still serves after those.
    let again = trusted
        .get(format!("{base}/connectors"))
        .bearer_auth("t0ken-for-tests")
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
}

#[test]
fn a_key_that_does_not_load_stops_serve_naming_the_properties() {
    let certificates = TestCertificates::new();
    let (cert, _) = certificates.server();
    let data = tempfile::tempdir().unwrap();
    // The CA's certificate is no key.
    let output = std::process::Command::new(binary())
        .arg("serve")
        .env("OUTFLOW_DATA_DIR", data.path())
        .env("OUTFLOW_REST_LISTEN", format!("127.0.0.1:{}", free_port()))
        .env("OUTFLOW_REST_TLS_CERT", &cert)
        .env("OUTFLOW_REST_TLS_KEY", certificates.ca())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("rest.tls.key"), "{text}");
}
