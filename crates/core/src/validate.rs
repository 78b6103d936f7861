//! Small input rules shared by the services. Each failure is an [`Error::Invalid`] naming the
//! field, so the client learns what to fix and nothing is changed.

use ipnet::IpNet;

use crate::error::{Error, Result, ensure};

/// A display name: 1–100 characters, no control characters, no surrounding whitespace.
pub fn display_name<'a>(field: &str, value: &'a str) -> Result<&'a str> {
    bounded_text(field, value, 100)
}

/// Free text of at most `max` characters, non-empty, without control characters or
/// surrounding whitespace.
pub fn bounded_text<'a>(field: &str, value: &'a str, max: usize) -> Result<&'a str> {
    ensure(!value.trim().is_empty(), || {
        format!("{field} must not be empty")
    })?;
    ensure(value.chars().count() <= max, || {
        format!("{field} must be at most {max} characters")
    })?;
    ensure(!value.chars().any(char::is_control), || {
        format!("{field} must not contain control characters")
    })?;
    ensure(value.trim() == value, || {
        format!("{field} must not start or end with whitespace")
    })?;
    Ok(value)
}

/// A CIDR allowlist: 1–50 networks, each IPv4 or IPv6 in CIDR form (a bare address is a /32
/// or /128), no catch-all `/0`. Host bits are cleared.
pub fn cidr_allowlist(field: &str, values: &[String]) -> Result<Vec<IpNet>> {
    ensure(!values.is_empty() && values.len() <= 50, || {
        format!("{field} must list 1 to 50 networks")
    })?;
    values
        .iter()
        .map(|text| {
            let net = text
                .parse::<IpNet>()
                .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| Error::Invalid(format!("{field}: {text:?} is not a CIDR network")))?;
            ensure(net.prefix_len() > 0, || {
                format!("{field}: the catch-all network {text} is not allowed")
            })?;
            Ok(net.trunc())
        })
        .collect()
}

/// An integer within an inclusive range.
pub fn int_in_range(field: &str, value: i64, min: i64, max: i64) -> Result<i64> {
    ensure((min..=max).contains(&value), || {
        format!("{field} must be between {min} and {max}")
    })?;
    Ok(value)
}

/// A header a credential may be injected into (see [`alter_proto::token::injectable_header`]).
pub fn header_name(name: &str) -> bool {
    alter_proto::token::injectable_header(name)
}

/// An optional label: at most 255 characters, no control characters.
pub fn label(value: Option<&str>) -> Result<Option<String>> {
    value
        .map(|l| {
            ensure(!l.is_empty() && l.chars().count() <= 255, || {
                "label must be 1 to 255 characters".into()
            })?;
            ensure(!l.chars().any(char::is_control), || {
                "label must not contain control characters".into()
            })?;
            Ok(l.to_owned())
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(display_name("name", "prod").is_ok());
        for bad in ["", "  ", " x", "a\nb", &"x".repeat(101)] {
            assert!(display_name("name", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cidrs() {
        let nets = cidr_allowlist("cidr", &["10.1.2.3/8".into(), "::1".into()]).unwrap();
        assert_eq!(nets[0].to_string(), "10.0.0.0/8");
        assert_eq!(nets[1].to_string(), "::1/128");
        assert!(cidr_allowlist("cidr", &["0.0.0.0/0".into()]).is_err());
        assert!(cidr_allowlist("cidr", &["10.0.0.0/33".into()]).is_err());
        assert!(cidr_allowlist("cidr", &[]).is_err());
    }
}
