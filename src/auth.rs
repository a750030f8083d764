//! The OAuth 2.0 client-credentials token manager (built in issue #4).
