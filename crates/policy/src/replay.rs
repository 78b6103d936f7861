//! What-if: a draft rule set replayed over past decisions' facts, with the same evaluation as
//! live calls. Rate limits are simulated with an in-memory GCRA over the ordered stream (the
//! same arithmetic as the shared bucket rows), so the counts are an estimate: calls the draft
//! would have denied took no token, retries are unknown.

use std::collections::HashMap;

use alter_core::rules::{
    Effect, FACTS_VERSION, PastDecision, Rule, RuleMode, WhatIfReport, WhatIfRule,
};

use crate::{Engine, RuleResult};

/// Examples kept per rule.
const EXAMPLES: usize = 10;

fn empty(draft: &[Rule], total: u64) -> WhatIfReport {
    WhatIfReport {
        total,
        indeterminate: 0,
        allow: 0,
        hold: 0,
        deny: 0,
        rules: draft
            .iter()
            .map(|r| WhatIfRule {
                rule_id: r.id,
                kind: r.kind.clone(),
                denied: 0,
                held: 0,
                indeterminate: 0,
                examples: Vec::new(),
            })
            .collect(),
    }
}

/// The report when replay itself failed: nothing could be decided.
pub fn all_indeterminate(draft: &[Rule], past: &[PastDecision]) -> WhatIfReport {
    let total = past.len() as u64;
    let mut report = empty(draft, total);
    report.indeterminate = total;
    for r in &mut report.rules {
        r.indeterminate = total;
    }
    report
}

/// One GCRA step: whether a call at `now` (µs) gets a token, updating the bucket's TAT.
fn take(tat: &mut Option<i64>, now: i64, per_minute: u32, burst: u32) -> bool {
    let t = 60_000_000 / i64::from(per_minute.max(1));
    let tau = i64::from(burst.max(1) - 1) * t;
    let base = tat.map_or(now, |v| v.max(now));
    if base - now > tau {
        return false;
    }
    *tat = Some(base + t);
    true
}

/// Replays `draft` over `past` in order.
pub fn replay(engine: &Engine, draft: &[Rule], past: &[PastDecision]) -> WhatIfReport {
    let mut report = empty(draft, past.len() as u64);
    let mut buckets: HashMap<String, Option<i64>> = HashMap::new();
    for record in past {
        let Some(facts) = record.facts.as_ref().filter(|f| f.version == FACTS_VERSION) else {
            report.indeterminate += 1;
            for r in &mut report.rules {
                r.indeterminate += 1;
            }
            continue;
        };
        let (mut deny, mut hold, mut unknown) = (false, false, false);
        let mut demands = Vec::new();
        for (i, result) in engine.results(draft, facts) {
            let enforced = draft[i].mode == RuleMode::Enforce;
            let stats = &mut report.rules[i];
            let effect = match result {
                RuleResult::Fire(_, _, effect) => effect,
                RuleResult::Error(_) => {
                    // As live: an error denies, whatever the rule's mode.
                    deny = true;
                    Effect::Deny
                }
                RuleResult::Unknown(_) => {
                    stats.indeterminate += 1;
                    unknown |= enforced;
                    continue;
                }
                RuleResult::Rate(demand) => {
                    if enforced {
                        demands.push((i, demand));
                    }
                    continue;
                }
            };
            match effect {
                Effect::Deny => stats.denied += 1,
                Effect::Hold => stats.held += 1,
            }
            if stats.examples.len() < EXAMPLES {
                stats.examples.push(record.event_id);
            }
            deny |= enforced && effect == Effect::Deny;
            hold |= enforced && effect == Effect::Hold;
        }
        if !deny && !unknown {
            for (i, demand) in demands {
                let tat = buckets.entry(demand.bucket).or_insert(None);
                if !take(tat, facts.at.micros(), demand.per_minute, demand.burst) {
                    let stats = &mut report.rules[i];
                    stats.denied += 1;
                    if stats.examples.len() < EXAMPLES {
                        stats.examples.push(record.event_id);
                    }
                    deny = true;
                    break;
                }
            }
        }
        if deny {
            report.deny += 1;
        } else if unknown {
            report.indeterminate += 1;
        } else if hold {
            report.hold += 1;
        } else {
            report.allow += 1;
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::take;

    #[test]
    fn gcra_admits_the_burst_then_one_per_interval() {
        // 3 per minute, burst 3: T = 20 s.
        let mut tat = None;
        let s = 1_000_000;
        assert!(take(&mut tat, 0, 3, 3));
        assert!(take(&mut tat, 0, 3, 3));
        assert!(take(&mut tat, 0, 3, 3));
        assert!(!take(&mut tat, 0, 3, 3));
        assert!(!take(&mut tat, 19 * s, 3, 3));
        assert!(take(&mut tat, 20 * s, 3, 3));
        assert!(!take(&mut tat, 20 * s, 3, 3));
    }
}
