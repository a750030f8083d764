//! Process-wide TLS set-up.
//!
//! reqwest and sqlx both use rustls. We build rustls with the `ring` provider only and install it as
//! the process default once, before the first client is built, so no crate has to guess a provider.

use std::sync::Once;

static INSTALL: Once = Once::new();

/// Installs `ring` as the process-wide rustls crypto provider. Idempotent; call before building an
/// HTTP client or a database pool.
pub fn install_crypto_provider() {
    INSTALL.call_once(|| {
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            // An error means another thread installed a provider first, which is just as good.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
    });
}
