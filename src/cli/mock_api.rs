//! `rokt-export mock-api`: serves the simulated Rokt API on 127.0.0.1 until SIGINT or SIGTERM.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::MockApiArgs;
use super::exit::Exit;
use crate::mock::{MockConfig, MockServer};

/// The simulation's settings from the command line.
fn mock_config(args: &MockApiArgs) -> MockConfig {
    let mut config = MockConfig {
        app_id: args.app_id.clone(),
        app_secret: args.app_secret.clone(),
        campaigns_per_account: args.campaigns,
        creatives_per_campaign: args.creatives,
        token_lifetime: Duration::from_secs(args.token_lifetime_secs),
        seed: args.seed,
        ..MockConfig::default()
    };
    if !args.accounts.is_empty() {
        config.accounts = args.accounts.clone();
    }
    if let Some(today) = args.today {
        config.today = today;
    }
    config
}

/// Serves until a stop signal. The first line on stdout names the base URL
/// (`... http://127.0.0.1:PORT ...`), so a script or test started with `--port 0` can read where
/// to connect.
pub(super) async fn mock_api(args: &MockApiArgs) -> Result<(), Exit> {
    let config = mock_config(args);
    let stop = super::signals::stop_signal()
        .map_err(|e| Exit::failed(format!("cannot install the SIGTERM/SIGINT handlers: {e}")))?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
    let server = MockServer::start_on(config.clone(), addr)
        .await
        .map_err(|e| {
            Exit::new(
                super::exit::UNAVAILABLE,
                format!("the simulated Rokt API cannot listen on {addr}: {e}"),
            )
        })?;
    let url = server.base_url();
    let mut banner = format!(
        "Simulated Rokt API listening on {url} (today {}, accounts {})\n",
        config.today,
        config.accounts.join(", ")
    );
    banner.push_str(&format!(
        "Point rokt-export at it with:\n  \
         export ROKT_API_BASE_URL={url}\n  \
         export ROKT_APP_ID={}\n  \
         export ROKT_APP_SECRET={}\n\
         Admin API (not part of Rokt's):\n  \
         GET     {url}/__mock/state\n  \
         GET|PUT {url}/__mock/faults      e.g. curl -X PUT -d '{{\"every_nth_429\": 3}}' {url}/__mock/faults\n  \
         GET     {url}/__mock/counters\n  \
         POST    {url}/__mock/reset\n  \
         POST    {url}/__mock/revoke-tokens\n  \
         POST    {url}/__mock/advance?days=1\n\
         Stop with Ctrl-C.\n",
        config.app_id, config.app_secret
    ));
    // Not println!: a reader that closed our stdout after the first line must not stop the server.
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(banner.as_bytes());
        let _ = out.flush();
    }
    stop.await;
    server.stop().await;
    Ok(())
}
