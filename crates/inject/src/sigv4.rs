//! AWS Signature Version 4 signing of provider calls made with a managed AWS credential
//! (protocol part 1 §5.4 step 3), with the official client's rules (`alter_sdk._aws_sig_v4`):
//!
//! * The region and service come from the URL host when it is a recognised AWS endpoint
//!   ([`detect_region_and_service`]); the credential's stored `region` / `service` are used only
//!   when detection fails.
//! * Exactly `host`, `x-amz-content-sha256`, `x-amz-date` and, with a session token,
//!   `x-amz-security-token` are signed. Other headers the caller set are sent unsigned; a
//!   caller `Host` header is the host value that gets signed.
//! * The payload hash is the SHA-256 of the exact body bytes (of nothing when there is none).
//! * The path is signed as sent for S3 and URI-encoded once more for every other service; the
//!   query is decoded, re-encoded (RFC 3986 unreserved characters kept, `+` as `%2B`) and sorted.
//!
//! Everything here is pure: no clock (the caller passes the time) and no network.
//!
//! ```
//! use alter_inject::sigv4::{sign, AwsCredentials};
//!
//! let url = url::Url::parse("https://s3.eu-west-1.amazonaws.com/my-bucket/key").unwrap();
//! let credentials = AwsCredentials {
//!     access_key_id: "AKIDEXAMPLE".into(),
//!     secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
//!     session_token: None,
//!     region: None,
//!     service: None,
//! };
//! let added = sign("GET", &url, &[], b"", &credentials, std::time::SystemTime::now()).unwrap();
//! assert_eq!(added[0].0, "Authorization");
//! assert!(added[0].1.contains("/eu-west-1/s3/aws4_request"));
//! ```

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use alter_proto::signing::{content_sha256, encode_path_segment, hmac_sha256, percent_decode};

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// An AWS credential as a managed secret stores it: the access key id is the grant's access
/// token, the rest comes from its `additional_credentials` (`secret_key`, `session_token`,
/// `region`, `service`).
#[derive(Clone)]
pub struct AwsCredentials {
    /// Access key id (`AKIA…` / `ASIA…`).
    pub access_key_id: String,
    /// Secret access key. Never shown by `Debug` nor carried by an error.
    pub secret_access_key: String,
    /// Session token of temporary credentials; an empty one counts as none.
    pub session_token: Option<String>,
    /// Region used when the host is not a recognised AWS endpoint.
    pub region: Option<String>,
    /// Service used when the host is not a recognised AWS endpoint.
    pub service: Option<String>,
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("region", &self.region)
            .field("service", &self.service)
            .finish()
    }
}

/// Why a request could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SigV4Error {
    /// The host is not a recognised AWS endpoint and the credential stores no region.
    #[error(
        "cannot determine the AWS region from host '{host}'; store a region in the credential's \
         additional_credentials"
    )]
    MissingRegion {
        /// Host of the request URL.
        host: String,
    },
    /// The host is not a recognised AWS endpoint and the credential stores no service.
    #[error(
        "cannot determine the AWS service from host '{host}'; store a service in the credential's \
         additional_credentials"
    )]
    MissingService {
        /// Host of the request URL.
        host: String,
    },
    /// The signing time is outside the years 1 to 9999.
    #[error("the signing time is outside the years 1 to 9999")]
    TimeOutOfRange,
}

/// Signs a request and returns the headers to add to it, in this order: `Authorization`,
/// `x-amz-date`, `x-amz-content-sha256` and, with a non-empty session token,
/// `x-amz-security-token`. They replace same-named headers of the request.
///
/// `url` is the final URL, query parameters included, as it will be sent; `headers` are the
/// caller's headers (only a `Host` among them matters); `body` the exact bytes sent.
pub fn sign(
    method: &str,
    url: &url::Url,
    headers: &[(String, String)],
    body: &[u8],
    credentials: &AwsCredentials,
    now: SystemTime,
) -> Result<Vec<(String, String)>, SigV4Error> {
    let hostname = url_hostname(url);
    let (region, service) = detect_region_and_service(&hostname).unwrap_or_else(|| {
        (
            credentials.region.clone().unwrap_or_default(),
            credentials.service.clone().unwrap_or_default(),
        )
    });
    if region.is_empty() {
        return Err(SigV4Error::MissingRegion { host: hostname });
    }
    if service.is_empty() {
        return Err(SigV4Error::MissingService { host: hostname });
    }
    let (amz_date, date_stamp) = amz_timestamps(now)?;
    let payload_hash = content_sha256(body);

    let host = match headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("host"))
    {
        Some((_, value)) => value.clone(),
        None => match url.port() {
            Some(port) if port != 0 && port != 80 && port != 443 => format!("{hostname}:{port}"),
            _ => hostname.clone(),
        },
    };
    let session_token = credentials
        .session_token
        .as_deref()
        .filter(|token| !token.is_empty());
    let mut signed = vec![
        ("host", host.as_str()),
        ("x-amz-content-sha256", payload_hash.as_str()),
        ("x-amz-date", amz_date.as_str()),
    ];
    if let Some(token) = session_token {
        signed.push(("x-amz-security-token", token));
    }

    let (request, signed_headers) = canonical_request(
        method,
        &canonical_uri(signed_path(url), &service),
        &canonical_query(url.query().unwrap_or("")),
        &signed,
        &payload_hash,
    );
    let scope = format!("{date_stamp}/{region}/{service}/aws4_request");
    let key = signing_key(
        &credentials.secret_access_key,
        &date_stamp,
        &region,
        &service,
    );
    let signature = hex::encode(hmac_sha256(
        &key,
        string_to_sign(&amz_date, &scope, &request).as_bytes(),
    ));

    let mut added = vec![
        (
            "Authorization".to_owned(),
            format!(
                "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_headers}, \
                 Signature={signature}",
                credentials.access_key_id
            ),
        ),
        ("x-amz-date".to_owned(), amz_date),
        ("x-amz-content-sha256".to_owned(), payload_hash),
    ];
    if let Some(token) = session_token {
        added.push(("x-amz-security-token".to_owned(), token.to_owned()));
    }
    Ok(added)
}

/// The region and service to sign for when `host` is a recognised AWS endpoint, as
/// `(region, service)`; `None` for any other host (the stored values then apply).
///
/// Shapes, tried in this order (host compared in lower case, `-fips` dropped from the service):
/// `service.[dualstack.]region.amazonaws.com[.cn]`, `service.region.api.aws`,
/// `bucket.s3[-fips].[dualstack.]region.amazonaws.com[.cn]`,
/// `[bucket.]s3-region.amazonaws.com`, `[bucket.]s3[-external-1].amazonaws.com` (us-east-1),
/// `vpce-….service.region.vpce.amazonaws.com`, the region-less global endpoints of an allowlist
/// per partition, and dotted prefixes such as `streams.dynamodb.region.amazonaws.com` known to
/// the signing-name table. Host labels whose signing name differs (`bedrock-runtime`, `email`,
/// …) are mapped to it.
pub fn detect_region_and_service(host: &str) -> Option<(String, String)> {
    let lowered = host.to_lowercase();
    // The official client's patterns end in `$`, which also matches before one final newline.
    let host = lowered.strip_suffix('\n').unwrap_or(&lowered);
    let found = |service: &str, region: &str| Some((region.to_owned(), service.to_owned()));
    let amazonaws = split_amazonaws(host);
    let labels = amazonaws.as_ref().map(|(labels, _)| labels.as_slice());

    // service[-fips].[dualstack.]region.amazonaws.com[.cn]
    if let Some([service, region] | [service, "dualstack", region]) = labels
        && is_service_label(service)
        && is_region(region)
    {
        return found(signing_service(strip_fips(service)), region);
    }
    // service[-fips].region.api.aws
    if let Some(prefix) = host.strip_suffix(".api.aws")
        && let [service, region] = split_labels(prefix).as_slice()
        && is_service_label(service)
        && is_region(region)
    {
        return found(signing_service(strip_fips(service)), region);
    }
    // bucket.s3[-fips].[dualstack.]region.amazonaws.com[.cn]
    if let Some(
        [bucket, "s3" | "s3-fips", region] | [bucket, "s3" | "s3-fips", "dualstack", region],
    ) = labels
        && !bucket.is_empty()
        && is_region(region)
    {
        return found("s3", region);
    }
    // [bucket.]s3-region.amazonaws.com (legacy), [bucket.]s3[-external-1].amazonaws.com (global)
    if let Some(prefix) = host.strip_suffix(".amazonaws.com") {
        let last = match split_labels(prefix).as_slice() {
            [last] => Some(*last),
            [bucket, last] if !bucket.is_empty() => Some(*last),
            _ => None,
        };
        if let Some(region) = last
            .and_then(|last| last.strip_prefix("s3-"))
            .filter(|region| is_region(region))
        {
            return found("s3", region);
        }
        if let Some("s3" | "s3-external-1") = last {
            return found("s3", "us-east-1");
        }
    }
    // vpce-id.service.region.vpce.amazonaws.com (PrivateLink)
    if let Some(prefix) = host.strip_suffix(".vpce.amazonaws.com")
        && let [endpoint, service, region] = split_labels(prefix).as_slice()
        && endpoint.strip_prefix("vpce-").is_some_and(is_service_label)
        && is_service_label(service)
        && is_region(region)
    {
        return found(signing_service(strip_fips(service)), region);
    }
    // [global.]service[.us-gov].amazonaws.com[.cn], for the partition's global services only
    if let Some((labels, china)) = &amazonaws {
        let global = match labels.as_slice() {
            ["global", service] | [service] => Some((*service, false)),
            ["global", service, "us-gov"] | [service, "us-gov"] => Some((*service, true)),
            _ => None,
        };
        if let Some((label, gov)) = global
            && is_service_label(label)
        {
            let service = strip_fips(label);
            let (allowlist, region) = if gov {
                (GLOBAL_SERVICES_GOV, "us-gov-west-1")
            } else if *china {
                (GLOBAL_SERVICES_CN, "cn-northwest-1")
            } else {
                (GLOBAL_SERVICES_AWS, "us-east-1")
            };
            if allowlist.contains(&service) {
                return found(signing_service(service), region);
            }
        }
    }
    // prefix.region.[dualstack.]amazonaws.com[.cn] with a dotted prefix of the signing table;
    // the official client's pattern puts `dualstack` after the region here.
    let (prefix, region) = match labels? {
        [prefix @ .., region] if prefix.len() >= 2 && is_region(region) => (prefix, *region),
        [prefix @ .., region, "dualstack"] if prefix.len() >= 2 && is_region(region) => {
            (prefix, *region)
        }
        _ => return None,
    };
    if !prefix.iter().all(|label| is_service_label(label)) {
        return None;
    }
    let service = signing_service_override(strip_fips(&prefix.join(".")))?;
    found(service, region)
}

/// Services whose endpoint carries no region, per partition, and sign a fixed region.
const GLOBAL_SERVICES_AWS: &[&str] = &[
    "budgets",
    "cloudfront",
    "health",
    "iam",
    "importexport",
    "route53",
    "savingsplans",
    "sts",
    "waf",
];
const GLOBAL_SERVICES_GOV: &[&str] = &["health", "iam", "route53"];
const GLOBAL_SERVICES_CN: &[&str] = &["budgets", "health", "route53"];

/// Host label(s) whose signing (credential-scope) name differs, as in the official client.
const SIGNING_SERVICE_OVERRIDES: &[(&str, &str)] = &[
    ("agreement-marketplace", "aws-marketplace"),
    ("api.detective", "detective"),
    ("api.ecr", "ecr"),
    ("api.ecr-public", "ecr-public"),
    ("api.iotdeviceadvisor", "iotdeviceadvisor"),
    ("api.iottwinmaker", "iottwinmaker"),
    ("api.iotwireless", "iotwireless"),
    ("api.mediatailor", "mediatailor"),
    ("api.pricing", "pricing"),
    ("api.sagemaker", "sagemaker"),
    ("api.tunneling.iot", "IoTSecuredTunneling"),
    ("appconfigdata", "appconfig"),
    ("appstream2", "appstream"),
    ("bedrock-runtime", "bedrock"),
    ("catalog.marketplace", "aws-marketplace"),
    ("cloudhsmv2", "cloudhsm"),
    ("cn.transcribe", "transcribe"),
    ("contact-lens", "connect"),
    ("data-ats.iot", "iotdata"),
    ("data.ats.iot", "iotdata"),
    ("data.iot", "iotdata"),
    ("data.iotevents", "ioteventsdata"),
    ("data.iottwinmaker", "iottwinmaker"),
    ("data.jobs.iot", "iot-jobs-data"),
    ("data.mediastore", "mediastore"),
    ("edge.sagemaker", "sagemaker"),
    ("email", "ses"),
    ("entitlement-marketplace", "aws-marketplace"),
    ("entitlement.marketplace", "aws-marketplace"),
    ("eventsv2", "events"),
    ("forecastquery", "forecast"),
    ("greengrass-ats.iot", "greengrass"),
    ("identity-chime", "chime"),
    ("importexport", "IngestionService"),
    ("ingest.timestream", "timestream"),
    ("ivsrealtime", "ivs"),
    ("media-pipelines-chime", "chime"),
    ("meetings-chime", "chime"),
    ("memory-db", "memorydb"),
    ("messaging-chime", "chime"),
    ("metering.marketplace", "aws-marketplace"),
    ("metrics.sagemaker", "sagemaker"),
    ("models-v2-lex", "lex"),
    ("models.lex", "lex"),
    ("oidc", "sso-oauth"),
    ("participant.connect", "execute-api"),
    ("pinpoint", "mobiletargeting"),
    ("portal.sso", "awsssoportal"),
    ("query.timestream", "timestream"),
    ("runtime-v2-lex", "lex"),
    ("runtime.lex", "lex"),
    ("runtime.sagemaker", "sagemaker"),
    ("s3-control", "s3"),
    ("servicecatalog-appregistry", "servicecatalog"),
    ("streams.dynamodb", "dynamodb"),
    ("verification.signer", "signer"),
    ("voice-chime", "chime"),
];

fn signing_service_override(label: &str) -> Option<&'static str> {
    SIGNING_SERVICE_OVERRIDES
        .iter()
        .find(|(host_label, _)| *host_label == label)
        .map(|(_, signing)| *signing)
}

fn signing_service(label: &str) -> &str {
    signing_service_override(label).unwrap_or(label)
}

fn strip_fips(service: &str) -> &str {
    service.strip_suffix("-fips").unwrap_or(service)
}

/// The labels before `.amazonaws.com` or `.amazonaws.com.cn`, and whether it was the latter.
fn split_amazonaws(host: &str) -> Option<(Vec<&str>, bool)> {
    if let Some(prefix) = host.strip_suffix(".amazonaws.com.cn") {
        Some((split_labels(prefix), true))
    } else {
        host.strip_suffix(".amazonaws.com")
            .map(|prefix| (split_labels(prefix), false))
    }
}

fn split_labels(prefix: &str) -> Vec<&str> {
    prefix.split('.').collect()
}

/// `[a-z0-9-]+`
fn is_service_label(label: &str) -> bool {
    !label.is_empty()
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// `[a-z]{2}(-[a-z0-9]+)+-[0-9]+`, e.g. `us-east-1`, `us-gov-west-1`, `cn-north-1`.
fn is_region(label: &str) -> bool {
    let bytes = label.as_bytes();
    if bytes.len() < 3 || !bytes[..2].iter().all(u8::is_ascii_lowercase) || bytes[2] != b'-' {
        return false;
    }
    let parts: Vec<&str> = label[3..].split('-').collect();
    let Some((last, middle)) = parts.split_last() else {
        return false;
    };
    !middle.is_empty()
        && middle.iter().all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && !last.is_empty()
        && last.bytes().all(|b| b.is_ascii_digit())
}

/// The host as the official client reads it: lower case, an IPv6 literal without brackets.
fn url_hostname(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or("");
    let host = host
        .strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .unwrap_or(host);
    host.to_lowercase()
}

/// Schemes whose last path segment the official client's URL parser splits `;params` from.
const SCHEMES_WITH_PARAMS: &[&str] = &[
    "", "ftp", "hdl", "prospero", "http", "imap", "https", "shttp", "rtsp", "rtspu", "sip", "sips",
    "mms", "sftp", "tel",
];

/// The path the official client signs: the URL's path less any `;params` of its last segment
/// (its URL parser sets those apart from the path). The request still sends them, so such a
/// path gets a signature AWS rejects, in the official client and here alike.
fn signed_path(url: &url::Url) -> &str {
    let path = url.path();
    if !SCHEMES_WITH_PARAMS.contains(&url.scheme()) {
        return path;
    }
    let last_segment = path.rfind('/').unwrap_or(0);
    match path[last_segment..].find(';') {
        Some(at) => &path[..last_segment + at],
        None => path,
    }
}

/// The canonical URI: the path as sent for S3, each segment encoded once more otherwise.
fn canonical_uri(path: &str, service: &str) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    if service == "s3" {
        return path;
    }
    path.split('/')
        .map(encode_path_segment)
        .collect::<Vec<_>>()
        .join("/")
}

/// The canonical query: each `name[=value]` pair percent-decoded, re-encoded, then sorted by
/// encoded name and value. `+` is a literal plus (it becomes `%2B`), not a space.
fn canonical_query(query: &str) -> String {
    if query.is_empty() {
        return String::new();
    }
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .map(|part| {
            let (name, value) = part.split_once('=').unwrap_or((part, ""));
            (reencode(name), reencode(value))
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-decodes a query component (a `%` not followed by two hex digits stays as it is),
/// then encodes every byte but the RFC 3986 unreserved ones, with upper-case hex.
fn reencode(component: &str) -> String {
    encode_path_segment(&percent_decode(component))
}

/// Whitespace as the official client's value trimming sees it (Unicode white space plus the
/// ASCII separators U+001C–U+001F).
fn is_trim_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Trims a header value and turns each run of white space inside it into one space.
fn collapse_whitespace(value: &str) -> String {
    value
        .split(is_trim_space)
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The canonical request and the signed-headers list. `headers` have lower-case names, sorted.
fn canonical_request(
    method: &str,
    uri: &str,
    query: &str,
    headers: &[(&str, &str)],
    payload_hash: &str,
) -> (String, String) {
    let mut canonical_headers = String::new();
    for (name, value) in headers {
        canonical_headers.push_str(name);
        canonical_headers.push(':');
        canonical_headers.push_str(&collapse_whitespace(value));
        canonical_headers.push('\n');
    }
    let signed_headers = headers
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(";");
    let request = format!(
        "{}\n{uri}\n{query}\n{canonical_headers}\n{signed_headers}\n{payload_hash}",
        method.to_uppercase()
    );
    (request, signed_headers)
}

fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        content_sha256(canonical_request.as_bytes())
    )
}

fn signing_key(secret: &str, date_stamp: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac_sha256(format!("AWS4{secret}").as_bytes(), date_stamp.as_bytes());
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, service.as_bytes());
    hmac_sha256(&k_service, b"aws4_request")
}

/// `YYYYMMDDTHHMMSSZ` and `YYYYMMDD` of `now`, in UTC (sub-second part dropped).
fn amz_timestamps(now: SystemTime) -> Result<(String, String), SigV4Error> {
    let seconds = match now.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).map_err(|_| SigV4Error::TimeOutOfRange)?,
        Err(before) => {
            let before = before.duration();
            let whole = i64::try_from(before.as_secs()).map_err(|_| SigV4Error::TimeOutOfRange)?;
            -whole - i64::from(before.subsec_nanos() > 0)
        }
    };
    let at = time::OffsetDateTime::from_unix_timestamp(seconds)
        .map_err(|_| SigV4Error::TimeOutOfRange)?;
    if !(1..=9999).contains(&at.year()) {
        return Err(SigV4Error::TimeOutOfRange);
    }
    let date = format!("{:04}{:02}{:02}", at.year(), u8::from(at.month()), at.day());
    let stamp = format!(
        "{date}T{:02}{:02}{:02}Z",
        at.hour(),
        at.minute(),
        at.second()
    );
    Ok((stamp, date))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const ACCESS_KEY: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const TOKEN: &str = "FwoGZXIvYXdzEXAMPLE//////////wEaDH+token==";
    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    /// 2024-05-06T07:08:09Z, the instant of every vector below.
    const WHEN: u64 = 1_714_979_289;

    fn at(unix_seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(unix_seconds)
    }

    fn credentials(
        session_token: Option<&str>,
        region: Option<&str>,
        service: Option<&str>,
    ) -> AwsCredentials {
        AwsCredentials {
            access_key_id: ACCESS_KEY.to_owned(),
            secret_access_key: SECRET.to_owned(),
            session_token: session_token.map(str::to_owned),
            region: region.map(str::to_owned),
            service: service.map(str::to_owned),
        }
    }

    fn owned(headers: &[(&str, &str)]) -> Vec<(String, String)> {
        headers
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    struct Vector {
        name: &'static str,
        method: &'static str,
        url: &'static str,
        headers: &'static [(&'static str, &'static str)],
        body: &'static [u8],
        session_token: Option<&'static str>,
        region: Option<&'static str>,
        service: Option<&'static str>,
        authorization: &'static str,
        content_sha256: &'static str,
        /// Whether botocore's `SigV4Auth` / `S3SigV4Auth`, given the expected region and service
        /// and the headers the official client signs, produces the same Authorization.
        botocore_agrees: bool,
    }

    /// Produced by `tests/fixtures/sigv4_vectors.py`: each request signed at `WHEN` by the
    /// official client (`alter_sdk._aws_sig_v4.sign_aws_request`, alter-sdk 0.29.0) and by
    /// botocore 1.44.8 with the region and service written in that script, not the official
    /// client's detection. The values are the official client's. Where botocore disagrees
    /// (`botocore_agrees: false`) the official client wins; each such row says why.
    const VECTORS: &[Vector] = &[
        Vector {
            name: "query_encoding",
            method: "GET",
            url: "https://sqs.us-east-1.amazonaws.com/?b=hello%20world&a=x/y~z&a=%E2%9C%93&%C3%A9=1&plus=1+2&flag&z=&q=%c3%a9&t=%7E&a=0",
            headers: &[],
            body: b"",
            session_token: None,
            region: None,
            service: None,
            authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240506/us-east-1/sqs/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=48ef0ca0babe3673e61711fbde09f72c9280bbbad60e170d35f9e1fe3c132ee4",
            content_sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            botocore_agrees: true,
        },
        Vector {
            name: "post_json",
            method: "POST",
            url: "https://lambda.eu-west-1.amazonaws.com/2015-03-31/functions/my-fn/invocations",
            headers: &[("Content-Type", "application/json")],
            body: b"{\"key\": \"value\", \"n\": 1}",
            session_token: None,
            region: None,
            service: None,
            authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240506/eu-west-1/lambda/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=913227f4f4804096dea8dfe2b0f49726f0e51cddd70c80898e9b428454bb97e9",
            content_sha256: "d7f797dc76b3e79dc6f39b0d6744f05e000d90f357a8a81a7b90bf344b0f177e",
            botocore_agrees: true,
        },
        Vector {
            name: "non_s3_path_double_encoded",
            method: "GET",
            url: "https://lambda.us-east-1.amazonaws.com/2015-03-31/functions/my%20fn:%24LATEST/configuration",
            headers: &[],
            body: b"",
            session_token: None,
            region: None,
            service: None,
            authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240506/us-east-1/lambda/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=67f752f646035986ec93456ec3742c66f67066d29eae56c2ef313b9777462610",
            content_sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            botocore_agrees: true,
        },
        Vector {
            name: "s3_path_not_double_encoded",
            method: "PUT",
            url: "https://s3.us-west-2.amazonaws.com/my-bucket/photos/2024%20summer/caf%C3%A9%2Bbar~(1)*.jpg",
            headers: &[],
            body: b"hello",
            session_token: None,
            region: None,
            service: None,
            authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240506/us-west-2/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=fad65c5e411f2ddd219b8916c03808ec33be914d3d76fc478cee9a95bc2411f3",
            content_sha256: "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
            botocore_agrees: true,
        },
        Vector {
            name: "session_token_sts_global",
            method: "GET",
            url: "https://sts.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15",
            headers: &[],
            body: b"",
            session_token: Some(TOKEN),
            region: Some("eu-west-3"),
            service: Some("iam"),
            authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240506/us-east-1/sts/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token, Signature=0c884a773f4c5828d4ed72ad751c2964302dd0d38ec32bd273753491eb6e4447",
            content_sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            botocore_agrees: true,
        },
        Vector {
            name: "empty_body_delete_virtual_hosted",
            method: "DELETE",
            url: "https://my-bucket.s3.eu-central-1.amazonaws.com/key.txt",
            headers: &[],
            body: b"",
            session_token: None,
            region: None,
            service: None,
            authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240506/eu-central-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=a2e502e19fc1d073b4daf835c2bcc15da3393fb90e094080f9955c8980b01975",
            content_sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            botocore_agrees: true,
        },
        // botocore would sign every caller header (content-type;host;…;x-custom): the official
        // client signs none of them, and neither do we.
        Vector {
            name: "caller_header_unsigned",
            method: "GET",
            url: "https://monitoring.us-east-2.amazonaws.com/?Action=ListMetrics&Version=2010-08-01",
            headers: &[
                ("X-Custom", "  some   value "),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            body: b"",
            session_token: None,
            region: None,
            service: None,
            authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240506/us-east-2/monitoring/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=aea9dcd28dab77adc6a9a65deb62d0533020c8c0ca9c982f1e74ebf6147b3a0c",
            content_sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            botocore_agrees: true,
        },
        Vector {
            name: "caller_host_header",
            method: "GET",
            url: "https://kms.us-west-2.amazonaws.com/",
            headers: &[("host", "  kms.us-west-2.amazonaws.com  ")],
            body: b"",
            session_token: None,
            region: None,
            service: None,
            authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240506/us-west-2/kms/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=7cbce5e489b72acc8b84311d12fd60be799fec51b478b728f1348a011c56a258",
            content_sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            botocore_agrees: true,
        },
        Vector {
            name: "s3_dualstack",
            method: "GET",
            url: "https://s3.dualstack.ap-southeast-2.amazonaws.com/my-bucket?list-type=2&prefix=a%2Fb",
            headers: &[],
            body: b"",
            session_token: None,
            region: None,
            service: None,
            authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240506/ap-southeast-2/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=d4248e4b9d2ccfe37da2cf2370d58933c135a191e41a63840f7c2846beceb3b3",
            content_sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            botocore_agrees: true,
        },
        Vector {
            name: "api_aws_dualstack",
            method: "GET",
            url: "https://ec2.us-west-2.api.aws/?Action=DescribeRegions&Version=2016-11-15",
            headers: &[],
            body: b"",
            session_token: None,
            region: None,
            service: None,
            authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240506/us-west-2/ec2/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=b8c1058a76095b8a57fe04458fba4b4d460ddd0cb9e69290f380bf330c469d99",
            content_sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            botocore_agrees: true,
        },
        Vector {
            name: "s3_legacy_dash",
            method: "GET",
            url: "https://s3-us-west-1.amazonaws.com/bucket/key",
            headers: &[],
            body: b"",
            session_token: None,
            region: None,
            service: None,
            authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240506/us-west-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=ec93dac09858278b62b7990ee80656e090083e52d0a09fd3a893476592a69408",
            content_sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            botocore_agrees: true,
        },
        Vector {
            name: "s3_legacy_dash_virtual_hosted",
            method: "HEAD",
            url: "https://bucket.s3-eu-west-1.amazonaws.com/key",
            headers: &[],
            body: b"",
            session_token: None,
            region: None,
            service: None,
            authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240506/eu-west-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=38b494456c9fd7a3de9906c73211b27b93864243358e27e1f738a96b211896f3",
            content_sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            botocore_agrees: true,
        },
        Vector {
            name: "s3_global",
            method: "GET",
            url: "https://s3.amazonaws.com/",
            headers: &[],
            body: b"",
            session_token: None,
            region: Some("eu-west-3"),
            service: Some("s3"),
            authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240506/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=444ca5a23ddc856d1d6df8e543f58330909dd22c093f72d5fc3f6f14620e6209",
            content_sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            botocore_agrees: true,
        },
        Vector {
            name: "bedrock_runtime_signs_bedrock",
            method: "POST",
            url: "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-v2/invoke",
            headers: &[],
            body: b"{\"prompt\":\"hi\"}",
            session_token: Some(TOKEN),
            region: None,
            service: None,
            authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240506/us-east-1/bedrock/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token, Signature=ddd22f76a1fc5c6cfef0fcc0a4b6242e1f18618c414dce9ded158459342a9c57",
            content_sha256: "14479f4e87d340fe0ca0d522d87a5b3a028ebb1af24fbb8d3ef4553044fc6db6",
            botocore_agrees: true,
        },
        Vector {
            name: "fips_dotted_streams",
            method: "POST",
            url: "https://streams.dynamodb.us-east-1.amazonaws.com/",
            headers: &[],
            body: b"{}",
            session_token: None,
            region: None,
            service: None,
            authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240506/us-east-1/dynamodb/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=7e82923c5b074c74073ba7996b7e93f9a41b497506a6e7b5c61fc9e663d117e2",
            content_sha256: "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
            botocore_agrees: true,
        },
        Vector {
            name: "non_aws_host_stored_values",
            method: "POST",
            url: "http://localhost:4566/000000000000/my-queue",
            headers: &[],
            body: b"Action=SendMessage&MessageBody=hi",
            session_token: None,
            region: Some("us-east-1"),
            service: Some("sqs"),
            authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240506/us-east-1/sqs/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=f9a7886c92cc9ee9e74bd62d3bb127b8cc08eabbaa75429199cc64ea7f9e2f86",
            content_sha256: "a8b0b22b91844aed096e46a61ed0951346cc36b6e219d6e51cfbdad65c496981",
            botocore_agrees: true,
        },
        Vector {
            name: "api_gateway_stored_values",
            method: "GET",
            url: "https://abc123.execute-api.eu-north-1.amazonaws.com/prod/items",
            headers: &[],
            body: b"",
            session_token: None,
            region: Some("eu-north-1"),
            service: Some("execute-api"),
            authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240506/eu-north-1/execute-api/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=d89433e1545b974fac07a76625f04cc8e3f637ae8ba2b9643a2747d8819b51fa",
            content_sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            botocore_agrees: true,
        },
        Vector {
            name: "test_suite_host_stored_values",
            method: "GET",
            url: "https://example.amazonaws.com/",
            headers: &[],
            body: b"",
            session_token: None,
            region: Some("us-east-1"),
            service: Some("service"),
            authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240506/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=5160af18fad17795e5da0589278c091d5e95b3af5be732cf00f3f29b591c61b2",
            content_sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            botocore_agrees: true,
        },
        // DIFFERS from botocore, official client wins: its URL parser sets `;b` apart from the
        // last path segment, so it signs `/dir/a` while `/dir/a;b` is sent (AWS would refuse
        // this signature; botocore signs `/dir/a;b`).
        Vector {
            name: "s3_semicolon_last_segment",
            method: "GET",
            url: "https://my-bucket.s3.us-east-1.amazonaws.com/dir/a;b",
            headers: &[],
            body: b"",
            session_token: None,
            region: None,
            service: None,
            authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240506/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=a1f8a0c2551e2ac5d75a7caf115d87cb36d79683c567e5c1fd1fc64fc1493187",
            content_sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            botocore_agrees: false,
        },
        // DIFFERS from botocore, official client wins: botocore collapses `//` in non-S3 paths,
        // the official client signs the path as sent.
        Vector {
            name: "non_s3_double_slash",
            method: "GET",
            url: "https://lambda.us-east-1.amazonaws.com/2015-03-31//functions/",
            headers: &[],
            body: b"",
            session_token: None,
            region: None,
            service: None,
            authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240506/us-east-1/lambda/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=7475dbf7cc732fa6274a1fa07eb2f8b6fc965b90a5016b2d9ee7dc3f161b71a8",
            content_sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            botocore_agrees: false,
        },
        // DIFFERS from botocore, official client wins: it signs host `::1:4566`, without the
        // brackets botocore keeps (`[::1]:4566`).
        Vector {
            name: "ipv6_literal_port",
            method: "GET",
            url: "http://[::1]:4566/",
            headers: &[],
            body: b"",
            session_token: None,
            region: Some("us-east-1"),
            service: Some("s3"),
            authorization: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240506/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=1ac86e01489c0c763b1ebe087281c974e0b0deb274a5e3c0c1b2a3ac2e53cd45",
            content_sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            botocore_agrees: false,
        },
    ];

    #[test]
    fn vectors_match_the_official_client() {
        for v in VECTORS {
            let url = url::Url::parse(v.url).unwrap();
            // The scripts signed the URL as reqwest sends it.
            assert_eq!(
                url.as_str(),
                v.url,
                "{}: URL is not in reqwest's form",
                v.name
            );
            let creds = credentials(v.session_token, v.region, v.service);
            let added = sign(v.method, &url, &owned(v.headers), v.body, &creds, at(WHEN)).unwrap();
            let mut expected = vec![
                ("Authorization".to_owned(), v.authorization.to_owned()),
                ("x-amz-date".to_owned(), "20240506T070809Z".to_owned()),
                (
                    "x-amz-content-sha256".to_owned(),
                    v.content_sha256.to_owned(),
                ),
            ];
            if let Some(token) = v.session_token {
                expected.push(("x-amz-security-token".to_owned(), token.to_owned()));
            }
            assert_eq!(added, expected, "vector {}", v.name);
        }
        assert!(VECTORS.iter().filter(|v| v.botocore_agrees).count() >= 18);
    }

    /// The AWS SigV4 test suite's `get-vanilla`. The official client always signs
    /// `x-amz-content-sha256` too, so the suite's exact signature is checked on the building
    /// blocks (same canonical request with the suite's two headers), and `sign` on the whole
    /// request against the official client.
    #[test]
    fn aws_test_suite_get_vanilla() {
        let (request, signed_headers) = canonical_request(
            "get",
            &canonical_uri("/", "service"),
            &canonical_query(""),
            &[
                ("host", "example.amazonaws.com"),
                ("x-amz-date", "20150830T123600Z"),
            ],
            EMPTY_SHA256,
        );
        assert_eq!(
            request,
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n\
             host;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(signed_headers, "host;x-amz-date");
        let to_sign = string_to_sign(
            "20150830T123600Z",
            "20150830/us-east-1/service/aws4_request",
            &request,
        );
        assert_eq!(
            to_sign,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n\
             bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
        );
        let key = signing_key(SECRET, "20150830", "us-east-1", "service");
        assert_eq!(
            hex::encode(hmac_sha256(&key, to_sign.as_bytes())),
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );

        // The whole request through `sign`: example.amazonaws.com is no AWS endpoint shape,
        // so the stored region and service apply.
        let url = url::Url::parse("https://example.amazonaws.com/").unwrap();
        let creds = credentials(None, Some("us-east-1"), Some("service"));
        let added = sign("GET", &url, &[], b"", &creds, at(1_440_938_160)).unwrap();
        assert_eq!(
            added,
            owned(&[
                (
                    "Authorization",
                    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/\
                     aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, \
                     Signature=726c5c4879a6b4ccbbd3b24edbd6b8826d34f87450fbbf4e85546fc7ba9c1642"
                ),
                ("x-amz-date", "20150830T123600Z"),
                ("x-amz-content-sha256", EMPTY_SHA256),
            ])
        );
    }

    /// The signing-key example of the AWS documentation.
    #[test]
    fn derives_the_documented_signing_key() {
        assert_eq!(
            hex::encode(signing_key(SECRET, "20120215", "us-east-1", "iam")),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }

    /// Expected values from the official client's `_detect_service_and_region`.
    #[test]
    fn detects_region_and_service_like_the_official_client() {
        let table: &[(&str, Option<(&str, &str)>)] = &[
            ("s3.us-east-1.amazonaws.com", Some(("us-east-1", "s3"))),
            (
                "lambda.eu-west-1.amazonaws.com",
                Some(("eu-west-1", "lambda")),
            ),
            (
                "bedrock-runtime.us-east-1.amazonaws.com",
                Some(("us-east-1", "bedrock")),
            ),
            (
                "kms-fips.us-west-2.amazonaws.com",
                Some(("us-west-2", "kms")),
            ),
            (
                "s3.dualstack.us-east-1.amazonaws.com",
                Some(("us-east-1", "s3")),
            ),
            (
                "s3-fips.dualstack.us-east-2.amazonaws.com",
                Some(("us-east-2", "s3")),
            ),
            ("s3.cn-north-1.amazonaws.com.cn", Some(("cn-north-1", "s3"))),
            (
                "iam.cn-north-1.amazonaws.com.cn",
                Some(("cn-north-1", "iam")),
            ),
            (
                "ec2.us-gov-west-1.amazonaws.com",
                Some(("us-gov-west-1", "ec2")),
            ),
            ("email.us-east-1.amazonaws.com", Some(("us-east-1", "ses"))),
            (
                "s3-control.us-east-1.amazonaws.com",
                Some(("us-east-1", "s3")),
            ),
            ("ec2.us-west-2.api.aws", Some(("us-west-2", "ec2"))),
            (
                "lambda-fips.us-east-1.api.aws",
                Some(("us-east-1", "lambda")),
            ),
            (
                "bucket.s3.us-east-1.amazonaws.com",
                Some(("us-east-1", "s3")),
            ),
            (
                "bucket.s3-fips.us-east-2.amazonaws.com",
                Some(("us-east-2", "s3")),
            ),
            (
                "bucket.s3.dualstack.us-west-2.amazonaws.com",
                Some(("us-west-2", "s3")),
            ),
            (
                "bucket.s3.cn-north-1.amazonaws.com.cn",
                Some(("cn-north-1", "s3")),
            ),
            (
                "my_bucket-1.s3.eu-west-1.amazonaws.com",
                Some(("eu-west-1", "s3")),
            ),
            ("s3-us-west-2.amazonaws.com", Some(("us-west-2", "s3"))),
            (
                "bucket.s3-eu-west-1.amazonaws.com",
                Some(("eu-west-1", "s3")),
            ),
            ("s3.amazonaws.com", Some(("us-east-1", "s3"))),
            ("s3-external-1.amazonaws.com", Some(("us-east-1", "s3"))),
            ("bucket.s3.amazonaws.com", Some(("us-east-1", "s3"))),
            (
                "bucket.s3-external-1.amazonaws.com",
                Some(("us-east-1", "s3")),
            ),
            (
                "vpce-099deb00b40f00e22-lj2wisx3.monitoring.us-east-2.vpce.amazonaws.com",
                Some(("us-east-2", "monitoring")),
            ),
            (
                "vpce-099deb00b40f00e22-lj2wisx3-us-east-2c.monitoring.us-east-2.vpce.amazonaws.com",
                Some(("us-east-2", "monitoring")),
            ),
            ("iam.amazonaws.com", Some(("us-east-1", "iam"))),
            ("global.iam.amazonaws.com", Some(("us-east-1", "iam"))),
            ("global.health.amazonaws.com", Some(("us-east-1", "health"))),
            ("iam-fips.amazonaws.com", Some(("us-east-1", "iam"))),
            ("sts.amazonaws.com", Some(("us-east-1", "sts"))),
            (
                "importexport.amazonaws.com",
                Some(("us-east-1", "IngestionService")),
            ),
            ("iam.us-gov.amazonaws.com", Some(("us-gov-west-1", "iam"))),
            (
                "global.route53.us-gov.amazonaws.com",
                Some(("us-gov-west-1", "route53")),
            ),
            (
                "route53.amazonaws.com.cn",
                Some(("cn-northwest-1", "route53")),
            ),
            (
                "budgets.amazonaws.com.cn",
                Some(("cn-northwest-1", "budgets")),
            ),
            (
                "streams.dynamodb.us-east-1.amazonaws.com",
                Some(("us-east-1", "dynamodb")),
            ),
            (
                "api.sagemaker.eu-west-1.amazonaws.com",
                Some(("eu-west-1", "sagemaker")),
            ),
            (
                "runtime.sagemaker.us-east-1.dualstack.amazonaws.com",
                Some(("us-east-1", "sagemaker")),
            ),
            (
                "data-ats.iot.us-east-1.amazonaws.com",
                Some(("us-east-1", "iotdata")),
            ),
            (
                "api.tunneling.iot.eu-west-1.amazonaws.com",
                Some(("eu-west-1", "IoTSecuredTunneling")),
            ),
            (
                "api.ecr-fips.us-east-1.amazonaws.com",
                Some(("us-east-1", "ecr")),
            ),
            ("S3.US-EAST-1.AMAZONAWS.COM", Some(("us-east-1", "s3"))),
            ("", None),
            ("example.amazonaws.com", None),
            ("amazonaws.com", None),
            ("s3.amazonaws.com.cn", None),
            ("iam.amazonaws.com.cn", None),
            ("cloudfront.us-gov.amazonaws.com", None),
            ("global.us-gov.amazonaws.com", None),
            ("ec2.amazonaws.com", None),
            ("unknown.thing.us-east-1.amazonaws.com", None),
            ("a.b.s3.us-east-1.amazonaws.com", None),
            ("abc123.execute-api.eu-north-1.amazonaws.com", None),
            ("s3.us-east-1.amazonaws.com.evil.com", None),
            ("evil-amazonaws.com", None),
            ("s3.us-east.amazonaws.com", None),
            ("ec2.useast-1.amazonaws.com", None),
            ("ec2.us-1.amazonaws.com", None),
            ("lambda.us-east-1.amazonaws.com.", None),
            ("s3-us-west-2.amazonaws.com.cn", None),
            ("ec2.us-west-2.api.aws.cn", None),
            ("vpce-.monitoring.us-east-2.vpce.amazonaws.com", None),
            ("localhost", None),
            ("127.0.0.1", None),
            ("::1", None),
            ("s3.us-east-1.amazonaws.com\n", Some(("us-east-1", "s3"))),
            ("bucket.s3.amazonaws.com\n", Some(("us-east-1", "s3"))),
            ("s3.us-east-1.amazonaws.com\n\n", None),
        ];
        for (host, expected) in table {
            let expected = expected.map(|(r, s)| (r.to_owned(), s.to_owned()));
            assert_eq!(detect_region_and_service(host), expected, "host {host:?}");
        }
    }

    #[test]
    fn every_signing_override_and_global_service_is_detected() {
        for (label, signing) in SIGNING_SERVICE_OVERRIDES {
            let host = format!("{label}.eu-west-1.amazonaws.com");
            let expected = Some(("eu-west-1".to_owned(), (*signing).to_owned()));
            assert_eq!(detect_region_and_service(&host), expected, "{host}");
        }
        for service in GLOBAL_SERVICES_AWS {
            let detected = detect_region_and_service(&format!("{service}.amazonaws.com"));
            assert_eq!(detected.map(|(r, _)| r).as_deref(), Some("us-east-1"));
        }
    }

    /// Expected values from the official client's `_canonical_query_string`.
    #[test]
    fn canonical_query_like_the_official_client() {
        for (query, expected) in [
            (
                "b=hello%20world&a=x/y~z&a=%E2%9C%93&%C3%A9=1&plus=1+2&flag&z=&q=%c3%a9&t=%7E&a=0",
                "%C3%A9=1&a=%E2%9C%93&a=0&a=x%2Fy~z&b=hello%20world&flag=&plus=1%2B2&q=%C3%A9&t=~&z=",
            ),
            ("a=%zz&b=%4&c=%", "a=%25zz&b=%254&c=%25"),
            ("a=%FF&b=%C3", "a=%EF%BF%BD&b=%EF%BF%BD"),
            ("=&&x", "=&=&x="),
            ("k=v=w", "k=v%3Dw"),
            ("a%20b=c%2Bd+e", "a%20b=c%2Bd%2Be"),
            ("", ""),
        ] {
            assert_eq!(canonical_query(query), expected, "query {query:?}");
        }
    }

    /// Expected values from the official client's `_canonical_uri`.
    #[test]
    fn canonical_uri_like_the_official_client() {
        for (path, service, expected) in [
            ("/a b/%20/~x", "lambda", "/a%20b/%2520/~x"),
            ("/a b/%20/~x", "s3", "/a b/%20/~x"),
            ("", "lambda", "/"),
            ("//x/", "lambda", "//x/"),
            ("/é", "sqs", "/%C3%A9"),
            ("no-slash", "sqs", "/no-slash"),
        ] {
            assert_eq!(canonical_uri(path, service), expected, "{path:?} {service}");
        }
    }

    #[test]
    fn signed_path_drops_params_of_the_last_segment_only() {
        for (url, expected) in [
            ("https://h/dir/a;b", "/dir/a"),
            ("https://h/a;b/c", "/a;b/c"),
            ("https://h/a;b/c;d;e", "/a;b/c"),
            ("https://h/", "/"),
        ] {
            let url = url::Url::parse(url).unwrap();
            assert_eq!(signed_path(&url), expected);
        }
    }

    #[test]
    fn collapses_header_whitespace_like_python_split() {
        assert_eq!(collapse_whitespace("  a \t b\u{1c}c\u{a0}d  "), "a b c d");
        assert_eq!(collapse_whitespace(" \n "), "");
    }

    #[test]
    fn stored_values_apply_only_when_detection_fails() {
        let creds = credentials(None, Some("eu-west-3"), Some("iam"));
        let url = url::Url::parse("https://lambda.us-west-2.amazonaws.com/").unwrap();
        let added = sign("GET", &url, &[], b"", &creds, at(WHEN)).unwrap();
        assert!(
            added[0]
                .1
                .contains("/20240506/us-west-2/lambda/aws4_request,")
        );

        let url = url::Url::parse("https://vault.example.com/").unwrap();
        let added = sign("GET", &url, &[], b"", &creds, at(WHEN)).unwrap();
        assert!(added[0].1.contains("/20240506/eu-west-3/iam/aws4_request,"));
    }

    #[test]
    fn missing_region_or_service_is_an_error_without_the_secret() {
        let url = url::Url::parse("https://vault.example.com/").unwrap();
        for (region, service, expected) in [
            (
                None,
                Some("s3"),
                SigV4Error::MissingRegion {
                    host: "vault.example.com".to_owned(),
                },
            ),
            (
                Some(""),
                Some("s3"),
                SigV4Error::MissingRegion {
                    host: "vault.example.com".to_owned(),
                },
            ),
            (
                Some("us-east-1"),
                None,
                SigV4Error::MissingService {
                    host: "vault.example.com".to_owned(),
                },
            ),
        ] {
            let creds = credentials(Some(TOKEN), region, service);
            let error = sign("GET", &url, &[], b"", &creds, at(WHEN)).unwrap_err();
            assert_eq!(error, expected);
            for shown in [error.to_string(), format!("{error:?}")] {
                assert!(!shown.contains(SECRET) && !shown.contains(TOKEN), "{shown}");
            }
        }
    }

    #[test]
    fn debug_never_shows_the_secret_or_the_token() {
        let creds = credentials(Some(TOKEN), Some("us-east-1"), Some("s3"));
        for shown in [format!("{creds:?}"), format!("{creds:#?}")] {
            assert!(!shown.contains(SECRET), "{shown}");
            assert!(!shown.contains(TOKEN), "{shown}");
            assert!(
                shown.contains(ACCESS_KEY) && shown.contains("<redacted>"),
                "{shown}"
            );
        }
        assert!(format!("{:?}", credentials(None, None, None)).contains("session_token: None"));
    }

    #[test]
    fn an_empty_session_token_is_none_and_time_is_utc_floor() {
        // Official client: signed with session_token="" at 1969-12-31T23:59:59Z.
        let url = url::Url::parse("https://example.amazonaws.com/").unwrap();
        let creds = credentials(Some(""), Some("us-east-1"), Some("service"));
        let half_second_before_epoch = UNIX_EPOCH - Duration::from_millis(500);
        let added = sign("get", &url, &[], b"", &creds, half_second_before_epoch).unwrap();
        assert_eq!(
            added,
            owned(&[
                (
                    "Authorization",
                    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/19691231/us-east-1/service/\
                     aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, \
                     Signature=51082af4a52d2c34279166444c94373796576121e2aa69219c27ff2920c47307"
                ),
                ("x-amz-date", "19691231T235959Z"),
                ("x-amz-content-sha256", EMPTY_SHA256),
            ])
        );
    }

    #[test]
    fn times_outside_years_1_to_9999_are_refused() {
        let url = url::Url::parse("https://s3.amazonaws.com/").unwrap();
        let creds = credentials(None, None, None);
        let too_late = UNIX_EPOCH + Duration::from_secs(253_402_300_800);
        assert_eq!(
            sign("GET", &url, &[], b"", &creds, too_late),
            Err(SigV4Error::TimeOutOfRange)
        );
        let last = UNIX_EPOCH + Duration::from_secs(253_402_300_799);
        assert_eq!(
            sign("GET", &url, &[], b"", &creds, last).unwrap()[1].1,
            "99991231T235959Z"
        );
    }

    #[test]
    fn host_keeps_only_non_default_ports() {
        let creds = credentials(None, Some("us-east-1"), Some("s3"));
        let signed_with = |url: &str| {
            let url = url::Url::parse(url).unwrap();
            sign("GET", &url, &[], b"", &creds, at(WHEN)).unwrap()[0]
                .1
                .clone()
        };
        // Port 443 on http and port 80 on https are dropped too, as the official client does.
        assert_eq!(
            signed_with("http://minio.local:443/b"),
            signed_with("http://minio.local/b")
        );
        assert_eq!(
            signed_with("https://minio.local:80/b"),
            signed_with("https://minio.local/b")
        );
        assert_ne!(
            signed_with("http://minio.local:9000/b"),
            signed_with("http://minio.local/b")
        );
        let with_host = {
            let url = url::Url::parse("http://minio.local/b").unwrap();
            let headers = owned(&[("HOST", "minio.local:9000")]);
            sign("GET", &url, &headers, b"", &creds, at(WHEN)).unwrap()[0]
                .1
                .clone()
        };
        assert_eq!(with_host, signed_with("http://minio.local:9000/b"));
    }
}
