//! [`ApiError`]: why an API call failed, and what that means for the caller (retry later, the API
//! is unavailable, the operator must fix the configuration).

use super::http_error;
use super::token::AuthError;

/// Why an API call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// No token could be had.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The API refused the request (a 4xx other than 429, a 401 to every fresh token, or a
    /// redirect); retrying will not help.
    #[error("{endpoint} answered HTTP {status}: {message}{}", status_hint(*status))]
    Status {
        status: u16,
        endpoint: String,
        /// The API's own words (from `message`, `error`, `error_description`, `detail` or `errors`).
        message: String,
    },
    /// Every attempt failed with a transient error (429, 5xx, timeout, reset).
    #[error("{endpoint} failed {attempts} times; the last failure: {last}")]
    RetriesExhausted {
        endpoint: String,
        attempts: u32,
        last: String,
    },
    /// The answer is not the JSON expected.
    #[error("{endpoint} returned malformed JSON at line {line}, column {column}: {message}")]
    MalformedJson {
        endpoint: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// The request could not be sent for a reason retrying cannot fix (an invalid URL, a TLS
    /// failure such as a certificate that does not verify, an answer that is not HTTP).
    #[error("{endpoint}: {message}")]
    Transport { endpoint: String, message: String },
    /// rokt-export refused the request or its answer: a path that would leave its endpoint, an
    /// account id that is not one, an answer larger than `[api] max_body_bytes`.
    #[error("{endpoint}: {message}")]
    Refused { endpoint: String, message: String },
    /// The HTTP client could not be built (TLS set-up).
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

impl ApiError {
    /// Whether the same request may succeed later. The client has already spent its retries when
    /// it returns an error, so this is for the caller's next run, not for an immediate retry.
    pub fn is_retriable(&self) -> bool {
        match self {
            ApiError::Auth(e) => e.is_retriable(),
            ApiError::RetriesExhausted { .. } => true,
            ApiError::Status { status, .. } => http_error::is_retriable_status(*status),
            ApiError::MalformedJson { .. }
            | ApiError::Transport { .. }
            | ApiError::Refused { .. }
            | ApiError::Client(_) => false,
        }
    }

    /// Whether the API (or its token endpoint) stayed unreachable after retries.
    pub fn is_unavailable(&self) -> bool {
        match self {
            ApiError::Auth(e) => e.is_unavailable(),
            ApiError::RetriesExhausted { .. } => true,
            _ => false,
        }
    }

    /// Whether the operator must fix the credentials or `[api]` before this can work: rejected
    /// credentials, a token endpoint that is not one, an unusable token URL (see
    /// [`AuthError::is_config`]). Never true together with [`ApiError::is_unavailable`].
    pub fn is_config(&self) -> bool {
        matches!(self, ApiError::Auth(e) if e.is_config())
    }
}

/// What a status may mean beyond the API's words, appended to [`ApiError::Status`].
fn status_hint(status: u16) -> &'static str {
    match status {
        // AWS API Gateway, in front of the API, answers an unknown path or method 403 ("Missing
        // Authentication Token") rather than 404, even with a valid token.
        403 => {
            " (with a valid token, a 403 means either that the path or method is wrong: the API's \
             gateway answers an unknown path 403 \"Missing Authentication Token\"; or that these \
             credentials may not read this account)"
        }
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_classification() {
        let exhausted = ApiError::RetriesExhausted {
            endpoint: "GET /x".into(),
            attempts: 3,
            last: "HTTP 503".into(),
        };
        assert!(exhausted.is_retriable() && exhausted.is_unavailable());
        let status = ApiError::Status {
            status: 400,
            endpoint: "GET /x".into(),
            message: "bad".into(),
        };
        assert!(!status.is_retriable() && !status.is_unavailable() && !status.is_config());
        assert!(!exhausted.is_config());
        let rejected = ApiError::Auth(AuthError::Rejected {
            status: 403,
            code: "invalid_client".into(),
            message: String::new(),
            credentials: "ROKT_APP_ID and ROKT_APP_SECRET".into(),
        });
        assert!(rejected.is_config() && !rejected.is_unavailable() && !rejected.is_retriable());
        let wrong_path = ApiError::Auth(AuthError::Unexpected {
            status: 404,
            url: "http://localhost/oauth/token".into(),
            message: "Not Found".into(),
        });
        assert!(wrong_path.is_config());
        let garbage = ApiError::Auth(AuthError::Malformed("`access_token` is empty".into()));
        assert!(!garbage.is_config() && !garbage.is_unavailable());
        let down = ApiError::Auth(AuthError::Unavailable {
            attempts: 6,
            last: "HTTP 503".into(),
        });
        assert!(down.is_unavailable() && down.is_retriable() && !down.is_config());
    }
}
