//! Black-box tests of Alter: the real server, in-process, driven through the Rust SDK and
//! hand-signed HTTP requests, on SQLite and (with `ALTER_TEST_DATABASE_URL`) PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admin;
mod agents;
mod approvals;
mod auth;
mod confinement;
mod connect;
mod crypto;
mod delegations;
mod examples;
mod grants;
mod health;
mod idp_events;
mod isolation;
mod keys;
mod leaks;
mod limits;
mod managed_connect;
mod metrics;
mod oauth_client;
mod oauth_peer;
mod openapi;
mod operators;
mod policies;
mod provider_specs;
mod providers;
mod proxy;
mod release;
mod retention;
mod revocation;
mod rules;
mod scopes;
mod sdk_connect;
mod sdk_signin;
mod signin;
mod traces;
mod wallet;
mod webhooks;
