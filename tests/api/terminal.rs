//! What a person sees of a `--run-now`: the built binary runs under a pseudo-terminal (rustix's
//! pty), against the simulated API and a test Postgres; what it printed is rendered by a terminal
//! emulator (vt100) and the screen is checked: log lines whole and above the bars, the bars gone
//! at the end, the summary table there. Piped, the same run prints plain lines only.

use std::io::Read as _;
use std::num::NonZeroU16;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::process::{Command, ExitStatus, Stdio};

use chrono::{Days, NaiveDate, Utc};
use rokt_export::mock::{Faults, MockConfig, MockServer};

use crate::helpers::{TestDb, binary, config_file};

/// Two accounts, one day per window: a backfill of N days is 2N windows.
const JOBS: &str = r#"
[defaults]
timezone = "UTC"
currency = "USD"
window_days = 1

[[jobs]]
name = "campaign_daily"
schedule = "15 5 * * *"
accounts = ["3141592", "2718281"]
report = "campaigns"
dimensions = ["campaign_id"]
metrics = ["impressions", "gross_cost"]
"#;

const ACCOUNTS: [&str; 2] = ["3141592", "2718281"];

/// The terminal's size: tall enough that nothing scrolls away, so the final screen holds the
/// whole session.
const ROWS: u16 = 300;
const COLS: u16 = 110;

fn days_ago(n: u64) -> NaiveDate {
    Utc::now()
        .date_naive()
        .checked_sub_days(Days::new(n))
        .unwrap()
}

/// What a run printed (stdout and stderr, interleaved as the terminal got them) and its end.
struct Captured {
    bytes: Vec<u8>,
    status: ExitStatus,
}

impl Captured {
    /// The screen after the run, as text: one line per terminal line (wrapped lines joined).
    fn screen(&self) -> String {
        let mut parser = vt100::Parser::new(
            NonZeroU16::new(ROWS).unwrap(),
            NonZeroU16::new(COLS).unwrap(),
            0,
        );
        parser.process(&self.bytes);
        parser.screen().contents()
    }

    /// Whether some line of the screen, at some moment of the run, matched `line`: the bytes
    /// are rendered a few at a time, and each screen on the way is looked at.
    fn ever_showed(&self, line: impl Fn(&str) -> bool) -> bool {
        let mut parser = vt100::Parser::new(
            NonZeroU16::new(ROWS).unwrap(),
            NonZeroU16::new(COLS).unwrap(),
            0,
        );
        self.bytes.chunks(64).any(|chunk| {
            parser.process(chunk);
            parser.screen().rows(0, COLS).any(|row| line(&row))
        })
    }

    fn raw(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// Runs the binary with its stdin, stdout and stderr on the terminal end of a new
/// pseudo-terminal of [`ROWS`] x [`COLS`], with a clean environment plus `env`.
fn run_on_a_terminal(args: &[String], env: &[(String, String)]) -> Captured {
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    use rustix::termios::{Winsize, tcsetwinsize};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).unwrap();
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    tcsetwinsize(
        &master,
        Winsize {
            ws_row: ROWS,
            ws_col: COLS,
            ws_xpixel: 0,
            ws_ypixel: 0,
        },
    )
    .unwrap();
    let name = ptsname(&master, Vec::new()).unwrap();
    let terminal = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(rustix::fs::OFlags::NOCTTY.bits() as i32)
        .open(std::ffi::OsStr::from_bytes(name.as_bytes()))
        .unwrap();
    let mut cmd = Command::new(binary());
    cmd.args(args)
        .env_clear()
        .stdin(Stdio::from(terminal.try_clone().unwrap()))
        .stdout(Stdio::from(terminal.try_clone().unwrap()))
        .stderr(Stdio::from(terminal));
    if let Ok(path) = std::env::var("PATH") {
        cmd.env("PATH", path);
    }
    cmd.env("TERM", "xterm-256color");
    for (k, v) in env {
        cmd.env(k, v);
    }
    // Read while the child writes (a full terminal buffer would stop it); the read ends with EIO
    // once the last holder of the terminal end (the child) is gone.
    let mut screen = std::fs::File::from(master);
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match screen.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        bytes
    });
    let mut child = cmd.spawn().unwrap();
    drop(cmd); // our copies of the terminal end
    let status = child.wait().unwrap();
    let bytes = reader.join().unwrap();
    Captured { bytes, status }
}

/// The same, with stdout and stderr piped (a file, journald, CI): one buffer, stdout first.
fn run_piped(args: &[String], env: &[(String, String)]) -> Captured {
    let mut cmd = Command::new(binary());
    cmd.args(args).env_clear().env("TERM", "xterm-256color");
    if let Ok(path) = std::env::var("PATH") {
        cmd.env("PATH", path);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let mut bytes = out.stdout;
    bytes.extend_from_slice(&out.stderr);
    Captured {
        bytes,
        status: out.status,
    }
}

/// A test's database, simulated API and config file, and the command line of a backfill of the
/// `days` days before today.
struct Setup {
    db: TestDb,
    mock: MockServer,
    _dir: tempfile::TempDir,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

async fn setup(days: u64, faults: Faults) -> Setup {
    let db = TestDb::new().await;
    let mock = MockServer::start(MockConfig {
        today: Utc::now().date_naive(),
        faults,
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let (dir, path) = config_file(JOBS);
    let args = [
        "--config",
        path.to_str().unwrap(),
        "--run-now",
        "campaign_daily",
        "--from",
        &days_ago(days).to_string(),
        "--to",
        &days_ago(1).to_string(),
    ]
    .map(str::to_owned)
    .to_vec();
    let env = [
        ("DATABASE_URL", db.url.clone()),
        ("ROKT_API_BASE_URL", mock.base_url()),
        ("ROKT_APP_ID", "demo-app-id".to_owned()),
        ("ROKT_APP_SECRET", "demo-app-secret".to_owned()),
    ]
    .map(|(k, v)| (k.to_owned(), v))
    .to_vec();
    Setup {
        db,
        mock,
        _dir: dir,
        args,
        env,
    }
}

impl Setup {
    async fn run(
        &self,
        on_terminal: bool,
        extra_args: &[&str],
        extra_env: &[(&str, &str)],
    ) -> Captured {
        let mut args = self.args.clone();
        args.extend(extra_args.iter().map(|s| (*s).to_owned()));
        let mut env = self.env.clone();
        env.extend(
            extra_env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        tokio::task::spawn_blocking(move || {
            if on_terminal {
                run_on_a_terminal(&args, &env)
            } else {
                run_piped(&args, &env)
            }
        })
        .await
        .unwrap()
    }

    async fn rows_stored(&self, account: &str) -> i64 {
        let pool = self.db.pool().await;
        sqlx::query_scalar("SELECT count(*) FROM rokt.campaign_daily WHERE account_id = $1")
            .bind(account)
            .fetch_one(&pool)
            .await
            .unwrap()
    }
}

/// `2026-12-01T21:45:27.718645Z ...`: a text log line's start.
fn starts_with_timestamp(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 20
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
}

/// Every line that holds a log record starts with its timestamp (nothing was drawn before it on
/// its line), and holds one record only.
fn assert_log_lines_whole(screen: &str) {
    for line in screen.lines() {
        let records = [" INFO ", " WARN ", " ERROR ", " DEBUG "]
            .iter()
            .map(|level| line.matches(level).count())
            .sum::<usize>();
        if records == 0 {
            continue;
        }
        assert!(
            starts_with_timestamp(line) && records == 1,
            "a log line was cut or overwritten: {line:?}\nscreen:\n{screen}"
        );
    }
}

/// No progress bar is left on the screen.
fn assert_no_bar(screen: &str) {
    for line in screen.lines() {
        assert!(
            !line.contains("ETA") && !line.contains("=>") && !line.contains("rows/s"),
            "a progress bar was left on the screen: {line:?}\nscreen:\n{screen}"
        );
    }
}

/// The summary table's rows: account -> (windows column, rows received, written, deleted,
/// warnings).
fn summary_table(screen: &str) -> Vec<(String, String, u64, u64, u64, u64)> {
    let mut lines = screen.lines().skip_while(|l| {
        l.split_whitespace().collect::<Vec<_>>()
            != [
                "account", "windows", "rows", "received", "written", "deleted", "warnings",
            ]
    });
    assert!(
        lines.next().is_some(),
        "no summary table on the screen:\n{screen}"
    );
    lines
        .map_while(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            if cells.len() != 6 {
                return None;
            }
            let n = |i: usize| cells[i].parse::<u64>().ok();
            Some((
                cells[0].to_owned(),
                cells[1].to_owned(),
                n(2)?,
                n(3)?,
                n(4)?,
                n(5)?,
            ))
        })
        .collect()
}

// Multi-threaded: the simulated API runs in this process and keeps serving while the test waits
// for the child.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_on_a_terminal_shows_bars_keeps_log_lines_whole_and_ends_with_a_table() {
    // A window fails (its answer is not JSON): a warning is logged while the bars are drawn.
    let s = setup(
        8,
        Faults {
            latency_ms: 20,
            every_nth_malformed: Some(6),
            ..Faults::default()
        },
    )
    .await;
    let out = s.run(true, &[], &[]).await;
    let (raw, screen) = (out.raw(), out.screen());
    assert_eq!(out.status.code(), Some(1), "{screen}");
    assert_log_lines_whole(&screen);

    // The bars were on the screen (percent, windows, rows, rows/s, an ETA), one per account
    // side by side below the job's, and are gone from the final screen.
    assert!(
        out.ever_showed(|l| {
            l.starts_with("campaign_daily [")
                && l.contains("% ")
                && l.contains("/16 windows, ")
                && l.contains(" rows/s, ETA ")
        }),
        "no bar for the job:\n{raw:?}"
    );
    for account in ACCOUNTS {
        assert!(
            out.ever_showed(|l| l.starts_with(&format!("  {account}"))
                && l.contains("% ")
                && l.contains("/8 windows, ")),
            "no bar for account {account}:\n{raw:?}"
        );
    }
    assert_no_bar(&screen);

    // Quiet by default: no line per window, but the warning of the failed window, whole.
    assert!(!screen.contains("window loaded"), "{screen}");
    assert!(
        screen
            .lines()
            .any(|l| l.contains(" WARN ") && l.contains("window failed")),
        "{screen}"
    );

    // The summary: a row per account and a total, its numbers those in the database; the
    // failed windows' errors below.
    let table = summary_table(&screen);
    assert_eq!(table.len(), 3, "{screen}");
    let mut received = 0;
    for account in ACCOUNTS {
        let row = table
            .iter()
            .find(|r| r.0 == account)
            .unwrap_or_else(|| panic!("no row for {account}:\n{screen}"));
        let stored = u64::try_from(s.rows_stored(account).await).unwrap();
        assert_eq!((row.2, row.3, row.4), (stored, stored, 0), "{screen}");
        received += row.2;
    }
    let total = table.iter().find(|r| r.0 == "total").unwrap();
    assert!(total.1.ends_with("/16"), "{screen}");
    assert_eq!(total.2, received);
    assert!(
        screen
            .lines()
            .any(|l| l.trim_start().starts_with("failed: account")),
        "{screen}"
    );
    s.mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verbose_or_rust_log_on_a_terminal_print_each_window_above_the_bars() {
    let s = setup(
        10,
        Faults {
            latency_ms: 20,
            ..Faults::default()
        },
    )
    .await;
    let out = s.run(true, &["-v"], &[("NO_COLOR", "1")]).await;
    let (raw, screen) = (out.raw(), out.screen());
    assert_eq!(out.status.code(), Some(0), "{screen}");
    assert!(
        out.ever_showed(|l| l.starts_with("campaign_daily [") && l.contains("rows/s")),
        "no bar was drawn:\n{raw:?}"
    );
    // Every window's line, each whole on its own line: none lost, none cut by a bar.
    let loaded = screen
        .lines()
        .filter(|l| l.contains("window loaded"))
        .count();
    assert_eq!(loaded, 20, "{screen}");
    assert_log_lines_whole(&screen);
    assert_no_bar(&screen);
    assert_eq!(summary_table(&screen).len(), 3, "{screen}");
    // NO_COLOR: no colour or style (SGR) sequence anywhere, bars included.
    assert!(!has_sgr(&out.bytes), "{raw:?}");

    // RUST_LOG says what to log, on a terminal too: the same days again, a line per window.
    let out = s.run(true, &[], &[("RUST_LOG", "info")]).await;
    let screen = out.screen();
    assert_eq!(out.status.code(), Some(0), "{screen}");
    let loaded = screen
        .lines()
        .filter(|l| l.contains("window loaded"))
        .count();
    assert_eq!(loaded, 20, "{screen}");
    assert_log_lines_whole(&screen);
    s.mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn piped_output_is_plain_lines_one_per_window() {
    let s = setup(
        5,
        Faults {
            every_nth_malformed: Some(4),
            ..Faults::default()
        },
    )
    .await;
    let out = s.run(false, &[], &[]).await;
    let text = out.raw();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(!text.contains('\r'), "a carriage return: {text:?}");
    assert!(!text.contains('\x1b'), "an escape code: {text:?}");
    let loaded = text.lines().filter(|l| l.contains("window loaded")).count();
    let failed = text.lines().filter(|l| l.contains("window failed")).count();
    assert!(loaded > 0 && failed > 0, "{text}");
    assert_log_lines_whole(&text);
    assert_eq!(summary_table(&text).len(), 3, "{text}");
    s.mock.stop().await;
}

/// Whether `bytes` hold a Select Graphic Rendition sequence (`ESC [ ... m`: colour, bold, ...).
fn has_sgr(bytes: &[u8]) -> bool {
    bytes.windows(2).enumerate().any(|(i, w)| {
        w == b"\x1b["
            && bytes[i + 2..]
                .iter()
                .find(|b| !(b.is_ascii_digit() || **b == b';'))
                == Some(&b'm')
    })
}
