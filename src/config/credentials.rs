//! The Rokt app credentials: only ever from the environment, never from `jobs.toml`.
//!
//! Sources, for each of the app id and the app secret, in this order: the variable itself
//! (`ROKT_APP_ID`), a file named by `ROKT_APP_ID_FILE` (Kubernetes secret volumes), or a file of the
//! same name in `$CREDENTIALS_DIRECTORY` (systemd `LoadCredential=`). Setting both the variable and
//! its `_FILE` form is an error, because which one wins would be a guess.

use std::fmt;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};

use super::Env;

pub const ENV_APP_ID: &str = "ROKT_APP_ID";
pub const ENV_APP_SECRET: &str = "ROKT_APP_SECRET";
pub const ENV_CREDENTIALS_DIRECTORY: &str = "CREDENTIALS_DIRECTORY";

/// The app id and secret. `Debug` shows neither.
#[derive(Clone)]
pub struct Credentials {
    app_id: SecretString,
    app_secret: SecretString,
    source: CredentialSource,
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
    pub fn from_env(env: &Env) -> Result<Credentials, CredentialsError> {
        let (app_id, id_source) = read_one(env, ENV_APP_ID)?;
        let (app_secret, secret_source) = read_one(env, ENV_APP_SECRET)?;
        Ok(Credentials {
            app_id,
            app_secret,
            source: CredentialSource {
                app_id: id_source,
                app_secret: secret_source,
            },
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
        }
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

fn read_one(env: &Env, var: &'static str) -> Result<(SecretString, String), CredentialsError> {
    let file_var = format!("{var}_FILE");
    let direct = env.get(var);
    let file = env.get(&file_var);
    let (value, source) = match (direct, file) {
        (Some(_), Some(_)) => return Err(CredentialsError::Ambiguous { var }),
        (Some(v), None) => (v.to_owned(), var.to_owned()),
        (None, Some(path)) => (
            read_file(var, Path::new(path))?,
            format!("{file_var} ({path})"),
        ),
        (None, None) => match env.get(ENV_CREDENTIALS_DIRECTORY) {
            Some(dir) if Path::new(dir).join(var).is_file() => {
                let path = Path::new(dir).join(var);
                (
                    read_file(var, &path)?,
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

fn read_file(var: &'static str, path: &Path) -> Result<String, CredentialsError> {
    std::fs::read_to_string(path).map_err(|e| CredentialsError::Unreadable {
        var,
        path: path.to_owned(),
        reason: e.to_string(),
    })
}
