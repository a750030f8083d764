//! Fault injection and the counters.

use super::*;

#[tokio::test]
async fn mock_fault_429_carries_retry_after() {
    let api = Api::new(start().await).await;
    api.server.set_faults(Faults {
        every_nth_429: Some(2),
        retry_after_secs: 7,
        ..Faults::default()
    });
    assert_eq!(api.get("/v1/query/accounts").await.0, 200);
    let r = api
        .client
        .get(api.url("/v1/query/accounts"))
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "7");
    assert_eq!(api.get("/v1/query/accounts").await.0, 200);
    assert_eq!(api.get("/v1/query/accounts").await.0, 429);
}

#[tokio::test]
async fn mock_faults_500_and_503() {
    let api = Api::new(start().await).await;
    api.server.set_faults(Faults {
        every_nth_500: Some(1),
        ..Faults::default()
    });
    let (status, text) = api.get("/v1/query/accounts").await;
    assert_eq!(status, 500);
    assert!(serde_json::from_str::<Value>(&text).unwrap()["message"].is_string());
    api.server.set_faults(Faults {
        every_nth_503: Some(1),
        ..Faults::default()
    });
    let b = body("2026-03-01", "2026-03-02", &[], &["impressions"], false);
    assert_eq!(
        api.post("/v1/query/accounts/3141592/campaigns/", &b)
            .await
            .0,
        503
    );
    // The token endpoint is never faulted, so a client can always renew.
    let _ = token(&api.server, &api.client).await;
}

#[tokio::test]
async fn mock_fault_malformed_json() {
    let api = Api::new(start().await).await;
    api.server.set_faults(Faults {
        every_nth_malformed: Some(1),
        ..Faults::default()
    });
    let b = body(
        "2026-03-01",
        "2026-03-02",
        &["campaign_id"],
        &["impressions"],
        true,
    );
    let (status, text) = api.post("/v1/query/accounts/3141592/campaigns/", &b).await;
    assert_eq!(status, 200);
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
}

#[tokio::test]
async fn mock_fault_dropped_connection() {
    let api = Api::new(start().await).await;
    api.server.set_faults(Faults {
        every_nth_drop: Some(2),
        ..Faults::default()
    });
    assert_eq!(api.get("/v1/query/accounts").await.0, 200);
    let dropped = api
        .client
        .get(api.url("/v1/query/accounts"))
        .bearer_auth(&api.token)
        .send()
        .await;
    let error = dropped.expect_err("the connection is closed without an answer");
    assert!(error.status().is_none(), "{error}");
    assert_eq!(api.get("/v1/query/accounts").await.0, 200);
    assert_eq!(api.server.counters().api_requests_by_status[&0], 1);
}

#[tokio::test]
async fn mock_fault_latency() {
    let api = Api::new(start().await).await;
    api.server.set_faults(Faults {
        latency_ms: 150,
        ..Faults::default()
    });
    let began = Instant::now();
    assert_eq!(api.get("/v1/query/accounts").await.0, 200);
    // A lower bound only: the answer cannot come before the injected delay.
    assert!(began.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn mock_faults_are_settable_over_http_and_at_start() {
    let server = MockServer::start(MockConfig {
        faults: Faults {
            every_nth_503: Some(1),
            ..Faults::default()
        },
        ..config()
    })
    .await
    .unwrap();
    let api = Api::new(server).await;
    assert_eq!(api.get("/v1/query/accounts").await.0, 503);
    let r = api
        .client
        .put(api.url("/__mock/faults"))
        .json(&json!({"every_nth_429": 1, "retry_after_secs": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, _) = api.get("/v1/query/accounts").await;
    assert_eq!(status, 429);
    let current: Value = api
        .client
        .get(api.url("/__mock/faults"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(current["every_nth_429"], 1);
    assert_eq!(current["every_nth_503"], Value::Null);
    assert_eq!(api.server.faults().retry_after_secs, 3);
    let bad = api
        .client
        .put(api.url("/__mock/faults"))
        .json(&json!({"every_nth_4299": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    api.client
        .put(api.url("/__mock/faults"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(api.get("/v1/query/accounts").await.0, 200);
    let state: Value = api
        .client
        .get(api.url("/__mock/state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["today"], TODAY);
}

#[tokio::test]
async fn mock_counts_what_it_served() {
    let api = Api::new(start().await).await;
    api.server.reset_counters();
    let _ = token(&api.server, &api.client).await;
    let b = body(
        "2026-03-01",
        "2026-03-03",
        &["campaign_id"],
        &["impressions"],
        true,
    );
    assert_eq!(
        api.campaigns("3141592", &b).await.len(),
        10,
        "two days of five campaigns"
    );
    api.post("/v1/query/accounts/3141592/campaigns/", &json!({}))
        .await;
    api.client
        .get(api.url("/v1/query/accounts"))
        .send()
        .await
        .unwrap();
    api.server.set_faults(Faults {
        every_nth_429: Some(1),
        ..Faults::default()
    });
    api.get("/v1/query/accounts").await;
    api.server.set_faults(Faults::default());
    let c = api.server.counters();
    assert_eq!(c.token_requests, 1);
    assert_eq!(c.api_requests, 4);
    assert_eq!(
        c.api_requests_by_status,
        BTreeMap::from([(200, 1), (400, 1), (401, 1), (429, 1)])
    );
    assert_eq!(c.rows_served, 10);
    assert_eq!(c.max_concurrent_requests, 1);

    // Concurrent requests overlap while each waits out the injected latency.
    api.server.set_faults(Faults {
        latency_ms: 300,
        ..Faults::default()
    });
    let (a, b, c) = tokio::join!(
        api.get("/v1/query/accounts"),
        api.get("/v1/query/accounts"),
        api.get("/v1/query/accounts")
    );
    assert_eq!(
        (a.0, b.0, c.0),
        (StatusCode::OK, StatusCode::OK, StatusCode::OK)
    );
    let max = api.server.counters().max_concurrent_requests;
    assert!((2..=3).contains(&max), "{max}");

    // Over HTTP too, and the admin API is not counted.
    let over_http: Value = api
        .client
        .get(api.url("/__mock/counters"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(over_http["api_requests"], 7);
    assert_eq!(over_http["api_requests_by_status"]["200"], 4);
    let r = api
        .client
        .post(api.url("/__mock/reset"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let zero = api.server.counters();
    assert_eq!(zero.api_requests, 0);
    assert_eq!(zero.token_requests, 0);
    assert!(zero.api_requests_by_status.is_empty());
}

#[tokio::test]
async fn mock_stops_when_asked() {
    let server = start().await;
    let addr = server.addr();
    server.stop().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn mock_a_row_cap_cuts_answers_short_and_they_still_look_whole() {
    let api = Api::new(start().await).await;
    let b = body(
        "2026-03-01",
        "2026-03-08",
        &["campaign_id", "creative_id"],
        &["impressions"],
        true,
    );
    let (status, whole) = api.post("/v1/query/accounts/3141592/campaigns/", &b).await;
    assert_eq!(status, 200);
    let whole: Value = serde_json::from_str(&whole).unwrap();
    let all = whole["data"].as_array().unwrap().len();
    assert!(all > 10, "{all} rows");

    // Set over HTTP, as a user of `rokt-export mock-api` would.
    let r = api
        .client
        .put(api.url("/__mock/faults"))
        .json(&json!({"row_cap": 10}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    api.client
        .post(api.url("/__mock/reset"))
        .send()
        .await
        .unwrap();
    let (status, cut) = api.post("/v1/query/accounts/3141592/campaigns/", &b).await;
    assert_eq!(status, 200);
    // Still one well-formed answer with the usual keys: nothing says rows are missing.
    let cut: Value = serde_json::from_str(&cut).unwrap();
    let rows = cut["data"].as_array().unwrap();
    assert_eq!(rows.len(), 10);
    assert_eq!(rows[..], whole["data"].as_array().unwrap()[..10]);
    let keys = |v: &Value| -> BTreeSet<String> { v.as_object().unwrap().keys().cloned().collect() };
    assert_eq!(keys(&cut), keys(&whole));
    assert_eq!(api.server.counters().rows_served, 10);
}
