//! The policy engine behind core's [`RuleEngine`] port: it validates rules when they are saved,
//! evaluates them for every credential use, and replays draft rule sets over past decisions.
//! Evaluation fails closed: a rule it cannot evaluate denies.

use alter_core::request_rule::RequestRule;
use alter_core::rules::{
    Decision, DecisionFacts, Outcome, PastDecision, Rule, RuleEngine, WhatIfReport,
};
use serde_json::Value;

/// The engine.
#[derive(Debug, Default)]
pub struct Engine;

impl Engine {
    /// A new engine.
    pub fn new() -> Engine {
        Engine
    }
}

impl RuleEngine for Engine {
    fn validate(&self, rule: &Rule) -> Result<Value, String> {
        Err(format!("unknown rule kind {:?}", rule.kind))
    }

    fn evaluate(&self, rules: &[Rule], _facts: &DecisionFacts) -> Decision {
        // No kind is known yet: any rule present denies.
        let errors: Vec<String> = rules
            .iter()
            .map(|r| format!("unknown rule kind {:?}", r.kind))
            .collect();
        Decision {
            outcome: if errors.is_empty() {
                Outcome::Allow
            } else {
                Outcome::Deny
            },
            matched: Vec::new(),
            errors,
            rate_limits: Vec::new(),
        }
    }

    fn evaluate_request_rule(
        &self,
        _rule: &RequestRule,
        _facts: &DecisionFacts,
    ) -> Option<alter_core::rules::MatchedRule> {
        None
    }

    fn replay(&self, _draft: &[Rule], past: &[PastDecision]) -> WhatIfReport {
        WhatIfReport {
            total: past.len() as u64,
            indeterminate: past.len() as u64,
            allow: 0,
            hold: 0,
            deny: 0,
            rules: Vec::new(),
        }
    }
}
