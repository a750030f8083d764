//! The `mock-api` command.

use super::*;

#[tokio::test]
async fn mock_api_command_prints_its_url_and_serves_until_sigterm() {
    let mut child = Command::new(crate::helpers::binary())
        .args([
            "mock-api",
            "--port",
            "0",
            "--today",
            TODAY,
            "--accounts",
            "111,222",
            "--app-secret",
            "s3cret",
        ])
        .env_clear()
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The first line names the URL; it is printed only after the port is bound. The pipe is then
    // closed, which must not stop the server (it did once: println! panics on a closed stdout).
    let stdout = child.stdout.take().unwrap();
    let first = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
        line
    })
    .await
    .unwrap();
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("no URL in {first:?}"))
        .to_owned();
    let client = client();
    let answer: Value = client
        .post(format!("{url}/auth/oauth2/token"))
        .basic_auth("demo-app-id", Some("s3cret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = answer["access_token"].as_str().unwrap();
    let accounts: Vec<Value> = client
        .get(format!("{url}/v1/query/accounts"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(accounts.len(), 2);
    assert_eq!(accounts[1]["accountId"], "222");
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
}
