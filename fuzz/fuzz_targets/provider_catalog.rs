//! Provider catalogue entries (`alter_upstream::catalog::parse`, the TOML the built-in
//! catalogue is written in). Checked beyond "no panic": every entry a document is accepted
//! with renders its URLs with its example placeholder values.
#![no_main]

use std::collections::BTreeMap;

use alter_upstream::catalog;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(providers) = catalog::parse(text) else {
        return;
    };
    for provider in &providers {
        let examples: BTreeMap<String, String> = provider
            .placeholders
            .iter()
            .map(|(name, p)| (name.clone(), p.example.clone()))
            .collect();
        if let Err(e) = provider.endpoints(&examples) {
            panic!("accepted entry {} does not render: {e}", provider.id);
        }
        let _ = provider.required_scopes();
    }
});
