//! The token endpoint and bearer checks.

use super::*;

#[tokio::test]
async fn mock_token_endpoint_issues_bearer_tokens() {
    let server = start().await;
    let client = client();
    let creds = server.credentials();
    let answer: Value = client
        .post(format!("{}/auth/oauth2/token", server.base_url()))
        .basic_auth("demo-app-id", Some("demo-app-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["token_type"], "Bearer");
    assert_eq!(answer["expires_in"], 3600);
    assert!(answer["access_token"].as_str().unwrap().len() > 20);
    assert_eq!(creds.app_id().expose_secret(), "demo-app-id");
    let a = token(&server, &client).await;
    let b = token(&server, &client).await;
    assert_ne!(a, b, "every token is new");
    assert!(!server.base_url().ends_with('/'));
}

#[tokio::test]
async fn mock_token_endpoint_rejects_bad_requests_with_400_or_403_never_401() {
    let server = start().await;
    let client = client();
    let url = format!("{}/auth/oauth2/token", server.base_url());
    let grant = [("grant_type", "client_credentials")];
    let cases = [
        (
            "missing Authorization",
            client.post(&url).form(&grant),
            400,
            "invalid_request",
        ),
        (
            "wrong secret",
            client
                .post(&url)
                .basic_auth("demo-app-id", Some("wrong"))
                .form(&grant),
            403,
            "invalid_client",
        ),
        (
            "unknown app id",
            client
                .post(&url)
                .basic_auth("someone-else", Some("demo-app-secret"))
                .form(&grant),
            400,
            "invalid_client",
        ),
        (
            "bad grant",
            client
                .post(&url)
                .basic_auth("demo-app-id", Some("demo-app-secret"))
                .form(&[("grant_type", "password")]),
            400,
            "unsupported_grant_type",
        ),
        (
            "missing grant",
            client
                .post(&url)
                .basic_auth("demo-app-id", Some("demo-app-secret"))
                .form(&[("scope", "x")]),
            400,
            "invalid_request",
        ),
        (
            "JSON instead of a form",
            client
                .post(&url)
                .basic_auth("demo-app-id", Some("demo-app-secret"))
                .json(&json!({"grant_type": "client_credentials"})),
            400,
            "invalid_request",
        ),
        (
            "Bearer instead of Basic",
            client.post(&url).bearer_auth("x").form(&grant),
            400,
            "invalid_request",
        ),
    ];
    for (what, request, status, error) in cases {
        let r = request.send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{what}");
        let answer: Value = r.json().await.unwrap();
        assert_eq!(answer["error"], error, "{what}: {answer}");
        assert!(answer["error_description"].is_string(), "{what}");
    }
    assert_eq!(server.counters().token_requests, 7);
}

#[tokio::test]
async fn mock_api_paths_need_a_known_bearer_token() {
    let api = Api::new(start().await).await;
    let url = api.url("/v1/query/accounts");
    let none = api.client.get(&url).send().await.unwrap();
    assert_eq!(none.status(), 401);
    assert!(none.json::<Value>().await.unwrap()["message"].is_string());
    let unknown = api
        .client
        .get(&url)
        .bearer_auth("mock.not-issued")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 401);
    let body = body("2026-03-01", "2026-03-02", &[], &["impressions"], false);
    let unknown_post = api
        .client
        .post(api.url("/v1/query/accounts/3141592/campaigns/"))
        .bearer_auth("mock.not-issued")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown_post.status(), 401);
    assert_eq!(api.get("/v1/query/accounts").await.0, 200);
}

#[tokio::test]
async fn mock_revoked_tokens_are_answered_401() {
    let mut api = Api::new(start().await).await;
    assert_eq!(api.get("/v1/query/accounts").await.0, 200);
    api.server.revoke_tokens();
    let (status, text) = api.get("/v1/query/accounts").await;
    assert_eq!(status, 401);
    assert!(serde_json::from_str::<Value>(&text).unwrap()["message"].is_string());
    // A new token works; the admin endpoint revokes it too.
    api.token = token(&api.server, &api.client).await;
    assert_eq!(api.get("/v1/query/accounts").await.0, 200);
    let r = api
        .client
        .post(api.url("/__mock/revoke-tokens"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(api.get("/v1/query/accounts").await.0, 401);
}

#[tokio::test]
async fn mock_expired_tokens_are_answered_401() {
    let server = start().await;
    let client = client();
    // Tokens issued under this fault are expired the moment they are issued: no waiting.
    server.set_faults(Faults {
        token_lifetime_secs: Some(0),
        ..Faults::default()
    });
    let creds = server.credentials();
    let answer: Value = client
        .post(format!("{}/auth/oauth2/token", server.base_url()))
        .basic_auth(
            creds.app_id().expose_secret(),
            Some(creds.app_secret().expose_secret()),
        )
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["expires_in"], 0);
    let expired = answer["access_token"].as_str().unwrap();
    let r = client
        .get(format!("{}/v1/query/accounts", server.base_url()))
        .bearer_auth(expired)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.json::<Value>().await.unwrap()["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    // An early expiry is announced in expires_in, so a client can plan its renewal.
    server.set_faults(Faults {
        token_lifetime_secs: Some(1),
        ..Faults::default()
    });
    let short: Value = client
        .post(format!("{}/auth/oauth2/token", server.base_url()))
        .basic_auth("demo-app-id", Some("demo-app-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(short["expires_in"], 1);
    // Without the fault, tokens last their configured lifetime again.
    server.set_faults(Faults::default());
    let fresh = token(&server, &client).await;
    let r = client
        .get(format!("{}/v1/query/accounts", server.base_url()))
        .bearer_auth(fresh)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn mock_token_lifetime_is_configurable() {
    let server = MockServer::start(MockConfig {
        token_lifetime: Duration::from_secs(120),
        ..config()
    })
    .await
    .unwrap();
    let client = client();
    let answer: Value = client
        .post(format!("{}/auth/oauth2/token", server.base_url()))
        .basic_auth("demo-app-id", Some("demo-app-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["expires_in"], 120);
}
