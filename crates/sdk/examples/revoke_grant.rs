//! Reference page, `revoke_grant()`: revoke a grant (and its delegations) with a reason.
//!
//! `ALTER_BASE_URL=… ALTER_API_KEY=… cargo run -p alter-sdk --example revoke_grant GRANT_ID`.

use alter_sdk::{App, RevokeGrantResult};

/// The page's example.
pub async fn example(app: &App, grant_id: &str) -> Result<RevokeGrantResult, alter_sdk::Error> {
    let result = app.revoke_grant(grant_id, Some("user offboarded")).await?;
    println!("{}", result.revoked_at);
    Ok(result)
}

#[cfg_attr(test, allow(dead_code))]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let app = App::new(std::env::var("ALTER_API_KEY")?)?;
    let grant = std::env::args()
        .nth(1)
        .ok_or("usage: revoke_grant GRANT_ID")?;
    example(&app, &grant).await?;
    Ok(())
}
