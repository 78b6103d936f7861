//! Reference page, `revoke_delegation()`: the operator removes one agent's access path on a
//! grant, and an agent gives up its own. The grant itself stays.
//!
//! `ALTER_BASE_URL=… ALTER_API_KEY=… ALTER_AGENT_API_KEY=… cargo run -p alter-sdk --example
//! revoke_delegation GRANT_ID AGENT_ID [OTHER_GRANT_ID]`.

use alter_sdk::{Agent, App};

/// The page's example: the operator path for `(grant_id, agent_id)`, then the agent's self
/// path for `own_grant_id`.
pub async fn example(
    app: &App,
    agent: &Agent,
    grant_id: &str,
    agent_id: &str,
    own_grant_id: &str,
) -> Result<(), alter_sdk::Error> {
    // Operator removes a specific agent's access on a grant
    app.revoke_delegation(grant_id, agent_id).await?;

    // Agent self-revoke
    agent.revoke_delegation(own_grant_id).await?;
    Ok(())
}

#[cfg_attr(test, allow(dead_code))]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let app = App::new(std::env::var("ALTER_API_KEY")?)?;
    let agent = Agent::new(std::env::var("ALTER_AGENT_API_KEY")?)?;
    let mut args = std::env::args().skip(1);
    let (Some(grant), Some(agent_id)) = (args.next(), args.next()) else {
        return Err("usage: revoke_delegation GRANT_ID AGENT_ID [OTHER_GRANT_ID]".into());
    };
    let own = args.next().unwrap_or_else(|| grant.clone());
    example(&app, &agent, &grant, &agent_id, &own).await?;
    Ok(())
}
