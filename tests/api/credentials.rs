//! Credentials come only from the environment, files it names, or $CREDENTIALS_DIRECTORY; they are
//! never printed.

use rokt_export::config::{Config, Credentials, CredentialsError, Env};
use secrecy::ExposeSecret;

#[test]
fn from_environment_variables() {
    let env = Env::default()
        .with("ROKT_APP_ID", "id-1")
        .with("ROKT_APP_SECRET", "secret-1");
    let c = Credentials::from_env(&env).unwrap();
    assert_eq!(c.app_id().expose_secret(), "id-1");
    assert_eq!(c.app_secret().expose_secret(), "secret-1");
    assert_eq!(c.source().to_string(), "ROKT_APP_ID and ROKT_APP_SECRET");
}

#[test]
fn from_files_named_by_file_variables() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("id"), "id-2\n").unwrap();
    std::fs::write(dir.path().join("secret"), "secret-2\r\n").unwrap();
    let env = Env::default()
        .with("ROKT_APP_ID_FILE", dir.path().join("id").to_str().unwrap())
        .with(
            "ROKT_APP_SECRET_FILE",
            dir.path().join("secret").to_str().unwrap(),
        );
    let c = Credentials::from_env(&env).unwrap();
    assert_eq!(c.app_id().expose_secret(), "id-2");
    assert_eq!(
        c.app_secret().expose_secret(),
        "secret-2",
        "the trailing newline is not part of it"
    );
    assert!(c.source().to_string().contains("ROKT_APP_SECRET_FILE"));
}

#[test]
fn from_the_systemd_credentials_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ROKT_APP_ID"), "id-3").unwrap();
    std::fs::write(dir.path().join("ROKT_APP_SECRET"), "secret-3").unwrap();
    let env = Env::default().with("CREDENTIALS_DIRECTORY", dir.path().to_str().unwrap());
    let c = Credentials::from_env(&env).unwrap();
    assert_eq!(c.app_secret().expose_secret(), "secret-3");
    assert_eq!(
        c.source().to_string(),
        "$CREDENTIALS_DIRECTORY/ROKT_APP_ID and $CREDENTIALS_DIRECTORY/ROKT_APP_SECRET"
    );
    // The variable wins over the directory.
    let env = env.with("ROKT_APP_SECRET", "secret-env");
    assert_eq!(
        Credentials::from_env(&env)
            .unwrap()
            .app_secret()
            .expose_secret(),
        "secret-env"
    );
}

#[test]
fn missing_credentials_name_the_variables() {
    let err = Credentials::from_env(&Env::default()).unwrap_err();
    assert!(matches!(
        err,
        CredentialsError::Missing { var: "ROKT_APP_ID" }
    ));
    let text = err.to_string();
    assert!(
        text.contains("ROKT_APP_ID_FILE") && text.contains("CREDENTIALS_DIRECTORY"),
        "{text}"
    );

    let err = Credentials::from_env(&Env::default().with("ROKT_APP_ID", "x")).unwrap_err();
    assert!(err.to_string().contains("ROKT_APP_SECRET"), "{err}");
}

#[test]
fn ambiguous_empty_and_unreadable_sources_are_errors() {
    let env = Env::default()
        .with("ROKT_APP_ID", "x")
        .with("ROKT_APP_ID_FILE", "/tmp/x")
        .with("ROKT_APP_SECRET", "y");
    assert!(matches!(
        Credentials::from_env(&env),
        Err(CredentialsError::Ambiguous { .. })
    ));

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("empty"), "\n").unwrap();
    let env = Env::default().with("ROKT_APP_ID", "x").with(
        "ROKT_APP_SECRET_FILE",
        dir.path().join("empty").to_str().unwrap(),
    );
    assert!(matches!(
        Credentials::from_env(&env),
        Err(CredentialsError::Empty { .. })
    ));

    let env = Env::default()
        .with("ROKT_APP_ID", "x")
        .with("ROKT_APP_SECRET_FILE", "/nonexistent/secret");
    let err = Credentials::from_env(&env).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/secret"), "{err}");
}

#[test]
fn debug_and_display_never_show_the_secret() {
    let env = Env::default()
        .with("ROKT_APP_ID", "appid-VISIBLE-NOT")
        .with("ROKT_APP_SECRET", "s3cr3t-VALUE")
        .with("DATABASE_URL", "postgres://rokt:db-PASSWORD@db/rokt");
    let c = Credentials::from_env(&env).unwrap();
    let shown = format!("{c:?} {}", c.source());
    assert!(
        !shown.contains("s3cr3t-VALUE") && !shown.contains("appid-VISIBLE-NOT"),
        "{shown}"
    );

    let (_dir, path) = crate::helpers::config_file(crate::helpers::MINIMAL_JOB);
    let config = Config::load(&path, &env).unwrap();
    let shown = format!("{config:?} {}", config.database.url);
    assert!(!shown.contains("db-PASSWORD"), "{shown}");
    assert!(!shown.contains("s3cr3t-VALUE"), "{shown}");
}

#[test]
fn validate_reports_where_credentials_come_from_without_values() {
    let out = crate::helpers::run_binary(
        &[
            "--config",
            crate::helpers::shipped_config().to_str().unwrap(),
            "validate",
        ],
        &[("ROKT_APP_ID", "id-XYZ"), ("ROKT_APP_SECRET", "secret-XYZ")],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout.contains("credentials from ROKT_APP_ID and ROKT_APP_SECRET"),
        "{stdout}"
    );
    assert!(!stdout.contains("XYZ"), "{stdout}");
}

#[cfg(unix)]
#[test]
fn credential_files_must_be_small_regular_files() {
    // Issue 19, item 4: `ROKT_APP_SECRET_FILE=/dev/zero` read until memory ran out.
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big");
    std::fs::write(&big, "x".repeat(4097)).unwrap();
    let fits = dir.path().join("fits");
    std::fs::write(&fits, format!("{}\n", "y".repeat(4095))).unwrap();
    std::fs::set_permissions(&fits, std::fs::Permissions::from_mode(0o600)).unwrap();
    let with_secret_file = |path: &str| {
        Credentials::from_env(
            &Env::default()
                .with("ROKT_APP_ID", "id")
                .with("ROKT_APP_SECRET_FILE", path),
        )
    };

    for (path, says) in [
        ("/dev/zero", "not a regular file"),
        (dir.path().to_str().unwrap(), "not a regular file"),
        (big.to_str().unwrap(), "4097 bytes"),
    ] {
        let err = with_secret_file(path).unwrap_err();
        assert!(
            matches!(
                err,
                CredentialsError::Unreadable {
                    var: "ROKT_APP_SECRET",
                    ..
                }
            ),
            "{path}: {err:?}"
        );
        let text = err.to_string();
        assert!(text.contains(says) && text.contains(path), "{text}");
    }
    let c = with_secret_file(fits.to_str().unwrap()).unwrap();
    assert_eq!(c.app_secret().expose_secret().len(), 4095);
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());

    // The systemd directory is held to the same rule.
    let creds = tempfile::tempdir().unwrap();
    std::fs::write(creds.path().join("ROKT_APP_ID"), "id").unwrap();
    std::os::unix::fs::symlink("/dev/zero", creds.path().join("ROKT_APP_SECRET")).unwrap();
    let env = Env::default().with("CREDENTIALS_DIRECTORY", creds.path().to_str().unwrap());
    let err = Credentials::from_env(&env).unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
}

#[cfg(unix)]
#[test]
fn a_credential_file_others_can_read_is_used_with_a_warning() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let id = dir.path().join("id");
    let secret = dir.path().join("secret");
    std::fs::write(&id, "id-5").unwrap();
    std::fs::write(&secret, "secret-5").unwrap();
    // The id is group-readable, but the group is this process's own (as Kubernetes' fsGroup
    // makes a secret volume): no warning. The secret is readable by everyone.
    std::fs::set_permissions(&id, std::fs::Permissions::from_mode(0o440)).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let env = Env::default()
        .with("ROKT_APP_ID_FILE", id.to_str().unwrap())
        .with("ROKT_APP_SECRET_FILE", secret.to_str().unwrap());

    let c = Credentials::from_env(&env).unwrap();

    assert_eq!(c.app_secret().expose_secret(), "secret-5");
    assert_eq!(c.warnings().len(), 1, "{:?}", c.warnings());
    let warning = &c.warnings()[0];
    assert!(warning.contains("ROKT_APP_SECRET"), "{warning}");
    assert!(
        warning.contains("0644") && warning.contains("other users"),
        "{warning}"
    );
    assert!(warning.contains(secret.to_str().unwrap()), "{warning}");
    assert!(!warning.contains("secret-5"), "{warning}");
}
