//! What releasing a credential reads and writes: the grants a caller may release, and the
//! release's audit events, committed through the group commit.

use std::sync::LazyLock;

use alter_core::audit::AuditEvent;
use alter_core::caller::NonceClaim;
use alter_core::grants::{Grant, Viewer};
use alter_core::ids::{AppId, GrantId};
use alter_core::ports::{CandidateSource, Narrowing, ReleaseStore, StoreResult};
use alter_core::release::{ReleaseCommit, ReleaseCondition};
use alter_core::secrets::ManagedSecret;
use alter_core::time::Timestamp;
use async_trait::async_trait;

use crate::grants::{COLUMNS, Clause, Param, grant};
use crate::group_commit::{Op, Outcome};
use crate::rows::{fetch_all, fetch_optional};
use crate::{SqlStore, secrets};

#[async_trait]
impl ReleaseStore for SqlStore {
    async fn release_candidates(
        &self,
        app: AppId,
        source: CandidateSource<'_>,
        viewer: &Viewer,
        narrow: Narrowing<'_>,
        now: Timestamp,
        limit: i64,
    ) -> StoreResult<Vec<Grant>> {
        let mut c = Clause::default();
        let app = c.text(app.to_string());
        let now = c.param(Param::Int(now.micros()));
        c.sql.push(format!(
            "g.app_id = {app} AND g.status = 'active' \
             AND (g.expires_at IS NULL OR g.expires_at > {now})"
        ));
        match source {
            CandidateSource::Secret(secret) => {
                let secret = c.text(secret.to_string());
                c.sql.push(format!("g.secret_id = {secret}"));
            }
            CandidateSource::Provider(provider) => {
                let provider = c.text(provider);
                c.sql.push(format!(
                    "g.connection_id IN (SELECT o.id FROM oauth_connections o \
                     WHERE o.app_id = {app} AND o.provider_id = {provider})"
                ));
            }
        }
        match viewer {
            Viewer::App => c.sql.push("g.principal_type = 'system'".into()),
            Viewer::User { user, idp, groups } => {
                let user = c.text(user.to_string());
                c.user_clause(
                    format!("(g.principal_type = 'user' AND g.app_user_id = {user})"),
                    *idp,
                    groups,
                );
            }
            Viewer::Agent {
                agent,
                delegated_by,
            } => c.agent_clause(*agent, *delegated_by),
        }
        if let Some(label) = narrow.label {
            let label = c.text(label);
            c.sql.push(format!("g.label = {label}"));
        }
        // Managed secrets have no account: the narrowing is the connections'.
        if let (Some(account), CandidateSource::Provider(_)) = (narrow.account, source) {
            let account = c.text(account);
            c.sql.push(format!(
                "g.connection_id IN (SELECT o.id FROM oauth_connections o \
                 WHERE o.account_identifier = {account})"
            ));
        }
        let limit = c.param(Param::Int(limit));
        let sql = format!(
            "SELECT {COLUMNS} FROM grants g WHERE {} ORDER BY g.seq LIMIT {limit}",
            c.sql.join(" AND ")
        );
        fetch_all(&self.read, c.bind(sqlx::query(&sql)), grant).await
    }

    async fn grant_with_secret(
        &self,
        app: AppId,
        id: GrantId,
    ) -> StoreResult<Option<(Grant, Option<ManagedSecret>)>> {
        // One read: the grant and, beside it, the managed secret it names in its app.
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!(
                "SELECT {COLUMNS}, {} FROM grants g LEFT JOIN managed_secrets s \
                 ON s.app_id = g.app_id AND s.id = g.secret_id \
                 WHERE g.app_id = $1 AND g.id = $2",
                secrets::joined_columns()
            )
        });
        let query = sqlx::query(SQL.as_str())
            .bind(app.to_string())
            .bind(id.to_string());
        fetch_optional(&self.read, query, |row| {
            Ok((grant(row)?, secrets::joined_secret(row)?))
        })
        .await
    }

    async fn commit_release(
        &self,
        event: AuditEvent,
        touch: Option<(GrantId, Timestamp)>,
        condition: ReleaseCondition,
        nonce: Option<NonceClaim>,
    ) -> StoreResult<ReleaseCommit> {
        let mut ops: Vec<Op> = nonce.into_iter().map(Op::claim).collect();
        ops.push(Op::Require(Box::new(condition)));
        ops.push(Op::Append(Box::new(event)));
        if let Some((id, at)) = touch {
            ops.push(Op::TouchGrant { id, at });
        }
        let outcomes = self.group.run(ops).await?;
        Ok(if outcomes.contains(&Outcome::Claimed(false)) {
            ReleaseCommit::Replayed
        } else if outcomes.contains(&Outcome::Refused) {
            ReleaseCommit::Refused
        } else {
            ReleaseCommit::Committed
        })
    }

    async fn record_release(
        &self,
        event: AuditEvent,
        nonce: Option<NonceClaim>,
    ) -> StoreResult<bool> {
        let mut ops: Vec<Op> = nonce.into_iter().map(Op::claim).collect();
        ops.push(Op::Append(Box::new(event)));
        let outcomes = self.group.run(ops).await?;
        Ok(!outcomes.contains(&Outcome::Claimed(false)))
    }

    async fn record_release_later(&self, event: AuditEvent) -> StoreResult<()> {
        self.group
            .submit(
                vec![Op::Append(Box::new(event))],
                "the outcome of a proxied call",
            )
            .await
    }

    async fn set_scope_mismatch(
        &self,
        app: AppId,
        id: GrantId,
        mismatch: bool,
        event: &AuditEvent,
    ) -> StoreResult<()> {
        let query =
            sqlx::query("UPDATE grants SET scope_mismatch = $1 WHERE app_id = $2 AND id = $3")
                .bind(i64::from(mismatch))
                .bind(app.to_string())
                .bind(id.to_string());
        self.execute_with_event(query, event).await.map(drop)
    }
}
