//! The audit log as credential use writes and reads it.

use alter_core::audit::AuditEvent;
use alter_core::grants::{Grant, Viewer};
use alter_core::ids::{AppId, GrantId, SecretId};
use alter_core::ports::{AuditStore, StoreResult};
use alter_core::time::Timestamp;
use async_trait::async_trait;

use crate::grants::{COLUMNS, grant};
use crate::rows::fetch_all;
use crate::writer::Op;
use crate::{SqlStore, audit, db_error};

#[async_trait]
impl AuditStore for SqlStore {
    async fn record_release(
        &self,
        event: &AuditEvent,
        touch: Option<(GrantId, Timestamp)>,
    ) -> StoreResult<()> {
        let mut ops = vec![Op::Append(Box::new(event.clone()))];
        if let Some((id, at)) = touch {
            ops.push(Op::TouchGrant { id, at });
        }
        self.group.run(ops).await.map(drop)
    }

    async fn release_candidates(
        &self,
        app: AppId,
        secret: SecretId,
        viewer: &Viewer,
        label: Option<&str>,
        now: Timestamp,
    ) -> StoreResult<Vec<Grant>> {
        let mut params: Vec<String> = vec![app.to_string(), secret.to_string()];
        let mut sql = format!(
            "SELECT {COLUMNS} FROM grants g WHERE g.app_id = $1 AND g.secret_id = $2 \
             AND g.status = 'active' AND (g.expires_at IS NULL OR g.expires_at > {})",
            now.micros()
        );
        let push = |value: String, params: &mut Vec<String>| {
            params.push(value);
            format!("${}", params.len())
        };
        match viewer {
            Viewer::App => {}
            Viewer::User { user, idp, groups } => {
                let u = push(user.to_string(), &mut params);
                let mut own = format!("g.principal_type = 'user' AND g.app_user_id = {u}");
                if !groups.is_empty() {
                    let i = push(idp.to_string(), &mut params);
                    let list: Vec<String> = groups
                        .iter()
                        .map(|g| push(g.clone(), &mut params))
                        .collect();
                    own = format!(
                        "({own}) OR (g.principal_type = 'group' AND g.idp_id = {i} AND g.external_group_id IN ({}))",
                        list.join(", ")
                    );
                }
                sql.push_str(&format!(" AND ({own})"));
            }
            Viewer::Agent {
                agent,
                delegated_by,
            } => {
                let a = push(agent.to_string(), &mut params);
                sql.push_str(&format!(" AND g.agent_id = {a}"));
                if let Some(user) = delegated_by {
                    let u = push(user.to_string(), &mut params);
                    sql.push_str(&format!(" AND g.delegated_by = {u}"));
                }
            }
        }
        if let Some(label) = label {
            let l = push(label.to_owned(), &mut params);
            sql.push_str(&format!(" AND g.label = {l}"));
        }
        sql.push_str(" ORDER BY g.seq LIMIT 100");
        let mut query = sqlx::query(&sql);
        for p in params {
            query = query.bind(p);
        }
        fetch_all(&self.read, query, grant).await
    }

    async fn mark_scope_mismatch(
        &self,
        app: AppId,
        id: GrantId,
        event: &AuditEvent,
    ) -> StoreResult<()> {
        let mut tx = self.write.begin().await.map_err(db_error)?;
        sqlx::query("UPDATE grants SET scope_mismatch = 1 WHERE app_id = $1 AND id = $2")
            .bind(app.to_string())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        audit::append(&mut tx, event).await?;
        tx.commit().await.map_err(db_error)
    }
}
