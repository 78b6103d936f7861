//! Alter's domain: the model (apps, keys, scopes, audit events), the ports it needs from the
//! outside (storage, clock) and the services ([`Vault`]) that implement every operation. It
//! knows no HTTP, SQL or JSON wire shapes (design §2).

pub mod agents;
pub mod approvals;
pub mod apps;
pub mod assertions;
pub mod audit;
pub mod browser_sessions;
pub mod caller;
pub mod connect;
pub mod connections;
pub mod credentials;
pub mod delegations;
pub mod error;
pub mod grants;
pub mod identity;
pub mod idp_events;
pub mod ids;
pub mod jobs;
pub mod kek_versions;
pub mod keys;
pub mod metrics;
pub mod oauth;
pub mod operators;
pub mod policies;
pub mod ports;
pub mod provider_specs;
pub mod providers;
pub mod proxy;
pub mod release;
pub mod request_rule;
pub mod rules;
pub mod scope;
pub mod secrets;
pub mod signin;
pub mod spans;
pub mod subject;
pub mod time;
pub mod user_secrets;
pub mod validate;
pub mod vault;
pub mod wallet;
pub mod webhooks;

pub use error::{Entity, Error, Result};
pub use vault::{Settings, Vault};
