//! Reference page, `list_grants()`: a page of the app's grants, discriminated on their kind.
//!
//! Run against `alter dev`: `ALTER_BASE_URL=… ALTER_API_KEY=alter_rk_… cargo run -p alter-sdk
//! --example list_grants [PROVIDER]`. The test suite runs `example` against a real server.

use alter_sdk::{App, GrantItem, GrantList, ListGrants};

/// The page's example, with the provider to filter on as a parameter (`google` on the page).
pub async fn example(app: &App, provider_id: &str) -> Result<GrantList, alter_sdk::Error> {
    let page = app
        .list_grants(ListGrants::new().provider_id(provider_id).limit(50))
        .await?;
    for grant in &page.grants {
        match grant {
            GrantItem::OAuth(grant) => {
                println!(
                    "{} {:?} {:?}",
                    grant.grant_id, grant.account_identifier, grant.scopes
                )
            }
            GrantItem::ManagedSecret(grant) => {
                println!(
                    "{} {} {:?}",
                    grant.grant_id, grant.managed_secret_slug, grant.label
                )
            }
        }
    }
    Ok(page)
}

#[cfg_attr(test, allow(dead_code))]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let app = App::new(std::env::var("ALTER_API_KEY")?)?;
    let provider = std::env::args().nth(1).unwrap_or_else(|| "google".into());
    let page = example(&app, &provider).await?;
    println!("{} of {} grants", page.grants.len(), page.total);
    Ok(())
}
