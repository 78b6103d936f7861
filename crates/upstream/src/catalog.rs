//! The built-in OAuth provider catalogue (design §2): one entry per common provider, kept as data
//! in `catalog/providers.toml` and compiled into the binary.
//!
//! Adding a provider is a change to that file only. [`load`] parses and validates it once; the
//! server is to call it at startup, so a broken file is an error it reports there, never a panic
//! in a request.
//! The rules [`load`] enforces are the ones the catalogue test checks: slug-shaped unique ids,
//! absolute `https` URLs without userinfo or fragment, every `{placeholder}` in a URL declared
//! and every declared one used, default and required scopes among the available ones.
//!
//! URLs that hold a tenant, shop or subdomain carry a `{placeholder}` the operator fills in when
//! configuring the provider; [`CatalogProvider::endpoints`] substitutes the values after checking
//! them, so a value can never move a URL to another host or path.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use alter_core::providers::{
    AccountSource, RESERVED_AUTHORIZE_PARAMS, RefreshBehaviour, is_api_header, is_provider_id,
};
use serde::Deserialize;
use url::Url;

/// The catalogue as shipped, compiled into the binary.
const SOURCE: &str = include_str!("../catalog/providers.toml");

/// The longest placeholder value accepted (a DNS name's length).
const MAX_PLACEHOLDER_VALUE_LEN: usize = 253;

static CATALOG: LazyLock<Result<Vec<CatalogProvider>, CatalogError>> =
    LazyLock::new(|| parse(SOURCE));

/// Why the catalogue, or a value given for one of its placeholders, was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    /// The data file is not well-formed TOML of the expected shape.
    #[error("the provider catalogue does not parse: {0}")]
    Parse(String),
    /// An entry breaks a catalogue rule.
    #[error("provider catalogue entry `{provider}`: {problem}")]
    Invalid {
        /// The entry's id, as written in the file.
        provider: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A placeholder value given at configure time was missing or unsafe.
    #[error("provider `{provider}`: placeholder `{placeholder}`: {problem}")]
    Placeholder {
        /// The provider being configured.
        provider: String,
        /// The placeholder concerned.
        placeholder: String,
        /// What is wrong with the value.
        problem: String,
    },
}

/// How a provider joins several scopes in the `scope` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScopeSeparator {
    /// RFC 6749 §3.3: scopes separated by a space.
    Space,
    /// Scopes separated by a comma (Slack, Linear, Shopify…).
    Comma,
}

impl ScopeSeparator {
    /// The separator itself.
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeSeparator::Space => " ",
            ScopeSeparator::Comma => ",",
        }
    }

    /// Joins scopes into one `scope` parameter value.
    pub fn join<S: AsRef<str>>(self, scopes: &[S]) -> String {
        scopes
            .iter()
            .map(AsRef::as_ref)
            .collect::<Vec<_>>()
            .join(self.as_str())
    }
}

/// One scope a provider offers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogScope {
    /// What the scope lets the holder do, for the consent-side listing.
    pub description: String,
    /// Whether every connection must ask for it.
    #[serde(default)]
    pub required: bool,
    /// Other scopes that must be asked for with it.
    #[serde(default)]
    pub requires: Vec<String>,
}

/// A value the operator supplies when configuring a provider whose URLs depend on a tenant,
/// shop or subdomain.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Placeholder {
    /// What to enter, for the operator.
    pub description: String,
    /// A well-formed example value (also used to check the URL templates).
    pub example: String,
    /// The value used when the operator gives none; without one the value is required.
    #[serde(default)]
    pub default: Option<String>,
}

/// One provider of the built-in catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogProvider {
    /// Lower-case slug, unique in the catalogue (`google`, `stripe-connect`).
    pub id: String,
    /// Name shown to people (`Google`).
    pub display_name: String,
    /// Lower-case slug grouping providers (`productivity`, `crm`…).
    pub category: String,
    /// One sentence on what connecting gives access to.
    pub description: String,
    /// Authorization endpoint (the consent page).
    pub authorize_url: String,
    /// Token endpoint (code exchange and refresh).
    pub token_url: String,
    /// Endpoint for `grant_type=refresh_token`, when it is not the token endpoint (Figma).
    #[serde(default)]
    pub refresh_url: Option<String>,
    /// RFC 7009 revocation endpoint (form-encoded `token`), when the provider has one.
    /// Providers that only revoke in a proprietary way have none; the data file says how.
    #[serde(default)]
    pub revoke_url: Option<String>,
    /// Whether the provider accepts PKCE (S256) on the authorization-code flow.
    pub supports_pkce: bool,
    /// How scopes are joined in the `scope` parameter.
    pub scope_separator: ScopeSeparator,
    /// What the provider does with refresh tokens.
    pub refresh: RefreshBehaviour,
    /// Parameters added to every authorization request (e.g. Google's `access_type=offline`).
    #[serde(default)]
    pub extra_authorize_params: BTreeMap<String, String>,
    /// Where the connection's account identifier comes from.
    pub account: AccountSource,
    /// Base URL of the provider's API, for the proxy.
    pub api_base_url: String,
    /// Headers every API call needs besides the token (e.g. Notion's `Notion-Version`).
    #[serde(default)]
    pub api_headers: BTreeMap<String, String>,
    /// Scopes asked for when the caller names none.
    #[serde(default)]
    pub default_scopes: Vec<String>,
    /// Scopes the provider offers (a selection, not necessarily all of them).
    #[serde(default)]
    pub scopes: BTreeMap<String, CatalogScope>,
    /// Values the operator supplies at configure time, used as `{name}` in the URLs.
    #[serde(default)]
    pub placeholders: BTreeMap<String, Placeholder>,
}

/// A provider's URLs with its placeholders filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// Authorization endpoint.
    pub authorize_url: Url,
    /// Token endpoint.
    pub token_url: Url,
    /// Refresh endpoint: the token endpoint unless the provider has a separate one.
    pub refresh_url: Url,
    /// RFC 7009 revocation endpoint, if any.
    pub revoke_url: Option<Url>,
    /// Userinfo or GraphQL endpoint, when the account identifier comes from one.
    pub account_url: Option<Url>,
    /// Base URL of the provider's API.
    pub api_base_url: Url,
}

impl CatalogProvider {
    /// Whether the provider issues refresh tokens.
    pub fn supports_refresh(&self) -> bool {
        self.refresh != RefreshBehaviour::None
    }

    /// The scopes every connection must ask for, in name order.
    pub fn required_scopes(&self) -> Vec<&str> {
        self.scopes
            .iter()
            .filter(|(_, scope)| scope.required)
            .map(|(name, _)| name.as_str())
            .collect()
    }

    /// Whether `scope` is one of the default scopes.
    pub fn is_default_scope(&self, scope: &str) -> bool {
        self.default_scopes.iter().any(|s| s == scope)
    }

    /// The provider's URLs with the operator's placeholder `values` filled in (defaults where a
    /// value is missing). Each value must be a host-name-like string (letters, digits, `-`,
    /// dot-separated non-empty labels), so it can neither change the host a URL points at nor
    /// climb its path; values for undeclared placeholders are refused.
    pub fn endpoints(&self, values: &BTreeMap<String, String>) -> Result<Endpoints, CatalogError> {
        if let Some(unknown) = values
            .keys()
            .find(|name| !self.placeholders.contains_key(*name))
        {
            return Err(self.placeholder_error(unknown, "not a placeholder of this provider"));
        }
        let mut filled = BTreeMap::new();
        for (name, placeholder) in &self.placeholders {
            let value = values
                .get(name)
                .or(placeholder.default.as_ref())
                .ok_or_else(|| self.placeholder_error(name, "a value is required"))?;
            check_placeholder_value(value)
                .map_err(|problem| self.placeholder_error(name, problem))?;
            filled.insert(name.as_str(), value.as_str());
        }
        let render = |template: &str| -> Result<Url, CatalogError> {
            let rendered = substitute(template, &filled)
                .map_err(|problem| self.invalid(format!("{template}: {problem}")))?;
            check_url(&rendered).map_err(|problem| self.invalid(format!("{rendered}: {problem}")))
        };
        Ok(Endpoints {
            authorize_url: render(&self.authorize_url)?,
            token_url: render(&self.token_url)?,
            refresh_url: render(self.refresh_url.as_deref().unwrap_or(&self.token_url))?,
            revoke_url: self.revoke_url.as_deref().map(render).transpose()?,
            account_url: match &self.account {
                AccountSource::Userinfo { url, .. } | AccountSource::Graphql { url, .. } => {
                    Some(render(url)?)
                }
                AccountSource::IdToken { .. }
                | AccountSource::TokenResponse { .. }
                | AccountSource::Unknown => None,
            },
            api_base_url: render(&self.api_base_url)?,
        })
    }

    /// Every URL template of the entry, with what it is.
    fn url_templates(&self) -> Vec<(&'static str, &str)> {
        let mut templates = vec![
            ("authorize_url", self.authorize_url.as_str()),
            ("token_url", self.token_url.as_str()),
            ("api_base_url", self.api_base_url.as_str()),
        ];
        if let Some(refresh) = &self.refresh_url {
            templates.push(("refresh_url", refresh));
        }
        if let Some(revoke) = &self.revoke_url {
            templates.push(("revoke_url", revoke));
        }
        if let AccountSource::Userinfo { url, .. } | AccountSource::Graphql { url, .. } =
            &self.account
        {
            templates.push(("account.url", url));
        }
        templates
    }

    /// Checks every catalogue rule that concerns this entry alone.
    fn validate(&self) -> Result<(), CatalogError> {
        let invalid = |problem: String| Err(self.invalid(problem));
        if !is_slug(&self.id) || !is_provider_id(&self.id) {
            return invalid(
                "the id must be a lower-case slug (a-z, 0-9, inner `-`, at most 50)".into(),
            );
        }
        if !is_slug(&self.category) {
            return invalid("the category must be a lower-case slug".into());
        }
        if self.display_name.trim().is_empty() || self.description.trim().is_empty() {
            return invalid("display_name and description must not be empty".into());
        }
        for (name, placeholder) in &self.placeholders {
            if !is_placeholder_name(name) {
                return invalid(format!(
                    "placeholder name `{name}` must be lower-case a-z and `_`"
                ));
            }
            for value in std::iter::once(&placeholder.example).chain(&placeholder.default) {
                if let Err(problem) = check_placeholder_value(value) {
                    return invalid(format!("placeholder `{name}`: `{value}` {problem}"));
                }
            }
        }
        // Each template must be a valid absolute https URL once the examples are filled in.
        let examples: BTreeMap<&str, &str> = self
            .placeholders
            .iter()
            .map(|(name, p)| (name.as_str(), p.example.as_str()))
            .collect();
        let mut used = BTreeSet::new();
        for (what, template) in self.url_templates() {
            let names =
                placeholder_names(template).map_err(|p| self.invalid(format!("{what}: {p}")))?;
            for name in names {
                if !self.placeholders.contains_key(name) {
                    return invalid(format!("{what} uses the undeclared placeholder `{name}`"));
                }
                used.insert(name);
            }
            let rendered = substitute(template, &examples)
                .map_err(|p| self.invalid(format!("{what}: {p}")))?;
            if let Err(problem) = check_url(&rendered) {
                return invalid(format!("{what} `{template}`: {problem}"));
            }
        }
        if let Some(unused) = self
            .placeholders
            .keys()
            .find(|name| !used.contains(name.as_str()))
        {
            return invalid(format!(
                "placeholder `{unused}` is declared but no URL uses it"
            ));
        }
        match &self.account {
            AccountSource::Userinfo { pointer, .. }
            | AccountSource::Graphql { pointer, .. }
            | AccountSource::TokenResponse { pointer } => {
                if !pointer.starts_with('/') || pointer.len() < 2 {
                    return invalid(format!("account pointer `{pointer}` is not a JSON Pointer"));
                }
            }
            AccountSource::IdToken { claim } => {
                if claim.is_empty() {
                    return invalid("account claim must not be empty".into());
                }
            }
            // Every catalogue provider says where its connections' account comes from.
            AccountSource::Unknown => {
                return invalid("account source must be given".into());
            }
        }
        if let AccountSource::Graphql { query, .. } = &self.account
            && query.trim().is_empty()
        {
            return invalid("account query must not be empty".into());
        }
        for (name, value) in self.extra_authorize_params.iter().chain(&self.api_headers) {
            if name.is_empty() || value.is_empty() {
                return invalid(format!("`{name}`: names and values must not be empty"));
            }
        }
        if let Some(name) = self
            .extra_authorize_params
            .keys()
            .find(|name| RESERVED_AUTHORIZE_PARAMS.contains(&name.as_str()))
        {
            return invalid(format!("extra_authorize_params may not set `{name}`"));
        }
        if let Some(name) = self.api_headers.keys().find(|name| !is_api_header(name)) {
            return invalid(format!("api header `{name}` is not allowed"));
        }
        for (name, scope) in &self.scopes {
            if name.is_empty()
                || name.contains(self.scope_separator.as_str())
                || name.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return invalid(format!("scope `{name}` contains a separator or blank"));
            }
            if scope.description.trim().is_empty() {
                return invalid(format!("scope `{name}` has no description"));
            }
            if let Some(missing) = scope
                .requires
                .iter()
                .find(|r| !self.scopes.contains_key(*r))
            {
                return invalid(format!(
                    "scope `{name}` requires the unknown scope `{missing}`"
                ));
            }
        }
        let mut seen = BTreeSet::new();
        for scope in &self.default_scopes {
            if !self.scopes.contains_key(scope) {
                return invalid(format!("default scope `{scope}` is not an available scope"));
            }
            if !seen.insert(scope) {
                return invalid(format!("default scope `{scope}` is listed twice"));
            }
        }
        if let Some(required) = self
            .required_scopes()
            .into_iter()
            .find(|scope| !self.is_default_scope(scope))
        {
            return invalid(format!(
                "required scope `{required}` is not a default scope"
            ));
        }
        Ok(())
    }

    fn invalid(&self, problem: String) -> CatalogError {
        CatalogError::Invalid {
            provider: self.id.clone(),
            problem,
        }
    }

    fn placeholder_error(&self, placeholder: &str, problem: &str) -> CatalogError {
        CatalogError::Placeholder {
            provider: self.id.clone(),
            placeholder: placeholder.to_owned(),
            problem: problem.to_owned(),
        }
    }
}

/// The data file's top level: `[[provider]]` tables.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    provider: Vec<CatalogProvider>,
}

/// Parses and validates the built-in catalogue, once. The server calls this at startup and
/// refuses to start on an error.
pub fn load() -> Result<&'static [CatalogProvider], CatalogError> {
    match &*CATALOG {
        Ok(providers) => Ok(providers),
        Err(error) => Err(error.clone()),
    }
}

/// The built-in catalogue, in file order; empty if it failed to load (which [`load`] reports).
pub fn catalog() -> &'static [CatalogProvider] {
    load().unwrap_or_default()
}

/// The catalogue entry with this id.
pub fn find(id: &str) -> Option<&'static CatalogProvider> {
    catalog().iter().find(|provider| provider.id == id)
}

/// Parses and validates a catalogue document (the built-in one goes through [`load`]).
pub fn parse(source: &str) -> Result<Vec<CatalogProvider>, CatalogError> {
    let file: CatalogFile =
        toml::from_str(source).map_err(|error| CatalogError::Parse(error.to_string()))?;
    let mut ids = BTreeSet::new();
    for provider in &file.provider {
        provider.validate()?;
        if !ids.insert(provider.id.as_str()) {
            return Err(provider.invalid("the id is used by another entry".into()));
        }
    }
    Ok(file.provider)
}

/// `a-z0-9` words joined by single `-`.
fn is_slug(value: &str) -> bool {
    value.len() <= 64
        && value.split('-').all(|word| {
            !word.is_empty()
                && word
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

fn is_placeholder_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
}

/// A placeholder value is a host-name-like string: dot-separated non-empty labels of ASCII
/// letters, digits and `-`. That keeps it inside the host label or path segment it stands in
/// for: no `/`, `?`, `#`, `@`, `:`, `%`, `..` or blank can reach the URL.
fn check_placeholder_value(value: &str) -> Result<(), &'static str> {
    if value.is_empty() || value.len() > MAX_PLACEHOLDER_VALUE_LEN {
        return Err("must be 1 to 253 characters");
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if value.split('.').all(label_ok) {
        Ok(())
    } else {
        Err("must be dot-separated labels of letters, digits and `-`")
    }
}

/// The `{name}` placeholders of a template, in order.
fn placeholder_names(template: &str) -> Result<Vec<&str>, &'static str> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Err("a `}` without `{`");
        }
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or("a `{` without `}`")?;
        let name = &after[..close];
        if !is_placeholder_name(name) {
            return Err("a placeholder name must be lower-case a-z and `_`");
        }
        names.push(name);
        rest = &after[close + 1..];
    }
    Ok(names)
}

/// Replaces every `{name}` of `template` by its value.
fn substitute(template: &str, values: &BTreeMap<&str, &str>) -> Result<String, String> {
    let mut out = template.to_owned();
    for name in placeholder_names(template)? {
        let value = values
            .get(name)
            .ok_or_else(|| format!("no value for `{name}`"))?;
        out = out.replacen(&format!("{{{name}}}"), value, 1);
    }
    Ok(out)
}

/// An absolute `https` URL with a host and no userinfo or fragment.
fn check_url(candidate: &str) -> Result<Url, &'static str> {
    let url = Url::parse(candidate).map_err(|_| "not an absolute URL")?;
    if url.scheme() != "https" {
        return Err("must be https");
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("has no host");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not hold userinfo");
    }
    if url.fragment().is_some() || candidate.contains('#') {
        return Err("must not hold a fragment");
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [[provider]]
        id = "acme"
        display_name = "Acme"
        category = "productivity"
        description = "Acme files."
        authorize_url = "https://{tenant}.acme.example/oauth/authorize"
        token_url = "https://{tenant}.acme.example/oauth/token"
        supports_pkce = true
        scope_separator = "space"
        refresh = "rotating"
        api_base_url = "https://api.acme.example"
        account = { source = "id_token", claim = "sub" }
        default_scopes = ["files.read"]
        [provider.scopes."files.read"]
        description = "Read files"
        required = true
        [provider.placeholders.tenant]
        description = "Your Acme subdomain"
        example = "contoso"
    "#;

    /// The providers issue 9 names; the catalogue must hold every one.
    const NAMED: [&str; 30] = [
        "google",
        "github",
        "slack",
        "microsoft",
        "notion",
        "linear",
        "atlassian",
        "salesforce",
        "hubspot",
        "zoom",
        "dropbox",
        "box",
        "gitlab",
        "bitbucket",
        "discord",
        "spotify",
        "asana",
        "figma",
        "airtable",
        "intercom",
        "shopify",
        "xero",
        "quickbooks",
        "stripe-connect",
        "x",
        "zendesk",
        "calendly",
        "miro",
        "clickup",
        "webflow",
    ];

    #[test]
    fn the_built_in_catalogue_is_valid_and_complete() {
        let providers = load().unwrap();
        assert!(providers.len() >= 30, "{} providers", providers.len());
        for id in NAMED {
            assert!(find(id).is_some(), "`{id}` is missing");
        }
        assert!(find("nope").is_none());
        for provider in providers {
            // Every entry renders with its own example values to https URLs on a host.
            let examples = provider
                .placeholders
                .iter()
                .map(|(name, p)| (name.clone(), p.example.clone()))
                .collect();
            let endpoints = provider.endpoints(&examples).unwrap();
            assert_eq!(endpoints.authorize_url.scheme(), "https", "{}", provider.id);
        }
    }

    #[test]
    fn defaults_fill_placeholders() {
        let microsoft = find("microsoft").unwrap();
        let endpoints = microsoft.endpoints(&BTreeMap::new()).unwrap();
        assert_eq!(
            endpoints.token_url.as_str(),
            "https://login.microsoftonline.com/common/oauth2/v2.0/token"
        );
        let figma = find("figma").unwrap().endpoints(&BTreeMap::new()).unwrap();
        assert_ne!(figma.refresh_url, figma.token_url);
    }

    fn problem(source: &str) -> String {
        parse(source).unwrap_err().to_string()
    }

    #[test]
    fn a_minimal_entry_parses() {
        let providers = parse(MINIMAL).unwrap();
        assert_eq!(providers[0].required_scopes(), ["files.read"]);
        assert!(providers[0].supports_refresh());
    }

    #[test]
    fn entries_breaking_a_rule_are_refused() {
        let cases = [
            (MINIMAL.replace("\"acme\"", "\"Acme\""), "slug"),
            (MINIMAL.replace("https://api", "http://api"), "https"),
            (MINIMAL.replace("https://api", "https://me@api"), "userinfo"),
            (
                MINIMAL.replace("api.acme.example\"", "api.acme.example#x\""),
                "fragment",
            ),
            (
                MINIMAL.replace("{tenant}.acme.example/oauth/token", "{shop}.x/t"),
                "undeclared",
            ),
            (MINIMAL.replace("{tenant}.acme", "acme"), "no URL uses it"),
            (
                MINIMAL.replace("\"space\"", "\"semicolon\""),
                "does not parse",
            ),
            (
                MINIMAL.replace("[\"files.read\"]", "[\"files.write\"]"),
                "not an available",
            ),
            (
                MINIMAL.replace("claim = \"sub\"", "claim = \"sub\", x = 1"),
                "does not parse",
            ),
            (
                format!("{MINIMAL}\n[provider.extra_authorize_params]\nstate = \"x\""),
                "may not set `state`",
            ),
            (
                format!("{MINIMAL}\n[provider.api_headers]\nAuthorization = \"Bearer x\""),
                "not allowed",
            ),
            (format!("{MINIMAL}\n{MINIMAL}"), "used by another entry"),
        ];
        for (source, expected) in cases {
            let got = problem(&source);
            assert!(got.contains(expected), "expected `{expected}`, got `{got}`");
        }
    }

    #[test]
    fn placeholder_values_cannot_escape_their_slot() {
        let provider = &parse(MINIMAL).unwrap()[0];
        let with = |value: &str| BTreeMap::from([("tenant".to_owned(), value.to_owned())]);
        let endpoints = provider.endpoints(&with("contoso")).unwrap();
        assert_eq!(
            endpoints.authorize_url.as_str(),
            "https://contoso.acme.example/oauth/authorize"
        );
        for bad in [
            "",
            "evil.example/",
            "evil.example#",
            "a@b",
            "a..b",
            "..",
            "a b",
            "x:1",
            "%2e",
        ] {
            assert!(provider.endpoints(&with(bad)).is_err(), "{bad:?} accepted");
        }
        assert!(
            provider.endpoints(&BTreeMap::new()).is_err(),
            "required value missing"
        );
        let unknown = BTreeMap::from([("shop".to_owned(), "x".to_owned())]);
        assert!(provider.endpoints(&unknown).is_err());
    }

    #[test]
    fn scope_separators_join() {
        assert_eq!(ScopeSeparator::Space.join(&["a", "b"]), "a b");
        assert_eq!(ScopeSeparator::Comma.join(&["a", "b"]), "a,b");
    }
}
