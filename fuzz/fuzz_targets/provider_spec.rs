//! Provider spec documents (`alter_core::provider_specs::openapi::parse`, what an operator's
//! `PUT …/provider-specs/…` imports): JSON or YAML OpenAPI. Checked beyond "no panic": an
//! accepted document lists at most `MAX_OPERATIONS` operations, each with an id of at most
//! `MAX_OPERATION_ID_CHARS` characters, and its search text builds.
#![no_main]

use alter_core::provider_specs::openapi::{self, MAX_OPERATION_ID_CHARS, MAX_OPERATIONS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(document) = openapi::parse(data) else {
        return;
    };
    assert!(document.operations.len() <= MAX_OPERATIONS);
    for op in &document.operations {
        assert!(op.operation_id.chars().count() <= MAX_OPERATION_ID_CHARS);
    }
});
