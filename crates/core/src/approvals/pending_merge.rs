//! TEMPORARY until h-proxy is merged: its `Vault::proxy_approved` replaces this.
use crate::caller::Caller;
use crate::error::{Error, Result};
use crate::proxy::{ProxyRequest, ProxyResult};
use crate::rules::MatchedRule;
use crate::vault::Vault;

impl Vault {
    pub async fn proxy_approved(
        &self,
        _caller: &Caller,
        _request: &ProxyRequest,
        _discharged: &[MatchedRule],
    ) -> Result<ProxyResult> {
        Err(Error::Invalid("proxy mode is not merged yet".into()))
    }
}
