//! The periodic audit checkpoint: every interval, one log line per app holding a signed head of
//! its audit chain (the same JSON `alter audit checkpoint` prints). Logs shipped off the
//! machine then hold checkpoints a database writer cannot reach. Each node logs its own, on its
//! own timer: nothing in the database can stop it.

use std::collections::HashMap;
use std::time::Duration;

use alter_core::Vault;
use alter_core::ids::AppId;

use crate::routes::audit::checkpoint_view;

/// Logs a checkpoint of every app's chain now and then every `every`. A head found behind the
/// last one this node logged is not signed again (that would vouch for a cut log): it is
/// reported as an error instead.
pub(crate) async fn log_audit_checkpoints(vault: Vault, every: Duration) {
    let mut tick = tokio::time::interval(every);
    let mut logged: HashMap<AppId, i64> = HashMap::new();
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
                Ok(c) => match logged.insert(app.id, c.seq) {
                    Some(previous) if c.seq < previous => {
                        logged.insert(app.id, previous);
                        tracing::error!(
                            app_id = %app.id,
                            previous_seq = previous,
                            seq = c.seq,
                            "audit chain head moved back: events after the last checkpoint were removed"
                        );
                        continue;
                    }
                    _ => serde_json::to_string(&checkpoint_view(&c)).map_err(|e| e.to_string()),
                },
                Err(e) => Err(e.to_string()),
            };
            match line {
                Ok(checkpoint) => tracing::info!(app_id = %app.id, %checkpoint, "audit checkpoint"),
                Err(error) => tracing::warn!(app_id = %app.id, %error, "audit checkpoint failed"),
            }
        }
    }
}
