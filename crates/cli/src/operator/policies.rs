//! `alter policy …`: an app's policy rules, and `alter policy test`, the what-if replay of a
//! draft rule set over past credential decisions.

use std::process::ExitCode;

use alter_sdk::Error;
use alter_sdk::admin::{
    CreateRuleRequest, DraftRuleBody, RuleInfo, RuleTargetBody, WhatIfRequest, WhatIfView,
};
use clap::{Args, Subcommand};
use serde_json::Value;

use super::{AppScope, output};
use crate::table::{Table, or_dash};

#[derive(Debug, Args)]
pub struct PolicyArgs {
    #[command(flatten)]
    scope: AppScope,
    #[command(subcommand)]
    command: PolicyCommand,
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Add a rule.
    Add(AddArgs),
    /// List the app's rules.
    List,
    /// Show a rule.
    Show {
        /// Rule id.
        rule_id: String,
    },
    /// Remove a rule.
    Remove {
        /// Rule id.
        rule_id: String,
    },
    /// Replay a draft rule set over past credential decisions and report what it would have
    /// denied or held (nothing is saved).
    Test(TestArgs),
}

#[derive(Debug, Args)]
struct AddArgs {
    /// What the rule is attached to: app, provider:ID (or a managed secret's slug), agent:ID
    /// or grant:ID.
    #[arg(long, value_parser = parse_target)]
    target: RuleTargetBody,
    /// The rule kind (ip_allowlist, time_window, rate_limit, url, method, params, group,
    /// require_approval, custom).
    #[arg(long)]
    kind: String,
    /// deny or hold (default: hold for require_approval, deny otherwise).
    #[arg(long, value_parser = ["deny", "hold"])]
    effect: Option<String>,
    /// enforce (default) or shadow (evaluated and audited, never enforced).
    #[arg(long, value_parser = ["enforce", "shadow"])]
    mode: Option<String>,
    /// The kind's parameters: JSON, or @FILE to read it from a file.
    #[arg(long)]
    body: String,
    /// A note.
    #[arg(long)]
    description: Option<String>,
}

#[derive(Debug, Args)]
struct TestArgs {
    /// A JSON file with the draft rules: an array (or `{"rules": [...]}`) of rules shaped like
    /// `add`'s (`target` as `{"type": …, "id": …}` or `"agent:ID"`, `kind`, `effect`, `mode`,
    /// `body`), each optionally with the `id` of the stored rule it stands for.
    #[arg(long)]
    draft: String,
    /// From this time: RFC 3339, or an age such as 7d, 12h, 30m.
    #[arg(long)]
    since: Option<String>,
    /// Until this time: RFC 3339, or an age.
    #[arg(long)]
    until: Option<String>,
    /// Replay at most this many records (oldest first).
    #[arg(long)]
    limit: Option<u64>,
}

/// `app`, `provider:ID`, `agent:ID` or `grant:ID`.
fn parse_target(text: &str) -> Result<RuleTargetBody, String> {
    match text.split_once(':') {
        None if text == "app" => Ok(RuleTargetBody {
            kind: "app".into(),
            id: None,
        }),
        Some((kind @ ("provider" | "agent" | "grant"), id)) if !id.is_empty() => {
            Ok(RuleTargetBody {
                kind: kind.into(),
                id: Some(id.into()),
            })
        }
        _ => Err("expected app, provider:ID, agent:ID or grant:ID".into()),
    }
}

/// JSON text, or the contents of the file after `@`.
fn read_json(text: &str) -> Result<Value, Error> {
    let (source, content) = match text.strip_prefix('@') {
        Some(path) => (
            path,
            std::fs::read_to_string(path)
                .map_err(|e| Error::value(format!("cannot read {path}: {e}")))?,
        ),
        None => ("--body", text.to_owned()),
    };
    serde_json::from_str(&content)
        .map_err(|e| Error::value(format!("{source} is not valid JSON: {e}")))
}

/// The draft rules of a file; a target may be written `"agent:ID"`.
fn read_draft(path: &str) -> Result<Vec<DraftRuleBody>, Error> {
    let mut value = read_json(&format!("@{path}"))?;
    if let Some(rules) = value.get_mut("rules") {
        value = rules.take();
    }
    let Value::Array(rules) = value else {
        return Err(Error::value(format!(
            "{path} must hold an array of rules (or {{\"rules\": [...]}})"
        )));
    };
    rules
        .into_iter()
        .enumerate()
        .map(|(i, mut rule)| {
            if let Some(target) = rule.get("target").and_then(Value::as_str) {
                let target = parse_target(target)
                    .map_err(|e| Error::value(format!("rule {}: target: {e}", i + 1)))?;
                rule["target"] = serde_json::to_value(target)
                    .map_err(|e| Error::value(format!("rule {}: {e}", i + 1)))?;
            }
            serde_json::from_value(rule)
                .map_err(|e| Error::value(format!("{path}: rule {}: {e}", i + 1)))
        })
        .collect()
}

pub async fn policy(args: PolicyArgs) -> ExitCode {
    let json = args.scope.json();
    args.scope
        .run(async |client, app| {
            Ok(match args.command {
                PolicyCommand::Add(add) => {
                    let request = CreateRuleRequest {
                        target: add.target,
                        kind: add.kind,
                        effect: add.effect,
                        mode: add.mode,
                        body: read_json(&add.body)?,
                        description: add.description,
                    };
                    let rule = client.add_rule(app, &request).await?;
                    output(json, &rule, || show_rule(&rule))
                }
                PolicyCommand::List => {
                    let rules = client.list_rules(app).await?;
                    output(json, &rules, || rules_table(&rules))
                }
                PolicyCommand::Show { rule_id } => {
                    let rule = client.get_rule(app, &rule_id).await?;
                    output(json, &rule, || show_rule(&rule))
                }
                PolicyCommand::Remove { rule_id } => {
                    let rule = client.remove_rule(app, &rule_id).await?;
                    output(json, &rule, || rules_table(std::slice::from_ref(&rule)))
                }
                PolicyCommand::Test(test) => {
                    let request = WhatIfRequest {
                        rules: read_draft(&test.draft)?,
                        since: test.since,
                        until: test.until,
                        limit: test.limit,
                    };
                    let report = client.what_if(app, &request).await?;
                    output(json, &report, || report_text(&report))
                }
            })
        })
        .await
}

fn target_text(target: &RuleTargetBody) -> String {
    match &target.id {
        Some(id) => format!("{}:{id}", target.kind),
        None => target.kind.clone(),
    }
}

fn rules_table(rules: &[RuleInfo]) -> String {
    let mut table = Table::new([
        "ID",
        "VERSION",
        "TARGET",
        "KIND",
        "EFFECT",
        "MODE",
        "DESCRIPTION",
    ]);
    for r in rules {
        table.row([
            &r.id,
            &r.version.to_string(),
            &target_text(&r.target),
            &r.kind,
            &r.effect,
            &r.mode,
            &or_dash(r.description.as_deref()),
        ]);
    }
    table.render()
}

fn show_rule(rule: &RuleInfo) -> String {
    let body = serde_json::to_string_pretty(&rule.body).unwrap_or_default();
    format!(
        "{}\nupdated at {}\nbody:\n{body}",
        rules_table(std::slice::from_ref(rule)),
        rule.updated_at
    )
}

fn report_text(report: &WhatIfView) -> String {
    let mut summary = Table::new(["RECORDS", "ALLOW", "HOLD", "DENY", "INDETERMINATE"]);
    summary.row([
        &report.total.to_string(),
        &report.allow.to_string(),
        &report.hold.to_string(),
        &report.deny.to_string(),
        &report.indeterminate.to_string(),
    ]);
    let mut rules = Table::new([
        "RULE",
        "KIND",
        "DENIED",
        "HELD",
        "INDETERMINATE",
        "EXAMPLES",
    ]);
    for r in &report.rules {
        rules.row([
            &r.rule_id,
            &r.kind,
            &r.denied.to_string(),
            &r.held.to_string(),
            &r.indeterminate.to_string(),
            &if r.examples.is_empty() {
                "-".to_owned()
            } else {
                r.examples.join(", ")
            },
        ]);
    }
    format!("{}\n\n{}", summary.render(), rules.render())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn targets_parse_from_their_short_form() {
        assert_eq!(parse_target("app").unwrap().kind, "app");
        let agent = parse_target("agent:0190").unwrap();
        assert_eq!(
            (agent.kind.as_str(), agent.id.as_deref()),
            ("agent", Some("0190"))
        );
        assert!(parse_target("agent:").is_err());
        assert!(parse_target("app:x").is_err());
        assert!(parse_target("user:1").is_err());
    }
}
