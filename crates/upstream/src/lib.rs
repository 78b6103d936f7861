//! Everything that leaves the process (design §2): the hardened HTTP client (no redirects,
//! https or loopback only, bounded responses) and, on it, JWKS fetching, the
//! [`TokenVerifier`](alter_core::ports::TokenVerifier) for end-user JWTs ([`JwtVerifier`]),
//! OpenID Connect discovery of providers ([`OidcDiscovery`]); and the built-in catalogue of
//! OAuth providers ([`catalog`]); the [`HttpForwarder`] of proxied calls behind the SSRF guard of
//! [`destination`].

pub mod catalog;
pub mod destination;
pub mod discovery;
pub mod forward;
mod http;
pub mod jwks;
mod jwt;
pub mod oauth;
pub mod otlp;
pub mod transit;
pub mod webhooks;

pub use catalog::{CatalogError, CatalogProvider};
pub use destination::AllowedNetworks;
pub use discovery::OidcDiscovery;
pub use forward::HttpForwarder;
pub use jwt::JwtVerifier;

/// Why this crate could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The HTTP client could not be built (TLS backend initialisation).
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
}
