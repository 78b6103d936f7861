//! Approvals of held proxy calls (protocol part 1 §6.3–6.5): [`get_approval_status`] and
//! [`await_approval`] on [`App`](crate::App) and [`Agent`](crate::Agent).
//!
//! [`get_approval_status`]: crate::App::get_approval_status
//! [`await_approval`]: crate::App::await_approval

use std::time::{Duration, Instant};

use reqwest::Method;
use serde::Deserialize;

use crate::error::{Error, ErrorInfo};
use crate::proxy::{ProxyResult, result_of};
use crate::transport::{Mapper, Transport, decode};
use crate::{Agent, App};

pub use alter_proto::approvals::{GateStatus, PendingApproval, PendingGate};

/// Longest `wait` the server accepts.
pub const MAX_WAIT_SECONDS: u64 = 25;

/// Where an approval stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalState {
    /// Waiting for a person.
    Pending,
    /// Approved; the call is about to be made.
    Approved,
    /// The call is being made.
    Executing,
    /// A person denied it.
    Denied,
    /// Nobody decided in time.
    Expired,
    /// The call was made.
    Executed,
    /// The call could not be made.
    Failed,
}

impl ApprovalState {
    /// Nothing more happens to the approval.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ApprovalState::Denied
                | ApprovalState::Expired
                | ApprovalState::Executed
                | ApprovalState::Failed
        )
    }
}

/// `get_approval_status`'s answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ApprovalStatus {
    /// The approval's id.
    pub approval_id: String,
    /// Where it stands.
    pub status: ApprovalState,
    /// Its group.
    pub approval_group_id: String,
    /// Its gates.
    pub gates: Vec<GateStatus>,
    /// When it expires.
    pub expires_at: String,
    /// When it was decided.
    #[serde(default)]
    pub decided_at: Option<String>,
    /// When the call was made (or failed).
    #[serde(default)]
    pub executed_at: Option<String>,
    /// The approver's note.
    #[serde(default)]
    pub decision_reason: Option<String>,
    /// Why the call failed.
    #[serde(default)]
    pub execution_error: Option<String>,
    /// The result can be fetched.
    pub has_result: bool,
}

/// `GET /sdk/approvals/{id}[?wait=N]`, holding up to `wait` (at most 25 s).
pub(crate) async fn get_approval_status(
    transport: &Transport,
    approval_id: &str,
    wait: Duration,
) -> Result<ApprovalStatus, Error> {
    let wait = wait.as_secs();
    if wait > MAX_WAIT_SECONDS {
        return Err(Error::value("wait may be at most 25 seconds"));
    }
    let mut path = format!("/sdk/approvals/{approval_id}");
    if wait > 0 {
        path.push_str(&format!("?wait={wait}"));
    }
    // The held poll outlasts the client's own timeout.
    let timeout = (wait > 0).then(|| Duration::from_secs(wait + 30));
    let answer = transport
        .send_timed::<()>(
            Method::GET,
            &path,
            None,
            &[],
            timeout,
            Mapper::ApprovalStatus,
        )
        .await
        .map_err(|e| match e {
            // The mapper knows no path; the client's message names the one requested.
            Error::Backend(mut info) => {
                info.message = info.message.replacen("/sdk/approvals", &path, 1);
                Error::Backend(info)
            }
            other => other,
        })?;
    if answer.status.as_u16() != 200 {
        return Err(Error::Backend(ErrorInfo {
            status: answer.status.as_u16(),
            message: format!("GET {path} returned {}", answer.status.as_u16()),
            ..Default::default()
        }));
    }
    decode(&answer)
}

/// `GET /sdk/approvals/{id}/result`.
pub(crate) async fn get_approval_result(
    transport: &Transport,
    approval_id: &str,
) -> Result<ProxyResult, Error> {
    let path = format!("/sdk/approvals/{approval_id}/result");
    let answer = transport
        .send::<()>(Method::GET, &path, None, Mapper::Proxy)
        .await?;
    if answer.status.as_u16() != 200 {
        return Err(Error::Backend(ErrorInfo {
            status: answer.status.as_u16(),
            message: format!("GET {path} returned {}", answer.status.as_u16()),
            ..Default::default()
        }));
    }
    result_of(decode(&answer)?)
}

/// A failure `await_approval` retries: a 502/503/504, or no answer.
fn transient(error: &Error) -> bool {
    match error {
        Error::Network(_) | Error::Timeout(_) => true,
        Error::Backend(info) => matches!(info.status, 502..=504),
        _ => false,
    }
}

/// The protocol's loop (part 1 §6.5): long-polls until the approval ends or `timeout` passes.
pub(crate) async fn await_approval(
    transport: &Transport,
    approval_id: &str,
    timeout: Duration,
    poll_interval: Duration,
) -> Result<ProxyResult, Error> {
    let deadline = Instant::now() + timeout;
    let mut last_transient: Option<String> = None;
    let nap = |deadline: Instant| {
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::time::sleep(poll_interval.min(left))
    };
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let mut message = format!("approval {approval_id} did not finish in time");
            if let Some(cause) = &last_transient {
                message.push_str(&format!(" (last error: {cause})"));
            }
            return Err(Error::ApprovalTimeout(ErrorInfo {
                message,
                ..Default::default()
            }));
        }
        let wait = Duration::from_secs(left.as_secs().min(MAX_WAIT_SECONDS));
        let status = match get_approval_status(transport, approval_id, wait).await {
            Ok(status) => status,
            Err(e) if transient(&e) => {
                last_transient = Some(e.info().message.clone());
                nap(deadline).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let info = |message: String| ErrorInfo {
            status: 200,
            message,
            ..Default::default()
        };
        match status.status {
            ApprovalState::Executed if status.has_result => {
                match get_approval_result(transport, approval_id).await {
                    Ok(result) => return Ok(result),
                    Err(e) if transient(&e) => {
                        last_transient = Some(e.info().message.clone());
                        nap(deadline).await;
                    }
                    Err(e) => return Err(e),
                }
            }
            ApprovalState::Denied => {
                return Err(Error::ApprovalDenied(info(
                    status
                        .decision_reason
                        .unwrap_or_else(|| "the approval was denied".into()),
                )));
            }
            ApprovalState::Expired => {
                return Err(Error::ApprovalExpired(info(
                    "the approval expired before anyone decided".into(),
                )));
            }
            ApprovalState::Failed => {
                return Err(Error::ApprovalExecutionFailed(info(
                    status
                        .execution_error
                        .or(status.decision_reason)
                        .unwrap_or_else(|| "the approved call could not be made".into()),
                )));
            }
            _ => nap(deadline).await,
        }
    }
}

macro_rules! approval_surface {
    ($($client:ident),*) => {$(
        impl $client {
            /// The approval's status; with `wait` > 0 the server answers once it changes or
            /// `wait` passes (at most 25 s).
            pub async fn get_approval_status(
                &self,
                approval_id: &str,
                wait: Duration,
            ) -> Result<ApprovalStatus, Error> {
                get_approval_status(&self.transport, approval_id, wait).await
            }

            /// Waits for a held call to end and returns the provider's answer;
            /// [`Error::ApprovalDenied`], [`Error::ApprovalExpired`],
            /// [`Error::ApprovalExecutionFailed`] or, after `timeout`,
            /// [`Error::ApprovalTimeout`] otherwise. (The official client's defaults: 300 s and
            /// 2 s.)
            pub async fn await_approval(
                &self,
                approval_id: &str,
                timeout: Duration,
                poll_interval: Duration,
            ) -> Result<ProxyResult, Error> {
                await_approval(&self.transport, approval_id, timeout, poll_interval).await
            }

            /// The provider's answer to an executed approval.
            pub async fn get_approval_result(&self, approval_id: &str) -> Result<ProxyResult, Error> {
                get_approval_result(&self.transport, approval_id).await
            }
        }
    )*};
}

approval_surface!(App, Agent);
