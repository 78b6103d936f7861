//! `app.agents()`: agents and their keys (protocol part 2 §8), with the agents error mapper.

use alter_proto::agents::{CreateAgentRequest, UpdateAgentRequest};
use alter_proto::signing::{encode_path_segment, encode_query, headers};
use reqwest::Method;
use serde_json::Value;

use crate::error::Error;
use crate::transport::{Mapper, Transport};

pub use alter_proto::agents::{
    AgentCreateResult, AgentInfo, AgentKeyInfo, AgentKeyList, AgentKeyMintResult, AgentList,
};

/// What `agents().create` asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateAgent {
    /// Lower-case name, unique among the app's live agents.
    pub name: String,
    /// Provider allowlist: `{provider: [scopes]}` plus `managed_secret_slugs`.
    pub scopes: Value,
    /// Display name.
    pub display_name: Option<String>,
    /// `agent` (default) or `service`.
    pub agent_type: Option<String>,
    /// Metadata object.
    pub metadata: Value,
    /// Approval settings.
    pub policy: Option<Value>,
    /// Makes a retried create return the first result.
    pub idempotency_key: Option<String>,
}

impl CreateAgent {
    /// An agent with a name and an allowlist.
    pub fn new(name: impl Into<String>, scopes: Value) -> Self {
        CreateAgent {
            name: name.into(),
            scopes,
            display_name: None,
            agent_type: None,
            metadata: Value::Object(Default::default()),
            policy: None,
            idempotency_key: None,
        }
    }
}

/// What `agents().update` changes; `expected_version` is required with `scopes`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpdateAgent {
    /// New fields.
    pub changes: UpdateAgentRequest,
    /// Optimistic concurrency.
    pub expected_version: Option<i64>,
    /// How long a narrowing of `scopes` is staged (0 = at once, default 24 h).
    pub grace_seconds: Option<i64>,
}

/// The agents namespace of an [`App`](crate::App).
#[derive(Debug, Clone, Copy)]
pub struct Agents<'a> {
    pub(crate) transport: &'a Transport,
}

fn agent_path(agent_id: &str) -> Result<String, Error> {
    if agent_id.is_empty() {
        return Err(Error::value("agent_id must not be empty"));
    }
    Ok(format!("/sdk/agents/{}", encode_path_segment(agent_id)))
}

fn key_path(agent_id: &str, key_id: &str) -> Result<String, Error> {
    if key_id.is_empty() {
        return Err(Error::value("key_id must not be empty"));
    }
    Ok(format!(
        "{}/keys/{}",
        agent_path(agent_id)?,
        encode_path_segment(key_id)
    ))
}

impl Agents<'_> {
    async fn call<T: serde::de::DeserializeOwned, B: serde::Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, Error> {
        self.transport
            .json(method, path, body, Mapper::Agents)
            .await
    }

    /// Creates an agent and its first key (`api_key`, shown once).
    pub async fn create(&self, agent: CreateAgent) -> Result<AgentCreateResult, Error> {
        if agent.name.is_empty() {
            return Err(Error::value("name must not be empty"));
        }
        if !agent.scopes.is_object() {
            return Err(Error::value("scopes must be an object"));
        }
        let body = CreateAgentRequest {
            name: agent.name,
            agent_type: Some(agent.agent_type.unwrap_or_else(|| "agent".into())),
            scopes: agent.scopes,
            metadata: Some(agent.metadata),
            display_name: agent.display_name,
            policy: agent.policy,
        };
        let extra: Vec<(&str, &str)> = agent
            .idempotency_key
            .as_deref()
            .map(|k| (headers::IDEMPOTENCY_KEY, k))
            .into_iter()
            .collect();
        let answer = self
            .transport
            .send_with(
                Method::POST,
                "/sdk/agents",
                Some(&body),
                &extra,
                Mapper::Agents,
            )
            .await?;
        crate::transport::decode(&answer)
    }

    /// A page of the app's agents.
    pub async fn list(
        &self,
        include_revoked: bool,
        limit: i64,
        offset: i64,
    ) -> Result<AgentList, Error> {
        let query = encode_query(&[
            (
                "include_revoked",
                if include_revoked { "true" } else { "false" },
            ),
            ("limit", &limit.to_string()),
            ("offset", &offset.to_string()),
        ]);
        self.call::<_, ()>(Method::GET, &format!("/sdk/agents?{query}"), None)
            .await
    }

    /// The live agent of that name, if any.
    pub async fn get_by_name(&self, name: &str) -> Result<Option<AgentInfo>, Error> {
        let query = encode_query(&[("name", name)]);
        let list: AgentList = self
            .call::<_, ()>(Method::GET, &format!("/sdk/agents?{query}"), None)
            .await?;
        Ok(list.items.into_iter().next())
    }

    /// One agent.
    pub async fn get(&self, agent_id: &str) -> Result<AgentInfo, Error> {
        self.call::<_, ()>(Method::GET, &agent_path(agent_id)?, None)
            .await
    }

    /// Changes an agent.
    pub async fn update(&self, agent_id: &str, update: UpdateAgent) -> Result<AgentInfo, Error> {
        let mut params = Vec::new();
        let grace = update.grace_seconds.map(|g| g.to_string());
        let version = update.expected_version.map(|v| v.to_string());
        if let Some(grace) = &grace {
            params.push(("grace_seconds", grace.as_str()));
        }
        if let Some(version) = &version {
            params.push(("expected_version", version.as_str()));
        }
        let mut path = agent_path(agent_id)?;
        if !params.is_empty() {
            path = format!("{path}?{}", encode_query(&params));
        }
        self.call(Method::PATCH, &path, Some(&update.changes)).await
    }

    /// Pauses an agent: every call but `me()` and telemetry is refused until resumed.
    pub async fn suspend(&self, agent_id: &str) -> Result<AgentInfo, Error> {
        self.set_status(agent_id, "inactive").await
    }

    /// Resumes a paused agent.
    pub async fn resume(&self, agent_id: &str) -> Result<AgentInfo, Error> {
        self.set_status(agent_id, "active").await
    }

    async fn set_status(&self, agent_id: &str, status: &str) -> Result<AgentInfo, Error> {
        let body = serde_json::json!({ "status": status });
        self.call(Method::PATCH, &agent_path(agent_id)?, Some(&body))
            .await
    }

    /// Deletes an agent: terminal; its keys and the delegations to it are revoked.
    pub async fn delete(&self, agent_id: &str) -> Result<AgentInfo, Error> {
        self.call::<_, ()>(Method::DELETE, &agent_path(agent_id)?, None)
            .await
    }

    /// Mints another key for an agent.
    pub async fn mint_key(&self, agent_id: &str) -> Result<AgentKeyMintResult, Error> {
        let path = format!("{}/keys", agent_path(agent_id)?);
        self.call(Method::POST, &path, Some(&serde_json::json!({})))
            .await
    }

    /// An agent's keys, oldest first.
    pub async fn list_keys(&self, agent_id: &str) -> Result<AgentKeyList, Error> {
        let path = format!("{}/keys", agent_path(agent_id)?);
        self.call::<_, ()>(Method::GET, &path, None).await
    }

    /// Deprecates a key: it still works, and every answer to it says so.
    pub async fn deprecate_key(&self, agent_id: &str, key_id: &str) -> Result<AgentKeyInfo, Error> {
        self.mark_key(agent_id, key_id, "deprecate").await
    }

    /// Lifts a key's deprecation.
    pub async fn undeprecate_key(
        &self,
        agent_id: &str,
        key_id: &str,
    ) -> Result<AgentKeyInfo, Error> {
        self.mark_key(agent_id, key_id, "undeprecate").await
    }

    /// `PATCH …/keys/{key_id}/{action}` with an empty object.
    async fn mark_key(
        &self,
        agent_id: &str,
        key_id: &str,
        action: &str,
    ) -> Result<AgentKeyInfo, Error> {
        let path = format!("{}/{action}", key_path(agent_id, key_id)?);
        self.call(Method::PATCH, &path, Some(&serde_json::json!({})))
            .await
    }

    /// Revokes a key; the agent's last key only with `force`.
    pub async fn revoke_key(
        &self,
        agent_id: &str,
        key_id: &str,
        force: bool,
    ) -> Result<AgentKeyInfo, Error> {
        let mut path = key_path(agent_id, key_id)?;
        if force {
            path.push_str("?force=true");
        }
        self.call::<_, ()>(Method::DELETE, &path, None).await
    }
}

pub(crate) async fn me(transport: &Transport) -> Result<AgentInfo, Error> {
    transport
        .json::<_, ()>(Method::GET, "/sdk/agents/me", None, Mapper::Agents)
        .await
}
