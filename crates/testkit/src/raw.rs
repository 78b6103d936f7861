//! Hand-built signed requests: sign exactly like the official client, then let a test change
//! what goes on the wire (body, headers, timestamp, nonce) to prove the server notices.

use alter_proto::signing::{self, SigningInput, headers};
use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

/// A signed request under construction.
#[derive(Debug, Clone)]
pub struct RawRequest {
    base_url: String,
    api_key: String,
    method: String,
    path: String,
    body: Vec<u8>,
    timestamp: i64,
    nonce: String,
    headers: Vec<(String, String)>,
    signed_headers: Vec<(&'static str, String)>,
    wire_body: Option<Vec<u8>>,
    signature: Option<String>,
}

/// What came back.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// Status.
    pub status: u16,
    /// Response headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body as JSON (`Null` if not JSON).
    pub json: Value,
    /// Body bytes.
    pub bytes: Vec<u8>,
}

impl RawResponse {
    /// The `error` code of an error envelope.
    pub fn code(&self) -> Option<&str> {
        self.json.get("error").and_then(Value::as_str)
    }
}

impl RawRequest {
    pub(crate) fn new(base_url: &str, api_key: &str, method: &str, path: &str, now: i64) -> Self {
        RawRequest {
            base_url: base_url.to_owned(),
            api_key: api_key.to_owned(),
            method: method.to_owned(),
            path: path.to_owned(),
            body: Vec::new(),
            timestamp: now,
            nonce: uuid::Uuid::new_v4().simple().to_string(),
            headers: Vec::new(),
            signed_headers: Vec::new(),
            wire_body: None,
            signature: None,
        }
    }

    /// The body that is signed and sent.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sends a different body than the one signed.
    pub fn tamper_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.wire_body = Some(body.into());
        self
    }

    /// Signs with this timestamp (Unix seconds).
    pub fn timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = timestamp;
        self
    }

    /// Signs with this nonce.
    pub fn nonce(mut self, nonce: &str) -> Self {
        self.nonce = nonce.to_owned();
        self
    }

    /// Adds an unsigned header (or overrides a protocol header after signing).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Adds an identity or attenuation header that is bound into the signature.
    pub fn signed_header(mut self, name: &'static str, value: &str) -> Self {
        self.signed_headers.push((name, value.to_owned()));
        self
    }

    /// Sends this signature instead of the right one.
    pub fn signature(mut self, signature: &str) -> Self {
        self.signature = Some(signature.to_owned());
        self
    }

    fn signed(&self, name: &str) -> Option<&str> {
        self.signed_headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sends the request.
    pub async fn send(self) -> RawResponse {
        let timestamp = self.timestamp.to_string();
        let hash = signing::content_sha256(&self.body);
        let target = signing::canonical_target(&self.path);
        let input = SigningInput {
            method: &self.method,
            canonical_target: &target,
            timestamp: &timestamp,
            nonce: &self.nonce,
            content_sha256: &hash,
            scope_constraints: self.signed(headers::SCOPE_CONSTRAINTS),
            request_rule: self.signed(headers::REQUEST_RULE),
            caller: self.signed(headers::CALLER),
            caller_type: self.signed(headers::CALLER_TYPE),
            actor_id: self.signed(headers::ACTOR_ID),
            actor_context: self.signed(headers::CONTEXT),
        };
        let signature = self
            .signature
            .clone()
            .unwrap_or_else(|| input.sign(&signing::signing_key(&self.api_key)));
        let method = Method::from_bytes(self.method.as_bytes()).expect("method");
        let mut wire = HeaderMap::new();
        let mut set = |name: &str, value: &str| {
            wire.insert(
                HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                HeaderValue::from_str(value).expect("header value"),
            );
        };
        set(headers::API_KEY, &self.api_key);
        set(headers::TIMESTAMP, &timestamp);
        set(headers::NONCE, &self.nonce);
        set(headers::CONTENT_SHA256, &hash);
        set(headers::SIGNATURE, &signature);
        if input.has_identity() {
            set(headers::SIGNATURE_V2, &signature);
        }
        for (name, value) in &self.signed_headers {
            set(name, value);
        }
        let body = self.wire_body.clone().unwrap_or_else(|| self.body.clone());
        if !body.is_empty() {
            set("content-type", "application/json");
        }
        // Overrides come last and replace what was set above.
        for (name, value) in &self.headers {
            set(name, value);
        }
        let request = reqwest::Client::new()
            .request(method, format!("{}{}", self.base_url, self.path))
            .headers(wire)
            .body(body);
        into_raw(request.send().await.expect("request reaches the server")).await
    }
}

/// A client of the end-user API (`/user/v1/apps/{app}/…`, Bearer = the user's IdP JWT).
#[derive(Debug, Clone)]
pub struct UserClient {
    base: String,
    token: String,
}

impl UserClient {
    pub(crate) fn new(base_url: &str, app_id: &str, token: &str) -> Self {
        UserClient {
            base: format!("{base_url}/user/v1/apps/{app_id}"),
            token: token.to_owned(),
        }
    }

    /// `GET {path}`.
    pub async fn get(&self, path: &str) -> RawResponse {
        self.send(Method::GET, path, None).await
    }

    /// `POST {path}` with a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> RawResponse {
        self.send(Method::POST, path, Some(body)).await
    }

    /// `DELETE {path}`.
    pub async fn delete(&self, path: &str) -> RawResponse {
        self.send(Method::DELETE, path, None).await
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> RawResponse {
        let mut request = reqwest::Client::new()
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        into_raw(request.send().await.expect("request reaches the server")).await
    }
}

async fn into_raw(response: reqwest::Response) -> RawResponse {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("response body").to_vec();
    RawResponse {
        status,
        headers,
        json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        bytes,
    }
}
