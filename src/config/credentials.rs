//! The Rokt app credentials: only ever from the environment, never from `jobs.toml`.
//!
//! Sources, for each of the app id and the app secret, in this order: the variable itself
//! (`ROKT_APP_ID`), a file named by `ROKT_APP_ID_FILE` (Kubernetes secret volumes), or a file of the
//! same name in `$CREDENTIALS_DIRECTORY` (systemd `LoadCredential=`). Setting both the variable and
//! its `_FILE` form is an error, because which one wins would be a guess.
//!
//! A credential file must be a regular file (not `/dev/zero`, a FIFO or a directory) of at most
//! [`MAX_CREDENTIAL_FILE_BYTES`]; one that other users may read (or a group other than the
//! process's own) is used, with a warning (logged, and kept in [`Credentials::warnings`]).

use std::fmt;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};

use super::Env;

pub const ENV_APP_ID: &str = "ROKT_APP_ID";
pub const ENV_APP_SECRET: &str = "ROKT_APP_SECRET";
pub const ENV_CREDENTIALS_DIRECTORY: &str = "CREDENTIALS_DIRECTORY";

/// The largest credential file read. An app id or secret is tens of bytes; a bound keeps a
/// variable pointed at the wrong file (a log, `/dev/zero`) from eating memory.
pub const MAX_CREDENTIAL_FILE_BYTES: u64 = 4096;

/// The app id and secret. `Debug` shows neither.
#[derive(Clone)]
pub struct Credentials {
    app_id: SecretString,
    app_secret: SecretString,
    source: CredentialSource,
    warnings: Vec<String>,
}

/// Where the credentials came from, in words an operator can act on (no values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialSource {
    pub app_id: String,
    pub app_secret: String,
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.app_id == self.app_secret {
            write!(f, "{}", self.app_id)
        } else {
            write!(f, "{} and {}", self.app_id, self.app_secret)
        }
    }
}

/// Why the credentials could not be read. Maps to exit code 78.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error(
        "no Rokt app credentials: set {var} (or {var}_FILE to a file holding it, or put a file named {var} in $CREDENTIALS_DIRECTORY); \
         the app id and secret come from Rokt One Platform"
    )]
    Missing { var: &'static str },
    #[error("both {var} and {var}_FILE are set; set only one of them")]
    Ambiguous { var: &'static str },
    #[error("cannot read {var} from {}: {reason}", path.display())]
    Unreadable {
        var: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("{var} is empty (read from {source_name})")]
    Empty {
        var: &'static str,
        source_name: String,
    },
}

impl Credentials {
    /// Reads both credentials from `env` (and the files it names).
    /// Each warning (a credential file readable by others) is logged at WARN as it is found.
    pub fn from_env(env: &Env) -> Result<Credentials, CredentialsError> {
        let mut warnings = Vec::new();
        let (app_id, id_source) = read_one(env, ENV_APP_ID, &mut warnings)?;
        let (app_secret, secret_source) = read_one(env, ENV_APP_SECRET, &mut warnings)?;
        Ok(Credentials {
            app_id,
            app_secret,
            source: CredentialSource {
                app_id: id_source,
                app_secret: secret_source,
            },
            warnings,
        })
    }

    /// Credentials given directly (the simulated API's demo credentials, tests).
    pub fn new(app_id: &str, app_secret: &str) -> Credentials {
        Credentials {
            app_id: app_id.to_owned().into(),
            app_secret: app_secret.to_owned().into(),
            source: CredentialSource {
                app_id: "the built-in demo app id".into(),
                app_secret: "the built-in demo app secret".into(),
            },
            warnings: Vec::new(),
        }
    }

    /// What was found questionable while reading them (a credential file that its group or
    /// other users may read), in words an operator can act on.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    pub fn app_id(&self) -> &SecretString {
        &self.app_id
    }

    pub fn app_secret(&self) -> &SecretString {
        &self.app_secret
    }

    /// Which variables or files the credentials came from, for error messages.
    pub fn source(&self) -> &CredentialSource {
        &self.source
    }

    /// The value of an HTTP Basic `Authorization` header for the token endpoint. This is the one
    /// place the secret is exposed.
    pub fn basic_authorization(&self) -> SecretString {
        use base64::Engine as _;
        let raw = format!(
            "{}:{}",
            self.app_id.expose_secret(),
            self.app_secret.expose_secret()
        );
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
        .into()
    }

    /// Every form in which the credentials travel (the app id, the secret, `id:secret` and its
    /// base64, the Basic value), for the API client to cut from server messages that may echo
    /// a request's headers. Only `api::token` calls it.
    pub fn echoable_forms(&self) -> Vec<SecretString> {
        use base64::Engine as _;
        let raw = format!(
            "{}:{}",
            self.app_id.expose_secret(),
            self.app_secret.expose_secret()
        );
        let encoded = base64::engine::general_purpose::STANDARD.encode(&raw);
        vec![
            self.app_id.clone(),
            self.app_secret.clone(),
            raw.into(),
            encoded.into(),
        ]
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("app_id", &"[REDACTED]")
            .field("app_secret", &"[REDACTED]")
            .field("source", &self.source)
            .finish()
    }
}

fn read_one(
    env: &Env,
    var: &'static str,
    warnings: &mut Vec<String>,
) -> Result<(SecretString, String), CredentialsError> {
    let file_var = format!("{var}_FILE");
    let direct = env.get(var);
    let file = env.get(&file_var);
    let (value, source) = match (direct, file) {
        (Some(_), Some(_)) => return Err(CredentialsError::Ambiguous { var }),
        (Some(v), None) => (v.to_owned(), var.to_owned()),
        (None, Some(path)) => (
            read_file(var, Path::new(path), warnings)?,
            format!("{file_var} ({path})"),
        ),
        (None, None) => match env.get(ENV_CREDENTIALS_DIRECTORY) {
            // Anything by that name is the credential: one that is not a regular file is an
            // error that says so, not a silent "missing".
            Some(dir) if Path::new(dir).join(var).exists() => {
                let path = Path::new(dir).join(var);
                (
                    read_file(var, &path, warnings)?,
                    format!("$CREDENTIALS_DIRECTORY/{var}"),
                )
            }
            _ => return Err(CredentialsError::Missing { var }),
        },
    };
    // Files written by editors and `echo` end in a newline that is not part of the secret.
    let value = value.trim_end_matches(['\n', '\r']).to_owned();
    if value.trim().is_empty() {
        return Err(CredentialsError::Empty {
            var,
            source_name: source,
        });
    }
    Ok((value.into(), source))
}

/// Reads a credential file: a regular file of at most [`MAX_CREDENTIAL_FILE_BYTES`], checked
/// before it is opened (opening a FIFO would block) and again on the open file (it may have been
/// replaced in between); the read itself stops one byte past the bound.
fn read_file(
    var: &'static str,
    path: &Path,
    warnings: &mut Vec<String>,
) -> Result<String, CredentialsError> {
    use std::io::Read as _;
    let unreadable = |reason: String| CredentialsError::Unreadable {
        var,
        path: path.to_owned(),
        reason,
    };
    let check = |meta: &std::fs::Metadata| {
        if !meta.is_file() {
            Err(unreadable(
                "not a regular file (a credential file holds the value itself)".into(),
            ))
        } else if meta.len() > MAX_CREDENTIAL_FILE_BYTES {
            Err(unreadable(format!(
                "{} bytes, more than the {MAX_CREDENTIAL_FILE_BYTES} a credential file may have",
                meta.len()
            )))
        } else {
            Ok(())
        }
    };
    check(&std::fs::metadata(path).map_err(|e| unreadable(e.to_string()))?)?;
    let file = std::fs::File::open(path).map_err(|e| unreadable(e.to_string()))?;
    let meta = file.metadata().map_err(|e| unreadable(e.to_string()))?;
    check(&meta)?;
    if let Some(warning) = readable_by_others(var, path, &meta) {
        tracing::warn!("{warning}");
        warnings.push(warning);
    }
    let mut bytes = Vec::new();
    file.take(MAX_CREDENTIAL_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| unreadable(e.to_string()))?;
    if bytes.len() as u64 > MAX_CREDENTIAL_FILE_BYTES {
        return Err(unreadable(format!(
            "more than the {MAX_CREDENTIAL_FILE_BYTES} bytes a credential file may have"
        )));
    }
    String::from_utf8(bytes).map_err(|_| unreadable("not valid UTF-8".into()))
}

/// A warning when other users may read the file, or its group may and that group is not the
/// process's own. A Kubernetes secret volume with `fsGroup` is group-readable by design (the
/// kubelet turns `defaultMode: 0400` into 0440, group `fsGroup`, which is the pod's own group), so
/// it is not warned about; a file readable by a group of other users is.
#[cfg(unix)]
fn readable_by_others(var: &str, path: &Path, meta: &std::fs::Metadata) -> Option<String> {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let mode = meta.permissions().mode() & 0o777;
    who_else_reads(mode, meta.gid(), own_group()).map(|who| {
        format!(
            "the file holding {var} ({}) has mode {mode:04o}: {who} can read it; make it readable \
             by this service's user only (chmod 0400 or 0600; on Kubernetes `defaultMode: 0400` \
             on the secret volume)",
            path.display(),
        )
    })
}

/// Who besides the owner may read a file of `mode` whose group is `file_group`, for a process
/// whose own group is `own_group`: "other users", "its group", or nobody.
#[cfg_attr(not(unix), allow(dead_code))]
fn who_else_reads(mode: u32, file_group: u32, own_group: Option<u32>) -> Option<&'static str> {
    if mode & 0o004 != 0 {
        Some("other users")
    } else if mode & 0o040 != 0 && own_group != Some(file_group) {
        Some("its group")
    } else {
        None
    }
}

/// The process's effective group, as the owner of `/proc/self` shows it (Linux); `None` elsewhere.
#[cfg(unix)]
fn own_group() -> Option<u32> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").ok().map(|m| m.gid())
}

#[cfg(not(unix))]
fn readable_by_others(_: &str, _: &Path, _: &std::fs::Metadata) -> Option<String> {
    None
}

#[cfg(test)]
mod tests {
    use super::who_else_reads;

    #[test]
    fn a_file_is_warned_about_when_others_or_a_foreign_group_can_read_it() {
        // Owner only.
        assert_eq!(who_else_reads(0o400, 10, Some(20)), None);
        assert_eq!(who_else_reads(0o600, 10, Some(20)), None);
        // Group-readable by the process's own group (Kubernetes' fsGroup): fine.
        assert_eq!(who_else_reads(0o440, 20, Some(20)), None);
        // Group-readable by another group, or when the own group is not known.
        assert_eq!(who_else_reads(0o440, 10, Some(20)), Some("its group"));
        assert_eq!(who_else_reads(0o640, 10, None), Some("its group"));
        // Everyone: said as such, whatever the group.
        assert_eq!(who_else_reads(0o644, 20, Some(20)), Some("other users"));
        assert_eq!(who_else_reads(0o404, 10, Some(20)), Some("other users"));
    }
}
