//! The webhook delivery job: on one node at a time (a database lease), every second, new audit
//! events become deliveries and due deliveries are sent (see [`alter_core::webhooks`]).

use std::sync::Arc;
use std::time::Duration;

use alter_core::Vault;
use alter_upstream::webhooks::{HttpWebhookSender, WEBHOOK_TIMEOUT};

/// The job's lease name.
pub(crate) const JOB: &str = "webhook-deliveries";
/// How often the job runs.
const INTERVAL: Duration = Duration::from_secs(1);
/// How long one run keeps starting sends; one started at its end may take
/// [`WEBHOOK_TIMEOUT`] more.
const BUDGET: Duration = Duration::from_secs(3);

/// The lease outlasts the longest run (its budget and one send's timeout), so another node
/// takes the job only from a node that stopped running it.
fn lease() -> Duration {
    BUDGET + WEBHOOK_TIMEOUT + Duration::from_secs(2)
}

/// Runs the delivery job for as long as the server serves.
pub(crate) async fn deliver(
    vault: Vault,
    node: Arc<str>,
    allowed_networks: alter_upstream::AllowedNetworks,
) {
    let sender = match HttpWebhookSender::new(allowed_networks) {
        Ok(sender) => sender,
        Err(e) => {
            tracing::error!(error = %e, "the webhook client cannot be built: no webhooks will be sent");
            return;
        }
    };
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match vault.hold_job_lease(JOB, &node, lease()).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(job = JOB, error = %e, "taking the job's lease failed");
                continue;
            }
        }
        match vault.run_webhooks(&sender, BUDGET).await {
            Ok(run) if run != Default::default() => tracing::debug!(
                target: "alter::webhooks",
                queued = run.queued,
                delivered = run.delivered,
                failed = run.failed,
                "webhook run"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "running webhook deliveries failed"),
        }
    }
}
