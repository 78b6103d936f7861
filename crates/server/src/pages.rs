//! Server-rendered pages for people (the hosted Connect page and its outcomes): no external
//! assets, no script, every value escaped, and headers that keep them out of frames and off
//! other origins' referrers.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The one stylesheet, served from `/assets/alter.css` (the CSP allows no inline style); pages
/// sit two levels deep (`/connect/{token}`, `/oauth/callback`) and link it relatively, so a
/// base path needs no rewriting. Shared with the web UIs.
pub use crate::ui::STYLESHEET;

/// A page: title, body (already escaped HTML), status.
#[derive(Debug)]
pub struct Page {
    status: StatusCode,
    title: String,
    body: String,
    form_targets: Vec<String>,
}

impl Page {
    /// A page whose `body` is trusted HTML (every value in it escaped by the caller).
    pub fn new(status: StatusCode, title: &str, body: String) -> Page {
        Page {
            status,
            title: title.to_owned(),
            body,
            form_targets: Vec::new(),
        }
    }

    /// Origins its forms may end up at (a form posting here redirects to a provider).
    pub fn form_targets(mut self, origins: Vec<String>) -> Page {
        self.form_targets = origins;
        self
    }
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let html = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{title}</title><link rel=\"stylesheet\" href=\"{css}\">\
             <link rel=\"icon\" href=\"{icon}\"></head>\
             <body><main><h1>{title}</h1>{body}</main><footer>Alter vault</footer></body></html>",
            title = escape(&self.title),
            css = "../assets/alter.css",
            icon = "../assets/favicon.svg",
            body = self.body,
        );
        let mut response = (self.status, html).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        crate::ui::page_headers(headers, &self.form_targets);
        response
    }
}

/// Headers every page and its assets carry.
fn secure_headers(headers: &mut axum::http::HeaderMap) {
    crate::ui::asset_headers(headers);
}

/// A page with one paragraph.
pub fn message(status: StatusCode, title: &str, text: &str) -> Response {
    Page::new(status, title, format!("<p>{}</p>", escape(text))).into_response()
}

/// `GET /assets/alter.css`.
pub async fn stylesheet() -> Response {
    let mut response = STYLESHEET.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    secure_headers(headers);
    response
}

/// The icon, so browsers do not ask for a missing `/favicon.ico`.
const FAVICON: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 16 16\">\
<rect width=\"16\" height=\"16\" rx=\"3\" fill=\"#1a1a1a\"/>\
<path d=\"M4 12 8 4l4 8\" stroke=\"#fff\" stroke-width=\"2\" fill=\"none\"/></svg>";

/// `GET /assets/favicon.svg`.
pub async fn favicon() -> Response {
    let mut response = FAVICON.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("image/svg+xml"),
    );
    secure_headers(headers);
    response
}

/// `text` safe inside HTML text and double-quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
