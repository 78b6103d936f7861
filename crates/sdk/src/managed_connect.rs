//! Managed-secret Connect sessions (protocol part 2 §6.5): `create_managed_secret_connect_session`,
//! with the official client's local checks, body order and strict reading of the answer.

use alter_proto::connect::ManagedConnectSessionResponse;
use reqwest::Method;
use serde::Serialize;

use crate::error::{Error, ErrorInfo};
use crate::grants::{GrantPolicy, canonical_uuid, label_ok};
use crate::transport::{Mapper, Transport};

pub use alter_proto::connect::ManagedConnectSessionResponse as ManagedConnectSession;

const PATH: &str = "/sdk/managed-secrets/connect/session";

/// A managed-secret Connect session for one user and one managed secret (by slug).
///
/// ```
/// use alter_sdk::ManagedConnectOptions;
/// let options = ManagedConnectOptions::new("stripe-prod", "<the user's IdP token>")
///     .agent("assistant")
///     .requested_ttl_seconds(3_600);
/// ```
#[derive(Debug, Clone)]
pub struct ManagedConnectOptions {
    provider: String,
    user_token: String,
    agent: Option<String>,
    requested_ttl_seconds: Option<i64>,
    allowed_origin: Option<String>,
    return_url: Option<String>,
    delegable: bool,
    label: Option<String>,
    grant_policy: Option<GrantPolicy>,
    direct: bool,
    repair_grant_id: Option<String>,
}

impl ManagedConnectOptions {
    /// A session of the user `user_token` names, for the managed secret `provider` (its slug).
    pub fn new(provider: impl Into<String>, user_token: impl Into<String>) -> Self {
        ManagedConnectOptions {
            provider: provider.into(),
            user_token: user_token.into(),
            agent: None,
            requested_ttl_seconds: None,
            allowed_origin: None,
            return_url: None,
            delegable: false,
            label: None,
            grant_policy: None,
            direct: false,
            repair_grant_id: None,
        }
    }

    /// Share with this agent (id or name).
    pub fn agent(mut self, agent: impl Into<String>) -> Self {
        self.agent = Some(agent.into());
        self
    }

    /// Lifetime of the agent's delegation (not with `grant_policy`).
    pub fn requested_ttl_seconds(mut self, seconds: i64) -> Self {
        self.requested_ttl_seconds = Some(seconds);
        self
    }

    /// The embedding page's origin.
    pub fn allowed_origin(mut self, origin: impl Into<String>) -> Self {
        self.allowed_origin = Some(origin.into());
        self
    }

    /// Where the browser returns.
    pub fn return_url(mut self, url: impl Into<String>) -> Self {
        self.return_url = Some(url.into());
        self
    }

    /// Let the agent share onward.
    pub fn delegable(mut self) -> Self {
        self.delegable = true;
        self
    }

    /// The new grant's label.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// The new grant's lifetime (not with `requested_ttl_seconds`).
    pub fn grant_policy(mut self, policy: GrantPolicy) -> Self {
        self.grant_policy = Some(policy);
        self
    }

    /// Skip optional steps.
    pub fn direct(mut self) -> Self {
        self.direct = true;
        self
    }

    /// Replace the user's own key behind this grant (not with `agent` or `label`).
    pub fn repair_grant_id(mut self, grant_id: impl Into<String>) -> Self {
        self.repair_grant_id = Some(grant_id.into());
        self
    }

    /// The body, in the official client's order, after its checks.
    fn body(self) -> Result<Body, Error> {
        let slug_ok = !self.provider.is_empty()
            && self.provider.len() <= 50
            && self
                .provider
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !slug_ok {
            return Err(Error::value(
                "provider must be a slug of [a-z0-9-], 1-50 characters",
            ));
        }
        if self.user_token.trim().is_empty() || self.user_token.len() > 8192 {
            return Err(Error::value("user_token must be a non-empty JWT"));
        }
        if self.agent.as_deref().is_some_and(|a| a.trim().is_empty()) {
            return Err(Error::value("agent must be a non-empty string"));
        }
        if self.requested_ttl_seconds.is_some() && self.grant_policy.is_some() {
            return Err(Error::value(
                "requested_ttl_seconds does not go with grant_policy",
            ));
        }
        if self.requested_ttl_seconds.is_some_and(|t| t <= 0) {
            return Err(Error::value("requested_ttl_seconds must be positive"));
        }
        if self.label.as_deref().is_some_and(|l| !label_ok(l)) {
            return Err(Error::value(
                "requested_grant.label must be 1-255 characters",
            ));
        }
        let repair = match &self.repair_grant_id {
            Some(id) => {
                if self.agent.is_some() || self.label.is_some() {
                    return Err(Error::value(
                        "repair_grant_id does not go with agent or requested_grant",
                    ));
                }
                Some(canonical_uuid("repair_grant_id", id)?)
            }
            None => None,
        };
        let grant_policy = self.grant_policy.map(GrantPolicy::body).transpose()?;
        Ok(Body {
            provider: self.provider,
            agent: self.agent,
            user_token: self.user_token,
            requested_ttl_seconds: self.requested_ttl_seconds,
            allowed_origin: self.allowed_origin,
            return_url: self.return_url,
            delegable: self.delegable.then_some(true),
            requested_grant: self.label.map(|label| Label { label }),
            grant_policy,
            direct: self.direct.then_some(true),
            repair_grant_id: repair,
        })
    }
}

/// The wire body: the official client's keys in its order, each only when set.
#[derive(Debug, Serialize)]
struct Body {
    provider: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent: Option<String>,
    user_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    requested_ttl_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    allowed_origin: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    return_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delegable: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    requested_grant: Option<Label>,
    #[serde(skip_serializing_if = "Option::is_none")]
    grant_policy: Option<alter_proto::grants::GrantPolicyBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    direct: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    repair_grant_id: Option<String>,
}

#[derive(Debug, Serialize)]
struct Label {
    label: String,
}

/// `create_managed_secret_connect_session`: the answer checked as the official client does.
pub(crate) async fn create_managed_connect_session(
    transport: &Transport,
    options: ManagedConnectOptions,
) -> Result<ManagedConnectSession, Error> {
    let provider = options.provider.clone();
    let delegable = options.delegable;
    let body = options.body()?;
    let session: ManagedConnectSessionResponse = transport
        .json(Method::POST, PATH, Some(&body), Mapper::Main)
        .await?;
    let malformed = |why: &str| {
        Error::Backend(ErrorInfo {
            message: format!("Backend returned a malformed managed-secret Connect session: {why}"),
            ..ErrorInfo::default()
        })
    };
    if session.session_token.is_empty()
        || session.connect_url.is_empty()
        || session.expires_at.is_empty()
        || session.expires_in < 0
    {
        return Err(malformed("missing fields"));
    }
    if session.delegable_requested != delegable {
        return Err(malformed("delegable_requested does not echo the request"));
    }
    if session
        .secret_slug
        .as_deref()
        .is_some_and(|s| s != provider)
    {
        return Err(malformed("secret_slug is not the provider asked for"));
    }
    Ok(session)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_checked_and_ordered_as_the_official_client_sends_it() {
        let body = ManagedConnectOptions::new("stripe-prod", "jwt")
            .agent("assistant")
            .requested_ttl_seconds(60)
            .delegable()
            .label("work")
            .body()
            .unwrap();
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"provider":"stripe-prod","agent":"assistant","user_token":"jwt","requested_ttl_seconds":60,"delegable":true,"requested_grant":{"label":"work"}}"#
        );
        for bad in [
            ManagedConnectOptions::new("Stripe", "jwt"),
            ManagedConnectOptions::new("stripe", " "),
            ManagedConnectOptions::new("stripe", "jwt").requested_ttl_seconds(0),
            ManagedConnectOptions::new("stripe", "jwt")
                .requested_ttl_seconds(5)
                .grant_policy(GrantPolicy::new().max_ttl_seconds(5)),
            ManagedConnectOptions::new("stripe", "jwt").repair_grant_id("not-a-uuid"),
            ManagedConnectOptions::new("stripe", "jwt")
                .agent("a")
                .repair_grant_id("01a24ecb-2899-76ed-a212-b73ab8709ecf"),
        ] {
            assert!(bad.body().is_err());
        }
    }
}
