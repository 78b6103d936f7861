//! Every JSON body the server accepts: the first byte picks the request type, the rest is the
//! body, parsed with `serde_json::from_slice` as the server's `Json` extractor does; then the
//! pure input rules of `alter_core::validate` run on every string and number in it. Checked
//! beyond "no panic": what `bounded_text` accepts is non-empty, trimmed, within its length
//! and free of control characters; what `cidr_allowlist` accepts has no catch-all network.
#![no_main]

use alter_core::validate;
use alter_proto::{
    admin, agents, approvals, connect, grants, keys, operators, policies, providers, proxy, signin,
    token,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

macro_rules! bodies {
    ($($ty:path),* $(,)?) => {
        /// Parses `body` as the `n`th request type.
        fn parse(n: usize, body: &[u8]) {
            let parsers: &[fn(&[u8]) -> bool] = &[
                $(|b| serde_json::from_slice::<$ty>(b).is_ok()),*
            ];
            let _ = parsers[n % parsers.len()](body);
        }
    };
}

bodies![
    operators::AddOperatorRequest,
    grants::AgentSelfGrantRequest,
    token::ApiCallAudit,
    providers::ConfigureProviderRequest,
    connect::ConnectSessionRequest,
    agents::CreateAgentRequest,
    admin::CreateAppRequest,
    admin::CreateDelegationRequest,
    grants::CreateGrantRequest,
    policies::CreateRuleRequest,
    admin::CreateSecretRequest,
    approvals::DecideApprovalRequest,
    grants::DelegateRequest,
    keys::DeriveKeyRequest,
    signin::IdentityRequest,
    admin::IdpRequest,
    grants::ListGrantsRequest,
    connect::ManagedConnectSessionRequest,
    grants::MintGrantRequest,
    admin::MintKeyRequest,
    signin::PollAuthSessionRequest,
    connect::PollRequest,
    proxy::ProxyCall,
    grants::RevokeGrantRequest,
    admin::RevokeRequest,
    admin::RotateAppKeyRequest,
    keys::RotateKeyRequest,
    admin::RotateSecretRequest,
    token::ScopeMismatchReport,
    admin::SecretHostsRequest,
    operators::SetOperatorPasswordRequest,
    signin::SignInRequest,
    token::TokenRequest,
    agents::UpdateAgentRequest,
    policies::UpdateRuleRequest,
    admin::VerifyAuditRequest,
    signin::VerifyTokenRequest,
    policies::WhatIfRequest,
];

fn check_text(value: &str) {
    for max in [100, 255, 1000] {
        if validate::bounded_text("f", value, max).is_ok() {
            assert!(!value.is_empty() && value.trim() == value);
            assert!(value.chars().count() <= max);
            assert!(!value.chars().any(char::is_control));
        }
    }
    let _ = validate::display_name("f", value);
    let _ = validate::label(Some(value));
    let _ = validate::header_name(value);
}

fn walk(value: &Value) {
    match value {
        Value::String(s) => check_text(s),
        Value::Number(n) => {
            if let Some(n) = n.as_i64() {
                let _ = validate::int_in_range("f", n, 0, i64::MAX);
                let _ = validate::int_in_range("f", n, 1, 1000);
            }
        }
        Value::Array(items) => {
            let texts: Vec<String> = items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
            if let Ok(nets) = validate::cidr_allowlist("f", &texts) {
                assert!(nets.iter().all(|n| n.prefix_len() > 0));
            }
            items.iter().for_each(walk);
        }
        Value::Object(map) => map.iter().for_each(|(k, v)| {
            check_text(k);
            walk(v);
        }),
        Value::Bool(_) | Value::Null => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    parse(usize::from(selector), body);
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        walk(&value);
    }
});
