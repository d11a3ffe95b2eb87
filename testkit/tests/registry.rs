use outflow_testkit::{registry, unique_name};
use serde_json::{Value, json};

async fn register(client: &reqwest::Client, base: &str, subject: &str, schema: &Value) -> u64 {
    let response = client
        .post(format!("{base}/subjects/{subject}/versions"))
        .header("Content-Type", "application/vnd.schemaregistry.v1+json")
        .json(&json!({ "schema": schema.to_string() }))
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "register: {}",
        response.status()
    );
    let body: Value = response.json().await.unwrap();
    body["id"].as_u64().unwrap()
}

#[tokio::test]
async fn registers_and_reads_back_two_versions() {
    let base = registry().url();
    let client = reqwest::Client::new();
    let subject = format!("{}-value", unique_name("smoke"));

    let v1 = json!({"type": "record", "name": "Item", "namespace": "smoke",
        "fields": [{"name": "id", "type": "int"}]});
    let v2 = json!({"type": "record", "name": "Item", "namespace": "smoke",
        "fields": [{"name": "id", "type": "int"},
                   {"name": "name", "type": ["null", "string"], "default": null}]});
    let id1 = register(&client, &base, &subject, &v1).await;
    let id2 = register(&client, &base, &subject, &v2).await;
    assert_ne!(id1, id2);
    // Registering the same schema again returns the same id.
    assert_eq!(register(&client, &base, &subject, &v2).await, id2);

    let versions: Value = client
        .get(format!("{base}/subjects/{subject}/versions"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(versions, json!([1, 2]));

    let latest: Value = client
        .get(format!("{base}/subjects/{subject}/versions/latest"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(latest["version"], 2);
    assert_eq!(latest["id"].as_u64(), Some(id2));
    let schema: Value = serde_json::from_str(latest["schema"].as_str().unwrap()).unwrap();
    assert_eq!(schema["fields"].as_array().map(Vec::len), Some(2));

    let by_id: Value = client
        .get(format!("{base}/schemas/ids/{id1}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let schema: Value = serde_json::from_str(by_id["schema"].as_str().unwrap()).unwrap();
    assert_eq!(schema["fields"].as_array().map(Vec::len), Some(1));
}
