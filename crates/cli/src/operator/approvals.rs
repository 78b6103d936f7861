//! `alter approval …`: held proxy calls waiting for a person. Approving makes the call, once.

use std::process::ExitCode;

use alter_sdk::admin::{ApprovalInfo, DecideApprovalRequest};
use clap::{Args, Subcommand};

use super::{AppScope, output};
use crate::table::{Table, fields, or_dash};

#[derive(Debug, Args)]
pub struct ApprovalArgs {
    #[command(flatten)]
    scope: AppScope,
    #[command(subcommand)]
    command: ApprovalCommand,
}

#[derive(Debug, Subcommand)]
enum ApprovalCommand {
    /// List approvals, newest first.
    List {
        /// Only this status (pending, approved, executing, executed, failed, denied, expired).
        #[arg(long)]
        status: Option<String>,
    },
    /// Show an approval.
    Show {
        /// Approval id.
        approval_id: String,
    },
    /// Approve a held call: the vault makes it, once.
    Approve(Decide),
    /// Deny a held call.
    Deny(Decide),
}

#[derive(Debug, Args)]
struct Decide {
    /// Approval id.
    approval_id: String,
    /// A note for the caller.
    #[arg(long)]
    reason: Option<String>,
    /// Who decides (defaults to the `USER` environment variable, else "operator").
    #[arg(long)]
    decided_by: Option<String>,
}

impl Decide {
    fn request(&self) -> DecideApprovalRequest {
        DecideApprovalRequest {
            reason: self.reason.clone(),
            decided_by: self
                .decided_by
                .clone()
                .or_else(|| std::env::var("USER").ok()),
        }
    }
}

pub async fn approval(args: ApprovalArgs) -> ExitCode {
    let json = args.scope.json();
    args.scope
        .run(async |client, app| {
            let approval = match args.command {
                ApprovalCommand::List { status } => {
                    let items = client.list_approvals(app, status.as_deref()).await?;
                    return Ok(output(json, &items, || approvals_table(&items)));
                }
                ApprovalCommand::Show { approval_id } => {
                    client.get_approval(app, &approval_id).await?
                }
                ApprovalCommand::Approve(decide) => {
                    client
                        .approve(app, &decide.approval_id, &decide.request())
                        .await?
                }
                ApprovalCommand::Deny(decide) => {
                    client
                        .deny(app, &decide.approval_id, &decide.request())
                        .await?
                }
            };
            Ok(output(json, &approval, || approval_text(&approval)))
        })
        .await
}

fn approvals_table(items: &[ApprovalInfo]) -> String {
    let mut table = Table::new([
        "ID", "STATUS", "METHOD", "URL", "AGENT", "REASON", "EXPIRES",
    ]);
    for a in items {
        table.row([
            a.id.as_str(),
            a.status.as_str(),
            a.method.as_str(),
            a.url.as_str(),
            a.agent_id.as_deref().unwrap_or("-"),
            a.reason.as_str(),
            a.expires_at.as_str(),
        ]);
    }
    table.render()
}

fn approval_text(a: &ApprovalInfo) -> String {
    fields(&[
        ("id", a.id.clone()),
        ("status", a.status.clone()),
        ("request", format!("{} {}", a.method, a.url)),
        (
            "exact request",
            a.request.as_ref().map_or("-".to_owned(), |r| {
                let headers: Vec<String> =
                    r.headers.iter().map(|(n, v)| format!("{n}: {v}")).collect();
                let body = r.body.as_ref().map_or(String::new(), |b| format!("\n{b}"));
                format!(
                    "{} {}\n{}{body}\nsha256 {}",
                    r.method,
                    r.url,
                    headers.join("\n"),
                    r.sha256
                )
            }),
        ),
        ("reason", a.reason.clone()),
        ("grant", a.grant_id.clone()),
        ("key", a.key_id.clone()),
        ("agent", or_dash(a.agent_id.as_ref())),
        ("held by", a.holds.to_string()),
        (
            "approvers",
            if a.approvers.is_empty() {
                "any operator".to_owned()
            } else {
                a.approvers.join(", ")
            },
        ),
        ("created", a.created_at.clone()),
        ("expires", a.expires_at.clone()),
        ("decided", or_dash(a.decided_at.as_ref())),
        ("decided by", or_dash(a.decided_by.as_ref())),
        ("decision note", or_dash(a.decision_reason.as_ref())),
        ("executed", or_dash(a.executed_at.as_ref())),
        ("execution error", or_dash(a.execution_error.as_ref())),
        ("has result", a.has_result.to_string()),
    ])
}
