//! What the Wallet does for a signed-in end user beyond the `/user/v1` API: extend a grant's
//! lifetime, see and decide the approvals addressed to them, read their own activity. Each
//! acts as [`Subject::User`] and reaches only what that user holds (or delegated), like its API
//! twin; anything else is "not found".

use async_trait::async_trait;
use serde_json::json;
use std::collections::HashMap;
use std::net::IpAddr;

use crate::approvals::{Approval, ApprovalStatus, HeldRequest};
use crate::audit::{AuditEvent, EventFilter, StoredEvent, Target, action};
use crate::credentials::Credential;
use crate::error::{Entity, Error, Result};
use crate::grants::{Grant, GrantState, Principal};
use crate::identity::{AppUser, SignedInUser};
use crate::ids::{AgentId, AppId, ApprovalId, GrantId, UserId};
use crate::ports::StoreResult;
use crate::rules::MatchedRule;
use crate::subject::Subject;
use crate::time::Timestamp;
use crate::vault::Vault;

/// Most approvals the Wallet lists at once.
const MAX_APPROVALS: i64 = 500;
/// Most events the activity page reads (the newest).
pub const MAX_ACTIVITY: usize = 1000;
/// Most Wallet sign-ins an app may have under way at once: a sign-in session is a row anyone
/// can make with one unauthenticated POST, so they are bounded.
pub const MAX_PENDING_SIGN_INS: i64 = 1000;
/// End-user sign-in steps (each of [`SignInStep`]) one client address may take a minute,
/// across apps and nodes: sign-in is unauthenticated, so one address cannot fill an app's
/// [`MAX_PENDING_SIGN_INS`] nor hammer the identity provider through the callback.
pub const SIGN_INS_PER_MINUTE_PER_ADDRESS: u32 = 10;
/// How many of them may come at once.
pub const SIGN_IN_BURST_PER_ADDRESS: u32 = 30;
/// The actions the activity page shows: the calls made with the user's credentials.
pub const ACTIVITY_ACTIONS: [&str; 3] = [
    action::CREDENTIAL_RELEASED,
    action::CREDENTIAL_DENIED,
    action::CREDENTIAL_USED,
];
/// The kind of hold an agent's own "requires approval" setting makes
/// ([`crate::release::agent_approval_hold`]); no policy rule has this kind.
const AGENT_HOLD_KIND: &str = "agent_requires_approval";

/// Storage the Wallet needs beyond the other ports.
#[async_trait]
pub trait WalletStore: Send + Sync {
    /// Moves an active grant's end from `from` to `to` if it is still `from`, still later than
    /// `now` and the grant still active, writing `event` in the same transaction; false
    /// otherwise (an expired grant is never revived).
    async fn extend_grant(
        &self,
        app: AppId,
        id: GrantId,
        from: Timestamp,
        to: Timestamp,
        now: Timestamp,
        event: &AuditEvent,
    ) -> StoreResult<bool>;

    /// The newest events (at most `limit`, newest first) about `user` whose action is one of
    /// `actions`, narrowed by `filter`'s decision and dates (its other fields are ignored).
    async fn user_activity(
        &self,
        app: AppId,
        user: UserId,
        actions: &[&str],
        filter: &EventFilter,
        limit: i64,
    ) -> StoreResult<Vec<StoredEvent>>;

    /// How many of the app's sign-in sessions are still pending (not yet used nor expired).
    async fn pending_sign_ins(&self, app: AppId, now: Timestamp) -> StoreResult<i64>;
}

/// How throttles name a client address: an IPv4 address (an IPv4-mapped IPv6 one too) as
/// itself, an IPv6 address by its /64 (one host often holds a whole /64, and could otherwise
/// step around a throttle), no address as `unknown`.
pub fn client_address(peer: Option<IpAddr>) -> String {
    match peer {
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                format!("{}/64", std::net::Ipv6Addr::from(prefix))
            }
        },
        None => "unknown".to_owned(),
    }
}

/// A step of an end-user sign-in, throttled per client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInStep {
    /// Starting one in an app (the Wallet's "Sign in").
    Start(AppId),
    /// The identity provider's redirect back (`/auth/callback`).
    Callback,
}

/// Whether a Wallet sign-in may start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInAdmission {
    /// It may.
    Allowed,
    /// This client address started too many: the next may start in that many seconds.
    TooFast {
        /// Seconds until the next is admitted.
        retry_after_seconds: u64,
    },
    /// The app has [`MAX_PENDING_SIGN_INS`] under way.
    TooManyUnderWay,
}

/// How far a grant may be extended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extension {
    /// Up to this end.
    UpTo(Timestamp),
    /// Not at all: the grant never expires, is not the user's own, or is not active.
    No,
}

/// What bounds a grant through the grant it was minted from.
enum MintedSource {
    /// It was not minted.
    NotMinted,
    /// Its source is active and never expires.
    Endless,
    /// Its source is active and ends then.
    EndsAt(Timestamp),
    /// Its source is gone or no longer active: no extension (fail closed).
    Unknown,
}

impl Vault {
    /// The latest end `user` may give `grant` now. The limit is absolute, so extending again
    /// and again gains nothing past it: [`crate::Settings::max_grant_extension_seconds`] from
    /// the grant's creation, its own `max_ttl_seconds` (from creation), its managed secret's
    /// cap (from creation) and, for a minted sibling, its source grant's end. Only the user's
    /// own active, expiring grants can be extended.
    pub async fn grant_extension(&self, user: &SignedInUser, grant: &Grant) -> Result<Extension> {
        let now = self.now();
        let own = grant.principal == Principal::User(user.user.id);
        let Some(end) = grant.expires_at else {
            return Ok(Extension::No);
        };
        if !own || grant.state(now) != GrantState::Active {
            return Ok(Extension::No);
        }
        let from_creation = |seconds: i64| grant.created_at.plus_seconds(seconds);
        let mut limit = from_creation(self.settings().max_grant_extension_seconds);
        if let Some(max) = grant.lifetime.max_ttl_seconds {
            limit = limit.min(from_creation(max));
        }
        let cap = match self.credential_of(grant).await? {
            Credential::ManagedSecret(secret)
            | Credential::UserSecret {
                template: secret, ..
            } => secret.limits.max_grant_ttl_seconds,
            Credential::Connection(_) => None,
        };
        if let Some(cap) = cap {
            limit = limit.min(from_creation(cap));
        }
        match self.minted_source_end(grant).await? {
            MintedSource::NotMinted | MintedSource::Endless => {}
            MintedSource::EndsAt(source_end) => limit = limit.min(source_end),
            MintedSource::Unknown => return Ok(Extension::No),
        }
        Ok(if limit > end {
            Extension::UpTo(limit)
        } else {
            Extension::No
        })
    }

    /// Whether `grant` was minted from another grant, and if so that grant's end now (a
    /// minted grant's lifetime only ever tightens its source's). Read from the grant's row
    /// (`minted_from`, written with it by [`Vault::mint_grant`]).
    async fn minted_source_end(&self, grant: &Grant) -> Result<MintedSource> {
        let Some(source) = self.store().minted_from(grant.app_id, grant.id).await? else {
            return Ok(MintedSource::NotMinted);
        };
        Ok(match self.store().get_grant(grant.app_id, source).await? {
            None => MintedSource::Unknown,
            Some(source) => match (source.state(self.now()), source.expires_at) {
                (GrantState::Active, None) => MintedSource::Endless,
                (GrantState::Active, Some(end)) => MintedSource::EndsAt(end),
                // A revoked or expired source extends nothing.
                _ => MintedSource::Unknown,
            },
        })
    }

    /// A grant the signed-in user reaches (theirs, their group's, a delegation they made).
    pub async fn user_grant(&self, subject: &Subject<'_>, id: GrantId) -> Result<Grant> {
        match subject {
            Subject::User { .. } => self.grant_in_reach(subject, id).await,
            _ => Err(Error::NotFound(Entity::Grant)),
        }
    }

    /// Extends the user's own grant to end at `until` (later than now and its current end, at
    /// most [`Vault::grant_extension`]'s limit). Audited as `grant.extended`.
    pub async fn extend_grant(
        &self,
        subject: &Subject<'_>,
        grant_id: GrantId,
        until: Timestamp,
    ) -> Result<Grant> {
        let Subject::User { user, .. } = subject else {
            return Err(Error::NotFound(Entity::Grant));
        };
        let grant = self.grant_in_reach(subject, grant_id).await?;
        if grant.principal != Principal::User(user.user.id) {
            return Err(Error::NotFound(Entity::Grant));
        }
        let (Some(end), Extension::UpTo(limit)) =
            (grant.expires_at, self.grant_extension(user, &grant).await?)
        else {
            return Err(Error::InvalidGrantLifetime(
                "this grant cannot be extended".into(),
            ));
        };
        if until <= end {
            return Err(Error::InvalidGrantLifetime(
                "the new end must be later than the current one".into(),
            ));
        }
        if until > limit {
            return Err(Error::InvalidGrantLifetime(format!(
                "the new end may be {} at the latest",
                limit.to_rfc3339()
            )));
        }
        let now = self.now();
        let event = AuditEvent::allow(
            subject.app_id(),
            now,
            action::GRANT_EXTENDED,
            subject.actor(),
            Target {
                kind: "grant".into(),
                id: grant.id.to_string(),
            },
        )
        .with_details(json!({
            "from": end.to_rfc3339(),
            "to": until.to_rfc3339(),
        }));
        if !self
            .store()
            .extend_grant(subject.app_id(), grant.id, end, until, now, &event)
            .await?
        {
            return Err(Error::Conflict(
                "the grant changed meanwhile; reload and try again".into(),
            ));
        }
        self.grant(subject.app_id(), grant.id).await
    }

    /// Whether `approval` is addressed to `user` ([`addressee`]): every hold names them, or
    /// some are the grant holder's and the user reaches its grant (holds it, or made the
    /// delegation). `agents` keeps the approval agents' approvers already read.
    async fn addressed_to(
        &self,
        user: &SignedInUser,
        approval: &Approval,
        agents: &mut HashMap<AgentId, AgentApprovers>,
    ) -> Result<bool> {
        let approvers = match approval.agent_id {
            Some(agent) if approval.holds.iter().any(|h| is_agent_hold(h, Some(agent))) => {
                match agents.get(&agent) {
                    Some(known) => known.clone(),
                    None => {
                        let known = self.agent_approvers(approval.app_id, agent).await?;
                        agents.insert(agent, known.clone());
                        known
                    }
                }
            }
            _ => AgentApprovers::Gone,
        };
        Ok(match addressee(approval, &user.user, &approvers) {
            Addressee::User => true,
            Addressee::GrantHolder => self.reaches_grant_of(user, approval).await?,
            Addressee::Other => false,
        })
    }

    /// Who an agent's own approval setting names, read now.
    async fn agent_approvers(&self, app: AppId, agent: AgentId) -> Result<AgentApprovers> {
        Ok(match self.store().get_agent(app, agent).await? {
            None => AgentApprovers::Gone,
            Some(agent) => match agent.approval.approvers {
                Some(named) if !named.is_empty() => AgentApprovers::Named(named),
                _ => AgentApprovers::GrantHolder,
            },
        })
    }

    /// Whether the user reaches the grant `approval` would use.
    async fn reaches_grant_of(&self, user: &SignedInUser, approval: &Approval) -> Result<bool> {
        let Some(grant) = self
            .store()
            .get_grant(approval.app_id, approval.grant_id)
            .await?
        else {
            return Ok(false);
        };
        let subject = Subject::User {
            app: approval.app_id,
            user,
        };
        Ok(subject.reaches_grant(&grant))
    }

    /// The approvals addressed to the user, newest first (`status` narrows). Each agent's
    /// approvers are read once however many approvals it has.
    pub async fn user_approvals(
        &self,
        app: AppId,
        user: &SignedInUser,
        status: Option<ApprovalStatus>,
    ) -> Result<Vec<Approval>> {
        let mut agents = HashMap::new();
        let mut mine = Vec::new();
        for approval in self.list_approvals(app, status, MAX_APPROVALS).await? {
            if self.addressed_to(user, &approval, &mut agents).await? {
                mine.push(approval);
            }
        }
        Ok(mine)
    }

    /// One approval addressed to the user and the exact request it would make.
    pub async fn user_approval(
        &self,
        app: AppId,
        user: &SignedInUser,
        id: ApprovalId,
    ) -> Result<(Approval, HeldRequest)> {
        let approval = self.get_approval(app, id).await?;
        if !self
            .addressed_to(user, &approval, &mut HashMap::new())
            .await?
        {
            return Err(Error::NotFound(Entity::Approval));
        }
        let request = self.approval_request(app, id).await?;
        Ok((approval, request))
    }

    /// The user approves or denies an approval addressed to them (re-checked here, at the
    /// decision), recorded as theirs.
    pub async fn decide_user_approval(
        &self,
        subject: &Subject<'_>,
        id: ApprovalId,
        approve: bool,
        reason: Option<String>,
    ) -> Result<Approval> {
        let Subject::User { app, user } = subject else {
            return Err(Error::NotFound(Entity::Approval));
        };
        let approval = self.get_approval(*app, id).await?;
        if !self
            .addressed_to(user, &approval, &mut HashMap::new())
            .await?
        {
            return Err(Error::NotFound(Entity::Approval));
        }
        // The IdP subject the signed token vouched for, not the e-mail (maybe unverified).
        let decided_by = user.user.subject.clone();
        self.decide_approval_by(*app, id, approve, reason, Some(decided_by), subject.actor())
            .await
    }

    /// The user's calls: the events about them or their credentials (their grants, the
    /// delegations they made) whose action is one of [`ACTIVITY_ACTIONS`], newest first, at
    /// most [`MAX_ACTIVITY`]. `filter`'s decision and dates narrow them (in the query).
    pub async fn user_activity(
        &self,
        app: AppId,
        user: &SignedInUser,
        filter: EventFilter,
    ) -> Result<Vec<StoredEvent>> {
        self.get_app(app).await?;
        Ok(self
            .store()
            .user_activity(
                app,
                user.user.id,
                &ACTIVITY_ACTIONS,
                &filter,
                MAX_ACTIVITY as i64,
            )
            .await?)
    }

    /// Whether another Wallet sign-in may start in `app` from `peer`: the address is within
    /// its share ([`Vault::sign_in_step_admitted`]), then fewer than [`MAX_PENDING_SIGN_INS`]
    /// are under way in the app. A refusal stores no sign-in.
    pub async fn wallet_sign_in_allowed(
        &self,
        app: AppId,
        peer: Option<IpAddr>,
    ) -> Result<SignInAdmission> {
        if let Some(retry_after_seconds) = self
            .sign_in_step_admitted(SignInStep::Start(app), peer)
            .await?
        {
            return Ok(SignInAdmission::TooFast {
                retry_after_seconds,
            });
        }
        let pending = self.store().pending_sign_ins(app, self.now()).await?;
        Ok(if pending < MAX_PENDING_SIGN_INS {
            SignInAdmission::Allowed
        } else {
            SignInAdmission::TooManyUnderWay
        })
    }

    /// Takes one of `peer`'s sign-in steps of this kind ([`SIGN_INS_PER_MINUTE_PER_ADDRESS`],
    /// in bursts of [`SIGN_IN_BURST_PER_ADDRESS`]; an IPv6 address counts by its /64), in the
    /// rate-limit buckets every node shares. `None` if admitted; else the seconds until the
    /// next one is, having taken nothing.
    pub async fn sign_in_step_admitted(
        &self,
        step: SignInStep,
        peer: Option<IpAddr>,
    ) -> Result<Option<u64>> {
        let address = client_address(peer);
        // A start names its app: one app's sign-ins from an address do not use up another's.
        let step = match step {
            SignInStep::Start(app) => format!("start:{app}"),
            SignInStep::Callback => "callback".to_owned(),
        };
        let interval_ms = 60_000 / i64::from(SIGN_INS_PER_MINUTE_PER_ADDRESS);
        let taken = self
            .store()
            .take_rate_token(
                &format!("sign-in:{step}:{address}"),
                self.now().micros() / 1000,
                interval_ms,
                interval_ms * i64::from(SIGN_IN_BURST_PER_ADDRESS - 1),
            )
            .await?;
        Ok((!taken.allowed).then(|| (taken.retry_after_ms.max(1) as u64).div_ceil(1000)))
    }
}

/// Whom an agent's own "requires approval" setting addresses its holds to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AgentApprovers {
    /// The approvers it names (by app user id or IdP subject).
    Named(Vec<String>),
    /// It names none: the holder of the grant the call would use.
    GrantHolder,
    /// The agent is gone: nobody in the Wallet (operators still decide).
    Gone,
}

/// Who may decide an approval in the Wallet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Addressee {
    /// This user: every hold names them.
    User,
    /// The holder of its grant: no hold names someone else, and at least one is the agent's
    /// own setting naming nobody.
    GrantHolder,
    /// Not this user (another approver, or the operators).
    Other,
}

/// Who may decide `approval` in the Wallet, as far as `user` is concerned: every hold must be
/// theirs, so that they may decide it alone. A hold naming approvers (a `require_approval`
/// rule's, or the agent's own setting's: `agent`) is theirs if it names them by app user id or
/// IdP subject (an e-mail is not matched, since whether the IdP verified it is not kept),
/// whoever holds the grant; the agent's own hold naming nobody is the grant holder's; any
/// other hold naming nobody is the operators' (any operator decides).
fn addressee(approval: &Approval, user: &AppUser, agent: &AgentApprovers) -> Addressee {
    let names_user = |approvers: &[String]| {
        approvers
            .iter()
            .any(|a| *a == user.id.to_string() || *a == user.subject)
    };
    let of = |hold: &MatchedRule| {
        let approvers = hold
            .approval
            .as_ref()
            .map(|terms| terms.approvers.as_slice())
            .unwrap_or_default();
        if !approvers.is_empty() {
            return if names_user(approvers) {
                Addressee::User
            } else {
                Addressee::Other
            };
        }
        if !is_agent_hold(hold, approval.agent_id) {
            return Addressee::Other;
        }
        match agent {
            AgentApprovers::Named(named) if names_user(named) => Addressee::User,
            AgentApprovers::GrantHolder => Addressee::GrantHolder,
            AgentApprovers::Named(_) | AgentApprovers::Gone => Addressee::Other,
        }
    };
    let holds: Vec<Addressee> = approval.holds.iter().map(of).collect();
    if holds.is_empty() || holds.contains(&Addressee::Other) {
        Addressee::Other
    } else if holds.contains(&Addressee::GrantHolder) {
        Addressee::GrantHolder
    } else {
        Addressee::User
    }
}

/// Whether `hold` is the hold `agent`'s own "requires approval" setting makes.
fn is_agent_hold(hold: &MatchedRule, agent: Option<AgentId>) -> bool {
    hold.kind == AGENT_HOLD_KIND && agent.is_some_and(|a| hold.rule_id.uuid() == a.uuid())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approvals::ApprovalStatus;
    use crate::identity::UserStatus;
    use crate::ids::{IdpId, KeyId, RuleId};
    use crate::rules::{ApprovalTerms, Effect, RuleMode};

    fn user() -> AppUser {
        AppUser {
            id: UserId::new(),
            app_id: AppId::new(),
            idp_id: IdpId::new(),
            subject: "sub-alice".into(),
            email: Some("alice@example.com".into()),
            display_name: None,
            groups: Vec::new(),
            groups_as_of: None,
            membership_floor: None,
            status: UserStatus::Active,
            created_at: Timestamp::from_unix_seconds(1),
            last_seen_at: Timestamp::from_unix_seconds(1),
        }
    }

    fn hold(kind: &str, rule_id: RuleId, approvers: Option<Vec<&str>>) -> MatchedRule {
        MatchedRule {
            rule_id,
            version: 1,
            kind: kind.into(),
            effect: Effect::Hold,
            mode: RuleMode::Enforce,
            code: "approval_required".into(),
            detail: "held".into(),
            approval: approvers.map(|a| ApprovalTerms {
                ttl_seconds: None,
                approvers: a.into_iter().map(String::from).collect(),
            }),
        }
    }

    fn approval(agent: AgentId, holds: Vec<MatchedRule>) -> Approval {
        let at = Timestamp::from_unix_seconds(10);
        Approval {
            id: ApprovalId::new(),
            group_id: ApprovalId::new(),
            app_id: AppId::new(),
            status: ApprovalStatus::Pending,
            grant_id: GrantId::new(),
            key_id: KeyId::new(),
            agent_id: Some(agent),
            sealed_request: Vec::new(),
            method: "POST".into(),
            url: "https://api.example.com/v1".into(),
            holds,
            reason: "refund".into(),
            created_at: at,
            expires_at: at.plus_seconds(900),
            decided_at: None,
            decided_by: None,
            decision_reason: None,
            claimed_at: None,
            executed_at: None,
            execution_error: None,
            sealed_result: None,
            version: 1,
        }
    }

    #[test]
    fn a_user_decides_the_holds_naming_them_and_their_agent_s_hold_naming_nobody() {
        let alice = user();
        let agent = AgentId::new();
        let agent_hold = || hold(AGENT_HOLD_KIND, RuleId::from_uuid(agent.uuid()), None);
        let operators = || hold("require_approval", RuleId::new(), Some(vec![]));
        let naming = |who: &str| hold("require_approval", RuleId::new(), Some(vec![who]));
        let holder = AgentApprovers::GrantHolder;
        let of = |holds: Vec<MatchedRule>, agent_approvers: &AgentApprovers| {
            addressee(&approval(agent, holds), &alice, agent_approvers)
        };

        // The agent's own "requires approval" setting naming nobody: the grant's holder.
        assert_eq!(of(vec![agent_hold()], &holder), Addressee::GrantHolder);
        // Naming approvers: those, whoever holds the grant (by app user id or IdP subject).
        let names =
            |who: &[&str]| AgentApprovers::Named(who.iter().map(|w| w.to_string()).collect());
        assert_eq!(
            of(vec![agent_hold()], &names(&["bob", "sub-alice"])),
            Addressee::User
        );
        let by_id = names(&[&alice.id.to_string()]);
        assert_eq!(of(vec![agent_hold()], &by_id), Addressee::User);
        assert_eq!(of(vec![agent_hold()], &names(&["bob"])), Addressee::Other);
        assert_eq!(
            of(vec![agent_hold()], &AgentApprovers::Gone),
            Addressee::Other
        );
        // A rule naming the user by app user id or IdP subject.
        let by_id = naming(&alice.id.to_string());
        assert_eq!(of(vec![by_id], &holder), Addressee::User);
        assert_eq!(of(vec![naming("sub-alice")], &holder), Addressee::User);
        assert_eq!(
            of(vec![naming("sub-alice"), agent_hold()], &holder),
            Addressee::GrantHolder
        );

        // An operator's rule naming no approvers is the operators' (any operator).
        for holds in [
            vec![operators()],
            vec![hold("require_approval", RuleId::new(), None)],
            vec![hold("rate_limit", RuleId::new(), None)],
            vec![agent_hold(), operators()],
            vec![naming("sub-alice"), operators()],
            vec![agent_hold(), naming("bob")],
            vec![],
        ] {
            assert_eq!(of(holds.clone(), &holder), Addressee::Other, "{holds:?}");
        }
        // Another agent's setting is not this approval's agent's.
        let other = hold(AGENT_HOLD_KIND, RuleId::new(), None);
        assert_eq!(of(vec![other], &holder), Addressee::Other);
        // An e-mail is not matched: whether the IdP verified it is not kept.
        let by_mail = naming("alice@example.com");
        assert_eq!(of(vec![by_mail], &holder), Addressee::Other);
        assert_eq!(
            of(vec![agent_hold()], &names(&["alice@example.com"])),
            Addressee::Other
        );
    }
}
