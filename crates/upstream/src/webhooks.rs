//! Sending signed webhooks ([`alter_core::webhooks::WebhookSender`]): one POST, no redirects
//! followed, bounded in time, the answer's body never read.

use std::time::Duration;

use alter_core::webhooks::{SendOutcome, WebhookSender};
use async_trait::async_trait;
use reqwest::redirect::Policy;

/// How long one delivery attempt may take, connection included.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// The webhook client.
#[derive(Debug, Clone)]
pub struct HttpWebhookSender {
    http: reqwest::Client,
}

impl HttpWebhookSender {
    /// A client that follows no redirect and gives up after [`WEBHOOK_TIMEOUT`].
    pub fn new() -> Result<Self, reqwest::Error> {
        Ok(HttpWebhookSender {
            http: reqwest::Client::builder()
                .redirect(Policy::none())
                .timeout(WEBHOOK_TIMEOUT)
                .connect_timeout(WEBHOOK_TIMEOUT)
                .build()?,
        })
    }
}

#[async_trait]
impl WebhookSender for HttpWebhookSender {
    async fn send(
        &self,
        url: &str,
        headers: &[(&'static str, String)],
        body: &[u8],
    ) -> SendOutcome {
        let mut request = self.http.post(url).body(body.to_vec());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        match request.send().await {
            // The status is all that is kept: the body is dropped unread.
            Ok(answer) => SendOutcome::Answered(answer.status().as_u16()),
            // Classes only: reqwest's own text names the URL, which may carry a token.
            Err(e) if e.is_timeout() => SendOutcome::Failed("timed out".into()),
            Err(e) if e.is_connect() => SendOutcome::Failed("could not connect".into()),
            Err(e) if e.is_request() => SendOutcome::Failed("the request failed".into()),
            Err(_) => SendOutcome::Failed("no answer".into()),
        }
    }
}
