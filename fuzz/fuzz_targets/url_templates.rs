//! The URL templates of the provider catalogue (`CatalogProvider::endpoints`): the operator's
//! placeholder values (`{tenant}`, `{shop}`…) filled into a built-in entry's URLs. The first
//! byte picks the entry (among those with placeholders), the rest gives the values, one a
//! line, in placeholder order; a line `name=value` past them names a placeholder of its own.
//! Checked beyond "no panic": whatever is accepted renders every URL as https without
//! userinfo or fragment, on the same host as the example values when the template's host has
//! no placeholder (and under the template's fixed host suffix when it has one), with as many
//! path segments and the same port.
#![no_main]

use std::collections::BTreeMap;

use alter_upstream::catalog::{self, CatalogProvider, Endpoints};
use libfuzzer_sys::fuzz_target;
use url::Url;

fn urls(e: &Endpoints) -> Vec<Option<&Url>> {
    vec![
        Some(&e.authorize_url),
        Some(&e.token_url),
        Some(&e.refresh_url),
        e.revoke_url.as_ref(),
        e.account_url.as_ref(),
        Some(&e.api_base_url),
    ]
}

fn templates(p: &CatalogProvider) -> Vec<&str> {
    let account = match &p.account {
        alter_core::providers::AccountSource::Userinfo { url, .. }
        | alter_core::providers::AccountSource::Graphql { url, .. } => url.as_str(),
        _ => "",
    };
    vec![
        &p.authorize_url,
        &p.token_url,
        p.refresh_url.as_deref().unwrap_or(&p.token_url),
        p.revoke_url.as_deref().unwrap_or(""),
        account,
        &p.api_base_url,
    ]
}

fuzz_target!(|data: &[u8]| {
    let with_placeholders: Vec<&CatalogProvider> = catalog::catalog()
        .iter()
        .filter(|p| !p.placeholders.is_empty())
        .collect();
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Some(provider) = with_placeholders.get(usize::from(pick) % with_placeholders.len().max(1))
    else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let mut lines = text.split('\n');
    let mut values = BTreeMap::new();
    for name in provider.placeholders.keys() {
        if let Some(line) = lines.next().filter(|l| !l.is_empty()) {
            values.insert(name.clone(), line.to_owned());
        }
    }
    for line in lines {
        if let Some((name, value)) = line.split_once('=') {
            values.insert(name.to_owned(), value.to_owned());
        }
    }
    let Ok(rendered) = provider.endpoints(&values) else {
        return;
    };
    let examples: BTreeMap<String, String> = provider
        .placeholders
        .iter()
        .map(|(name, p)| (name.clone(), p.example.clone()))
        .collect();
    let Ok(reference) = provider.endpoints(&examples) else {
        panic!("the examples of {} do not render", provider.id);
    };
    for ((url, example), template) in urls(&rendered)
        .into_iter()
        .zip(urls(&reference))
        .zip(templates(provider))
    {
        let (Some(url), Some(example)) = (url, example) else {
            assert_eq!(url.is_none(), example.is_none());
            continue;
        };
        assert_eq!(url.scheme(), "https", "{url}");
        assert!(
            url.username().is_empty() && url.password().is_none(),
            "{url}"
        );
        assert!(url.fragment().is_none(), "{url}");
        assert_eq!(url.port(), example.port(), "{url}");
        let segments = |u: &Url| u.path_segments().map(Iterator::count);
        assert_eq!(segments(url), segments(example), "{url} vs {example}");
        let authority = template
            .strip_prefix("https://")
            .unwrap_or(template)
            .split('/')
            .next()
            .unwrap_or_default();
        match authority.rsplit_once('}') {
            None => assert_eq!(url.host_str(), example.host_str(), "{url}"),
            Some((_, suffix)) => {
                let host = url.host_str().unwrap_or_default();
                assert!(
                    host.ends_with(&suffix.to_ascii_lowercase()),
                    "{url} escapes {template}"
                );
            }
        }
    }
});
