//! `custom` rules: an operator writes only a Cedar condition; the engine generates the policy
//! around it, always `forbid` and scoped to the rule's target, so a custom rule can neither grant
//! anything nor reach another target. It is strict-validated against [`SCHEMA`] when saved and
//! evaluated with programmatic entities and context (no schema on the hot path: the types are
//! right by construction). Cedar skips a policy that errors; here any error denies.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use alter_core::rules::{CallMode, DecisionFacts, Rule, RuleTarget};
use cedar_policy::{
    ActionConstraint, Authorizer, Context, Effect as CedarEffect, Entities, Entity, EntityId,
    EntityTypeName, EntityUid, Policy, PolicyId, PolicySet, PrincipalConstraint, Request,
    ResourceConstraint, RestrictedExpression, Schema, ValidationMode, Validator,
};
use serde_json::Value;

use crate::limits::MAX_CEDAR_LEN;

/// The schema custom conditions are validated against: the facts of a decision.
pub const SCHEMA: &str = r#"
namespace Alter {
  entity App;
  entity Provider;
  entity Grant in [Grant, App, Provider];
  entity Agent in [App];
  entity Key in [App];
  type Target = {
    method: String,
    scheme: String,
    host: String,
    port: Long,
    path: String,
    query_keys: Set<String>,
  };
  action "retrieve", "proxy" appliesTo {
    principal: [Agent, Key],
    resource: [Grant],
    context: {
      now: __cedar::datetime,
      mode: String,
      key_id: String,
      key_type: String,
      agent_id?: String,
      source_ip?: __cedar::ipaddr,
      provider_id: String,
      credential_kind: String,
      user_id?: String,
      groups: Set<String>,
      reason?: String,
      target: Target,
    }
  };
}
"#;

fn schema() -> Result<&'static Schema, String> {
    static SCHEMA_CELL: OnceLock<Result<Schema, String>> = OnceLock::new();
    SCHEMA_CELL
        .get_or_init(|| {
            Schema::from_cedarschema_str(SCHEMA)
                .map(|(s, _)| s)
                .map_err(|e| format!("the custom rule schema is invalid: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// A compiled custom rule.
#[derive(Debug)]
pub struct CustomRule {
    policy: Policy,
    reads_target: bool,
}

fn uid(kind: &str, id: &str) -> Result<EntityUid, String> {
    let name: EntityTypeName = format!("Alter::{kind}")
        .parse()
        .map_err(|_| format!("bad entity type {kind}"))?;
    Ok(EntityUid::from_type_name_and_id(name, EntityId::new(id)))
}

/// The head of the policy for a target: (principal, resource) constraints and their text.
fn scope(rule: &Rule) -> Result<(String, PrincipalConstraint, ResourceConstraint), String> {
    let quote = |s: &str| Value::String(s.to_owned()).to_string();
    Ok(match &rule.target {
        RuleTarget::App => {
            let id = rule.app_id.to_string();
            (
                format!("principal, action, resource in Alter::App::{}", quote(&id)),
                PrincipalConstraint::Any,
                ResourceConstraint::In(uid("App", &id)?),
            )
        }
        RuleTarget::Provider(p) => (
            format!(
                "principal, action, resource in Alter::Provider::{}",
                quote(p)
            ),
            PrincipalConstraint::Any,
            ResourceConstraint::In(uid("Provider", p)?),
        ),
        RuleTarget::Agent(a) => {
            let id = a.to_string();
            (
                format!(
                    "principal == Alter::Agent::{}, action, resource",
                    quote(&id)
                ),
                PrincipalConstraint::Eq(uid("Agent", &id)?),
                ResourceConstraint::Any,
            )
        }
        RuleTarget::Grant(g) => {
            let id = g.to_string();
            (
                format!(
                    "principal, action, resource in Alter::Grant::{}",
                    quote(&id)
                ),
                PrincipalConstraint::Any,
                ResourceConstraint::In(uid("Grant", &id)?),
            )
        }
    })
}

/// Whether an EST (Cedar's JSON form of a policy) reads an attribute named `target`.
fn reads_target(est: &Value) -> bool {
    match est {
        Value::Object(map) => map.iter().any(|(k, v)| {
            (k == "attr"
                && (v.as_str() == Some("target")
                    || v.as_array()
                        .is_some_and(|a| a.iter().any(|x| x.as_str() == Some("target")))))
                || reads_target(v)
        }),
        Value::Array(items) => items.iter().any(reads_target),
        _ => false,
    }
}

impl CustomRule {
    /// Compiles the operator's condition (`when` if `when`, else `unless`) into the rule's
    /// forbid, checks it is exactly that policy, and strict-validates it.
    pub fn compile(rule: &Rule, when: bool, text: &str) -> Result<CustomRule, String> {
        if text.trim().is_empty() || text.len() > MAX_CEDAR_LEN {
            return Err(format!(
                "the condition must be 1 to {MAX_CEDAR_LEN} characters"
            ));
        }
        let (head, principal, resource) = scope(rule)?;
        let clause = if when { "when" } else { "unless" };
        let rule_id = rule.id.to_string();
        let source = format!("@rule_id(\"{rule_id}\")\nforbid ({head})\n{clause} {{\n{text}\n}};");
        let id = PolicyId::new(&rule_id);
        let policy = Policy::parse(Some(id), &source)
            .map_err(|e| format!("the condition is not a single Cedar condition: {e}"))?;
        let shape_ok = policy.effect() == CedarEffect::Forbid
            && policy.principal_constraint() == principal
            && policy.action_constraint() == ActionConstraint::Any
            && policy.resource_constraint() == resource
            && policy.annotation("rule_id") == Some(rule_id.as_str())
            && policy.annotations().count() == 1;
        if !shape_ok {
            return Err("the condition changes the generated policy".into());
        }
        let mut set = PolicySet::new();
        set.add(policy.clone())
            .map_err(|e| format!("the condition cannot be used: {e}"))?;
        let result = Validator::new(schema()?.clone()).validate(&set, ValidationMode::Strict);
        if !result.validation_passed() {
            let errors: Vec<String> = result.validation_errors().map(|e| e.to_string()).collect();
            return Err(format!(
                "the condition does not validate: {}",
                errors.join("; ")
            ));
        }
        let reads_target = policy
            .to_json()
            .map(|est| reads_target(&est))
            .unwrap_or(true);
        Ok(CustomRule {
            policy,
            reads_target,
        })
    }

    /// Whether the condition reads `context.target` (then it needs the proxy).
    pub fn reads_target(&self) -> bool {
        self.reads_target
    }
}

/// The Cedar request and entities for a decision.
fn request(facts: &DecisionFacts, schema: Option<&Schema>) -> Result<(Request, Entities), String> {
    let t = &facts.target;
    let app = uid("App", &facts.app_id.to_string())?;
    let provider = uid("Provider", &facts.provider_id)?;
    let mut entities = vec![
        Entity::new_no_attrs(app.clone(), HashSet::new()),
        Entity::new_no_attrs(provider.clone(), HashSet::new()),
    ];
    // The grant used, each in the next of its chain (a delegation is "in" its parent grant).
    let chain: Vec<String> = if facts.grants.is_empty() {
        vec![String::new()]
    } else {
        facts.grants.iter().map(ToString::to_string).collect()
    };
    for (i, g) in chain.iter().enumerate() {
        let mut parents = HashSet::from([app.clone(), provider.clone()]);
        if let Some(parent) = chain.get(i + 1) {
            parents.insert(uid("Grant", parent)?);
        }
        entities.push(Entity::new_no_attrs(uid("Grant", g)?, parents));
    }
    let resource = uid("Grant", &chain[0])?;
    let principal = match facts.agent_id {
        Some(a) => uid("Agent", &a.to_string())?,
        None => uid("Key", &facts.key_id.to_string())?,
    };
    entities.push(Entity::new_no_attrs(
        principal.clone(),
        HashSet::from([app.clone()]),
    ));
    let action_name = match facts.mode {
        CallMode::Retrieve => "retrieve",
        CallMode::Proxy => "proxy",
    };
    let action = uid("Action", action_name)?;
    let s = |v: &str| RestrictedExpression::new_string(v.to_owned());
    let mut query_keys: Vec<&str> = t.query.iter().map(|(k, _)| k.as_str()).collect();
    query_keys.sort_unstable();
    query_keys.dedup();
    let target = RestrictedExpression::new_record([
        ("method".to_owned(), s(&t.method)),
        ("scheme".to_owned(), s(&t.scheme)),
        ("host".to_owned(), s(&t.host)),
        (
            "port".to_owned(),
            RestrictedExpression::new_long(i64::from(t.port)),
        ),
        // Canonical, so that no spelling of a path dodges a forbid written against it.
        ("path".to_owned(), s(&crate::glob::canonical_path(&t.path))),
        (
            "query_keys".to_owned(),
            RestrictedExpression::new_set(query_keys.into_iter().map(s)),
        ),
    ])
    .map_err(|e| format!("the call cannot be described to Cedar: {e}"))?;
    let now = jiff::Timestamp::from_second(facts.at.unix_seconds())
        .map_err(|_| "the decision time is out of range".to_owned())?;
    let mut pairs = vec![
        (
            "now".to_owned(),
            RestrictedExpression::new_datetime(now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
        ),
        ("mode".to_owned(), s(action_name)),
        ("key_id".to_owned(), s(&facts.key_id.to_string())),
        ("key_type".to_owned(), s(&facts.key_type)),
        ("provider_id".to_owned(), s(&facts.provider_id)),
        ("credential_kind".to_owned(), s(&facts.credential_kind)),
        (
            "groups".to_owned(),
            RestrictedExpression::new_set(facts.groups.iter().map(|g| s(g))),
        ),
        ("target".to_owned(), target),
    ];
    if let Some(a) = facts.agent_id {
        pairs.push(("agent_id".to_owned(), s(&a.to_string())));
    }
    if let Some(ip) = facts.source_ip {
        pairs.push((
            "source_ip".to_owned(),
            RestrictedExpression::new_ip(ip.to_canonical().to_string()),
        ));
    }
    if let Some(u) = facts.user_id {
        pairs.push(("user_id".to_owned(), s(&u.to_string())));
    }
    if let Some(r) = &facts.reason {
        pairs.push(("reason".to_owned(), s(r)));
    }
    let context = Context::from_pairs(pairs)
        .map_err(|e| format!("the call cannot be described to Cedar: {e}"))?;
    let request = Request::new(principal, action, resource, context, schema)
        .map_err(|e| format!("the call cannot be described to Cedar: {e}"))?;
    let entities = Entities::from_entities(entities, schema)
        .map_err(|e| format!("the call cannot be described to Cedar: {e}"))?;
    Ok((request, entities))
}

/// Evaluates custom rules: per rule, whether it fired, or why it could not be evaluated.
pub fn evaluate(
    batch: &[(&Rule, &CustomRule)],
    facts: &DecisionFacts,
) -> Vec<Result<bool, String>> {
    // No schema on the hot path: the request is typed by construction (a test checks it).
    let (request, entities) = match request(facts, None) {
        Ok(r) => r,
        Err(e) => return batch.iter().map(|_| Err(e.clone())).collect(),
    };
    let mut set = PolicySet::new();
    let ids: Vec<PolicyId> = (0..batch.len())
        .map(|i| PolicyId::new(format!("r{i}")))
        .collect();
    for ((_, custom), id) in batch.iter().zip(&ids) {
        if let Err(e) = set.add(custom.policy.new_id(id.clone())) {
            let e = format!("the custom rules cannot be assembled: {e}");
            return batch.iter().map(|_| Err(e.clone())).collect();
        }
    }
    // Only forbids: the decision is always Deny; `reason` lists the forbids that fired.
    let response = Authorizer::new().is_authorized(&request, &set, &entities);
    let fired: HashSet<&PolicyId> = response.diagnostics().reason().collect();
    let mut errors: HashMap<&PolicyId, String> = HashMap::new();
    for e in response.diagnostics().errors() {
        let cedar_policy::AuthorizationError::PolicyEvaluationError(pe) = e;
        errors.insert(
            pe.policy_id(),
            format!("the custom condition failed: {}", pe.inner()),
        );
    }
    ids.iter()
        .map(|id| match errors.remove(id) {
            Some(e) => Err(e),
            None => Ok(fired.contains(id)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alter_core::ids::{AgentId, AppId, GrantId, KeyId, UserId};
    use alter_core::rules::{BodyFacts, FACTS_VERSION, TargetFacts};
    use alter_core::time::Timestamp;

    fn facts(agent: bool, ip: bool, mode: CallMode) -> DecisionFacts {
        DecisionFacts {
            version: FACTS_VERSION,
            at: Timestamp::from_unix_seconds(1_800_000_000),
            app_id: AppId::new(),
            mode,
            key_id: KeyId::new(),
            key_type: "dk".into(),
            root_key_id: None,
            agent_typed: false,
            agent_id: agent.then(AgentId::new),
            source_ip: ip.then(|| "::ffff:10.1.2.3".parse().unwrap()),
            grants: vec![GrantId::new(), GrantId::new()],
            provider_id: "stripe \"live\"".into(),
            credential_kind: "managed_secret".into(),
            user_id: Some(UserId::new()),
            groups: vec!["g1".into(), "g2".into()],
            target: TargetFacts {
                method: "GET".into(),
                scheme: "https".into(),
                host: "api.stripe.com".into(),
                port: 443,
                path: "/v1/charges".into(),
                query: vec![("a".into(), "1".into()), ("a".into(), "2".into())],
                body: Some(BodyFacts {
                    json: None,
                    truncated: true,
                    len: 1,
                    sha256: "00".into(),
                }),
            },
            reason: Some("why".into()),
        }
    }

    #[test]
    fn the_request_and_entities_conform_to_the_schema() {
        let schema = schema().unwrap();
        for (agent, ip, mode) in [
            (true, true, CallMode::Proxy),
            (false, false, CallMode::Retrieve),
        ] {
            let f = facts(agent, ip, mode);
            request(&f, Some(schema)).unwrap();
        }
    }
}
