//! The wire protocol of Alter's `/sdk/*` API, shared by the server and the Rust SDK: request and
//! response shapes, the error envelope and its codes, request signing and the API key format.
//! Facts come from `shared/protocol/`, read off the official client `alter-sdk==0.29.0`.

pub mod admin;
pub mod agents;
pub mod error;
pub mod grants;
pub mod keyfmt;
pub mod keys;
pub mod scopes;
pub mod signing;
pub mod token;

pub use error::{ErrorBody, codes};
