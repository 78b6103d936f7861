//! Sending signed webhooks ([`alter_core::webhooks::WebhookSender`]): one POST, no redirects
//! followed, bounded in time, the answer's body never read.

use std::sync::Arc;
use std::time::Duration;

use alter_core::webhooks::{SendOutcome, WebhookSender};
use async_trait::async_trait;
use reqwest::redirect::Policy;

use crate::destination::{AllowedNetworks, GuardedResolver};

/// How long one delivery attempt may take, connection included.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// How long connecting may take: a receiver that does not answer at all is given up sooner.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The webhook client.
#[derive(Debug, Clone)]
pub struct HttpWebhookSender {
    http: reqwest::Client,
    allowed: Arc<AllowedNetworks>,
}

impl HttpWebhookSender {
    /// A client that follows no redirect, gives up after [`WEBHOOK_TIMEOUT`], and reaches
    /// only public addresses and `allowed` (the SSRF guard of proxied calls, the same
    /// `upstream.allowed_networks`): a webhook URL cannot aim the vault at its own network.
    pub fn new(allowed: AllowedNetworks) -> Result<Self, reqwest::Error> {
        let allowed = Arc::new(allowed);
        Ok(HttpWebhookSender {
            http: reqwest::Client::builder()
                .redirect(Policy::none())
                .no_proxy()
                .dns_resolver(GuardedResolver::new(Arc::clone(&allowed)))
                .timeout(WEBHOOK_TIMEOUT)
                .connect_timeout(CONNECT_TIMEOUT)
                .build()?,
            allowed,
        })
    }

    /// The resolver checks names; an address written in the URL skips it, so check it here.
    fn literal_allowed(&self, url: &str) -> bool {
        let Ok(url) = reqwest::Url::parse(url) else {
            return false;
        };
        match url.host() {
            Some(url::Host::Ipv4(ip)) => self.allowed.permits(ip.into()),
            Some(url::Host::Ipv6(ip)) => self.allowed.permits(ip.into()),
            Some(url::Host::Domain(_)) => true,
            None => false,
        }
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
        if !self.literal_allowed(url) {
            return SendOutcome::Failed("blocked destination".into());
        }
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
