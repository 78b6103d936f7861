//! `custom` rules: an operator's Cedar condition, compiled as one forbid scoped to the rule's
//! target.

use alter_core::rules::Rule;

/// A compiled custom rule.
#[derive(Debug)]
pub struct CustomRule {
    reads_target: bool,
}

impl CustomRule {
    /// Compiles the condition (`when` if `when`, else `unless`).
    pub fn compile(_rule: &Rule, _when: bool, text: &str) -> Result<CustomRule, String> {
        if text.len() > crate::limits::MAX_CEDAR_LEN {
            return Err("the condition is too long".into());
        }
        Err("custom rules are not available yet".into())
    }

    /// Whether the condition reads `context.target` (then it needs the proxy).
    pub fn reads_target(&self) -> bool {
        self.reads_target
    }
}

/// Evaluates custom rules: per rule, whether it fired, or why it could not be evaluated.
pub fn evaluate(
    batch: &[(&Rule, &CustomRule)],
    _facts: &alter_core::rules::DecisionFacts,
) -> Vec<Result<bool, String>> {
    batch
        .iter()
        .map(|_| Err("custom rules are not available yet".to_owned()))
        .collect()
}
