//! The authenticated caller of an SDK request, and the checks that admit a request once its
//! signature has been verified: timestamp window, nonce, key lifecycle, CIDR allowlist and
//! attenuation.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alter_crypto::Zeroizing;

use ipnet::IpNet;

use crate::agents::{Agent, AgentStatus};
use crate::audit::{Actor, ActorKind};
use crate::error::{Error, Result, ensure};
use crate::ids::{AgentId, AppId, KeyId};
use crate::keys::{ApiKey, KeyStatus, KeyType};
use crate::request_rule::RequestRule;
use crate::scope::{Scope, ScopeSet};
use crate::time::Timestamp;
use crate::vault::Vault;

/// Limits of `X-Alter-Context` (protocol part 1 §1.5).
/// Longest `X-Alter-Caller`.
const MAX_CALLER_LEN: usize = 255;
/// How stale `last_used_at` (of a key or a grant) may get before a use refreshes it: one
/// write a minute, not one per request.
const LAST_USED_RESOLUTION_SECONDS: i64 = 60;

/// True when a use at `now` should refresh `last_used_at`.
pub(crate) fn last_use_is_stale(last_used_at: Option<Timestamp>, now: Timestamp) -> bool {
    last_used_at.is_none_or(|t| t.seconds_until(now) >= LAST_USED_RESOLUTION_SECONDS)
}

/// The request facts admission needs, already read off the wire.
#[derive(Debug, Clone, Default)]
pub struct RequestFacts {
    /// `X-Alter-Timestamp`.
    pub timestamp: String,
    /// `X-Alter-Nonce`.
    pub nonce: String,
    /// The peer's address.
    pub peer: Option<IpAddr>,
    /// `X-Alter-Scope-Constraints`, split on commas.
    pub scope_constraints: Option<Vec<String>>,
    /// The decoded `X-Alter-Request-Rule`.
    pub request_rule: Option<RequestRule>,
    /// `X-Alter-Caller`.
    pub caller: Option<String>,
    /// `X-Alter-Caller-Type`.
    pub caller_type: Option<String>,
    /// `X-Alter-Context`: the caller's audit context (run id, thread id, tool…), decoded.
    pub context: Option<BTreeMap<String, String>>,
    /// The trace id of a well-formed W3C `traceparent` (unsigned: a label, never a check).
    pub trace_id: Option<String>,
}

/// An authenticated, admitted SDK caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The app the key belongs to.
    pub app_id: AppId,
    /// The key that signed.
    pub key_id: KeyId,
    /// The key it was derived from, if it is a derived key (else itself): what per-key limits
    /// count, so deriving keys does not reset them.
    pub root_key_id: KeyId,
    /// Its display prefix.
    pub key_prefix: String,
    /// Its type.
    pub key_type: KeyType,
    /// The key is agent-typed (see [`ApiKey::agent_typed`]).
    pub agent_typed: bool,
    /// The agent the request acts as (the key's own agent, or one the app key impersonates),
    /// as admission read it (routes decide whether a paused agent may call them).
    pub agent: Option<Arc<Agent>>,
    /// True when an app key acts as the agent (audit attribution and agent-scoped lookups;
    /// by grant id it keeps the app's reach).
    pub impersonating: bool,
    /// Scopes the request may use (the key's, narrowed by constraints).
    pub scopes: ScopeSet,
    /// The key is deprecated or rotated: answers carry `X-Alter-Key-Deprecated`.
    pub key_deprecated: bool,
    /// `X-Alter-Caller`.
    pub caller: Option<String>,
    /// `X-Alter-Caller-Type`.
    pub caller_type: Option<String>,
    /// Audit context.
    pub context: Option<BTreeMap<String, String>>,
    /// The W3C trace the call belongs to, recorded on its audit events.
    pub trace_id: Option<String>,
    /// Request rule to enforce on credential use.
    pub request_rule: Option<RequestRule>,
    /// The peer's address, canonical (an IPv4-mapped IPv6 address as IPv4): what
    /// `ip_allowlist` rules see.
    pub peer: Option<IpAddr>,
    /// The request's nonce, if admission left it for the request's first write to claim.
    pub pending_nonce: PendingNonce,
}

/// When admission records a request's nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceTiming {
    /// In a commit of its own, before the request goes on (every route but the two below).
    AtAdmission,
    /// In the same transaction as the request's first write — the release's commit or the
    /// record of its refusal — so a release commits once, not twice. For `/sdk/token` and
    /// `/sdk/proxy` only, whose every write carries the claim, and whose every step with an
    /// effect of its own (a sign-in, a rate-limit token, a token refresh, a held call) claims
    /// it first ([`Vault::settle_nonce`]); the server settles a nonce still pending once the request
    /// is answered or abandoned. A replay is refused before the answer either
    /// way, and writes nothing.
    WithFirstWrite,
}

/// A nonce to record; false (when committed) if this key used it before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonceClaim {
    /// The key that signed.
    pub key: KeyId,
    /// The nonce.
    pub nonce: String,
    /// The request's signed timestamp (whole seconds), not the time of the claim: the nonce
    /// is kept under it, and PostgreSQL partitions nonces by it, so it must be a value a
    /// replay cannot change — the signature covers it. A replay carries the same one and
    /// conflicts; the same nonce with another timestamp is another signed message, which only
    /// the key's holder could make.
    pub at: Timestamp,
}

/// A request nonce not claimed yet (shared by the caller's clones: whichever write comes
/// first takes it).
#[derive(Debug, Clone, Default)]
pub struct PendingNonce(Arc<Mutex<Option<NonceClaim>>>);

impl PendingNonce {
    /// A nonce already claimed (or none to claim).
    pub fn none() -> PendingNonce {
        PendingNonce::default()
    }

    fn of(claim: NonceClaim) -> PendingNonce {
        PendingNonce(Arc::new(Mutex::new(Some(claim))))
    }

    /// True until a write took the claim.
    pub fn is_pending(&self) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    /// The claim, for the write about to carry it; later calls get `None`.
    pub(crate) fn take(&self) -> Option<NonceClaim> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

impl Caller {
    /// The id of the agent the request acts as.
    pub fn agent_id(&self) -> Option<AgentId> {
        self.agent.as_ref().map(|a| a.id)
    }

    /// True when an agent makes the request: it acts as a managed agent, or signs with an
    /// agent-typed key.
    pub fn is_agent(&self) -> bool {
        self.agent.is_some() || self.agent_typed
    }

    /// True for an agent-typed key bound to no managed agent (an `ak`, or a key derived from
    /// one): it is confined away from everything bound or delegated to a named agent.
    pub fn is_unbound_agent(&self) -> bool {
        self.agent_typed && self.agent.is_none()
    }

    /// Fails unless the request holds `scope`.
    pub fn require(&self, scope: &Scope) -> Result<()> {
        self.require_any(std::slice::from_ref(scope))
    }

    /// Fails unless the request holds at least one of `scopes`.
    pub fn require_any(&self, scopes: &[Scope]) -> Result<()> {
        if scopes.iter().any(|s| self.scopes.allows(s)) {
            return Ok(());
        }
        Err(Error::InsufficientScope {
            required: scopes.to_vec(),
            granted: self.scopes.to_strings(),
            any_of: scopes.len() > 1,
        })
    }

    /// The audit actor of this request.
    pub fn actor(&self) -> Actor {
        Actor {
            kind: ActorKind::ApiKey,
            key_id: Some(self.key_id),
            key_prefix: Some(self.key_prefix.clone()),
            agent_id: self.agent_id(),
            caller: self.caller.clone(),
            caller_type: self.caller_type.clone(),
            ..Actor::of_kind(ActorKind::ApiKey)
        }
    }
}

impl Vault {
    /// Authenticates and admits a signed request: finds the key `presented_key` names, lets
    /// `signature_verifies` check the request's signature with its signing key, then admits
    /// the request on `facts`. The caller's cheap checks (key format,
    /// required headers, content hash) come first, so nothing here runs for requests that
    /// fail them.
    ///
    /// An unknown key and a bad signature are [`Error::Unauthenticated`], like every failure
    /// of the timestamp window or nonce. `read_facts` reads the rest of the request off the
    /// wire; it runs only once the signature verified, so unauthenticated requests cost no
    /// decoding and learn nothing from a malformed header.
    pub async fn authenticate(
        &self,
        presented_key: &str,
        read_facts: impl FnOnce() -> Result<RequestFacts>,
        signature_verifies: impl FnOnce(&[u8; 32]) -> bool,
        nonce_timing: NonceTiming,
    ) -> Result<Caller> {
        let hash = alter_crypto::keys::lookup_hash(presented_key);
        // Only the credential-use routes may take a key read a moment ago: their commit checks
        // the key again, so a key revoked meanwhile (on any node) releases nothing.
        let cached = match nonce_timing {
            NonceTiming::WithFirstWrite => self.verified_keys().get(&hash),
            NonceTiming::AtAdmission => None,
        };
        // The key is trusted for the TTL from before it was read, not after.
        let read_at = Instant::now();
        let (key, signing_key, from_cache) = match cached {
            Some((key, signing_key)) => (key, signing_key, true),
            None => {
                let key = self
                    .store()
                    .find_key_by_hash(&hash)
                    .await?
                    .ok_or(Error::Unauthenticated)?;
                let signing_key = self.signing_key(&key)?;
                (Arc::new(key), signing_key, false)
            }
        };
        if !signature_verifies(&signing_key) {
            return Err(Error::Unauthenticated);
        }
        let now = self.now();
        let admitted = self.admit(&key, read_facts()?, nonce_timing).await;
        if nonce_timing == NonceTiming::WithFirstWrite {
            // A key whose last use admission just refreshed is read again next time.
            if admitted.is_ok() && !last_use_is_stale(key.last_used_at, now) {
                if !from_cache {
                    self.verified_keys().put(hash, key, signing_key, read_at);
                }
            } else {
                self.verified_keys().forget(&hash);
            }
        }
        admitted
    }

    /// Admits a request whose signature was verified with `key`'s signing key.
    ///
    /// Every failure of the timestamp window or nonce is [`Error::Unauthenticated`], the same
    /// answer as a bad signature. Only a caller who proved possession of the key learns about
    /// the key's lifecycle (revoked, expired, rotated).
    async fn admit(
        &self,
        key: &ApiKey,
        facts: RequestFacts,
        nonce_timing: NonceTiming,
    ) -> Result<Caller> {
        let now = self.now();
        let window = self.settings().timestamp_window_seconds;
        let ts: i64 = facts
            .timestamp
            .parse()
            .map_err(|_| Error::Unauthenticated)?;
        // `abs_diff` cannot overflow, whatever timestamp the client sends.
        if now.unix_seconds().abs_diff(ts) > window.unsigned_abs() {
            return Err(Error::Unauthenticated);
        }
        if !valid_nonce(&facts.nonce) {
            return Err(Error::Unauthenticated);
        }
        let claim = NonceClaim {
            key: key.id,
            nonce: facts.nonce.clone(),
            at: Timestamp::from_unix_seconds(ts),
        };
        let pending_nonce = match nonce_timing {
            NonceTiming::AtAdmission => {
                self.claim_nonce(claim).await?;
                PendingNonce::none()
            }
            NonceTiming::WithFirstWrite => PendingNonce::of(claim),
        };
        match self.admit_signed(key, facts, now, &pending_nonce).await {
            Ok(caller) => Ok(caller),
            // A refusal is an answer a replay must not get again (nor learn the key's
            // lifecycle from): the nonce is claimed first.
            Err(error) => {
                self.settle_nonce(&pending_nonce).await?;
                Err(error)
            }
        }
    }

    /// The checks of admission after the timestamp window and the nonce's form.
    async fn admit_signed(
        &self,
        key: &ApiKey,
        facts: RequestFacts,
        now: Timestamp,
        pending_nonce: &PendingNonce,
    ) -> Result<Caller> {
        key.check_usable(now)?;
        if let Some(allowlist) = &key.cidr_allowlist
            && !facts.peer.is_some_and(|ip| peer_allowed(allowlist, ip))
        {
            return Err(Error::IpNotAllowed);
        }
        let scopes = attenuate(&key.scopes, facts.scope_constraints.as_deref())?;
        if let Some(caller) = &facts.caller {
            ensure(
                !caller.is_empty()
                    && caller.len() <= MAX_CALLER_LEN
                    && caller.bytes().all(|b| (0x20..0x7f).contains(&b)),
                || "the caller name must be 1-255 printable ASCII characters".into(),
            )?;
        }
        if let Some(kind) = &facts.caller_type {
            ensure(kind == "agent" || kind == "service", || {
                "the caller type must be agent or service".into()
            })?;
        }
        let agent = self.resolve_agent(key, &facts).await?.map(Arc::new);
        if last_use_is_stale(key.last_used_at, now) {
            // A write: not for a replay (once a minute a key's first request commits twice).
            self.settle_nonce(pending_nonce).await?;
            let stale_before = now.plus_seconds(-LAST_USED_RESOLUTION_SECONDS);
            self.store().touch_key(key.id, now, stale_before).await?;
        }
        Ok(Caller {
            app_id: key.app_id,
            key_id: key.id,
            root_key_id: key.parent_key_id.unwrap_or(key.id),
            key_prefix: key.prefix.clone(),
            key_type: key.key_type,
            agent_typed: key.agent_typed,
            impersonating: agent.is_some() && key.agent_id.is_none(),
            agent,
            scopes,
            key_deprecated: key.status(now) == KeyStatus::Deprecated,
            peer: facts.peer.map(|ip| ip.to_canonical()),
            caller: facts.caller,
            caller_type: facts.caller_type,
            context: facts.context,
            trace_id: facts.trace_id,
            request_rule: facts.request_rule,
            pending_nonce: pending_nonce.clone(),
        })
    }

    /// Claims a nonce admission left pending, if it still is: before a step with an effect of
    /// its own, and — by the server, once the request is answered or abandoned — for a request
    /// that ended before its first write (a refusal, a failure, a full queue), so that no
    /// replay of it is ever admitted. A nonce seen before is [`Error::Unauthenticated`].
    pub async fn settle_nonce(&self, pending: &PendingNonce) -> Result<()> {
        match pending.take() {
            Some(claim) => self.claim_nonce(claim).await,
            None => Ok(()),
        }
    }

    async fn claim_nonce(&self, claim: NonceClaim) -> Result<()> {
        if self
            .store()
            .claim_nonce(claim.key, &claim.nonce, claim.at)
            .await?
        {
            Ok(())
        } else {
            Err(Error::Unauthenticated)
        }
    }

    /// The agent a request acts as: the key's own agent, or (for a key that is not
    /// agent-typed) the managed agent an `X-Alter-Caller` UUID of type `agent` names, which
    /// must be active. An agent-typed key bound to no agent (an `ak`, or a key derived from
    /// one) can be no agent at all.
    async fn resolve_agent(&self, key: &ApiKey, facts: &RequestFacts) -> Result<Option<Agent>> {
        let named = match (facts.caller_type.as_deref(), facts.caller.as_deref()) {
            (Some("agent"), Some(caller)) => AgentId::parse_lenient(caller),
            _ => None,
        };
        match (key.agent_id, named) {
            (Some(own), Some(named)) if own != named => Err(Error::CallerAgentMismatch),
            (Some(own), _) => match self.agent(key.app_id, own).await {
                Ok(agent) => Ok(Some(agent)),
                Err(Error::NotFound(_)) => Err(Error::Unauthenticated),
                Err(e) => Err(e),
            },
            (None, Some(_)) if key.agent_typed => Err(Error::CallerAgentMismatch),
            (None, Some(named)) => match self.agent(key.app_id, named).await {
                Ok(agent) if agent.status == AgentStatus::Active => Ok(Some(agent)),
                Ok(_) | Err(Error::NotFound(_)) => Err(Error::CallerAgentUnresolved),
                Err(e) => Err(e),
            },
            _ => Ok(None),
        }
    }

    /// Forgets nonces old enough that their timestamps can no longer pass the window on any
    /// node. A nonce is kept under its signed timestamp `t`, so a replay passes no node after
    /// `t + window`; the 60 s beyond that cover nodes' clocks disagreeing by up to 60 s (the
    /// node pruning ahead of the node that saw it). The horizon is kept at `2 × window`
    /// because nonces stored before (SQLite's rows of before, PostgreSQL's legacy table) hold
    /// their claim time `s` instead, and were signed no later than `s + window`.
    pub async fn prune_nonces(&self) -> Result<u64> {
        let keep = 2 * self.settings().timestamp_window_seconds + 60;
        let before = self.now().plus_seconds(-keep);
        Ok(self.store().prune_nonces(before).await?)
    }
}

/// The client sends 32 hex characters; other clients may send any 16–128 URL-safe characters.
fn valid_nonce(nonce: &str) -> bool {
    (16..=128).contains(&nonce.len())
        && nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether `peer` is in one of `allowlist`'s networks. An IPv4 address and its IPv4-mapped IPv6
/// form (`::ffff:a.b.c.d`, as a dual-stack listener reports IPv4 peers) are the same peer.
fn peer_allowed(allowlist: &[IpNet], peer: IpAddr) -> bool {
    let forms = match peer {
        IpAddr::V4(v4) => [peer, IpAddr::V6(v4.to_ipv6_mapped())],
        IpAddr::V6(v6) => [peer, v6.to_ipv4_mapped().map_or(peer, IpAddr::V4)],
    };
    allowlist
        .iter()
        .any(|net| forms.iter().any(|ip| net.contains(ip)))
}

/// Effective scopes under `X-Alter-Scope-Constraints`: the constraint scopes, each of which the
/// key must imply.
fn attenuate(held: &ScopeSet, constraints: Option<&[String]>) -> Result<ScopeSet> {
    let Some(constraints) = constraints else {
        return Ok(held.clone());
    };
    if constraints.is_empty() || constraints.iter().any(|c| c.is_empty() || c == "*") {
        return Err(Error::InvalidAttenuation(
            "scope constraints must list scopes, without empty entries or *".into(),
        ));
    }
    let wanted = ScopeSet::parse(constraints)
        .map_err(|e| Error::InvalidAttenuation(format!("scope constraints: {e}")))?;
    let not_held = held.missing_from(&wanted);
    if !not_held.is_empty() {
        return Err(Error::ConstraintNotNarrowing(
            not_held.iter().map(ToString::to_string).collect(),
        ));
    }
    Ok(wanted)
}

/// Bounds of `X-Alter-Context`.
const MAX_CONTEXT_LEN: usize = 4096;
const MAX_CONTEXT_KEYS: usize = 20;
const MAX_CONTEXT_KEY_LEN: usize = 64;
const MAX_CONTEXT_VALUE_LEN: usize = 512;

/// `X-Alter-Context`: a compact JSON object of strings, bounded.
pub fn decode_context(text: &str) -> Result<BTreeMap<String, String>> {
    let invalid = |why: &str| Error::Invalid(format!("X-Alter-Context: {why}"));
    if text.len() > MAX_CONTEXT_LEN {
        return Err(invalid("at most 4096 characters"));
    }
    let map: BTreeMap<String, String> =
        serde_json::from_str(text).map_err(|_| invalid("must be a JSON object of strings"))?;
    if map.len() > MAX_CONTEXT_KEYS {
        return Err(invalid("at most 20 keys"));
    }
    if map.iter().any(|(k, v)| {
        k.is_empty() || k.len() > MAX_CONTEXT_KEY_LEN || v.len() > MAX_CONTEXT_VALUE_LEN
    }) {
        return Err(invalid("keys are 1-64 bytes and values at most 512 bytes"));
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_limits() {
        assert_eq!(
            decode_context(r#"{"run_id":"r1"}"#)
                .unwrap()
                .get("run_id")
                .unwrap(),
            "r1"
        );
        assert!(decode_context(r#"{"run_id":1}"#).is_err());
        assert!(decode_context("[]").is_err());
        let many: BTreeMap<String, String> = (0..21)
            .map(|i| (format!("k{i}"), "v".to_string()))
            .collect();
        assert!(decode_context(&serde_json::to_string(&many).unwrap()).is_err());
    }

    fn set(texts: &[&str]) -> ScopeSet {
        ScopeSet::parse(texts).unwrap()
    }

    #[test]
    fn constraints_only_narrow() {
        let held = set(&["grants:admin", "tokens:retrieve"]);
        assert_eq!(attenuate(&held, None).unwrap(), held);
        let narrowed = attenuate(&held, Some(&["grants:read:g1".into()])).unwrap();
        assert_eq!(narrowed, set(&["grants:read:g1"]));
        assert!(matches!(
            attenuate(&held, Some(&["proxy:execute".into()])),
            Err(Error::ConstraintNotNarrowing(s)) if s == vec!["proxy:execute".to_string()]
        ));
        for bad in [
            vec![],
            vec!["".to_string()],
            vec!["*".to_string()],
            vec!["nope".to_string()],
        ] {
            assert!(matches!(
                attenuate(&held, Some(&bad)),
                Err(Error::InvalidAttenuation(_))
            ));
        }
    }

    #[test]
    fn ipv4_peers_match_in_either_form() {
        let v4_net = ["10.0.0.0/8".parse::<IpNet>().unwrap()];
        let mapped_net = ["::ffff:10.0.0.0/104".parse::<IpNet>().unwrap()];
        for allowlist in [&v4_net, &mapped_net] {
            for peer in ["10.0.0.1", "::ffff:10.0.0.1"] {
                assert!(peer_allowed(allowlist, peer.parse().unwrap()), "{peer}");
            }
            for peer in ["11.0.0.1", "::ffff:11.0.0.1", "::1", "::a00:1"] {
                assert!(!peer_allowed(allowlist, peer.parse().unwrap()), "{peer}");
            }
        }
    }

    #[test]
    fn nonces() {
        assert!(valid_nonce("00112233445566778899aabbccddeeff"));
        assert!(!valid_nonce("short"));
        assert!(!valid_nonce("0011223344556677 8899aabbccddeeff"));
    }
}

/// Keys a node read and verified a signature with a moment ago, by lookup hash, for the two
/// credential-use routes only (see [`Vault::authenticate`]): the key's row and its opened
/// signing key, kept [`VERIFIED_KEY_TTL`] at most. Saves a read and a decryption on each
/// release; a revocation reaches the release's commit, which checks the key again, at once,
/// and the steps before it within the TTL. Revocations on this node forget every entry.
#[derive(Default)]
pub(crate) struct VerifiedKeys(Mutex<HashMap<[u8; 32], VerifiedKey>>);

struct VerifiedKey {
    key: Arc<ApiKey>,
    signing_key: Zeroizing<[u8; 32]>,
    read_at: Instant,
}

/// How long a node trusts a key it read.
const VERIFIED_KEY_TTL: Duration = Duration::from_secs(1);

/// Keys a node keeps; past it the cache starts over.
const MAX_VERIFIED_KEYS: usize = 10_000;

impl std::fmt::Debug for VerifiedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VerifiedKeys")
    }
}

impl VerifiedKeys {
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], VerifiedKey>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, hash: &[u8; 32]) -> Option<(Arc<ApiKey>, Zeroizing<[u8; 32]>)> {
        let entries = self.entries();
        let entry = entries.get(hash)?;
        (entry.read_at.elapsed() < VERIFIED_KEY_TTL)
            .then(|| (entry.key.clone(), entry.signing_key.clone()))
    }

    fn put(
        &self,
        hash: [u8; 32],
        key: Arc<ApiKey>,
        signing_key: Zeroizing<[u8; 32]>,
        read_at: Instant,
    ) {
        let mut entries = self.entries();
        if entries.len() >= MAX_VERIFIED_KEYS {
            entries.retain(|_, e| e.read_at.elapsed() < VERIFIED_KEY_TTL);
            if entries.len() >= MAX_VERIFIED_KEYS {
                entries.clear();
            }
        }
        entries.insert(
            hash,
            VerifiedKey {
                key,
                signing_key,
                read_at,
            },
        );
    }

    fn forget(&self, hash: &[u8; 32]) {
        self.entries().remove(hash);
    }

    /// Forgets every key: a key changed on this node.
    pub(crate) fn clear(&self) {
        self.entries().clear();
    }
}
