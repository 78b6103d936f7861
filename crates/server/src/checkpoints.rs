//! The periodic audit checkpoint: every interval, one log line per app holding a signed head of
//! its audit chain (the same JSON `alter audit checkpoint` prints). Logs shipped off the
//! machine then hold checkpoints a database writer cannot reach; each node logs its own.

use std::time::Duration;

use alter_core::Vault;

use crate::routes::audit::checkpoint_view;

/// Logs a checkpoint of every app's chain now and then every `every`.
pub(crate) async fn log_audit_checkpoints(vault: Vault, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let apps = match vault.list_apps().await {
            Ok(apps) => apps,
            Err(e) => {
                tracing::warn!(error = %e, "audit checkpoint: listing apps failed");
                continue;
            }
        };
        for app in apps {
            let line = match vault.audit_checkpoint(app.id).await {
                Ok(c) => serde_json::to_string(&checkpoint_view(&c)).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match line {
                Ok(checkpoint) => tracing::info!(app_id = %app.id, %checkpoint, "audit checkpoint"),
                Err(error) => tracing::warn!(app_id = %app.id, %error, "audit checkpoint failed"),
            }
        }
    }
}
