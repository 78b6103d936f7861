//! `alter agent …`: the app's agents (created by apps through `/sdk/agents`; the operator
//! inspects, pauses, resumes and deletes them).

use std::process::ExitCode;

use alter_sdk::admin::{AgentInfo, AgentList, AgentListQuery};
use clap::{Args, Subcommand};

use super::{AppScope, output};
use crate::table::{Table, fields, or_dash};

#[derive(Debug, Args)]
pub struct AgentArgs {
    #[command(flatten)]
    scope: AppScope,
    #[command(subcommand)]
    command: AgentCommand,
}

#[derive(Debug, Subcommand)]
enum AgentCommand {
    /// List agents.
    List(ListArgs),
    /// Show an agent.
    Show {
        /// Agent id.
        agent_id: String,
    },
    /// Pause an agent: its keys stop working until it is resumed.
    Pause {
        /// Agent id.
        agent_id: String,
    },
    /// Resume a paused agent.
    Resume {
        /// Agent id.
        agent_id: String,
    },
    /// Delete an agent: its keys and delegations are revoked.
    Delete {
        /// Agent id.
        agent_id: String,
    },
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Include deleted agents.
    #[arg(long)]
    include_revoked: bool,
    /// Page size (default 100).
    #[arg(long)]
    limit: Option<i64>,
    /// Agents to skip.
    #[arg(long)]
    offset: Option<i64>,
}

impl ListArgs {
    /// The query these flags make.
    fn query(self) -> AgentListQuery {
        AgentListQuery {
            include_revoked: self.include_revoked.then_some(true),
            limit: self.limit,
            offset: self.offset,
        }
    }
}

pub async fn agent(args: AgentArgs) -> ExitCode {
    let json = args.scope.json();
    args.scope
        .run(async |client, app| {
            let agent = match args.command {
                AgentCommand::List(list) => {
                    let page = client.list_agents(app, &list.query()).await?;
                    return Ok(output(json, &page, || agents_table(&page)));
                }
                AgentCommand::Show { agent_id } => client.get_agent(app, &agent_id).await?,
                AgentCommand::Pause { agent_id } => client.pause_agent(app, &agent_id).await?,
                AgentCommand::Resume { agent_id } => client.resume_agent(app, &agent_id).await?,
                AgentCommand::Delete { agent_id } => client.delete_agent(app, &agent_id).await?,
            };
            Ok(output(json, &agent, || agent_text(&agent)))
        })
        .await
}

fn agents_table(page: &AgentList) -> String {
    let mut table = Table::new(["ID", "NAME", "TYPE", "STATUS", "CREATED", "LAST USED"]);
    for agent in &page.items {
        table.row([
            agent.id.as_str(),
            agent.name.as_str(),
            agent.agent_type.as_str(),
            agent.status.as_str(),
            agent.created_at.as_str(),
            agent.last_used_at.as_deref().unwrap_or("-"),
        ]);
    }
    table.render_page(page.offset, page.total, page.has_more)
}

fn agent_text(agent: &AgentInfo) -> String {
    fields(&[
        ("id", agent.id.clone()),
        ("name", agent.name.clone()),
        ("display name", or_dash(agent.display_name.as_ref())),
        ("type", agent.agent_type.clone()),
        ("status", agent.status.clone()),
        ("version", agent.version.to_string()),
        ("created", agent.created_at.clone()),
        ("last used", or_dash(agent.last_used_at.as_ref())),
    ])
}
