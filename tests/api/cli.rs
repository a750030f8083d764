//! The command-line surface: help on every level, exit codes, the two forms of run-now.

use crate::helpers::run_binary;

#[test]
fn help_lists_every_command() {
    let out = run_binary(&["--help"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for command in [
        "run", "run-now", "validate", "migrate", "status", "demo", "mock-api", "discover",
    ] {
        assert!(
            help.contains(&format!("  {command} ")),
            "missing {command}:\n{help}"
        );
    }
    for flag in [
        "--config",
        "--log-format",
        "--run-now",
        "--from",
        "--to",
        "--account",
    ] {
        assert!(help.contains(flag), "missing {flag}:\n{help}");
    }
    for command in [
        "run", "run-now", "validate", "migrate", "status", "demo", "mock-api", "discover",
    ] {
        let out = run_binary(&[command, "--help"], &[]);
        assert_eq!(out.status.code(), Some(0), "{command} --help");
    }
}

#[test]
fn bad_arguments_are_usage_errors() {
    let out = run_binary(&["--run-now", "x", "--from", "2025-02-30"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a calendar day"));

    let out = run_binary(&["--from", "2025-01-01"], &[]);
    assert_eq!(out.status.code(), Some(2), "--from needs --run-now");

    let out = run_binary(
        &["run-now", "x", "--from", "2025-02-01", "--to", "2025-01-01"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is after --to"));

    let out = run_binary(&["--run-now", "x", "validate"], &[]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn json_logs_are_available() {
    let out = run_binary(
        &[
            "--log-format",
            "json",
            "--config",
            "/nonexistent.toml",
            "validate",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(78));
    let out = run_binary(&["--log-format", "yaml", "validate"], &[]);
    assert_eq!(out.status.code(), Some(2));
}
