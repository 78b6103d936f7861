//! Reference page, `create_managed_secret_grant()`: bind a managed secret to an end user.
//!
//! `ALTER_BASE_URL=… ALTER_API_KEY=… cargo run -p alter-sdk --example
//! create_managed_secret_grant MANAGED_SECRET_ID ALICE_JWT`.

use alter_sdk::{App, CreateGrantResult, Principal};

/// The page's example.
pub async fn example(
    app: &App,
    managed_secret_id: &str,
    alice_jwt: &str,
) -> Result<CreateGrantResult, alter_sdk::Error> {
    let result = app
        .create_managed_secret_grant(
            managed_secret_id,
            Principal::user(alice_jwt, "alice-prod-stripe"),
            None,
        )
        .await?;
    println!("{}", result.grant_id);
    Ok(result)
}

#[cfg_attr(test, allow(dead_code))]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let app = App::new(std::env::var("ALTER_API_KEY")?)?;
    let mut args = std::env::args().skip(1);
    let (Some(secret), Some(jwt)) = (args.next(), args.next()) else {
        return Err("usage: create_managed_secret_grant MANAGED_SECRET_ID USER_JWT".into());
    };
    example(&app, &secret, &jwt).await?;
    Ok(())
}
