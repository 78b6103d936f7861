//! Ports: what the domain needs from the outside world. Storage is split by capability; every
//! method that changes state takes the audit event(s) describing the change and writes them in
//! the same transaction.

use async_trait::async_trait;

pub use alter_crypto::WrappedKek;

use crate::agents::Agent;
use crate::approvals::{Approval, ApprovalDecision, ApprovalFinish, ApprovalStatus};
use crate::apps::App;
use crate::audit::AuditEvent;
use crate::browser_sessions::BrowserSessionStore;
use crate::caller::NonceClaim;
use crate::connect::{ClaimedAttempt, ConnectOutcome, ConnectSession, Declined, SessionStatus};
use crate::connections::revocation::PendingRevocation;
use crate::connections::{Connection, RefreshLease, RefreshedTokens};
use crate::grants::{Grant, GrantFilter, GrantView, Principal, Viewer};
use crate::identity::{AppUser, IdentityProvider, JwksSource, TokenError, VerifiedToken};
use crate::idp_events::IdpEventStore;
use crate::ids::{
    AgentId, AppId, ApprovalId, AuthSessionId, ConnectSessionId, ConnectionId, GrantId, IdpId,
    KeyId, RuleId, SecretId, UserId, UserSecretId,
};
use crate::keys::ApiKey;
use crate::operators::OperatorStore;
use crate::provider_specs::{Operation, OperationSummary, ProviderSpec, PutSpec, SpecKind};
use crate::providers::OAuthProvider;
use crate::release::{Authorization, ReleaseCommit, ReleaseCondition, Verdict};
use crate::rules::Rule;
use crate::secrets::ManagedSecret;
use crate::signin::{AuthSession, SignInClient};
use crate::time::Timestamp;
use crate::user_secrets::UserSecret;
use crate::wallet::WalletStore;

/// Why storage failed. Messages are for logs, never for clients.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or timed out.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness rule was violated (names the rule).
    #[error("conflict on {0}")]
    Conflict(String),
    /// Stored data is not what this version expects.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// Anything else.
    #[error("database error: {0}")]
    Other(String),
}

/// Where a listing may be read from. A listing never decides access; the ones that may show
/// a slightly older state (an operator's pages, audit queries) go to a read replica when one
/// is configured, and the ones a caller acts on right after a write of its own (an app's grant
/// list after creating a grant) read the primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom {
    /// The primary: every committed write is seen.
    Primary,
    /// A replica if there is one (it may lag by what it has not replayed yet), else the primary.
    Replica,
}

/// Shorthand for storage results.
pub type StoreResult<T> = Result<T, StoreError>;

/// Key-encryption keys and the MAC root, wrapped by the key holder.
#[async_trait]
pub trait KeyringStore: Send + Sync {
    /// Every stored KEK.
    async fn load_keks(&self) -> StoreResult<Vec<WrappedKek>>;
    /// Stores a new KEK, with its endorsement (every version after the first has one); fails
    /// with [`StoreError::Conflict`] if the version exists.
    async fn insert_kek(
        &self,
        kek: &WrappedKek,
        endorsement: Option<&[u8]>,
        at: Timestamp,
    ) -> StoreResult<()>;
    /// Every stored KEK's version, endorsement and creation time (not its wrapped bytes).
    async fn kek_records(&self) -> StoreResult<Vec<KekRecord>>;
    /// Deletes the KEKs of versions below `version`, in one transaction that first checks no
    /// sealed value names one of them; otherwise fails with [`StoreError::Conflict`] and
    /// deletes nothing.
    async fn retire_keks_below(&self, version: u32) -> StoreResult<u64>;
    /// Where the re-wrapping of data keys under the newest KEK stands, if it ever started.
    async fn rewrap_progress(&self) -> StoreResult<Option<RewrapProgress>>;
    /// Records where the re-wrapping stands.
    async fn save_rewrap_progress(
        &self,
        progress: &RewrapProgress,
        at: Timestamp,
    ) -> StoreResult<()>;
    /// Up to `limit` sealed values of `column` whose key sorts after `after`, in key order,
    /// each with only the first [`SEALED_HEAD_BYTES`] of its blob (enough for the format, the
    /// KEK version and the wrapped data key). Rows whose value is NULL or empty — dropped, as
    /// a revoked connection's tokens — are left out.
    async fn sealed_page(
        &self,
        column: SealedColumn,
        after: &str,
        limit: u32,
    ) -> StoreResult<Vec<SealedRow>>;
    /// The whole sealed value of row `key` of `column` (`None` if the row or value is gone).
    async fn sealed_value(&self, column: SealedColumn, key: &str) -> StoreResult<Option<Vec<u8>>>;
    /// Sets the endorsement of KEK `version` where it has none.
    async fn endorse_kek(&self, version: u32, endorsement: &[u8]) -> StoreResult<()>;
    /// Records that `node` seals under KEK `version` at `at`, and forgets reports older than
    /// `forget_before`.
    async fn report_node_keyring(
        &self,
        node: &str,
        version: u32,
        at: Timestamp,
        forget_before: Timestamp,
    ) -> StoreResult<()>;
    /// The nodes that reported since `since`, with the KEK version they seal under.
    async fn node_keyrings_since(&self, since: Timestamp) -> StoreResult<Vec<(String, u32)>>;
    /// Replaces the sealed value of row `key` of `column` if it is still `old`; false when it
    /// changed meanwhile (a write of the row since it was read wins).
    async fn replace_sealed(
        &self,
        column: SealedColumn,
        key: &str,
        old: &[u8],
        new: &[u8],
    ) -> StoreResult<bool>;
    /// The wrapped MAC root; `None` in a database whose root is its local master key.
    async fn load_mac_root(&self) -> StoreResult<Option<StoredMacRoot>>;
    /// Stores the first MAC root; fails with [`StoreError::Conflict`] if one exists.
    async fn insert_mac_root(&self, root: &StoredMacRoot, at: Timestamp) -> StoreResult<()>;
    /// In one transaction, replaces every KEK's wrapped bytes (`keks`, one per version) and
    /// stores `root` as the MAC root, if the stored KEKs are exactly `expected` and the stored
    /// root's wrapped bytes are `expected_root`; otherwise (a concurrent rotation) fails with
    /// [`StoreError::Conflict`] and changes nothing.
    async fn rewrap_keys(
        &self,
        expected: &[WrappedKek],
        expected_root: Option<&[u8]>,
        keks: &[WrappedKek],
        root: &StoredMacRoot,
        at: Timestamp,
    ) -> StoreResult<()>;
}

/// A stored KEK's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KekRecord {
    /// Version.
    pub version: u32,
    /// MAC of the KEK under the audit MAC root ([`crate::keys_versions`]); `None` for version 1.
    pub endorsement: Option<Vec<u8>>,
    /// When it was created.
    pub created_at: Timestamp,
}

/// How far the re-wrapping of data keys under KEK `version` has come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewrapProgress {
    /// The KEK version every data key is moved under.
    pub version: u32,
    /// The column being walked (`None` once every column is done).
    pub column: Option<SealedColumn>,
    /// The last row key done in `column`.
    pub after: String,
    /// When the walk finished.
    pub finished_at: Option<Timestamp>,
    /// Values that could not be re-wrapped in the walk so far.
    pub failed: u64,
}

/// A column holding sealed values (blobs of the envelope), each with its own data key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealedColumn {
    /// `api_keys.sealed_signing_key`.
    ApiKeySigningKey,
    /// `managed_secrets.sealed_value`.
    ManagedSecretValue,
    /// `user_secrets.sealed_value`.
    UserSecretValue,
    /// `oauth_providers.sealed_client_secret`.
    ProviderClientSecret,
    /// `oauth_connections.sealed_tokens`.
    ConnectionTokens,
    /// `oauth_revocations.sealed_tokens`.
    RevocationTokens,
    /// `idp_sign_in_clients.sealed_client_secret`.
    SignInClientSecret,
    /// `identity_signing_keys.sealed_private_key`.
    IdentitySigningKey,
    /// `auth_sessions.sealed_verifier`.
    AuthSessionVerifier,
    /// `auth_sessions.sealed_user_token`.
    AuthSessionUserToken,
    /// `connect_sessions.attempt_verifier`.
    ConnectVerifier,
    /// `approvals.sealed_request`.
    ApprovalRequest,
    /// `approvals.sealed_result`.
    ApprovalResult,
    /// `idp_event_secrets.sealed_secret`.
    IdpEventSecret,
    /// `idp_event_secrets.previous_sealed`.
    IdpEventPreviousSecret,
    /// `webhook_endpoints.sealed_secret`.
    WebhookSecret,
    /// `webhook_endpoints.previous_sealed_secret` (during a rotation's grace period).
    WebhookPreviousSecret,
}

impl SealedColumn {
    /// Every sealed column, in the order a re-wrap walks them.
    pub const ALL: [SealedColumn; 17] = [
        SealedColumn::ApiKeySigningKey,
        SealedColumn::ManagedSecretValue,
        SealedColumn::UserSecretValue,
        SealedColumn::ProviderClientSecret,
        SealedColumn::ConnectionTokens,
        SealedColumn::RevocationTokens,
        SealedColumn::SignInClientSecret,
        SealedColumn::IdentitySigningKey,
        SealedColumn::AuthSessionVerifier,
        SealedColumn::AuthSessionUserToken,
        SealedColumn::ConnectVerifier,
        SealedColumn::ApprovalRequest,
        SealedColumn::ApprovalResult,
        SealedColumn::IdpEventSecret,
        SealedColumn::IdpEventPreviousSecret,
        SealedColumn::WebhookSecret,
        SealedColumn::WebhookPreviousSecret,
    ];

    /// `table.column`, as stored in the re-wrap progress and shown to operators.
    pub fn name(self) -> &'static str {
        match self {
            SealedColumn::ApiKeySigningKey => "api_keys.sealed_signing_key",
            SealedColumn::ManagedSecretValue => "managed_secrets.sealed_value",
            SealedColumn::UserSecretValue => "user_secrets.sealed_value",
            SealedColumn::ProviderClientSecret => "oauth_providers.sealed_client_secret",
            SealedColumn::ConnectionTokens => "oauth_connections.sealed_tokens",
            SealedColumn::RevocationTokens => "oauth_revocations.sealed_tokens",
            SealedColumn::SignInClientSecret => "idp_sign_in_clients.sealed_client_secret",
            SealedColumn::IdentitySigningKey => "identity_signing_keys.sealed_private_key",
            SealedColumn::AuthSessionVerifier => "auth_sessions.sealed_verifier",
            SealedColumn::AuthSessionUserToken => "auth_sessions.sealed_user_token",
            SealedColumn::ConnectVerifier => "connect_sessions.attempt_verifier",
            SealedColumn::ApprovalRequest => "approvals.sealed_request",
            SealedColumn::ApprovalResult => "approvals.sealed_result",
            SealedColumn::IdpEventSecret => "idp_event_secrets.sealed_secret",
            SealedColumn::IdpEventPreviousSecret => "idp_event_secrets.previous_sealed",
            SealedColumn::WebhookSecret => "webhook_endpoints.sealed_secret",
            SealedColumn::WebhookPreviousSecret => "webhook_endpoints.previous_sealed_secret",
        }
    }

    /// The column of [`Self::name`].
    pub fn parse(name: &str) -> Option<SealedColumn> {
        SealedColumn::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// How much of a sealed value [`KeyringStore::sealed_page`] reads.
pub const SEALED_HEAD_BYTES: u32 = 96;

/// One sealed value with what its binding is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedRow {
    /// The row's key within its column (for paging and the replacement).
    pub key: String,
    /// The app the value is bound to (empty for node-wide material).
    pub app_id: String,
    /// The record the value is bound to.
    pub record_id: String,
    /// The value's version within its record, for values sealed with one.
    pub revision: Option<String>,
    /// The sealed value's first [`SEALED_HEAD_BYTES`] bytes.
    pub blob: Vec<u8>,
}

/// The MAC root as stored: wrapped by the key holder named in `key_holder`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMacRoot {
    /// What the key holder returned.
    pub wrapped: Vec<u8>,
    /// The key holder's non-secret identity ([`KeyHolder::identity`]), for messages.
    pub key_holder: String,
}

/// Whoever holds the key that wraps the KEKs and the MAC root: the local master key or an
/// external service (OpenBao/Vault Transit), and cloud KMSes behind the same port later. The
/// key itself need never be revealed: the holder only wraps and unwraps 32-byte secrets.
#[async_trait]
pub trait KeyHolder: Send + Sync + std::fmt::Debug {
    /// A stable, non-secret description for messages (where, which key; never a token).
    fn identity(&self) -> String;
    /// Wraps `plaintext` bound to `context` (which must be given again to unwrap).
    async fn wrap(&self, context: &str, plaintext: &[u8]) -> Result<Vec<u8>, KeyHolderError>;
    /// Unwraps what [`Self::wrap`] returned for `context`.
    async fn unwrap(
        &self,
        context: &str,
        wrapped: &[u8],
    ) -> Result<alter_crypto::Zeroizing<Vec<u8>>, KeyHolderError>;
    /// The MAC root of a database that stores none: only a local master key has one (its own
    /// bytes, which is what such databases used).
    fn legacy_mac_root(&self) -> Option<alter_crypto::MacRoot> {
        None
    }
}

/// Why the key holder failed. Messages name the holder and never contain a token or a key.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KeyHolderError {
    /// The holder cannot be reached.
    #[error("{0}")]
    Unreachable(String),
    /// The holder answered but refused or failed (no such key, permission denied, …).
    #[error("{0}")]
    Refused(String),
    /// The wrapped bytes do not open with the holder's key (another key, or altered bytes).
    #[error("the key holder's key does not open it")]
    WrongKey,
    /// The holder's key does not open this database's keys; says what to do.
    #[error("{0}")]
    NotThisDatabase(String),
}

/// Apps (tenants).
#[async_trait]
pub trait AppStore: Send + Sync {
    /// Creates an app and starts its audit chain with `event`.
    async fn insert_app(&self, app: &App, event: &AuditEvent) -> StoreResult<()>;
    /// One app.
    async fn get_app(&self, id: AppId) -> StoreResult<Option<App>>;
    /// Every app, oldest first.
    async fn list_apps(&self) -> StoreResult<Vec<App>>;
}

/// API keys.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Stores a new key.
    async fn insert_key(&self, key: &ApiKey, event: &AuditEvent) -> StoreResult<()>;
    /// Stores a key derived from `key.parent_key_id` if, in the same transaction, that parent
    /// (of the same app) is unrevoked and usable from `at` until the new key's end; returns false
    /// (and changes nothing) otherwise. The check holds the parent's row until commit, so a
    /// concurrent [`revoke_key`](KeyStore::revoke_key) of the parent either comes first and
    /// refuses this insert, or comes after and revokes the new key with it.
    async fn insert_derived_key(
        &self,
        key: &ApiKey,
        at: Timestamp,
        event: &AuditEvent,
    ) -> StoreResult<bool>;
    /// The key with this lookup hash, in any state.
    async fn find_key_by_hash(&self, lookup_hash: &[u8; 32]) -> StoreResult<Option<ApiKey>>;
    /// One key of an app.
    async fn get_key(&self, app: AppId, id: KeyId) -> StoreResult<Option<ApiKey>>;
    /// Every key of an app, oldest first.
    async fn list_keys(&self, app: AppId) -> StoreResult<Vec<ApiKey>>;
    /// Revokes the key and every key derived from it (transitively) that is not revoked yet;
    /// returns the ids revoked now (empty if the key was already revoked).
    async fn revoke_key(
        &self,
        app: AppId,
        id: KeyId,
        at: Timestamp,
        event: &AuditEvent,
    ) -> StoreResult<Vec<KeyId>>;
    /// Marks `old` deprecated with an end of overlap and stores its successor, atomically; keys
    /// derived from `old` end no later than the overlap. Returns false (and changes nothing) if
    /// `old` is revoked or already rotated.
    async fn rotate_key(
        &self,
        app: AppId,
        old: KeyId,
        at: Timestamp,
        grace_until: Timestamp,
        successor: &ApiKey,
        event: &AuditEvent,
    ) -> StoreResult<bool>;
    /// Records a use of the key if the stored `last_used_at` is older than `stale_before`.
    async fn touch_key(&self, id: KeyId, at: Timestamp, stale_before: Timestamp)
    -> StoreResult<()>;
    /// Sets (or, with `None`, clears) a key's deprecation.
    async fn set_key_deprecated(
        &self,
        app: AppId,
        id: KeyId,
        at: Option<Timestamp>,
        event: &AuditEvent,
    ) -> StoreResult<()>;
    /// Every key of an agent, oldest first.
    async fn agent_keys(&self, app: AppId, agent: AgentId) -> StoreResult<Vec<ApiKey>>;
}

/// Identity providers and the users they vouch for.
#[async_trait]
pub trait IdentityStore: Send + Sync {
    /// The app's IdP.
    async fn get_idp(&self, app: AppId) -> StoreResult<Option<IdentityProvider>>;
    /// Creates or replaces the app's IdP.
    async fn put_idp(&self, idp: &IdentityProvider, event: &AuditEvent) -> StoreResult<()>;
    /// The user an IdP subject maps to.
    async fn find_user(
        &self,
        app: AppId,
        idp: IdpId,
        subject: &str,
    ) -> StoreResult<Option<AppUser>>;
    /// One user.
    async fn get_user(&self, app: AppId, id: UserId) -> StoreResult<Option<AppUser>>;
    /// Records a new user; [`StoreError::Conflict`] if the subject is known already.
    async fn insert_user(&self, user: &AppUser, event: &AuditEvent) -> StoreResult<()>;
    /// Refreshes a user's profile and last sighting, and their groups unless the stored ones
    /// are newer (a later `groups_as_of`, or a dated one against an undated `user`; a tie goes
    /// to `user`): the newest verified membership wins, whatever order concurrent sign-ins
    /// commit in. Never the status: a sign-in that read the user before a deactivation must
    /// not write `active` back over it.
    async fn update_user(&self, user: &AppUser) -> StoreResult<()>;
    /// What still names the IdP's identity namespace: `Some("users")` if it vouched for any
    /// user, `Some("group grants")` if an active grant names one of its groups,
    /// `Some("pending approvals")` if an approval of the app is pending, `None` if nothing does.
    async fn idp_references(&self, app: AppId, idp: IdpId) -> StoreResult<Option<&'static str>>;
}

/// Managed secrets.
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// Slugs of the app equal to `base` or starting with `base-`.
    async fn slugs_with_prefix(&self, app: AppId, base: &str) -> StoreResult<Vec<String>>;
    /// Stores a new secret; [`StoreError::Conflict`] if the slug is taken.
    async fn insert_secret(&self, secret: &ManagedSecret, event: &AuditEvent) -> StoreResult<()>;
    /// Live secrets of the app, oldest first.
    async fn list_secrets(&self, app: AppId) -> StoreResult<Vec<ManagedSecret>>;
    /// One secret (deleted ones too).
    async fn get_secret(&self, app: AppId, id: SecretId) -> StoreResult<Option<ManagedSecret>>;
    /// One secret by slug.
    async fn get_secret_by_slug(
        &self,
        app: AppId,
        slug: &str,
    ) -> StoreResult<Option<ManagedSecret>>;
    /// Stores a new value; false if the secret was deleted meanwhile.
    async fn rotate_secret(&self, secret: &ManagedSecret, event: &AuditEvent) -> StoreResult<bool>;
    /// Stores new allowed hosts; false if the secret was deleted meanwhile.
    async fn set_secret_hosts(
        &self,
        secret: &ManagedSecret,
        event: &AuditEvent,
    ) -> StoreResult<bool>;
    /// Marks the secret deleted and revokes all its grants (one event each, from `template`).
    async fn delete_secret(
        &self,
        app: AppId,
        id: SecretId,
        at: Timestamp,
        event: &AuditEvent,
        template: &AuditEvent,
    ) -> StoreResult<()>;
}

/// OAuth connections, and the refresh lease that lets exactly one caller refresh one.
#[async_trait]
pub trait ConnectionStore: Send + Sync {
    /// Stores a new connection.
    async fn insert_connection(
        &self,
        connection: &Connection,
        event: &AuditEvent,
    ) -> StoreResult<()>;
    /// One connection of an app.
    async fn get_connection(&self, app: AppId, id: ConnectionId)
    -> StoreResult<Option<Connection>>;
    /// Takes the refresh lease of an active connection until `until`, if nobody holds it at
    /// `now` (or the holder's lease ran out), bumping its fencing number. `None`: someone
    /// holds it, or the connection is not active.
    async fn acquire_refresh_lease(
        &self,
        app: AppId,
        id: ConnectionId,
        now: Timestamp,
        until: Timestamp,
    ) -> StoreResult<Option<RefreshLease>>;
    /// Stores a refresh's tokens and frees the lease — only if the fencing number is still
    /// `lease.fence` and the connection still active; false (changing nothing) otherwise.
    async fn complete_refresh(
        &self,
        app: AppId,
        id: ConnectionId,
        lease: &RefreshLease,
        tokens: &RefreshedTokens,
    ) -> StoreResult<bool>;
    /// Frees a lease without storing anything (the refresh failed transiently); false if it
    /// was no longer held.
    async fn release_refresh_lease(
        &self,
        app: AppId,
        id: ConnectionId,
        lease: &RefreshLease,
    ) -> StoreResult<bool>;
    /// Marks a connection as needing the user again (the provider refused its refresh token),
    /// with its event — only under `lease`, and only while its tokens are the ones the lease
    /// refreshed: a refresher that lost its lease cannot undo the winner's refresh. False
    /// (changing nothing) otherwise.
    async fn mark_reauth_required(
        &self,
        app: AppId,
        id: ConnectionId,
        lease: &RefreshLease,
        at: Timestamp,
        event: &AuditEvent,
    ) -> StoreResult<bool>;
    /// Stores a new connection and the root grant on it (numbered), with their events, in
    /// one transaction. [`StoreError::Conflict`]`("sibling_label")` when the label is taken.
    async fn insert_connection_grant(
        &self,
        connection: &Connection,
        grant: &Grant,
        events: &[AuditEvent],
    ) -> StoreResult<()>;
    /// Gives a connection new tokens (a reconnect): active again, the fence moved so a
    /// refresh in flight stores nothing. False if it was revoked.
    async fn reconnect(&self, connection: &Connection, event: &AuditEvent) -> StoreResult<bool>;
    /// The active, unexpired root grant of `principal` on a connection of `provider` for
    /// `account`, if there is one (the newest).
    async fn find_connection_grant(
        &self,
        app: AppId,
        principal: &Principal,
        provider: &str,
        account: &str,
        now: Timestamp,
    ) -> StoreResult<Option<Grant>>;
    /// Revokes the grant `root` of a connection and every delegation under it, with one
    /// event per grant (from `template`); if no active, unexpired root grant is left on it,
    /// revokes it too (with `connection_event`) and queues its tokens for upstream revocation —
    /// all in one transaction. Returns the revoked grants and whether the connection was
    /// revoked.
    #[allow(clippy::too_many_arguments)]
    async fn revoke_connection_grant(
        &self,
        app: AppId,
        root: GrantId,
        connection: ConnectionId,
        at: Timestamp,
        reason: Option<&str>,
        template: &AuditEvent,
        connection_event: &AuditEvent,
    ) -> StoreResult<(Vec<GrantId>, bool)>;
    /// Connections (app, id) no live root grant uses any more (each revoked, or expired at
    /// `now`), up to `limit`, oldest change first.
    async fn unused_connections(
        &self,
        now: Timestamp,
        limit: i64,
    ) -> StoreResult<Vec<(AppId, ConnectionId)>>;
    /// Retires one of them as revoking its last grant would, re-checked in the same statement;
    /// false if a live grant uses it again or it is revoked already.
    async fn retire_connection(
        &self,
        app: AppId,
        connection: ConnectionId,
        at: Timestamp,
        event: &AuditEvent,
    ) -> StoreResult<bool>;
    /// Claims up to `limit` due upstream revocations (only `only`'s, when given) until
    /// `until`, so no other node sends them meanwhile.
    async fn claim_revocations(
        &self,
        now: Timestamp,
        until: Timestamp,
        limit: i64,
        only: Option<ConnectionId>,
    ) -> StoreResult<Vec<PendingRevocation>>;
    /// Ends an upstream revocation (confirmed or abandoned), destroying its tokens, with its
    /// event.
    async fn finish_revocation(
        &self,
        connection: ConnectionId,
        at: Timestamp,
        event: &AuditEvent,
    ) -> StoreResult<()>;
    /// Schedules the next attempt of an upstream revocation.
    async fn retry_revocation(
        &self,
        connection: ConnectionId,
        attempts: i64,
        next_at: Timestamp,
        error: &str,
    ) -> StoreResult<()>;
}

/// Connect sessions and the authorization attempt in flight of each.
#[async_trait]
pub trait ConnectStore: Send + Sync {
    /// Stores a new session (only the SHA-256 of its two tokens), with its event.
    async fn insert_connect_session(
        &self,
        session: &ConnectSession,
        poll_hash: &[u8; 32],
        page_hash: &[u8; 32],
        event: &AuditEvent,
    ) -> StoreResult<()>;
    /// The session a poll token's hash names.
    async fn connect_session_by_poll_hash(
        &self,
        hash: &[u8; 32],
    ) -> StoreResult<Option<ConnectSession>>;
    /// The session a page token's hash names.
    async fn connect_session_by_page_hash(
        &self,
        hash: &[u8; 32],
    ) -> StoreResult<Option<ConnectSession>>;
    /// Starts an attempt (replacing any in flight) while the session is pending, bound to the
    /// browser whose cookie hashes to `browser_hash`; false if it is not pending.
    #[allow(clippy::too_many_arguments)]
    async fn start_connect_attempt(
        &self,
        session: ConnectSessionId,
        state_hash: &[u8; 32],
        browser_hash: &[u8; 32],
        provider_id: &str,
        sealed_verifier: &[u8],
        at: Timestamp,
    ) -> StoreResult<bool>;
    /// Claims the attempt a state's hash names, from the browser that started it, clearing it
    /// so no second callback finds it and moving the pending session to `exchanging` so no
    /// other attempt starts meanwhile.
    async fn claim_connect_attempt(
        &self,
        state_hash: &[u8; 32],
        browser_hash: &[u8; 32],
        now: Timestamp,
    ) -> StoreResult<Option<ClaimedAttempt>>;
    /// Records the providers the user declined at; the session is pending again.
    async fn set_connect_declined(
        &self,
        session: ConnectSessionId,
        declined: &[Declined],
    ) -> StoreResult<()>;
    /// Marks a session whose user signed in at the page: pending again, `verified_at` set;
    /// false if it was not exchanging.
    async fn verify_connect_session(
        &self,
        session: ConnectSessionId,
        at: Timestamp,
    ) -> StoreResult<bool>;
    /// The session the browser cookie's hash names (its latest attempt's binding).
    async fn connect_session_by_browser(
        &self,
        hash: &[u8; 32],
    ) -> StoreResult<Option<ConnectSession>>;
    /// Deletes sessions that expired before `before`.
    async fn prune_connect_sessions(&self, before: Timestamp) -> StoreResult<u64>;
    /// Ends a pending or exchanging session; false if it was already over.
    async fn finish_connect_session(
        &self,
        session: ConnectSessionId,
        status: SessionStatus,
        outcome: &ConnectOutcome,
        at: Timestamp,
    ) -> StoreResult<bool>;
}

/// Users' own keys for managed secrets.
#[async_trait]
pub trait UserSecretStore: Send + Sync {
    /// One user key of an app.
    async fn get_user_secret(
        &self,
        app: AppId,
        id: UserSecretId,
    ) -> StoreResult<Option<UserSecret>>;
    /// Stores a new user key and the user's grant on it (numbered), with their events, in one
    /// transaction. [`StoreError::Conflict`]`("sibling_label")` when the label is taken.
    async fn insert_user_secret_grant(
        &self,
        key: &UserSecret,
        grant: &Grant,
        events: &[AuditEvent],
    ) -> StoreResult<()>;
    /// Replaces a user key's value if its version is still `key.value_version - 1`; false,
    /// changing nothing, otherwise.
    async fn replace_user_secret(&self, key: &UserSecret, event: &AuditEvent) -> StoreResult<bool>;
}

/// OAuth providers of apps.
#[async_trait]
pub trait ProviderStore: Send + Sync {
    /// Stores a provider's configuration if the stored version is still `expected` (`None`:
    /// no configuration yet); false, changing nothing, otherwise.
    async fn put_provider(
        &self,
        provider: &OAuthProvider,
        expected: Option<i64>,
        event: &AuditEvent,
    ) -> StoreResult<bool>;
    /// One provider of an app.
    async fn get_provider(&self, app: AppId, id: &str) -> StoreResult<Option<OAuthProvider>>;
    /// Every provider of an app, by id.
    async fn list_providers(&self, app: AppId) -> StoreResult<Vec<OAuthProvider>>;
    /// Removes a provider, unless connections made with it are still live (not revoked); false
    /// if it was not removed.
    async fn delete_provider(&self, app: AppId, id: &str, event: &AuditEvent) -> StoreResult<bool>;
}

/// Provider specs (OpenAPI documents) and their operations.
#[async_trait]
pub trait SpecStore: Send + Sync {
    /// Stores a spec's metadata (and, with `put.operations`, its document and operations,
    /// replacing the old ones) if the stored version is still `put.expected_version`
    /// (`None`: no spec yet); false, changing nothing, otherwise.
    async fn put_provider_spec(&self, put: &PutSpec<'_>, event: &AuditEvent) -> StoreResult<bool>;
    /// One provider's spec.
    async fn get_provider_spec(
        &self,
        app: AppId,
        kind: SpecKind,
        provider_id: &str,
    ) -> StoreResult<Option<ProviderSpec>>;
    /// The app's specs (of one kind, or both), by kind and provider id.
    async fn list_provider_specs(
        &self,
        app: AppId,
        kind: Option<SpecKind>,
    ) -> StoreResult<Vec<ProviderSpec>>;
    /// A page of a spec's operations in document order — only those whose lower-cased id,
    /// path template or summary contain `search` (lower-case), if given — and how many match.
    async fn list_spec_operations(
        &self,
        app: AppId,
        kind: SpecKind,
        provider_id: &str,
        search: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> StoreResult<(Vec<OperationSummary>, i64)>;
    /// One operation of a spec, with its schemas.
    async fn get_spec_operation(
        &self,
        app: AppId,
        kind: SpecKind,
        provider_id: &str,
        operation_id: &str,
    ) -> StoreResult<Option<Operation>>;
    /// Removes a spec and its operations; false if there was none.
    async fn delete_provider_spec(
        &self,
        app: AppId,
        kind: SpecKind,
        provider_id: &str,
        event: &AuditEvent,
    ) -> StoreResult<bool>;
}

/// Grants and delegations.
#[async_trait]
pub trait GrantStore: Send + Sync {
    /// Stores a new grant, numbering it after the app's last one. [`StoreError::Conflict`]
    /// `"sibling_label"` if an active sibling (same credential, principal and label) exists.
    async fn insert_grant(&self, grant: &Grant, event: &AuditEvent) -> StoreResult<()>;
    /// [`GrantStore::insert_grant`] for a grant minted from `source`: its row names `source`
    /// (column `minted_from`), written by the statement that creates it.
    async fn insert_minted_grant(
        &self,
        grant: &Grant,
        source: GrantId,
        event: &AuditEvent,
    ) -> StoreResult<()>;
    /// The grant `id` was minted from; `None` if it was not minted (or does not exist).
    async fn minted_from(&self, app: AppId, id: GrantId) -> StoreResult<Option<GrantId>>;
    /// One grant.
    async fn get_grant(&self, app: AppId, id: GrantId) -> StoreResult<Option<Grant>>;
    /// A page of the grants `viewer` sees, in creation order, and how many match in all.
    #[allow(clippy::too_many_arguments)]
    async fn list_grants(
        &self,
        app: AppId,
        viewer: &Viewer,
        filter: &GrantFilter,
        limit: i64,
        offset: i64,
        now: Timestamp,
        read: ReadFrom,
    ) -> StoreResult<(Vec<GrantView>, i64)>;
    /// Revokes the grant and every active delegation below it; one event per grant (from
    /// `template`, target filled in). Returns the ids revoked now.
    async fn revoke_grants(
        &self,
        app: AppId,
        root: GrantId,
        at: Timestamp,
        reason: Option<&str>,
        template: &AuditEvent,
    ) -> StoreResult<Vec<GrantId>>;
    /// Revokes every active delegation of `parent` to `agent` and every active delegation
    /// below them, in one transaction; one event per grant (from `template`, target filled in).
    /// Returns the ids revoked now.
    async fn revoke_delegations(
        &self,
        app: AppId,
        parent: GrantId,
        agent: AgentId,
        at: Timestamp,
        reason: Option<&str>,
        template: &AuditEvent,
    ) -> StoreResult<Vec<GrantId>>;
    /// The active delegation of `parent` to `agent`, if any (there is at most one).
    async fn active_child(
        &self,
        app: AppId,
        parent: GrantId,
        agent: AgentId,
    ) -> StoreResult<Option<Grant>>;
    /// Stores a new delegation, or the renewed expiry and `delegable` of an existing active
    /// one. [`StoreError::Conflict`] `"active_delegation"` if the parent has another active
    /// delegation to that agent already, or the one to renew is no longer active.
    async fn put_delegation(&self, child: &Grant, event: &AuditEvent) -> StoreResult<()>;
}

/// What releasing a credential reads and writes: the grants a caller may release, and the
/// release's own audit events, written through the group commit.
#[async_trait]
pub trait ReleaseStore: Send + Sync {
    /// A grant by id and, if it points at a managed secret, that secret: read together, in
    /// one hand-off where the engine allows.
    async fn grant_with_secret(
        &self,
        app: AppId,
        id: GrantId,
    ) -> StoreResult<Option<(Grant, Option<ManagedSecret>)>>;

    /// Active, unexpired grants of a credential that `viewer` may release, narrowed to
    /// `label` and `account` if given, oldest first, at most `limit`: for the app itself only
    /// its system grants; for a user their own and their groups' grants; for an agent its own
    /// and its delegations.
    async fn release_candidates(
        &self,
        app: AppId,
        source: CandidateSource<'_>,
        viewer: &Viewer,
        narrow: Narrowing<'_>,
        now: Timestamp,
        limit: i64,
    ) -> StoreResult<Vec<Grant>>;
    /// Appends a release's event to the log and refreshes its grant's `last_used_at` (`touch`),
    /// committed before this returns — if `condition` still holds in the committing
    /// transaction, with the rows it names locked against concurrent revocations until the
    /// commit — and claims the request's `nonce` in the same transaction, whether the condition
    /// holds or not. Writes nothing but the claim if the condition no longer holds, and nothing
    /// at all for a replay. A release is answered only after its event is durable.
    async fn commit_release(
        &self,
        event: AuditEvent,
        touch: Option<(GrantId, Timestamp)>,
        condition: ReleaseCondition,
        nonce: Option<NonceClaim>,
    ) -> StoreResult<ReleaseCommit>;
    /// Appends a release's denial (or a report of a release) to the log, committed before this
    /// returns, with the request's `nonce` claimed in the same transaction. False, having
    /// written nothing, for a replay.
    async fn record_release(
        &self,
        event: AuditEvent,
        nonce: Option<NonceClaim>,
    ) -> StoreResult<bool>;
    /// Queues an event for the next commit without waiting for it (what a proxied call came
    /// to, recorded after its answer); a failure to write it is logged.
    async fn record_release_later(&self, event: AuditEvent) -> StoreResult<()>;
    /// Sets (a client reported the grant's scopes too narrow) or clears (an operator) a grant's
    /// scope-mismatch flag, with its audit event.
    async fn set_scope_mismatch(
        &self,
        app: AppId,
        grant: GrantId,
        mismatch: bool,
        event: &AuditEvent,
    ) -> StoreResult<()>;
}

/// The audit log.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends an event that goes with no other change.
    async fn append_event(&self, event: &AuditEvent) -> StoreResult<()>;
    /// Apps whose chain ends on an event with an unkeyed (plain SHA-256) hash.
    async fn unkeyed_audit_chains(&self) -> StoreResult<Vec<AppId>>;
    /// Events of an app in chain order, after `after_seq`, matching `filter`: a listing, read
    /// from a replica when one is configured (it may lag; verification reads
    /// [`AuditStore::chain_rows`] from the primary).
    async fn list_events(
        &self,
        app: AppId,
        filter: &crate::audit::EventFilter,
        after_seq: i64,
        limit: i64,
    ) -> StoreResult<Vec<crate::audit::StoredEvent>>;
    /// Raw chain rows of an app after `after_seq`, for verification.
    async fn chain_rows(
        &self,
        app: AppId,
        after_seq: i64,
        limit: i64,
    ) -> StoreResult<Vec<crate::audit::ChainRow>>;
    /// The head of an app's chain: last sequence number and hash.
    async fn chain_head(&self, app: AppId) -> StoreResult<Option<(i64, Vec<u8>)>>;
    /// An app's retention anchor: the last event removed by retention, as stored (unchecked).
    async fn audit_anchor(&self, app: AppId) -> StoreResult<Option<crate::audit::Checkpoint>>;
    /// Every app's retention anchor, as stored (unchecked), from the primary.
    async fn audit_anchors(&self) -> StoreResult<Vec<crate::audit::Checkpoint>>;
    /// The instant before which removing events older than `cutoff` removes them: `cutoff`
    /// where rows are deleted one by one, the start of its month where whole monthly
    /// partitions are dropped.
    fn audit_retention_bound(&self, cutoff: Timestamp) -> Timestamp;
    /// Per app with events before `bound` not yet covered by its anchor: the sequence number
    /// and stored hash of the last such event (the anchor removing them needs).
    async fn audit_cuts(&self, bound: Timestamp) -> StoreResult<Vec<(AppId, i64, Vec<u8>)>>;
    /// Stores an app's anchor, or moves it forward; an older one changes nothing.
    async fn record_audit_anchor(&self, anchor: &crate::audit::Checkpoint) -> StoreResult<()>;
    /// Removes the events before `bound` that their app's anchor covers: deletes the rows
    /// (SQLite, PostgreSQL's DEFAULT partition) or drops whole partitions every row of which
    /// is covered. Returns the rows deleted plus the partitions dropped.
    async fn remove_audit_events(&self, bound: Timestamp) -> StoreResult<u64>;
}

/// Agents.
#[async_trait]
pub trait AgentStore: Send + Sync {
    /// Stores a new agent with its first key (and the idempotency record, if any).
    /// [`StoreError::Conflict`] `"agent_name"` or `"idempotency_key"`.
    async fn insert_agent(
        &self,
        agent: &Agent,
        key: &ApiKey,
        idempotency: Option<(&str, &[u8])>,
        event: &AuditEvent,
    ) -> StoreResult<()>;
    /// The agent an idempotency key created: its id, first key id and request fingerprint.
    async fn find_idempotent_agent(
        &self,
        app: AppId,
        key: &str,
    ) -> StoreResult<Option<(AgentId, KeyId, Vec<u8>)>>;
    /// A page of agents, oldest first, and the total.
    async fn list_agents(
        &self,
        app: AppId,
        include_revoked: bool,
        limit: i64,
        offset: i64,
    ) -> StoreResult<(Vec<Agent>, i64)>;
    /// The live agent of that name.
    async fn find_agent_by_name(&self, app: AppId, name: &str) -> StoreResult<Option<Agent>>;
    /// One agent.
    async fn get_agent(&self, app: AppId, id: AgentId) -> StoreResult<Option<Agent>>;
    /// Stores a changed agent if its version is still `expected_version`.
    async fn update_agent(
        &self,
        agent: &Agent,
        expected_version: i64,
        events: &[AuditEvent],
    ) -> StoreResult<bool>;
    /// Stores a deleted agent (if its version is still `expected_version`), revoking its keys
    /// and the delegations to it (one event each, from `template`).
    async fn delete_agent(
        &self,
        agent: &Agent,
        expected_version: i64,
        event: &AuditEvent,
        template: &AuditEvent,
    ) -> StoreResult<bool>;
}

/// Request nonces, kept in the database so replay protection holds across server nodes.
#[async_trait]
pub trait NonceStore: Send + Sync {
    /// Records the nonce of a request signed at `signed_at`; false if this key used it before
    /// with that timestamp (see [`crate::caller::NonceClaim::at`]).
    async fn claim_nonce(&self, key: KeyId, nonce: &str, signed_at: Timestamp)
    -> StoreResult<bool>;
    /// Forgets nonces signed before `before`; returns how many rows were deleted (a
    /// partition dropped whole is not counted).
    async fn prune_nonces(&self, before: Timestamp) -> StoreResult<u64>;
    /// Creates ahead of `now` the time partitions of nonces and audit events (PostgreSQL;
    /// nothing on SQLite), so that rows rarely fall into the DEFAULT partitions.
    async fn maintain_time_partitions(&self, now: Timestamp) -> StoreResult<()>;
}

/// Readiness of the database.
#[async_trait]
pub trait HealthStore: Send + Sync {
    /// Ok if the database answers and every migration of this version is applied.
    async fn ready(&self) -> StoreResult<()>;
}

/// Caller-defined trace spans (see [`crate::spans`]).
#[async_trait]
pub trait SpanStore: Send + Sync {
    /// Stores the spans not stored yet (by app, trace and span id); returns how many were new.
    async fn insert_spans(&self, spans: &[crate::spans::Span]) -> StoreResult<u64>;
    /// An app's spans of one trace, by start time, at most `limit`: a listing, read from a
    /// replica when one is configured.
    async fn trace_spans(
        &self,
        app: AppId,
        trace_id: &str,
        limit: i64,
    ) -> StoreResult<Vec<crate::spans::Span>>;
    /// Deletes spans whose retention ended before `now`; returns how many.
    async fn prune_spans(&self, now: Timestamp) -> StoreResult<u64>;
}

/// Leases that keep a background job on one node at a time.
#[async_trait]
pub trait LeaseStore: Send + Sync {
    /// Takes `job`'s lease for `holder` until `until`, or renews it if `holder` has it: true.
    /// False, changing nothing, while another holder's lease runs past `now` — unless it runs
    /// further past `until` than nodes' clocks may differ, which no node sets.
    async fn take_lease(
        &self,
        job: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> StoreResult<bool>;
    /// Gives `job`'s lease up if `holder` has it (a node stopping), so another node need not
    /// wait for it to run out.
    async fn release_lease(&self, job: &str, holder: &str) -> StoreResult<()>;
}

/// Which credential a provider-mode release names.
#[derive(Debug, Clone, Copy)]
pub enum CandidateSource<'a> {
    /// A managed secret.
    Secret(SecretId),
    /// The connections made with an app's OAuth provider.
    Provider(&'a str),
}

/// What narrows a provider-mode release.
#[derive(Debug, Clone, Copy, Default)]
pub struct Narrowing<'a> {
    /// The sibling label.
    pub label: Option<&'a str>,
    /// The account identifier.
    pub account: Option<&'a str>,
}

/// End-user sign-in: the IdP's sign-in client, sign-in sessions and the identity-assertion
/// signing key.
#[async_trait]
pub trait SignInStore: Send + Sync {
    /// The app's sign-in client.
    async fn get_sign_in_client(&self, app: AppId) -> StoreResult<Option<SignInClient>>;
    /// Stores it if its version is still `expected` (`None`: none stored yet). False when it
    /// changed meanwhile.
    async fn put_sign_in_client(
        &self,
        client: &SignInClient,
        expected: Option<i64>,
        event: &AuditEvent,
    ) -> StoreResult<bool>;
    /// Records a new session.
    async fn insert_auth_session(&self, session: &AuthSession) -> StoreResult<()>;
    /// The app's session whose token hashes to `token_hash`.
    async fn find_auth_session(
        &self,
        app: AppId,
        token_hash: &[u8; 32],
    ) -> StoreResult<Option<AuthSession>>;
    /// Moves the pending, unexpired session whose state hashes to `state_hash` to
    /// `exchanging` and returns it; `None` if there is none (exactly one caller wins).
    async fn claim_auth_session(
        &self,
        state_hash: &[u8; 32],
        now: Timestamp,
    ) -> StoreResult<Option<AuthSession>>;
    /// Stores the outcome of an `exchanging` session (its status, sealed token, user, error);
    /// false if it is no longer exchanging.
    async fn finish_auth_session(&self, session: &AuthSession) -> StoreResult<bool>;
    /// Moves a completed session to `collected`, erasing its token; false if another poll did.
    async fn collect_auth_session(
        &self,
        id: AuthSessionId,
        at: Timestamp,
        event: &AuditEvent,
    ) -> StoreResult<bool>;
    /// Deletes sessions that expired before `before`.
    async fn prune_auth_sessions(&self, before: Timestamp) -> StoreResult<u64>;
    /// The identity-assertion signing keys, oldest first (sealed private keys).
    async fn identity_signing_keys(&self) -> StoreResult<Vec<IdentitySigningKey>>;
    /// Adds a signing key.
    async fn insert_identity_signing_key(&self, key: &IdentitySigningKey) -> StoreResult<()>;
}

/// A stored identity-assertion signing key.
#[derive(Clone, PartialEq, Eq)]
pub struct IdentitySigningKey {
    /// RFC 7638 thumbprint.
    pub kid: String,
    /// PKCS#8, sealed.
    pub sealed_private_key: Vec<u8>,
    /// Public x coordinate (base64url).
    pub public_x: String,
    /// Public y coordinate (base64url).
    pub public_y: String,
    /// Creation time.
    pub created_at: Timestamp,
}

impl std::fmt::Debug for IdentitySigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentitySigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// A rule version as kept for the record: every version ever saved, and a tombstone for a
/// removal, so an audit event or a what-if can name the exact version that decided.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleVersion {
    /// The rule as that version was saved (a tombstone repeats the last version's content
    /// under the next version number).
    pub rule: Rule,
    /// This version records the rule's removal.
    pub removed: bool,
}

/// Policy rules of apps. Every write commits its audit event and bumps the app's
/// `rules_version` in the same transaction.
#[async_trait]
pub trait RuleStore: Send + Sync {
    /// Stores a new rule (its version 1); [`StoreError::Conflict`] if its id exists.
    async fn insert_rule(&self, rule: &Rule, event: &AuditEvent) -> StoreResult<()>;
    /// Replaces a rule with `rule` (whose version is the new one) if its stored version is
    /// still `expected_version`; false, changing nothing, otherwise (or if it is gone).
    async fn update_rule(
        &self,
        rule: &Rule,
        expected_version: i64,
        event: &AuditEvent,
    ) -> StoreResult<bool>;
    /// Removes a rule of `app`, recording a tombstone version; false if there was none.
    async fn delete_rule(&self, app: AppId, id: RuleId, event: &AuditEvent) -> StoreResult<bool>;
    /// The current version of one rule of `app`.
    async fn get_rule(&self, app: AppId, id: RuleId) -> StoreResult<Option<Rule>>;
    /// The current rules of `app`, oldest first.
    async fn list_rules(&self, app: AppId) -> StoreResult<Vec<Rule>>;
    /// Every version of one rule of `app`, oldest first (removals included).
    async fn rule_versions(&self, app: AppId, id: RuleId) -> StoreResult<Vec<RuleVersion>>;
    /// The app's rules version (moves with every rule write); `None` for an unknown app.
    async fn rules_version(&self, app: AppId) -> StoreResult<Option<i64>>;
}

/// What taking a rate-limit token found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateTaken {
    /// A token was taken: the call may go.
    pub allowed: bool,
    /// When refused, how long until a token is free (ms); 0 when allowed.
    pub retry_after_ms: i64,
    /// When allowed, how many more calls the bucket admits right now; 0 when refused.
    pub remaining: i64,
}

/// GCRA rate-limit buckets shared by every node (one row per bucket in the database).
#[async_trait]
pub trait RateLimitStore: Send + Sync {
    /// Takes one token from `bucket` at `now_ms`, atomically across nodes: allowed if the
    /// bucket's theoretical arrival time, moved on by `emission_interval_ms`, stays within
    /// `tolerance_ms` (`(burst - 1) * emission_interval_ms`) of now. A refusal takes nothing.
    async fn take_rate_token(
        &self,
        bucket: &str,
        now_ms: i64,
        emission_interval_ms: i64,
        tolerance_ms: i64,
    ) -> StoreResult<RateTaken>;
    /// Deletes buckets whose arrival time is before `before_ms` (they are full); returns how
    /// many.
    async fn prune_rate_buckets(&self, before_ms: i64) -> StoreResult<u64>;
}

/// What storing a held call came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parked {
    /// Stored, with its event.
    Parked,
    /// The app holds its most pending approvals.
    TooMany,
    /// What the hold was decided under changed (a revocation, pause, key revocation or rule
    /// change committed in between).
    Refused,
}

/// Held proxy calls (approvals). Every transition is one conditional update on the stored
/// status, so nodes deciding, executing or expiring the same approval agree on one outcome.
#[async_trait]
pub trait ApprovalStore: Send + Sync {
    /// Stores a new pending approval with its event if `condition` (what the hold was decided
    /// under) still holds, its rows read as a release's commit reads them, and its app holds
    /// fewer than `max_pending` pending approvals; otherwise changes nothing.
    async fn insert_approval(
        &self,
        approval: &Approval,
        max_pending: i64,
        event: &AuditEvent,
        condition: &ReleaseCondition,
    ) -> StoreResult<Parked>;
    /// One approval of an app.
    async fn get_approval(&self, app: AppId, id: ApprovalId) -> StoreResult<Option<Approval>>;
    /// An app's approvals, newest first, narrowed to `status` if given, at most `limit`.
    async fn list_approvals(
        &self,
        app: AppId,
        status: Option<ApprovalStatus>,
        limit: i64,
    ) -> StoreResult<Vec<Approval>>;
    /// pending → approved or denied, if still pending and not expired at `decision.at`, with
    /// its event; false, changing nothing, otherwise.
    async fn decide_approval(
        &self,
        app: AppId,
        id: ApprovalId,
        decision: &ApprovalDecision,
        event: &AuditEvent,
    ) -> StoreResult<bool>;
    /// approved → executing at `at`: true for exactly one caller, however many race.
    async fn claim_approval(&self, app: AppId, id: ApprovalId, at: Timestamp) -> StoreResult<bool>;
    /// executing → executed or failed with the sealed result or the error, with its event;
    /// false if the approval was not executing.
    async fn finish_approval(
        &self,
        app: AppId,
        id: ApprovalId,
        finish: &ApprovalFinish,
        event: &AuditEvent,
    ) -> StoreResult<bool>;
    /// pending approvals past their expiry at `at` → expired (at most `limit`), one copy of
    /// `template` per approval (its app and target set); returns them.
    async fn expire_approvals(
        &self,
        at: Timestamp,
        limit: i64,
        template: &AuditEvent,
    ) -> StoreResult<Vec<(AppId, ApprovalId)>>;
    /// Approvals claimed for execution before `claimed_before` and never finished (their node
    /// died mid-way) → failed with `error`, one copy of `template` each; returns them.
    async fn fail_stale_executions(
        &self,
        claimed_before: Timestamp,
        at: Timestamp,
        error: &str,
        template: &AuditEvent,
    ) -> StoreResult<Vec<(AppId, ApprovalId)>>;
    /// Approved approvals no node has claimed yet (at most `limit`).
    async fn unclaimed_approvals(&self, limit: i64) -> StoreResult<Vec<(AppId, ApprovalId)>>;
}

/// Everything the services need from storage.
pub trait Store:
    KeyringStore
    + AppStore
    + KeyStore
    + NonceStore
    + HealthStore
    + LeaseStore
    + SpanStore
    + IdentityStore
    + SecretStore
    + ProviderStore
    + SpecStore
    + ConnectionStore
    + ConnectStore
    + UserSecretStore
    + GrantStore
    + AgentStore
    + AuditStore
    + ReleaseStore
    + SignInStore
    + RuleStore
    + RateLimitStore
    + ApprovalStore
    + OperatorStore
    + BrowserSessionStore
    + WalletStore
    + IdpEventStore
    + crate::webhooks::WebhookStore
{
}

impl<T> Store for T where
    T: KeyringStore
        + AppStore
        + KeyStore
        + NonceStore
        + HealthStore
        + LeaseStore
        + SpanStore
        + IdentityStore
        + SecretStore
        + ProviderStore
        + SpecStore
        + ConnectionStore
        + ConnectStore
        + UserSecretStore
        + GrantStore
        + AgentStore
        + AuditStore
        + ReleaseStore
        + SignInStore
        + RuleStore
        + RateLimitStore
        + ApprovalStore
        + OperatorStore
        + BrowserSessionStore
        + WalletStore
        + IdpEventStore
        + crate::webhooks::WebhookStore
{
}

/// The source of "now". Injected everywhere time matters.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// Verifies end-user JWTs against an IdP (implemented in `alter-upstream`, which fetches and
/// caches JWKS).
#[async_trait]
pub trait TokenVerifier: Send + Sync + std::fmt::Debug {
    /// Checks signature (with a key of the IdP's JWKS, refreshed once on an unknown `kid`),
    /// algorithm (one of the IdP's), `iss`, `aud`, `exp` and `nbf` (with the IdP's leeway,
    /// against `now`), then reads the mapped claims.
    async fn verify(
        &self,
        idp: &IdentityProvider,
        token: &str,
        now: Timestamp,
    ) -> Result<VerifiedToken, TokenError>;

    /// Whether `source` is one this verifier can use — a URL it will fetch, a document with
    /// public keys it can read (and no private key) — so a provider is refused when it is set,
    /// not at every sign-in. The reason is for the operator.
    fn check_source(&self, source: &JwksSource) -> std::result::Result<(), String>;
}

/// The rules a credential use must pass once the default-deny base (grant and chain valid,
/// credential live, principal type admitted) has: they may only restrict, never widen. Today's
/// built-in rules are [`BuiltinRules`](crate::release::BuiltinRules); the policy engine
/// implements this port too.
#[async_trait]
pub trait Authorizer: Send + Sync + std::fmt::Debug {
    /// Allows the use, holds it for a human, or refuses it with the denial to record and answer.
    async fn authorize(&self, request: &Authorization<'_>) -> Verdict;
}
