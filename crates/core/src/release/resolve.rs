//! *Resolve*: the one grant a request names — by id, or by provider for the acting subject
//! (the app, a signed-in user, an agent and the user it acts for) — and the credential it
//! points at. Whatever the caller may not reach looks like "not found".

use crate::caller::Caller;
use crate::credentials::{Credential, CredentialRef};
use crate::error::{Error, Result};
use crate::grants::{Grant, Principal, Viewer};
use crate::identity::SignedInUser;
use crate::ids::{GrantId, UserId};
use crate::ports::{CandidateSource, Narrowing};
use crate::subject::Subject;
use crate::vault::Vault;

use super::ReleaseRequest;

/// Most candidates an ambiguity answer lists.
const MAX_CANDIDATES: usize = 20;

/// A grant with its credential.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The grant.
    pub grant: Grant,
    /// The credential it points at.
    pub credential: Credential,
}

impl Vault {
    /// The one grant the request names, as the caller may reach it, with its credential.
    pub(super) async fn resolve(
        &self,
        caller: &Caller,
        request: &ReleaseRequest,
        user: Option<&SignedInUser>,
    ) -> Result<Resolved> {
        let consenting = match &request.app_user_id {
            Some(text) => {
                Some(UserId::parse_lenient(text).ok_or_else(|| not_found(caller, request))?)
            }
            None => None,
        };
        if let Some(grant_id) = &request.grant_id {
            let id = GrantId::parse_lenient(grant_id).ok_or_else(|| not_found(caller, request))?;
            let (grant, secret) = self
                .store()
                .grant_with_secret(caller.app_id, id)
                .await?
                .filter(|(grant, _)| Subject::Caller(caller).reaches_grant(grant))
                .ok_or_else(|| not_found(caller, request))?;
            if user.is_some_and(|u| !belongs_to(&grant, u)) {
                return Err(not_found(caller, request));
            }
            let credential = match (secret, grant.credential) {
                (Some(secret), CredentialRef::ManagedSecret(id)) if secret.id == id => {
                    Credential::ManagedSecret(secret)
                }
                _ => self.credential_of(&grant).await?,
            };
            return Ok(Resolved { grant, credential });
        }
        let provider = request.provider_id.as_deref().unwrap_or_default();
        let secret = self
            .store()
            .get_secret_by_slug(caller.app_id, provider)
            .await?
            .filter(|s| s.deleted_at.is_none());
        let source = match &secret {
            Some(secret) => CandidateSource::Secret(secret.id),
            None if self
                .store()
                .get_provider(caller.app_id, provider)
                .await?
                .is_some() =>
            {
                CandidateSource::Provider(provider)
            }
            None => return Err(not_found(caller, request)),
        };
        let viewer = match (caller.agent_id(), user) {
            (Some(agent), user) => Viewer::Agent {
                agent,
                delegated_by: user.map(|u| u.user.id).or(consenting),
            },
            (None, Some(user)) => Viewer::User {
                user: user.user.id,
                idp: user.user.idp_id,
                groups: user.groups.clone(),
            },
            (None, None) => Viewer::App,
        };
        let candidates = self
            .store()
            .release_candidates(
                caller.app_id,
                source,
                &viewer,
                Narrowing {
                    label: request.label.as_deref(),
                    account: request.account.as_deref(),
                },
                self.now(),
                MAX_CANDIDATES as i64 + 1,
            )
            .await?;
        match candidates.as_slice() {
            [] => Err(not_found(caller, request)),
            [one] => {
                // The secret read above serves its own grants; a user's own key, or a
                // connection, is read for the grant.
                let credential = match (secret, one.credential) {
                    (Some(secret), CredentialRef::ManagedSecret(_)) => {
                        Credential::ManagedSecret(secret)
                    }
                    _ => self.credential_of(one).await?,
                };
                Ok(Resolved {
                    grant: one.clone(),
                    credential,
                })
            }
            many => Err(Error::AmbiguousGrant {
                provider_id: provider.to_owned(),
                candidates: many
                    .iter()
                    .take(MAX_CANDIDATES)
                    .map(|g| (g.id, g.label.clone()))
                    .collect(),
                truncated: many.len() > MAX_CANDIDATES,
            }),
        }
    }
}

/// "Not found" as the caller should see it: agents learn they hold no delegation.
fn not_found(caller: &Caller, request: &ReleaseRequest) -> Error {
    match (caller.agent_id(), &request.provider_id) {
        (Some(agent), Some(provider)) => Error::NoDelegatedGrant {
            provider_id: provider.clone(),
            agent_id: agent.to_string(),
            app_user_id: request.app_user_id.clone(),
        },
        _ => Error::GrantNotFoundFor {
            provider_id: request.provider_id.clone(),
            agent_id: caller.agent_id().map(|a| a.to_string()),
            app_user_id: request.app_user_id.clone(),
        },
    }
}

/// True if the signed-in user holds `grant` (theirs, their group's, or delegated by them).
fn belongs_to(grant: &Grant, user: &SignedInUser) -> bool {
    match &grant.principal {
        Principal::Agent(_) => grant.delegated_by == Some(user.user.id),
        _ => crate::delegations::holds(user, grant),
    }
}
