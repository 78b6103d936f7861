//! Agents: named workload identities of an app, each with its own keys, audit trail and the
//! access it owns or was delegated (protocol part 2 §8). Agents cannot manage agents. Their
//! keys' lifecycle is in `keys`.

mod model;
mod service;
mod validation;

pub use model::{
    Agent, AgentAllowlist, AgentCreated, AgentStatus, AgentUpdate, ApprovalSettings, NewAgent,
};
pub(crate) use service::agent_event;
