//! KEK re-versioning: `alter keys rotate-kek` adds a KEK version, which every node seals with
//! once it has loaded it; a background job (one node at a time, under a lease) re-wraps every
//! data key under it; `alter keys retire-kek` then deletes the older versions, refusing while
//! any sealed value still names one.
//!
//! A KEK after the first is endorsed: a MAC of its version and bytes under a key derived from
//! the audit MAC root. Nodes refuse a KEK whose endorsement does not verify, so whoever can
//! write the database — even with encrypt rights on a shared key holder — cannot plant a KEK
//! they know and have new secrets sealed under it (they would need the MAC root, which only
//! the key holder's *decrypt* reveals).

use std::time::Duration;

use alter_crypto::{Binding, CryptoError, Kek, Keyring, MacRoot};

use crate::error::Result;
use crate::ports::{
    KeyHolder, KeyHolderError, KeyringStore, RewrapProgress, SealedColumn, StoreError,
};
use crate::time::Timestamp;
use crate::vault::{Vault, unwrap_keys, wrap_checked};

/// How often a node looks for a KEK version it does not hold; it also looks at once when it
/// meets a value sealed under one.
pub const KEYRING_REFRESH: Duration = Duration::from_secs(10);

/// How long after a KEK version is added every node is taken to seal with it: three of the
/// nodes' refresh intervals. Re-wrapping starts, and retirement is allowed, only after this,
/// so no node seals under an older version behind the walk.
pub const SWITCH_SECONDS: i64 = 30;

/// Values looked at per page of the walk (and per progress record). A page reads only each
/// value's header; a value to re-wrap is then read whole on its own, so a page of large
/// values (held calls' bodies) never sits in memory at once.
const PAGE: u32 = 200;

/// A node that reported its KEK version within this many seconds counts as live: re-wrapping
/// and retirement wait until every live node seals under the newest version.
pub const NODE_SEEN_SECONDS: i64 = 60;

/// Reports older than this are deleted.
const NODE_FORGET_SECONDS: i64 = 24 * 3600;

/// Nodes that reported within [`NODE_SEEN_SECONDS`] and still seal under an older version
/// than `newest`, as `node (vN)`.
async fn nodes_behind(
    store: &dyn KeyringStore,
    newest: u32,
    now: Timestamp,
) -> Result<Vec<String>> {
    Ok(store
        .node_keyrings_since(now.plus_seconds(-NODE_SEEN_SECONDS))
        .await?
        .into_iter()
        .filter(|(_, version)| *version < newest)
        .map(|(node, version)| format!("{node} (v{version})"))
        .collect())
}

/// The MAC purpose of KEK endorsements.
const ENDORSEMENT_PURPOSE: &str = "kek-endorsement/v1";

/// The endorsement of KEK `version` with bytes `material`.
pub(crate) fn endorsement(root: &MacRoot, version: u32, material: &[u8]) -> [u8; 32] {
    root.derive_mac_key(ENDORSEMENT_PURPOSE)
        .tag(&[b"alter kek", &version.to_be_bytes(), material])
}

/// Whether `tag` endorses KEK `version` with bytes `material` (constant time).
pub(crate) fn endorsed(root: &MacRoot, version: u32, material: &[u8], tag: &[u8]) -> bool {
    root.derive_mac_key(ENDORSEMENT_PURPOSE)
        .verify(&[b"alter kek", &version.to_be_bytes(), material], tag)
}

/// The kind a column's values are bound to (what the domain seals them with).
fn kind(column: SealedColumn) -> &'static str {
    match column {
        SealedColumn::ApiKeySigningKey => crate::keys::SIGNING_KEY_KIND,
        SealedColumn::ManagedSecretValue => crate::secrets::VALUE_KIND,
        SealedColumn::UserSecretValue => crate::user_secrets::USER_VALUE_KIND,
        SealedColumn::ProviderClientSecret => crate::providers::CLIENT_SECRET_KIND,
        SealedColumn::ConnectionTokens | SealedColumn::RevocationTokens => {
            crate::connections::TOKENS_KIND
        }
        SealedColumn::SignInClientSecret => crate::signin::CLIENT_SECRET_KIND,
        SealedColumn::IdentitySigningKey => crate::assertions::SIGNING_KEY_KIND,
        SealedColumn::AuthSessionVerifier => crate::signin::VERIFIER_KIND,
        SealedColumn::AuthSessionUserToken => crate::signin::USER_TOKEN_KIND,
        SealedColumn::ConnectVerifier => crate::connect::service::VERIFIER_KIND,
        SealedColumn::ApprovalRequest => crate::approvals::service::REQUEST_KIND,
        SealedColumn::ApprovalResult => crate::approvals::service::RESULT_KIND,
        SealedColumn::IdpEventSecret | SealedColumn::IdpEventPreviousSecret => {
            crate::idp_events::SECRET_KIND
        }
        SealedColumn::WebhookSecret | SealedColumn::WebhookPreviousSecret => {
            crate::webhooks::SECRET_KIND
        }
    }
}

/// Adds KEK version *newest + 1*, wrapped by `holder` (checked to unwrap again) and endorsed
/// under the MAC root. Nodes start sealing with it within [`KEYRING_REFRESH`]; the re-wrap
/// job moves every data key under it after [`SWITCH_SECONDS`].
pub async fn add_kek_version(
    store: &dyn KeyringStore,
    holder: &dyn KeyHolder,
    now: Timestamp,
) -> Result<u32> {
    let keys = unwrap_keys(store, holder).await?;
    let newest = keys
        .keks
        .iter()
        .map(|(k, _)| k.version)
        .max()
        .ok_or_else(|| {
            KeyHolderError::NotThisDatabase(
                "this database has no keys yet: start `alter server` on it once first".into(),
            )
        })?;
    // Every KEK gets an endorsement, the first too (a database's first KEK has none until
    // now): once one is endorsed, nodes refuse any KEK without one.
    let records = store.kek_records().await?;
    for (stored, material) in &keys.keks {
        let unendorsed = records
            .iter()
            .any(|r| r.version == stored.version && r.endorsement.is_none());
        if unendorsed {
            let tag = endorsement(&keys.mac_root, stored.version, material);
            store.endorse_kek(stored.version, &tag).await?;
        }
    }
    let version = newest + 1;
    let material = Kek::new_material()?;
    let wrapped = alter_crypto::WrappedKek {
        version,
        wrapped: wrap_checked(holder, &Kek::context(version), material.as_slice()).await?,
    };
    let tag = endorsement(&keys.mac_root, version, material.as_slice());
    store
        .insert_kek(&wrapped, Some(&tag), now)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => StoreError::Conflict(
                "another KEK version was added at the same time; run it again".into(),
            ),
            other => other,
        })?;
    Ok(version)
}

/// Where the re-versioning stands, for `alter keys status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KekStatus {
    /// Every KEK version stored, oldest first.
    pub versions: Vec<u32>,
    /// When the newest was added.
    pub newest_added_at: Timestamp,
    /// The walk's progress, when one ran for the newest version.
    pub rewrap: Option<RewrapProgress>,
}

/// The stored KEK versions and the re-wrap's progress.
pub async fn kek_status(store: &dyn KeyringStore) -> Result<KekStatus> {
    let records = store.kek_records().await?;
    let newest = records
        .last()
        .ok_or_else(|| KeyHolderError::NotThisDatabase("this database has no keys yet".into()))?;
    let rewrap = store
        .rewrap_progress()
        .await?
        .filter(|p| p.version == newest.version);
    Ok(KekStatus {
        versions: records.iter().map(|r| r.version).collect(),
        newest_added_at: newest.created_at,
        rewrap,
    })
}

/// What a retirement deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retired {
    /// The KEK version kept (the newest).
    pub kept: u32,
    /// How many older versions were deleted.
    pub deleted: u64,
}

/// Deletes every KEK version but the newest, once `holder` opens the newest (so the keys kept
/// are usable), every node seals with it ([`SWITCH_SECONDS`]) and the walk has re-wrapped
/// every value; the store refuses, in the deleting transaction, while any sealed value still
/// names an older version.
pub async fn retire_old_keks(
    store: &dyn KeyringStore,
    holder: &dyn KeyHolder,
    now: Timestamp,
) -> Result<Retired> {
    unwrap_keys(store, holder).await?;
    let status = kek_status(store).await?;
    let kept = *status.versions.last().unwrap_or(&1);
    if status.versions.len() < 2 {
        return Ok(Retired { kept, deleted: 0 });
    }
    let not_yet = |why: String| StoreError::Conflict(format!("not yet: {why}"));
    if status.newest_added_at.plus_seconds(SWITCH_SECONDS) > now {
        return Err(not_yet(format!(
            "KEK version {kept} was added less than {SWITCH_SECONDS} s ago; nodes may still \
             seal under the older one"
        ))
        .into());
    }
    match &status.rewrap {
        Some(p) if p.finished_at.is_some() && p.failed == 0 => {}
        Some(p) if p.finished_at.is_some() => {
            return Err(not_yet(format!(
                "{} value(s) could not be re-wrapped (see the servers' logs); they would be \
                 lost with the old KEK",
                p.failed
            ))
            .into());
        }
        _ => {
            return Err(not_yet(
                "the servers are still re-wrapping data keys (`alter keys status`)".into(),
            )
            .into());
        }
    }
    let behind = nodes_behind(store, kept, now).await?;
    if !behind.is_empty() {
        return Err(not_yet(format!(
            "node(s) still seal under an older KEK: {} (restart them with the current key holder)",
            behind.join(", ")
        ))
        .into());
    }
    match store.retire_keks_below(kept).await {
        Ok(deleted) => Ok(Retired { kept, deleted }),
        Err(StoreError::Conflict(why)) => {
            // Values sealed under an old version after the walk passed them: walk again.
            if let Some(mut progress) = status.rewrap {
                progress.column = Some(SealedColumn::ALL[0]);
                progress.after.clear();
                progress.finished_at = None;
                progress.failed = 0;
                store.save_rewrap_progress(&progress, now).await?;
            }
            Err(not_yet(format!(
                "{why}; the servers will re-wrap them, run it again"
            ))
            .into())
        }
        Err(e) => Err(e.into()),
    }
}

/// What one turn of the re-wrap job did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RewrapTurn {
    /// Values moved under the newest KEK.
    pub rewrapped: u64,
    /// Values that failed to re-wrap (left as they were).
    pub failed: u64,
    /// True once every value is under the newest KEK (or nothing is to do).
    pub finished: bool,
}

impl Vault {
    /// [`add_kek_version`] on this vault's database with its key holder.
    pub async fn add_kek_version(&self) -> Result<u32> {
        add_kek_version(self.store(), self.key_holder(), self.now()).await
    }

    /// [`retire_old_keks`] on this vault's database with its key holder.
    pub async fn retire_old_keks(&self) -> Result<Retired> {
        retire_old_keks(self.store(), self.key_holder(), self.now()).await
    }

    /// Loads the KEK versions the database holds above the one this node seals under (added by
    /// `alter keys rotate-kek`, or met in a value another node sealed): true if the keyring
    /// changed. New seals use the newest version from then on. A keyring only grows: rows
    /// deleted, or older ones put back, never make a running node seal under an older KEK.
    pub async fn refresh_keyring(&self) -> Result<bool> {
        let current = self.keyring();
        let newest = self
            .store()
            .kek_records()
            .await?
            .iter()
            .map(|r| r.version)
            .max();
        match newest {
            Some(newest) if newest > current.current_version() => {}
            Some(newest) if newest < current.current_version() => {
                tracing::warn!(
                    stored = newest,
                    sealing = current.current_version(),
                    "the database's newest KEK is older than the one this node seals under: \
                     ignored (were KEK rows deleted?)"
                );
                return Ok(false);
            }
            _ => return Ok(false),
        }
        let keys = unwrap_keys(self.store(), self.key_holder()).await?;
        let newer = keys
            .keks
            .iter()
            .filter(|(stored, _)| stored.version > current.current_version())
            .map(|(stored, material)| Kek::from_material(stored.version, material))
            .collect::<std::result::Result<Vec<_>, CryptoError>>()?;
        self.replace_keyring(current.extended(newer));
        Ok(true)
    }

    /// Records that node `node` seals under this node's KEK version now, so re-wrapping and
    /// retirement wait for every live node to have loaded the newest ([`NODE_SEEN_SECONDS`]).
    pub async fn report_keyring(&self, node: &str) -> Result<()> {
        let now = self.now();
        let forget_before = now.plus_seconds(-NODE_FORGET_SECONDS);
        Ok(self
            .store()
            .report_node_keyring(node, self.kek_version(), now, forget_before)
            .await?)
    }

    /// One turn of the re-wrap job: walks up to `pages` pages of sealed values, re-wrapping
    /// each data key not yet under the newest KEK, and records where it stopped. Each value is
    /// replaced only if unchanged since read, so a write of the row meanwhile (which seals
    /// under the newest KEK) wins.
    pub async fn rewrap_data_keys(&self, pages: u32) -> Result<RewrapTurn> {
        let store = self.store();
        let keyring = self.keyring();
        let Some(newest) = store.kek_records().await?.pop() else {
            return Ok(RewrapTurn::default());
        };
        // This node does not seal with the newest KEK yet, or others may not: wait.
        if newest.version != keyring.current_version()
            || newest.created_at.plus_seconds(SWITCH_SECONDS) > self.now()
            || !nodes_behind(store, newest.version, self.now())
                .await?
                .is_empty()
        {
            return Ok(RewrapTurn::default());
        }
        let mut progress = match store.rewrap_progress().await? {
            Some(p) if p.version == newest.version => p,
            // Nothing sealed under an older version in a database that only ever had one.
            _ if newest.version == 1 => {
                return Ok(RewrapTurn {
                    finished: true,
                    ..Default::default()
                });
            }
            _ => RewrapProgress {
                version: newest.version,
                column: Some(SealedColumn::ALL[0]),
                after: String::new(),
                finished_at: None,
                failed: 0,
            },
        };
        let mut turn = RewrapTurn::default();
        for _ in 0..pages {
            let Some(column) = progress.column else { break };
            let rows = store.sealed_page(column, &progress.after, PAGE).await?;
            for row in &rows {
                if Keyring::kek_version_of(&row.blob) == Some(newest.version) {
                    continue;
                }
                let binding = Binding {
                    kind: kind(column),
                    app_id: &row.app_id,
                    record_id: &row.record_id,
                };
                // The page holds headers; read the value whole (it may have changed: then it
                // was sealed anew, under the newest KEK).
                let Some(blob) = store.sealed_value(column, &row.key).await? else {
                    continue;
                };
                match keyring.rewrap(binding, row.revision.as_deref(), &blob) {
                    Ok(Some(new)) => {
                        if store.replace_sealed(column, &row.key, &blob, &new).await? {
                            turn.rewrapped += 1;
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        turn.failed += 1;
                        tracing::warn!(
                            column = column.name(),
                            row = %row.key,
                            error = %e,
                            "a sealed value could not be re-wrapped"
                        );
                    }
                }
            }
            match rows.last() {
                Some(last) if rows.len() == PAGE as usize => progress.after = last.key.clone(),
                _ => {
                    let next = SealedColumn::ALL
                        .iter()
                        .position(|c| *c == column)
                        .map(|i| i + 1);
                    progress.column = next.and_then(|i| SealedColumn::ALL.get(i).copied());
                    progress.after.clear();
                }
            }
            progress.failed += turn.failed;
            turn.failed = 0;
            if progress.column.is_none() {
                progress.finished_at = Some(self.now());
            }
            store.save_rewrap_progress(&progress, self.now()).await?;
        }
        turn.failed = progress.failed;
        turn.finished = progress.finished_at.is_some();
        Ok(turn)
    }
}
