//! `alter grant …`: the app's grants (OAuth and managed-secret), their revocation and their
//! delegation to agents.

use std::process::ExitCode;

use alter_sdk::admin::{
    CreateDelegationRequest, DelegationResult, GrantItem, GrantList, GrantListQuery,
};
use clap::{Args, Subcommand};

use super::{Connection, client, finish, output, resolve_app};
use crate::table::{Table, fields, or_dash, paged};

#[derive(Debug, Args)]
pub struct GrantArgs {
    #[command(flatten)]
    connection: Connection,
    /// The app (defaults to the only app, when there is exactly one).
    #[arg(long, global = true)]
    app: Option<String>,
    #[command(subcommand)]
    command: GrantCommand,
}

#[derive(Debug, Subcommand)]
enum GrantCommand {
    /// List grants.
    List {
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
    },
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
        /// The agent's id.
        #[arg(long = "agent")]
        agent_id: String,
        /// Lifetime in seconds (at most the grant's).
        #[arg(long)]
        ttl_seconds: Option<i64>,
        /// Let the agent delegate onward.
        #[arg(long)]
        delegable: bool,
    },
}

pub async fn grant(args: GrantArgs) -> ExitCode {
    let json = args.connection.json;
    let result = async {
        let client = client(&args.connection)?;
        let app = resolve_app(&client, args.app).await?;
        match args.command {
            GrantCommand::List {
                provider,
                status,
                label,
                limit,
                offset,
            } => {
                let query = GrantListQuery {
                    provider,
                    status,
                    label,
                    limit,
                    offset,
                };
                let page = client.list_grants(&app, &query).await?;
                Ok(output(json, &page, || grants_table(&page)))
            }
            GrantCommand::Revoke { grant_id, reason } => {
                let revoked = client.revoke_grant(&app, &grant_id, Some(reason)).await?;
                Ok(output(json, &revoked, || grants_table(&revoked)))
            }
            GrantCommand::ClearScopeMismatch { grant_id } => {
                let cleared = client.clear_scope_mismatch(&app, &grant_id).await?;
                Ok(output(json, &cleared, || grants_table(&cleared)))
            }
            GrantCommand::Delegate {
                grant_id,
                agent_id,
                ttl_seconds,
                delegable,
            } => {
                let request = CreateDelegationRequest {
                    agent_id,
                    ttl_seconds,
                    delegable: delegable.then_some(true),
                };
                let delegation = client.delegate_grant(&app, &grant_id, &request).await?;
                Ok(output(json, &delegation, || delegation_text(&delegation)))
            }
        }
    }
    .await;
    finish(result)
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
        let (kind, id, provider, principal, label, status, parent, created) = match grant {
            GrantItem::OAuth(g) => (
                "oauth",
                &g.grant_id,
                &g.provider_id,
                &g.principal_type,
                &g.label,
                &g.status,
                &g.parent_grant_id,
                &g.created_at,
            ),
            GrantItem::ManagedSecret(g) => (
                "secret",
                &g.grant_id,
                &g.managed_secret_slug,
                &g.principal_type,
                &g.label,
                &g.status,
                &g.parent_grant_id,
                &g.created_at,
            ),
        };
        table.row([
            id.as_str(),
            kind,
            provider.as_str(),
            principal.as_str(),
            label.as_deref().unwrap_or("-"),
            status.as_str(),
            parent.as_deref().unwrap_or("-"),
            created.as_str(),
        ]);
    }
    paged(
        table.render(),
        page.grants.len(),
        page.offset,
        page.total,
        page.has_more,
    )
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
