//! Who acts on a request: the operator, a signed SDK caller, or a signed-in end user. Services
//! take one [`Subject`] and branch only where the three differ; the reach rules they share
//! (which grants, keys and agents each may act on by id) live here.

use crate::audit::{Actor, ActorKind};
use crate::caller::Caller;
use crate::delegations::holds;
use crate::error::{Entity, Error, Result};
use crate::grants::Grant;
use crate::identity::SignedInUser;
use crate::ids::AppId;
use crate::keys::ApiKey;

/// Who acts.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    /// The operator (admin token), acting on one app.
    Operator {
        /// The app acted on.
        app: AppId,
    },
    /// A signed SDK caller.
    Caller(&'a Caller),
    /// An end user signed in with the app's identity provider.
    User {
        /// The app signed in to.
        app: AppId,
        /// The user.
        user: &'a SignedInUser,
    },
}

impl Subject<'_> {
    /// The app acted on.
    pub fn app_id(&self) -> AppId {
        match self {
            Subject::Operator { app } | Subject::User { app, .. } => *app,
            Subject::Caller(caller) => caller.app_id,
        }
    }

    /// The audit actor.
    pub fn actor(&self) -> Actor {
        match self {
            Subject::Operator { .. } => Actor::operator(),
            Subject::Caller(caller) => caller.actor(),
            Subject::User { user, .. } => Actor {
                app_user_id: Some(user.user.id.to_string()),
                ..Actor::of_kind(ActorKind::User)
            },
        }
    }

    /// Fails unless the subject may manage agents: the operator and app callers may; agents
    /// cannot manage agents (a caller acting as an agent, or signing with an agent-typed key);
    /// end users manage none (they see no agent by id).
    pub(crate) fn manage_agents(&self) -> Result<()> {
        match self {
            Subject::Operator { .. } => Ok(()),
            Subject::Caller(caller) if caller.is_agent() => Err(Error::AgentCannotMintSubagents),
            Subject::Caller(_) => Ok(()),
            Subject::User { .. } => Err(Error::NotFound(Entity::Agent)),
        }
    }

    /// Whether the subject may act on `grant` by id: the operator on any of the app's; an app
    /// caller on any (also when it acts as an agent); an agent's own key only on grants the
    /// agent is the principal of (its own, or delegations to it); an agent-typed key bound to
    /// no agent only on grants no named agent holds; an end user on the grants they hold and
    /// the delegations they made.
    pub(crate) fn reaches_grant(&self, grant: &Grant) -> bool {
        match self {
            Subject::Operator { .. } => true,
            Subject::Caller(caller) => match caller.agent_id() {
                Some(agent) if !caller.impersonating => grant.agent_id() == Some(agent),
                _ if caller.is_unbound_agent() => grant.agent_id().is_none(),
                _ => true,
            },
            Subject::User { user, .. } => {
                holds(user, grant) || grant.delegated_by == Some(user.user.id)
            }
        }
    }

    /// Whether the subject may manage `key`: the operator any key of the app; an app caller
    /// any; an agent caller only the keys of its own agent; an agent-typed key bound to no
    /// agent only itself and the keys derived from it; an end user none.
    pub(crate) fn manages_key(&self, key: &ApiKey) -> bool {
        match self {
            Subject::Operator { .. } => true,
            Subject::Caller(caller) if caller.is_unbound_agent() => {
                key.id == caller.key_id || key.parent_key_id == Some(caller.key_id)
            }
            Subject::Caller(caller) => {
                caller.agent_id().is_none() || key.agent_id == caller.agent_id()
            }
            Subject::User { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{AgentId, KeyId};
    use crate::keys::KeyType;
    use crate::scope::ScopeSet;
    use crate::time::Timestamp;

    fn caller(app_id: AppId, agent_typed: bool) -> Caller {
        Caller {
            app_id,
            key_id: KeyId::new(),
            root_key_id: KeyId::new(),
            key_prefix: "alter_rk_abcdefgh".into(),
            key_type: KeyType::Runtime,
            agent_typed,
            agent: None,
            impersonating: false,
            scopes: ScopeSet::default(),
            key_deprecated: false,
            caller: None,
            caller_type: None,
            context: None,
            trace_id: None,
            request_rule: None,
            peer: None,
            pending_nonce: crate::caller::PendingNonce::none(),
        }
    }

    fn key(app_id: AppId, agent_id: Option<AgentId>, parent: Option<KeyId>) -> ApiKey {
        ApiKey {
            app_id,
            agent_id,
            parent_key_id: parent,
            ..crate::keys::tests::key(Timestamp::from_unix_seconds(0))
        }
    }

    #[test]
    fn key_reach_follows_the_subject() {
        let app = AppId::new();
        let agents_key = key(app, Some(AgentId::new()), None);
        let plain_key = key(app, None, None);
        let operator = Subject::Operator { app };
        assert!(operator.manages_key(&agents_key) && operator.manages_key(&plain_key));
        assert_eq!(operator.actor().kind, ActorKind::Operator);

        let app_caller = caller(app, false);
        let subject = Subject::Caller(&app_caller);
        assert!(subject.manages_key(&agents_key) && subject.manages_key(&plain_key));
        assert!(subject.manage_agents().is_ok());

        // An agent-typed key bound to no agent reaches itself and what it derived only.
        let unbound = caller(app, true);
        let subject = Subject::Caller(&unbound);
        let derived = key(app, None, Some(unbound.key_id));
        assert!(subject.manages_key(&derived));
        assert!(!subject.manages_key(&plain_key) && !subject.manages_key(&agents_key));
        assert!(matches!(
            subject.manage_agents(),
            Err(Error::AgentCannotMintSubagents)
        ));
        assert_eq!(subject.app_id(), app);
    }
}
