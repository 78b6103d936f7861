//! `alter webhook …`: outbound webhook endpoints (Standard Webhooks), their signing secrets
//! (shown once, at creation and rotation), and their delivery log with replay.

use std::process::ExitCode;

use alter_sdk::admin::{
    CreateWebhookRequest, DeliveryListQuery, RotateWebhookSecretRequest, WebhookDeliveryInfo,
    WebhookInfo, WebhookWithSecretInfo,
};
use clap::{Args, Subcommand};

use super::{AppScope, output};
use crate::table::{Table, fields, or_dash};

#[derive(Debug, Args)]
pub struct WebhookArgs {
    #[command(flatten)]
    scope: AppScope,
    #[command(subcommand)]
    command: WebhookCommand,
}

#[derive(Debug, Subcommand)]
enum WebhookCommand {
    /// Add an endpoint; its signing secret is shown once.
    Add {
        /// Where events are posted (https; http only to loopback unless the server allows it).
        #[arg(long)]
        url: String,
        /// An event type to send (repeatable), or `*` for every audit event.
        #[arg(long = "event", required = true)]
        events: Vec<String>,
        /// A note.
        #[arg(long)]
        description: Option<String>,
    },
    /// List endpoints (never their secrets).
    List,
    /// Remove an endpoint and its delivery log.
    Remove {
        /// Endpoint id.
        webhook_id: String,
    },
    /// Give an endpoint a new signing secret, shown once; the old one also signs meanwhile.
    RotateSecret {
        /// Endpoint id.
        webhook_id: String,
        /// Seconds deliveries also carry the old secret's signature (default 86400).
        #[arg(long)]
        grace_seconds: Option<i64>,
        /// Rotate only if the secret is still at this version.
        #[arg(long)]
        expected_version: Option<i64>,
    },
    /// An endpoint's deliveries, newest event first.
    Deliveries {
        /// Endpoint id.
        webhook_id: String,
        /// Only this status (pending, delivered, failed).
        #[arg(long)]
        status: Option<String>,
        /// At most this many.
        #[arg(long)]
        limit: Option<i64>,
    },
    /// Send a delivery again from its first attempt (same webhook-id).
    Replay {
        /// Endpoint id.
        webhook_id: String,
        /// The event id (the delivery's webhook-id).
        event_id: String,
    },
}

pub async fn webhook(args: WebhookArgs) -> ExitCode {
    let json = args.scope.json();
    args.scope
        .run(async |client, app| match args.command {
            WebhookCommand::Add {
                url,
                events,
                description,
            } => {
                let request = CreateWebhookRequest {
                    url,
                    events,
                    description,
                };
                let created = client.add_webhook(app, &request).await?;
                Ok(output(json, &created, || secret_text(&created)))
            }
            WebhookCommand::List => {
                let items = client.list_webhooks(app).await?;
                Ok(output(json, &items, || webhooks_table(&items)))
            }
            WebhookCommand::Remove { webhook_id } => {
                let removed = client.remove_webhook(app, &webhook_id).await?;
                Ok(output(json, &removed, || {
                    webhooks_table(std::slice::from_ref(&removed))
                }))
            }
            WebhookCommand::RotateSecret {
                webhook_id,
                grace_seconds,
                expected_version,
            } => {
                let request = RotateWebhookSecretRequest {
                    grace_seconds,
                    expected_version,
                };
                let rotated = client
                    .rotate_webhook_secret_with(app, &webhook_id, &request)
                    .await?;
                Ok(output(json, &rotated, || secret_text(&rotated)))
            }
            WebhookCommand::Deliveries {
                webhook_id,
                status,
                limit,
            } => {
                let query = DeliveryListQuery { status, limit };
                let items = client.webhook_deliveries(app, &webhook_id, &query).await?;
                Ok(output(json, &items, || deliveries_table(&items)))
            }
            WebhookCommand::Replay {
                webhook_id,
                event_id,
            } => {
                let reset = client
                    .replay_webhook_delivery(app, &webhook_id, &event_id)
                    .await?;
                Ok(output(json, &reset, || {
                    deliveries_table(std::slice::from_ref(&reset))
                }))
            }
        })
        .await
}

fn webhooks_table(items: &[WebhookInfo]) -> String {
    let mut table = Table::new(["ID", "URL", "EVENTS", "SECRET", "CREATED"]);
    for w in items {
        let secret = match &w.previous_secret_until {
            Some(until) => format!(
                "v{} (v{} until {until})",
                w.secret_version,
                w.secret_version - 1
            ),
            None => format!("v{}", w.secret_version),
        };
        let events = w.events.join(",");
        table.row([
            w.id.as_str(),
            w.url.as_str(),
            events.as_str(),
            secret.as_str(),
            w.created_at.as_str(),
        ]);
    }
    table.render()
}

fn secret_text(w: &WebhookWithSecretInfo) -> String {
    format!(
        "{}\n\nsecret: {}\n(store it now: it is never shown again)",
        fields(&[
            ("id", w.webhook.id.clone()),
            ("url", w.webhook.url.clone()),
            ("events", w.webhook.events.join(", ")),
            ("secret version", w.webhook.secret_version.to_string()),
            (
                "old secret also signs until",
                or_dash(w.webhook.previous_secret_until.as_ref()),
            ),
        ]),
        w.secret
    )
}

fn deliveries_table(items: &[WebhookDeliveryInfo]) -> String {
    let mut table = Table::new([
        "EVENT", "TYPE", "STATUS", "ATTEMPTS", "HTTP", "NEXT", "ERROR",
    ]);
    for d in items {
        let (attempts, http) = (d.attempts.to_string(), or_dash(d.last_status));
        let (next, error) = (
            or_dash(d.next_attempt_at.as_ref()),
            or_dash(d.last_error.as_ref()),
        );
        table.row([
            d.event_id.as_str(),
            d.event_type.as_str(),
            d.status.as_str(),
            attempts.as_str(),
            http.as_str(),
            next.as_str(),
            error.as_str(),
        ]);
    }
    table.render()
}
