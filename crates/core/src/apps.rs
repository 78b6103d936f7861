//! Apps: the tenants and hard isolation boundary of Alter.

use crate::audit::{Actor, AuditEvent, Target, action};
use crate::error::{Entity, Error, Result};
use crate::ids::AppId;
use crate::time::Timestamp;
use crate::validate;
use crate::vault::Vault;

/// An app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    /// Id.
    pub id: AppId,
    /// Display name.
    pub name: String,
    /// Creation time.
    pub created_at: Timestamp,
}

impl Vault {
    /// Creates an app (operator).
    pub async fn create_app(&self, name: &str) -> Result<App> {
        let name = validate::display_name("name", name)?;
        let app = App {
            id: AppId::new(),
            name: name.to_owned(),
            created_at: self.now(),
        };
        let event = AuditEvent::allow(
            app.id,
            app.created_at,
            action::APP_CREATED,
            Actor::operator(),
            Target {
                kind: "app".into(),
                id: app.id.to_string(),
            },
        )
        .with_details(serde_json::json!({ "name": app.name }));
        self.store().insert_app(&app, &event).await?;
        Ok(app)
    }

    /// Every app, oldest first (operator).
    pub async fn list_apps(&self) -> Result<Vec<App>> {
        Ok(self.store().list_apps().await?)
    }

    /// One app (operator).
    pub async fn get_app(&self, id: AppId) -> Result<App> {
        self.store()
            .get_app(id)
            .await?
            .ok_or(Error::NotFound(Entity::App))
    }
}
