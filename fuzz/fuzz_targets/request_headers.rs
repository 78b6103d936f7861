//! The attenuation and identity headers of a signed request, as admission reads them:
//! `X-Alter-Request-Rule` (`RequestRule::from_header`) and `X-Alter-Context`
//! (`caller::decode_context`). The first byte picks the form: the input as the header's raw
//! text, or the input base64url-encoded (so the fuzzer works on the JSON inside). Checked
//! beyond "no panic": a rule header over the length limit is refused; an accepted rule header
//! holds exactly `rule_type` and `rule_body`; an accepted context is within its bounds.
#![no_main]

use alter_core::caller::decode_context;
use alter_core::request_rule::{MAX_HEADER_LEN, RequestRule};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let header = if mode & 1 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        URL_SAFE_NO_PAD.encode(rest)
    };
    match RequestRule::from_header(&header) {
        Ok(rule) => {
            assert!(header.len() <= MAX_HEADER_LEN);
            let json = URL_SAFE_NO_PAD
                .decode(header.trim_end_matches('='))
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
            let object = json.as_ref().and_then(Value::as_object);
            let Some(object) = object else {
                panic!("accepted a rule that is not a JSON object: {header:?}");
            };
            assert_eq!(object.len(), 2);
            let (Some(Value::String(kind)), Some(Value::Object(body))) =
                (object.get("rule_type"), object.get("rule_body"))
            else {
                panic!("accepted a rule without rule_type and rule_body: {header:?}");
            };
            assert_eq!(rule, RequestRule::parse(kind, body.clone()));
        }
        Err(_) => {}
    }
    if let Ok(context) = decode_context(&String::from_utf8_lossy(rest)) {
        assert!(context.len() <= 20);
        assert!(
            context
                .iter()
                .all(|(k, v)| !k.is_empty() && k.len() <= 64 && v.len() <= 512)
        );
    }
});
