//! `alter grant …`: the app's grants (OAuth and managed-secret), their revocation and their
//! delegation to agents.

use std::process::ExitCode;

use alter_sdk::admin::{
    CreateDelegationRequest, DelegationResult, GrantItem, GrantList, GrantListQuery,
};
use clap::{Args, Subcommand};

use super::{AppScope, output};
use crate::table::{Table, fields, or_dash};

#[derive(Debug, Args)]
pub struct GrantArgs {
    #[command(flatten)]
    scope: AppScope,
    #[command(subcommand)]
    command: GrantCommand,
}

#[derive(Debug, Subcommand)]
enum GrantCommand {
    /// List grants.
    List(ListArgs),
    /// Revoke a grant and every delegation of it.
    Revoke {
        /// Grant id.
        grant_id: String,
        /// Why (kept in the audit log).
        #[arg(long)]
        reason: String,
    },
    /// Clear a grant's scope-mismatch flag, once the provider grant covers what was missing.
    ClearScopeMismatch {
        /// Grant id.
        grant_id: String,
    },
    /// Delegate a grant to an agent.
    Delegate {
        /// Grant id.
        grant_id: String,
        #[command(flatten)]
        delegation: DelegationArgs,
    },
}

/// Whom `grant delegate` delegates to, and how.
#[derive(Debug, Args)]
struct DelegationArgs {
    /// The agent's id.
    #[arg(long = "agent")]
    agent_id: String,
    /// Lifetime in seconds (at most the grant's).
    #[arg(long)]
    ttl_seconds: Option<i64>,
    /// Let the agent delegate onward.
    #[arg(long)]
    delegable: bool,
}

impl DelegationArgs {
    /// The request these flags make.
    fn request(self) -> CreateDelegationRequest {
        CreateDelegationRequest {
            agent_id: self.agent_id,
            ttl_seconds: self.ttl_seconds,
            delegable: self.delegable.then_some(true),
        }
    }
}

#[derive(Debug, Args)]
struct ListArgs {
    /// OAuth provider id or managed-secret slug.
    #[arg(long)]
    provider: Option<String>,
    /// Status.
    #[arg(long, value_parser = ["active", "expired", "revoked"])]
    status: Option<String>,
    /// Label.
    #[arg(long)]
    label: Option<String>,
    /// Page size (default 100).
    #[arg(long)]
    limit: Option<i64>,
    /// Grants to skip.
    #[arg(long)]
    offset: Option<i64>,
}

impl ListArgs {
    /// The query these flags make.
    fn query(self) -> GrantListQuery {
        GrantListQuery {
            provider: self.provider,
            status: self.status,
            label: self.label,
            limit: self.limit,
            offset: self.offset,
        }
    }
}

pub async fn grant(args: GrantArgs) -> ExitCode {
    let json = args.scope.json();
    args.scope
        .run(async |client, app| match args.command {
            GrantCommand::List(list) => {
                let page = client.list_grants(app, &list.query()).await?;
                Ok(output(json, &page, || grants_table(&page)))
            }
            GrantCommand::Revoke { grant_id, reason } => {
                let revoked = client.revoke_grant(app, &grant_id, Some(reason)).await?;
                Ok(output(json, &revoked, || grants_table(&revoked)))
            }
            GrantCommand::ClearScopeMismatch { grant_id } => {
                let cleared = client.clear_scope_mismatch(app, &grant_id).await?;
                Ok(output(json, &cleared, || grants_table(&cleared)))
            }
            GrantCommand::Delegate {
                grant_id,
                delegation,
            } => {
                let delegation = client
                    .delegate_grant(app, &grant_id, &delegation.request())
                    .await?;
                Ok(output(json, &delegation, || delegation_text(&delegation)))
            }
        })
        .await
}

fn grants_table(page: &GrantList) -> String {
    let mut table = Table::new([
        "ID",
        "KIND",
        "PROVIDER",
        "PRINCIPAL",
        "LABEL",
        "STATUS",
        "PARENT",
        "CREATED",
    ]);
    for grant in &page.grants {
        let (kind, provider) = match grant {
            GrantItem::OAuth(g) => ("oauth", &g.provider_id),
            GrantItem::ManagedSecret(g) => ("secret", &g.managed_secret_slug),
        };
        let g = grant.common();
        table.row([
            g.grant_id.as_str(),
            kind,
            provider.as_str(),
            g.principal_type.as_str(),
            g.label.as_deref().unwrap_or("-"),
            g.status.as_str(),
            g.parent_grant_id.as_deref().unwrap_or("-"),
            g.created_at.as_str(),
        ]);
    }
    table.render_page(page.offset, page.total, page.has_more)
}

fn delegation_text(delegation: &DelegationResult) -> String {
    fields(&[
        ("id", delegation.grant_id.clone()),
        ("kind", delegation.grant_kind.clone()),
        ("parent", delegation.parent_grant_id.clone()),
        ("depth", delegation.depth.to_string()),
        ("delegable", delegation.delegable.to_string()),
        ("status", delegation.status.clone()),
        ("expires", or_dash(delegation.expires_at.as_ref())),
    ])
}
