//! The typed rule kinds: their bodies as operators write them (strict serde), the compiled form
//! evaluation uses, and each kind's violation predicate.

use std::net::IpAddr;
use std::sync::Arc;

use alter_core::rules::{CallMode, DecisionFacts, Effect, Rule, RuleTarget};
use ipnet::IpNet;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cedar::CustomRule;
use crate::glob::{HostPattern, PathGlob};
use crate::limits::MAX_LIST;
use crate::params::{Check, Constraint, ParamSpec};
use crate::windows::{WindowSpec, Windows};

/// Every kind this engine knows.
pub const KINDS: [&str; 10] = [
    "ip_allowlist",
    "time_window",
    "rate_limit",
    "url",
    "method",
    "params",
    "group",
    "require_approval",
    "custom",
    "proxy_only",
];

/// An optional filter every kind may carry: the rule only considers calls it matches. Absent
/// lists do not filter. In retrieve mode the method, host and path are only the caller's claim,
/// so those three filters count as met there (a claim cannot dodge a rule).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppliesTo {
    /// Upper-case methods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<String>>,
    /// Host patterns (exact or `*.suffix`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
    /// Path globs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    /// `retrieve`, `proxy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modes: Option<Vec<CallMode>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct IpAllowlist {
    cidrs: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    applies_to: Option<AppliesTo>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TimeWindow {
    timezone: String,
    windows: Vec<WindowSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    applies_to: Option<AppliesTo>,
}

/// What a rate limit counts per.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Per {
    /// The grant (the rule's grant when attached to one, so delegations share its bucket; else
    /// the grant used).
    Grant,
    /// The acting agent (calls without one are not counted).
    Agent,
    /// The signing key.
    Key,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimit {
    per_minute: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    burst: Option<u32>,
    per: Per,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    applies_to: Option<AppliesTo>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct UrlEntry {
    host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    methods: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scheme: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct UrlRule {
    allow: Vec<UrlEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    applies_to: Option<AppliesTo>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MethodRule {
    allow: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    applies_to: Option<AppliesTo>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ParamsRule {
    constraints: Vec<ParamSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    applies_to: Option<AppliesTo>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupRule {
    any_of: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    applies_to: Option<AppliesTo>,
}

/// A `require_approval` body: who may approve and how long a held call waits.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequireApproval {
    /// Approvers (user or group ids as the app names them); empty means the app's default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
    /// How long the approval stays pending (60 s to 7 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
    /// The optional filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applies_to: Option<AppliesTo>,
}

/// A `proxy_only` body: nothing but the optional filter. It marks its target restricted: the
/// credential is only ever used by the vault itself, never handed to a caller.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProxyOnly {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    applies_to: Option<AppliesTo>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CustomBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    when: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unless: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    applies_to: Option<AppliesTo>,
}

/// One `url` allow entry, compiled.
#[derive(Debug, Clone)]
pub struct UrlAllow {
    host: HostPattern,
    path: PathGlob,
    methods: Option<Vec<String>>,
    scheme: Option<String>,
    port: Option<u16>,
}

/// A rule's kind-specific, compiled parameters.
#[derive(Debug, Clone)]
pub enum Kind {
    /// Allowed networks.
    Ip(Vec<IpNet>),
    /// Allowed windows.
    Time(Windows),
    /// A GCRA limit.
    Rate {
        /// Calls per minute.
        per_minute: u32,
        /// Burst.
        burst: u32,
        /// Counted per.
        per: Per,
    },
    /// Allowed URLs.
    Url(Vec<UrlAllow>),
    /// Allowed methods.
    Method(Vec<String>),
    /// Parameter constraints.
    Params(Vec<Constraint>),
    /// Required group membership (any of).
    Group(Vec<String>),
    /// Hold for approval.
    Approval,
    /// Refuse retrieve mode: the grant is restricted to the proxy.
    ProxyOnly,
    /// A Cedar condition.
    Custom(Arc<CustomRule>),
}

/// The compiled filter.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    methods: Option<Vec<String>>,
    hosts: Option<Vec<HostPattern>>,
    paths: Option<Vec<PathGlob>>,
    modes: Option<Vec<CallMode>>,
}

/// A rule compiled for evaluation, with its normalised body.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The filter, if any.
    pub filter: Option<Filter>,
    /// The kind's parameters.
    pub kind: Kind,
    /// The body as stored.
    pub normal: Value,
}

/// What one rule says about one call.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The rule does not fire.
    Pass,
    /// It fires with this code and detail.
    Fire(&'static str, String),
    /// The facts cannot tell (a truncated body under a body constraint).
    Unknown(String),
}

fn parse<T: DeserializeOwned>(kind: &str, body: &Value) -> Result<T, String> {
    serde_json::from_value(body.clone()).map_err(|e| format!("invalid {kind} body: {e}"))
}

fn bounded<T>(what: &str, list: &[T]) -> Result<(), String> {
    if list.is_empty() || list.len() > MAX_LIST {
        return Err(format!("{what} needs between 1 and {MAX_LIST} entries"));
    }
    Ok(())
}

/// Normalises a method list (upper case, HTTP token characters, no duplicates).
fn methods(list: &[String]) -> Result<Vec<String>, String> {
    bounded("a method list", list)?;
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for m in list {
        let up = m.trim().to_ascii_uppercase();
        if up.is_empty() || up.len() > 32 || !up.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(format!("method {m:?} is not an HTTP method"));
        }
        if !out.contains(&up) {
            out.push(up);
        }
    }
    Ok(out)
}

/// Parses a CIDR (or a bare address, as a host route), refusing `/0`; an IPv4-mapped IPv6
/// network becomes the IPv4 network it maps.
pub fn cidr(text: &str) -> Result<IpNet, String> {
    let t = text.trim();
    let net: IpNet = match t.parse::<IpNet>() {
        Ok(n) => n,
        Err(_) => match t.parse::<IpAddr>() {
            Ok(a) => IpNet::from(a),
            Err(_) => return Err(format!("{text:?} is not a CIDR")),
        },
    };
    let net = match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => IpNet::new(IpAddr::V4(v4), v6.prefix_len() - 96)
                .map_err(|_| format!("{text:?} is not a CIDR"))?,
            None => IpNet::V6(v6),
        },
        other => other,
    };
    if net.prefix_len() == 0 {
        return Err(format!("{text:?} allows every address (/0 is refused)"));
    }
    Ok(net.trunc())
}

fn filter(spec: Option<AppliesTo>) -> Result<(Option<Filter>, Option<AppliesTo>), String> {
    let Some(spec) = spec else {
        return Ok((None, None));
    };
    let mut f = Filter::default();
    let mut normal = AppliesTo::default();
    if let Some(list) = &spec.methods {
        let m = methods(list)?;
        normal.methods = Some(m.clone());
        f.methods = Some(m);
    }
    if let Some(list) = &spec.hosts {
        bounded("applies_to.hosts", list)?;
        let hosts = list
            .iter()
            .map(|h| HostPattern::parse(h))
            .collect::<Result<Vec<_>, _>>()?;
        normal.hosts = Some(hosts.iter().map(HostPattern::text).collect());
        f.hosts = Some(hosts);
    }
    if let Some(list) = &spec.paths {
        bounded("applies_to.paths", list)?;
        let paths = list
            .iter()
            .map(|p| PathGlob::parse(p))
            .collect::<Result<Vec<_>, _>>()?;
        normal.paths = Some(list.clone());
        f.paths = Some(paths);
    }
    if let Some(list) = &spec.modes {
        bounded("applies_to.modes", list)?;
        normal.modes = Some(list.clone());
        f.modes = Some(list.clone());
    }
    Ok((Some(f), Some(normal)))
}

fn to_value<T: Serialize>(body: &T) -> Result<Value, String> {
    serde_json::to_value(body).map_err(|_| "the body could not be normalised".to_owned())
}

/// Compiles a rule: parses its body for its kind, checks limits and that the effect fits.
pub fn compile(rule: &Rule) -> Result<Compiled, String> {
    let body = &rule.body;
    let (kind, applies, normal): (Kind, Option<AppliesTo>, Value) = match rule.kind.as_str() {
        "ip_allowlist" => {
            let mut b: IpAllowlist = parse(&rule.kind, body)?;
            bounded("cidrs", &b.cidrs)?;
            let nets = b
                .cidrs
                .iter()
                .map(|c| cidr(c))
                .collect::<Result<Vec<_>, _>>()?;
            b.cidrs = nets.iter().map(ToString::to_string).collect();
            (Kind::Ip(nets), b.applies_to.take(), to_value(&b)?)
        }
        "time_window" => {
            let mut b: TimeWindow = parse(&rule.kind, body)?;
            let (w, tz, specs) = Windows::compile(&b.timezone, &b.windows)?;
            b.timezone = tz;
            b.windows = specs;
            (Kind::Time(w), b.applies_to.take(), to_value(&b)?)
        }
        "rate_limit" => {
            let mut b: RateLimit = parse(&rule.kind, body)?;
            if b.per_minute == 0 || b.per_minute > 1_000_000 {
                return Err("per_minute must be between 1 and 1000000".into());
            }
            let burst = b.burst.unwrap_or(b.per_minute);
            if burst == 0 || burst > 1_000_000 {
                return Err("burst must be between 1 and 1000000".into());
            }
            b.burst = Some(burst);
            let kind = Kind::Rate {
                per_minute: b.per_minute,
                burst,
                per: b.per,
            };
            (kind, b.applies_to.take(), to_value(&b)?)
        }
        "url" => {
            let mut b: UrlRule = parse(&rule.kind, body)?;
            bounded("allow", &b.allow)?;
            let mut compiled = Vec::with_capacity(b.allow.len());
            for e in &mut b.allow {
                let host = HostPattern::parse(&e.host)?;
                e.host = host.text();
                let path = PathGlob::parse(e.path.as_deref().unwrap_or("/**"))?;
                e.path = Some(path.text().to_owned());
                if let Some(m) = &e.methods {
                    e.methods = Some(methods(m)?);
                }
                if let Some(s) = &e.scheme {
                    let s = s.to_ascii_lowercase();
                    if s != "http" && s != "https" {
                        return Err(format!("scheme {s:?} must be http or https"));
                    }
                    e.scheme = Some(s);
                }
                compiled.push(UrlAllow {
                    host,
                    path,
                    methods: e.methods.clone(),
                    scheme: e.scheme.clone(),
                    port: e.port,
                });
            }
            (Kind::Url(compiled), b.applies_to.take(), to_value(&b)?)
        }
        "method" => {
            let mut b: MethodRule = parse(&rule.kind, body)?;
            b.allow = methods(&b.allow)?;
            (
                Kind::Method(b.allow.clone()),
                b.applies_to.take(),
                to_value(&b)?,
            )
        }
        "params" => {
            let mut b: ParamsRule = parse(&rule.kind, body)?;
            bounded("constraints", &b.constraints)?;
            let c = b
                .constraints
                .iter()
                .map(Constraint::compile)
                .collect::<Result<Vec<_>, _>>()?;
            (Kind::Params(c), b.applies_to.take(), to_value(&b)?)
        }
        "group" => {
            let mut b: GroupRule = parse(&rule.kind, body)?;
            bounded("any_of", &b.any_of)?;
            if b.any_of.iter().any(|g| g.is_empty() || g.len() > 256) {
                return Err("group ids must be 1 to 256 characters".into());
            }
            let mut seen = std::collections::HashSet::new();
            b.any_of.retain(|g| seen.insert(g.clone()));
            (
                Kind::Group(b.any_of.clone()),
                b.applies_to.take(),
                to_value(&b)?,
            )
        }
        "require_approval" => {
            let mut b: RequireApproval = parse(&rule.kind, body)?;
            if b.approvers.len() > MAX_LIST || b.approvers.iter().any(|a| a.is_empty()) {
                return Err(format!("at most {MAX_LIST} non-empty approvers"));
            }
            if let Some(ttl) = b.ttl_seconds
                && !(60..=7 * 86_400).contains(&ttl)
            {
                return Err("ttl_seconds must be between 60 and 604800".into());
            }
            (Kind::Approval, b.applies_to.take(), to_value(&b)?)
        }
        "proxy_only" => {
            let mut b: ProxyOnly = parse(&rule.kind, body)?;
            (Kind::ProxyOnly, b.applies_to.take(), to_value(&b)?)
        }
        "custom" => {
            let mut b: CustomBody = parse(&rule.kind, body)?;
            let custom = match (&b.when, &b.unless) {
                (Some(w), None) => CustomRule::compile(rule, true, w)?,
                (None, Some(u)) => CustomRule::compile(rule, false, u)?,
                _ => return Err("a custom rule has exactly one of `when` or `unless`".into()),
            };
            (
                Kind::Custom(Arc::new(custom)),
                b.applies_to.take(),
                to_value(&b)?,
            )
        }
        other => return Err(format!("unknown rule kind {other:?}")),
    };
    match (rule.kind.as_str(), rule.effect) {
        ("require_approval", Effect::Deny) => {
            return Err("a require_approval rule holds (effect hold)".into());
        }
        ("rate_limit", Effect::Hold) => {
            return Err("a rate_limit rule denies (effect deny)".into());
        }
        _ => {}
    }
    let (filter, applies_normal) = filter(applies)?;
    let mut normal = normal;
    if let (Some(a), Value::Object(map)) = (applies_normal, &mut normal) {
        map.insert("applies_to".into(), to_value(&a)?);
    }
    Ok(Compiled {
        filter,
        kind,
        normal,
    })
}

impl Filter {
    /// Whether the call is one the rule considers.
    pub fn admits(&self, facts: &DecisionFacts) -> bool {
        if let Some(modes) = &self.modes
            && !modes.contains(&facts.mode)
        {
            return false;
        }
        if facts.mode == CallMode::Retrieve {
            return true;
        }
        let t = &facts.target;
        if let Some(m) = &self.methods
            && !m.contains(&t.method)
        {
            return false;
        }
        // A filter decides when a restrictive rule applies: any spelling of the host or path
        // that a server may read as the one named counts.
        let host = t.host.trim_end_matches('.');
        if let Some(h) = &self.hosts
            && !h.iter().any(|h| h.matches(&t.host) || h.matches(host))
        {
            return false;
        }
        if let Some(p) = &self.paths
            && !p.iter().any(|p| p.matches_loosely(&t.path))
        {
            return false;
        }
        true
    }
}

impl UrlAllow {
    fn admits(&self, facts: &DecisionFacts) -> bool {
        let t = &facts.target;
        self.host.matches(&t.host)
            && self.path.matches(&t.path)
            && self.methods.as_ref().is_none_or(|m| m.contains(&t.method))
            && self.scheme.as_ref().is_none_or(|s| *s == t.scheme)
            && self.port.is_none_or(|p| p == t.port)
    }
}

impl Kind {
    /// Whether the kind can only be enforced where the call itself is seen (the proxy).
    pub fn needs_proxy(&self) -> bool {
        match self {
            Kind::Url(_) | Kind::Method(_) | Kind::Params(_) | Kind::Approval | Kind::ProxyOnly => {
                true
            }
            Kind::Custom(c) => c.reads_target(),
            Kind::Ip(_) | Kind::Time(_) | Kind::Rate { .. } | Kind::Group(_) => false,
        }
    }

    /// The stateless violation predicate (`Rate` and `Custom` are evaluated elsewhere).
    pub fn check(&self, facts: &DecisionFacts) -> Verdict {
        let t = &facts.target;
        match self {
            Kind::Ip(nets) => match facts.source_ip.map(|ip| ip.to_canonical()) {
                None => Verdict::Fire("ip_not_allowed", "the caller's address is unknown".into()),
                Some(ip) if nets.iter().any(|n| n.contains(&ip)) => Verdict::Pass,
                Some(ip) => Verdict::Fire(
                    "ip_not_allowed",
                    format!("{ip} is not in the allowed networks"),
                ),
            },
            Kind::Time(w) => {
                if w.contains(facts.at) {
                    Verdict::Pass
                } else {
                    Verdict::Fire(
                        "outside_time_window",
                        "the call is outside the allowed time windows".into(),
                    )
                }
            }
            Kind::Url(allow) => {
                if allow.iter().any(|a| a.admits(facts)) {
                    Verdict::Pass
                } else {
                    Verdict::Fire(
                        "url_not_allowed",
                        format!(
                            "{} {}://{}:{}{} is not on the allow list",
                            t.method, t.scheme, t.host, t.port, t.path
                        ),
                    )
                }
            }
            Kind::Method(allow) => {
                if allow.contains(&t.method) {
                    Verdict::Pass
                } else {
                    Verdict::Fire(
                        "method_not_allowed",
                        format!("method {} is not allowed", t.method),
                    )
                }
            }
            Kind::Params(constraints) => {
                let mut unknown = None;
                for c in constraints {
                    match c.check(t) {
                        Check::Pass => {}
                        Check::Fail(why) => return Verdict::Fire("parameter_not_allowed", why),
                        Check::Unknown(why) => unknown = unknown.or(Some(why)),
                    }
                }
                match unknown {
                    Some(why) => Verdict::Unknown(why),
                    None => Verdict::Pass,
                }
            }
            Kind::Group(groups) => {
                if groups.iter().any(|g| facts.groups.contains(g)) {
                    Verdict::Pass
                } else {
                    Verdict::Fire(
                        "policy_denied",
                        "the caller is in none of the required groups".into(),
                    )
                }
            }
            Kind::Approval => Verdict::Fire(
                "approval_required",
                "calls wait for a human's approval".into(),
            ),
            // Proxy mode is what it asks for; retrieve mode is refused as needing the proxy.
            Kind::ProxyOnly | Kind::Rate { .. } | Kind::Custom(_) => Verdict::Pass,
        }
    }
}

/// The rate bucket a rate-limit rule asks a call for, if the call is counted.
pub fn rate_bucket(rule: &Rule, per: Per, facts: &DecisionFacts) -> Result<Option<String>, String> {
    let id = rule.id;
    Ok(Some(match per {
        // A derived key counts against the key it came from: deriving does not reset a limit.
        Per::Key => format!("{id}:key:{}", facts.root_key_id.unwrap_or(facts.key_id)),
        Per::Agent => match facts.agent_id {
            Some(a) => format!("{id}:agent:{a}"),
            // An agent key bound to no managed agent (or a key derived from one) is its own agent.
            None if facts.agent_typed => {
                format!(
                    "{id}:agent-key:{}",
                    facts.root_key_id.unwrap_or(facts.key_id)
                )
            }
            None => return Ok(None),
        },
        Per::Grant => match &rule.target {
            RuleTarget::Grant(g) => format!("{id}:grant:{g}"),
            _ => match facts.grants.first() {
                Some(g) => format!("{id}:grant:{g}"),
                None => return Err("a per-grant rate limit on a call without a grant".into()),
            },
        },
    }))
}

/// The approval terms of a `require_approval` rule (approvers, ttl), for the approval a hold
/// creates; `None` for another kind or a body that does not parse.
pub fn approval_terms(rule: &Rule) -> Option<RequireApproval> {
    if rule.kind != "require_approval" {
        return None;
    }
    serde_json::from_value(rule.body.clone()).ok()
}
