//! The Rokt API client (built in issue #4).
