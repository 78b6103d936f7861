//! What the Wallet writes beyond the other ports: a grant's extended end.

use alter_core::audit::AuditEvent;
use alter_core::ids::{AppId, GrantId};
use alter_core::ports::StoreResult;
use alter_core::time::Timestamp;
use alter_core::wallet::WalletStore;
use async_trait::async_trait;

use crate::SqlStore;

#[async_trait]
impl WalletStore for SqlStore {
    async fn extend_grant(
        &self,
        app: AppId,
        id: GrantId,
        from: Timestamp,
        to: Timestamp,
        event: &AuditEvent,
    ) -> StoreResult<bool> {
        // Conditional on the end read and on the grant still being active: a revocation or
        // another extension in between wins, and this one changes nothing.
        let query = sqlx::query(
            "UPDATE grants SET expires_at = $1 \
             WHERE app_id = $2 AND id = $3 AND status = 'active' AND expires_at = $4",
        )
        .bind(to.micros())
        .bind(app.to_string())
        .bind(id.to_string())
        .bind(from.micros());
        self.execute_one_with_event(query, event).await
    }
}
