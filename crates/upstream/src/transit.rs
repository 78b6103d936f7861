//! OpenBao / HashiCorp Vault Transit as a key holder: the KEKs and the MAC root are wrapped by
//! `POST /v1/<mount>/encrypt/<key>` and unwrapped by `…/decrypt/<key>`, with the wrapping
//! context sent as `associated_data` (AES-GCM keys authenticate it), so Transit's key never
//! leaves it. The token is sent only in the `X-Vault-Token` header, never logged or shown.

use std::fmt;
use std::time::Duration;

use alter_core::ports::{KeyHolder, KeyHolderError};
use alter_crypto::{ExposeSecret, SecretString, Zeroizing};
use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::header::HeaderValue;
use serde::Deserialize;
use url::Url;

/// How long one call to Transit may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Transit's ciphertexts start with this.
const CIPHERTEXT_PREFIX: &str = "vault:";

/// Where the Transit key is.
#[derive(Clone)]
pub struct TransitConfig {
    /// The server, e.g. `http://127.0.0.1:8200`.
    pub address: String,
    /// The mount of the Transit engine (`transit` by default).
    pub mount: String,
    /// The name of the key.
    pub key: String,
    /// A token allowed to encrypt and decrypt with the key.
    pub token: SecretString,
}

impl fmt::Debug for TransitConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransitConfig")
            .field("address", &self.address)
            .field("mount", &self.mount)
            .field("key", &self.key)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// The Transit key holder.
pub struct Transit {
    client: reqwest::Client,
    encrypt: Url,
    decrypt: Url,
    token: HeaderValue,
    identity: String,
    create_hint: String,
}

impl fmt::Debug for Transit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transit")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

/// Why a Transit configuration is unusable.
#[derive(Debug, thiserror::Error)]
#[error("key holder transit: {0}")]
pub struct TransitConfigError(String);

impl Transit {
    /// A Transit key holder; nothing is sent until it is used.
    pub fn new(config: &TransitConfig) -> Result<Transit, TransitConfigError> {
        let bad = |why: String| TransitConfigError(why);
        let address = Url::parse(config.address.trim_end_matches('/'))
            .map_err(|e| bad(format!("address {:?}: {e}", config.address)))?;
        let shown = || {
            let mut shown = address.clone();
            let _ = shown.set_username("");
            let _ = shown.set_password(None);
            shown.to_string()
        };
        if !matches!(address.scheme(), "http" | "https")
            || address.host().is_none()
            || !address.username().is_empty()
            || address.password().is_some()
            || address.query().is_some()
        {
            return Err(bad(format!(
                "address {:?} must be http(s)://host[:port] without credentials or query",
                shown()
            )));
        }
        // The token and every wrapped key cross this connection: in the clear only on this
        // machine.
        let loopback = match address.host() {
            Some(url::Host::Domain(name)) => name == "localhost",
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        if address.scheme() == "http" && !loopback {
            return Err(bad(format!(
                "address {:?} must use https (plain http only to a loopback address)",
                shown()
            )));
        }
        let segment_ok = |s: &str, slash: bool| {
            !s.is_empty()
                && s.split('/').all(|p| !p.is_empty() && p != "." && p != "..")
                && s.chars().all(|c| {
                    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') || (slash && c == '/')
                })
        };
        if !segment_ok(&config.mount, true) {
            return Err(bad(format!(
                "mount {:?} is not a Transit mount path",
                config.mount
            )));
        }
        if !segment_ok(&config.key, false) {
            return Err(bad(format!(
                "key {:?} is not a Transit key name",
                config.key
            )));
        }
        let token = config.token.expose_secret().trim();
        if token.is_empty() {
            return Err(bad("the token is empty".into()));
        }
        let mut token = HeaderValue::from_str(token)
            .map_err(|_| bad("the token is not a valid header value".into()))?;
        token.set_sensitive(true);
        let base = format!(
            "{}/v1/{}",
            address.as_str().trim_end_matches('/'),
            config.mount
        );
        let url = |op: &str| {
            Url::parse(&format!("{base}/{op}/{}", config.key))
                .map_err(|e| bad(format!("address: {e}")))
        };
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .build()
            .map_err(|e| bad(format!("HTTP client: {e}")))?;
        Ok(Transit {
            client,
            encrypt: url("encrypt")?,
            decrypt: url("decrypt")?,
            token,
            identity: format!(
                "OpenBao/Vault Transit key {:?} (mount {:?}) at {}",
                config.key,
                config.mount,
                address.as_str().trim_end_matches('/')
            ),
            create_hint: format!("bao write -f {}/keys/{}", config.mount, config.key),
        })
    }

    /// Posts `body` to `url`; the `data` of a 2xx answer, or why not.
    async fn call(
        &self,
        url: &Url,
        body: serde_json::Value,
        decrypting: bool,
    ) -> Result<TransitData, KeyHolderError> {
        let answer = self
            .client
            .post(url.clone())
            .header("X-Vault-Token", self.token.clone())
            .json(&body)
            .send()
            .await
            .map_err(|e| {
                KeyHolderError::Unreachable(format!(
                    "cannot reach {}: {}",
                    self.identity,
                    error_chain(&e.without_url())
                ))
            })?;
        let status = answer.status();
        let text = answer.text().await.map_err(|e| {
            KeyHolderError::Unreachable(format!(
                "{} answered {status} but the answer could not be read: {}",
                self.identity,
                error_chain(&e.without_url())
            ))
        })?;
        if status.is_success() {
            let parsed: TransitAnswer = serde_json::from_str(&text).map_err(|_| {
                KeyHolderError::Refused(format!(
                    "{} gave an answer that is not Transit's",
                    self.identity
                ))
            })?;
            return Ok(parsed.data);
        }
        let errors = serde_json::from_str::<TransitErrors>(&text)
            .map(|e| e.errors.join("; "))
            .unwrap_or_default();
        let errors: String = errors.chars().take(300).collect();
        Err(match status.as_u16() {
            403 => KeyHolderError::Refused(format!(
                "{} refused the token (permission denied): check the token and that its policy \
                 allows update on {} and {}",
                self.identity,
                self.encrypt.path().trim_start_matches("/v1/"),
                self.decrypt.path().trim_start_matches("/v1/")
            )),
            400 if errors.contains("key not found") => KeyHolderError::Refused(format!(
                "{} does not exist (create it with `{}`)",
                self.identity, self.create_hint
            )),
            400 if decrypting => KeyHolderError::WrongKey,
            404 => KeyHolderError::Refused(format!(
                "{}: no Transit engine at this mount ({status}; enable it with `bao secrets enable \
                 -path=… transit`)",
                self.identity
            )),
            _ => KeyHolderError::Refused(format!("{} answered {status}: {errors}", self.identity)),
        })
    }
}

/// `data` of a Transit answer: `ciphertext` (encrypt) or `plaintext` (decrypt).
#[derive(Deserialize)]
struct TransitAnswer {
    data: TransitData,
}

#[derive(Deserialize)]
struct TransitData {
    ciphertext: Option<String>,
    plaintext: Option<String>,
}

#[derive(Deserialize)]
struct TransitErrors {
    errors: Vec<String>,
}

/// An error and its sources, e.g. `error sending request: … : Connection refused`.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}

#[async_trait]
impl KeyHolder for Transit {
    fn identity(&self) -> String {
        self.identity.clone()
    }

    async fn wrap(&self, context: &str, plaintext: &[u8]) -> Result<Vec<u8>, KeyHolderError> {
        let body = serde_json::json!({
            "plaintext": STANDARD.encode(plaintext),
            "associated_data": STANDARD.encode(context),
        });
        let data = self.call(&self.encrypt, body, false).await?;
        match data.ciphertext {
            Some(c) if c.starts_with(CIPHERTEXT_PREFIX) => Ok(c.into_bytes()),
            _ => Err(KeyHolderError::Refused(format!(
                "{} returned no ciphertext",
                self.identity
            ))),
        }
    }

    async fn unwrap(
        &self,
        context: &str,
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KeyHolderError> {
        // Bytes another holder wrapped (a local master key's) are not Transit's to open.
        let ciphertext = std::str::from_utf8(wrapped)
            .ok()
            .filter(|c| c.starts_with(CIPHERTEXT_PREFIX))
            .ok_or(KeyHolderError::WrongKey)?;
        let body = serde_json::json!({
            "ciphertext": ciphertext,
            "associated_data": STANDARD.encode(context),
        });
        let data = self.call(&self.decrypt, body, true).await?;
        let plaintext = Zeroizing::new(data.plaintext.unwrap_or_default());
        STANDARD
            .decode(plaintext.as_bytes())
            .map(Zeroizing::new)
            .map_err(|_| {
                KeyHolderError::Refused(format!("{} returned a malformed plaintext", self.identity))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(address: &str, mount: &str, key: &str, token: &str) -> TransitConfig {
        TransitConfig {
            address: address.into(),
            mount: mount.into(),
            key: key.into(),
            token: SecretString::from(token.to_owned()),
        }
    }

    #[test]
    fn bad_configurations_are_refused_without_echoing_the_token() {
        for (address, mount, key) in [
            ("ftp://h", "transit", "k"),
            ("http://user:pw@h", "transit", "k"),
            ("not a url", "transit", "k"),
            ("http://h", "../sys", "k"),
            ("http://vault.example.com:8200", "transit", "k"),
            ("http://h", "", "k"),
            ("http://h", "transit", "a/b"),
            ("http://h", "transit", ""),
        ] {
            let e = Transit::new(&config(address, mount, key, "s.SECRET")).unwrap_err();
            assert!(!e.to_string().contains("SECRET"), "{e}");
            assert!(!e.to_string().contains("pw"), "{e}");
        }
        assert!(Transit::new(&config("http://h", "transit", "k", " ")).is_err());
    }

    #[test]
    fn the_identity_names_where_and_which_key_but_not_the_token() {
        let t = Transit::new(&config(
            "http://127.0.0.1:8200/",
            "transit",
            "alter",
            "s.SECRET",
        ))
        .unwrap();
        let id = t.identity();
        assert!(
            id.contains("http://127.0.0.1:8200") && id.contains("\"alter\""),
            "{id}"
        );
        assert!(!format!("{t:?}{id}").contains("SECRET"));
        assert_eq!(
            t.encrypt.as_str(),
            "http://127.0.0.1:8200/v1/transit/encrypt/alter"
        );
    }
}
