//! The policy engine behind core's [`RuleEngine`] port: it validates rules when they are saved,
//! evaluates them for every credential use, and replays draft rule sets over past decisions.
//! Evaluation fails closed: a rule it cannot evaluate denies, and so does a panic.
//!
//! Typed kinds are plain Rust (microseconds); only `custom` rules go through Cedar, compiled as
//! forbid-only policies scoped to their target. Parsed rules are cached per rule version.

mod cedar;
mod glob;
mod kinds;
mod limits;
mod params;
mod replay;
mod request_rule;
mod windows;

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};

use alter_core::ids::RuleId;
use alter_core::request_rule::RequestRule;
use alter_core::rules::{
    ApprovalTerms, CallMode, Decision, DecisionFacts, Effect, MatchedRule, Outcome, PastDecision,
    RateDemand, Rule, RuleEngine, RuleMode, RuleTarget, WhatIfReport,
};
use serde_json::Value;

pub use kinds::{AppliesTo, KINDS, RequireApproval, approval_terms};

use kinds::{Compiled, Kind, Verdict};

/// The code of a rule that only the proxy can enforce, asked in retrieve mode.
pub const RESTRICTED_REQUIRES_PROXY: &str = "restricted_grant_requires_proxy";
/// The code of a rule that holds for approval, asked in retrieve mode.
pub const HITL_REQUIRES_PROXY: &str = "hitl_grant_requires_proxy";
/// The code of a rule that could not be evaluated.
pub const EVALUATION_FAILED: &str = "policy_evaluation_failed";
/// The code of a matched hold rule.
pub const APPROVAL_REQUIRED: &str = "approval_required";

#[derive(Debug)]
struct CacheEntry {
    kind: String,
    target: RuleTarget,
    effect: Effect,
    body: Value,
    compiled: Arc<Compiled>,
}

/// The engine. Holds only a cache of compiled rules: evaluation is a pure function of the
/// rules and the facts.
#[derive(Debug, Default)]
pub struct Engine {
    cache: Mutex<HashMap<(RuleId, i64), CacheEntry>>,
}

/// What one applicable rule said, before outcomes are merged.
#[derive(Debug)]
pub(crate) enum RuleResult {
    /// Fired: code, detail, the effect it has (a hold asked in retrieve mode denies).
    Fire(&'static str, String, Effect),
    /// Could not be known from the facts (replay: indeterminate; live: denies).
    Unknown(String),
    /// Evaluation failed.
    Error(String),
    /// Asks for a rate-limit token.
    Rate(RateDemand),
}

impl Engine {
    /// A new engine.
    pub fn new() -> Engine {
        Engine::default()
    }

    /// The compiled rule, from the cache when this exact version (kind, target, effect and
    /// body) was compiled before.
    fn compiled(&self, rule: &Rule) -> Result<Arc<Compiled>, String> {
        let key = (rule.id, rule.version);
        {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(e) = cache.get(&key)
                && e.kind == rule.kind
                && e.target == rule.target
                && e.effect == rule.effect
                && e.body == rule.body
            {
                return Ok(e.compiled.clone());
            }
        }
        let compiled = Arc::new(kinds::compile(rule)?);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= limits::MAX_CACHED {
            cache.clear();
        }
        cache.insert(
            key,
            CacheEntry {
                kind: rule.kind.clone(),
                target: rule.target.clone(),
                effect: rule.effect,
                body: rule.body.clone(),
                compiled: compiled.clone(),
            },
        );
        Ok(compiled)
    }

    /// Evaluates every rule that applies to the call, in order, without merging: the index of
    /// each rule that said something and what it said.
    pub(crate) fn results(
        &self,
        rules: &[Rule],
        facts: &DecisionFacts,
    ) -> Vec<(usize, RuleResult)> {
        let mut out = Vec::new();
        let mut custom: Vec<(usize, Arc<Compiled>)> = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            if !touches(rule, facts) {
                continue;
            }
            let c = match self.compiled(rule) {
                Ok(c) => c,
                Err(e) => {
                    out.push((i, RuleResult::Error(format!("rule {}: {e}", rule.id))));
                    continue;
                }
            };
            if let Some(f) = &c.filter
                && !f.admits(facts)
            {
                continue;
            }
            if facts.mode == CallMode::Retrieve && c.kind.needs_proxy() {
                let code = if rule.effect == Effect::Hold {
                    HITL_REQUIRES_PROXY
                } else {
                    RESTRICTED_REQUIRES_PROXY
                };
                out.push((
                    i,
                    RuleResult::Fire(
                        code,
                        format!("a {} rule is enforced only on proxied calls", rule.kind),
                        Effect::Deny,
                    ),
                ));
                continue;
            }
            match &c.kind {
                Kind::Rate {
                    per_minute,
                    burst,
                    per,
                } => match kinds::rate_bucket(rule, *per, facts) {
                    Ok(Some(bucket)) => out.push((
                        i,
                        RuleResult::Rate(RateDemand {
                            rule_id: rule.id,
                            bucket,
                            per_minute: *per_minute,
                            burst: *burst,
                        }),
                    )),
                    Ok(None) => {}
                    Err(e) => out.push((i, RuleResult::Error(format!("rule {}: {e}", rule.id)))),
                },
                Kind::Custom(_) => custom.push((i, c.clone())),
                kind => match kind.check(facts) {
                    Verdict::Pass => {}
                    Verdict::Fire(code, detail) => {
                        out.push((i, fire(rule, facts.mode, code, detail)));
                    }
                    Verdict::Unknown(why) => out.push((i, RuleResult::Unknown(why))),
                },
            }
        }
        if !custom.is_empty() {
            let batch: Vec<(&Rule, &cedar::CustomRule)> = custom
                .iter()
                .filter_map(|(i, c)| match &c.kind {
                    Kind::Custom(cr) => Some((&rules[*i], cr.as_ref())),
                    _ => None,
                })
                .collect();
            let verdicts = cedar::evaluate(&batch, facts);
            for ((i, _), verdict) in custom.iter().zip(verdicts) {
                let rule = &rules[*i];
                match verdict {
                    Ok(false) => {}
                    Ok(true) => out.push((
                        *i,
                        fire(
                            rule,
                            facts.mode,
                            "policy_denied",
                            "the custom condition matched".into(),
                        ),
                    )),
                    Err(e) => out.push((*i, RuleResult::Error(format!("rule {}: {e}", rule.id)))),
                }
            }
            out.sort_by_key(|(i, _)| *i);
        }
        out
    }

    fn evaluate_inner(&self, rules: &[Rule], facts: &DecisionFacts) -> Decision {
        let mut decision = Decision {
            outcome: Outcome::Allow,
            matched: Vec::new(),
            errors: Vec::new(),
            rate_limits: Vec::new(),
        };
        for (i, result) in self.results(rules, facts) {
            let rule = &rules[i];
            let (code, detail, effect) = match result {
                RuleResult::Fire(code, detail, effect) => (code, detail, effect),
                RuleResult::Unknown(why) => ("parameter_not_allowed", why, Effect::Deny),
                RuleResult::Error(e) => {
                    decision.errors.push(e);
                    (
                        EVALUATION_FAILED,
                        "the rule could not be evaluated".to_owned(),
                        Effect::Deny,
                    )
                }
                RuleResult::Rate(demand) => {
                    if rule.mode == RuleMode::Enforce {
                        decision.rate_limits.push(demand);
                    }
                    continue;
                }
            };
            decision.matched.push(MatchedRule {
                rule_id: rule.id,
                version: rule.version,
                kind: rule.kind.clone(),
                effect,
                mode: rule.mode,
                code: code.to_owned(),
                detail,
                approval: (effect == Effect::Hold)
                    .then(|| approval_terms(rule))
                    .flatten()
                    .map(|terms| ApprovalTerms {
                        ttl_seconds: terms.ttl_seconds,
                        approvers: terms.approvers,
                    }),
            });
        }
        decision.outcome = merge(&decision.matched, !decision.errors.is_empty());
        decision
    }
}

/// A fired rule: a hold asked in retrieve mode cannot wait for anyone and denies instead.
fn fire(rule: &Rule, mode: CallMode, code: &'static str, detail: String) -> RuleResult {
    match (rule.effect, mode) {
        (Effect::Deny, _) => RuleResult::Fire(code, detail, Effect::Deny),
        (Effect::Hold, CallMode::Proxy) => {
            RuleResult::Fire(APPROVAL_REQUIRED, detail, Effect::Hold)
        }
        (Effect::Hold, CallMode::Retrieve) => {
            RuleResult::Fire(HITL_REQUIRES_PROXY, detail, Effect::Deny)
        }
    }
}

/// Deny > hold > allow over the enforced matches; any error denies.
fn merge(matched: &[MatchedRule], errors: bool) -> Outcome {
    let enforced = || matched.iter().filter(|m| m.mode == RuleMode::Enforce);
    if errors || enforced().any(|m| m.effect == Effect::Deny) {
        Outcome::Deny
    } else if enforced().any(|m| m.effect == Effect::Hold) {
        Outcome::Hold
    } else {
        Outcome::Allow
    }
}

/// Whether the call touches the rule's target (and the rule is the call's app's).
fn touches(rule: &Rule, facts: &DecisionFacts) -> bool {
    rule.app_id == facts.app_id
        && match &rule.target {
            RuleTarget::App => true,
            RuleTarget::Provider(p) => *p == facts.provider_id,
            RuleTarget::Agent(a) => facts.agent_id == Some(*a),
            RuleTarget::Grant(g) => facts.grants.contains(g),
        }
}

fn panicked() -> Decision {
    Decision {
        outcome: Outcome::Deny,
        matched: Vec::new(),
        errors: vec!["the policy engine failed".into()],
        rate_limits: Vec::new(),
    }
}

/// Runs `work`; if it panics, the fail-closed `fallback` instead.
fn guarded<T>(work: impl FnOnce() -> T, fallback: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(work)).unwrap_or_else(|_| fallback())
}

impl RuleEngine for Engine {
    fn validate(&self, rule: &Rule) -> Result<Value, String> {
        guarded(
            || kinds::compile(rule).map(|c| c.normal),
            || Err("the rule could not be checked".into()),
        )
    }

    fn evaluate(&self, rules: &[Rule], facts: &DecisionFacts) -> Decision {
        guarded(|| self.evaluate_inner(rules, facts), panicked)
    }

    fn evaluate_request_rule(
        &self,
        rule: &RequestRule,
        facts: &DecisionFacts,
    ) -> Option<MatchedRule> {
        guarded(
            || request_rule::evaluate(rule, facts),
            || Some(request_rule::failed()),
        )
    }

    fn replay(&self, draft: &[Rule], past: &[PastDecision]) -> WhatIfReport {
        guarded(
            || replay::replay(self, draft, past),
            || replay::all_indeterminate(draft, past),
        )
    }
}

#[cfg(test)]
mod tests;
