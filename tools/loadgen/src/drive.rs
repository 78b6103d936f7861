//! The closed-loop client: what one iteration sends (a signed call to the vault, a plain call to
//! an upstream, or both in turn) and the loop that times it at a given concurrency.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alter_proto::signing::{self, SigningKey};

use crate::stats::Summary;

/// One signed request to the vault, signed afresh (new timestamp and nonce) for every send.
#[derive(Debug, Clone)]
pub struct Call {
    /// How tables name it.
    pub label: &'static str,
    /// Method.
    pub method: reqwest::Method,
    /// Path on the vault.
    pub path: &'static str,
    /// JSON body (empty for none).
    pub body: Vec<u8>,
}

/// What one iteration of a client does.
#[derive(Debug, Clone)]
pub enum Work {
    /// A signed call to the vault.
    Signed(Call),
    /// A plain `GET` of a URL (the direct call to an upstream).
    Plain(String),
    /// A `GET` of a URL with one header (OpenBao's KV read: `X-Vault-Token`).
    WithHeader {
        /// How errors name it.
        label: &'static str,
        /// The URL.
        url: String,
        /// Header name.
        name: &'static str,
        /// Header value (a token: kept out of `Debug`).
        value: Hidden,
    },
    /// Retrieve mode as the official client runs it: a signed call (fetch the token), a plain
    /// `GET` (the call itself), then a signed report of the call sent in the background (not
    /// timed, but loading the vault as the client's reports do).
    Retrieve {
        /// The token request.
        token: Call,
        /// The upstream URL.
        url: String,
        /// The report of the call.
        report: Call,
    },
}

/// A string kept out of `Debug` output.
#[derive(Clone)]
pub struct Hidden(pub String);

impl std::fmt::Debug for Hidden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where calls go and what they are signed with.
pub struct Target {
    /// A pooled client (keep-alive, as SDKs use).
    pub http: reqwest::Client,
    /// The vault's base URL.
    pub base_url: String,
    /// The app key.
    pub api_key: String,
    /// Its signing key.
    pub key: SigningKey,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Target {
    /// A target for `api_key` at `base_url`.
    pub fn new(base_url: &str, api_key: &str) -> Result<Target, reqwest::Error> {
        Ok(Target::with_client(http_client()?, base_url, api_key))
    }

    /// A target sharing `http` (its pool) with others.
    pub fn with_client(http: reqwest::Client, base_url: &str, api_key: &str) -> Target {
        Target {
            http,
            base_url: base_url.to_owned(),
            key: signing::signing_key(api_key),
            api_key: api_key.to_owned(),
        }
    }

    async fn run(self: &Arc<Self>, work: &Work) -> Result<(), String> {
        match work {
            Work::Signed(call) => self.send(call).await,
            Work::Plain(url) => self.get(url).await,
            Work::WithHeader {
                label,
                url,
                name,
                value,
            } => finish(label, self.http.get(url).header(*name, &value.0)).await,
            Work::Retrieve { token, url, report } => {
                self.send(token).await?;
                self.get(url).await?;
                let (target, report) = (self.clone(), report.clone());
                tokio::spawn(async move { target.send(&report).await });
                Ok(())
            }
        }
    }

    async fn send(&self, call: &Call) -> Result<(), String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_secs();
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let signed = signing::plain_request_headers(
            &self.api_key,
            &self.key,
            call.method.as_str(),
            call.path,
            &call.body,
            now,
            &nonce,
        );
        let mut request = self.http.request(
            call.method.clone(),
            format!("{}{}", self.base_url, call.path),
        );
        for (name, value) in signed {
            request = request.header(name, value);
        }
        if !call.body.is_empty() {
            request = request
                .header("content-type", "application/json")
                .body(call.body.clone());
        }
        finish(call.label, request).await
    }

    async fn get(&self, url: &str) -> Result<(), String> {
        finish("upstream", self.http.get(url)).await
    }
}

/// The HTTP client every mode uses: reqwest over HTTP/1.1 keep-alive, a pool large enough
/// for every client to keep its connection.
pub fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
}

/// Sends and reads the whole answer: a call is not done until its body has arrived.
async fn finish(label: &str, request: reqwest::RequestBuilder) -> Result<(), String> {
    let response = request.send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("{label} answered {status}: {} bytes", body.len()))
    }
}

/// Iterations per second and latencies of `clients` concurrent loops of `work`, after a
/// second of warm-up (connections opened, caches filled).
pub async fn measure(
    target: &Arc<Target>,
    work: &Work,
    clients: usize,
    run_for: Duration,
) -> Result<(f64, Summary), String> {
    measure_spread(&[(target.clone(), work.clone())], clients, run_for).await
}

/// As [`measure`], client `i` running `pairs[i % pairs.len()]` (several apps at once).
pub async fn measure_spread(
    pairs: &[(Arc<Target>, Work)],
    clients: usize,
    run_for: Duration,
) -> Result<(f64, Summary), String> {
    if pairs.is_empty() {
        return Err("nothing to run".into());
    }
    let warm_until = Instant::now() + Duration::from_secs(1);
    let stop_at = warm_until + run_for;
    let mut tasks = Vec::new();
    for i in 0..clients {
        let (target, work) = pairs[i % pairs.len()].clone();
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            loop {
                let t = Instant::now();
                if t >= stop_at {
                    break;
                }
                target.run(&work).await?;
                if t >= warm_until {
                    samples.push(t.elapsed());
                }
            }
            Ok::<_, String>(samples)
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.map_err(|e| e.to_string())??);
    }
    let rate = all.len() as f64 / run_for.as_secs_f64();
    Ok((rate, Summary::of(&mut all)))
}
