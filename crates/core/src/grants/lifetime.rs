//! A grant's lifetime: checked once when the caller gives it, and turned into an end.

use crate::error::{Error, Limit, Result};
use crate::time::Timestamp;

use super::model::{GrantLifetime, LifetimeInput, MAX_TTL_SECONDS};

/// The lifetime the caller gave, checked: a future `expires_at`, positive lengths, the default
/// no longer than the maximum.
pub(crate) fn parse_lifetime(input: LifetimeInput, now: Timestamp) -> Result<GrantLifetime> {
    let invalid = |m: &str| Error::InvalidGrantLifetime(m.to_owned());
    let expires_at = input
        .expires_at
        .map(|text| {
            let at = Timestamp::parse_rfc3339(&text).ok_or_else(|| {
                invalid("expires_at must be an ISO-8601 date-time with an offset")
            })?;
            if at <= now {
                return Err(invalid("expires_at must be in the future"));
            }
            Ok(at)
        })
        .transpose()?;
    for (field, value) in [
        ("max_ttl_seconds", input.max_ttl_seconds),
        ("default_ttl_seconds", input.default_ttl_seconds),
    ] {
        if value.is_some_and(|v| !(1..=MAX_TTL_SECONDS).contains(&v)) {
            return Err(invalid(&format!(
                "{field} must be a positive integer of at most {MAX_TTL_SECONDS} (100 years)"
            )));
        }
    }
    if let (Some(max), Some(default)) = (input.max_ttl_seconds, input.default_ttl_seconds)
        && default > max
    {
        return Err(invalid(
            "default_ttl_seconds must not exceed max_ttl_seconds",
        ));
    }
    Ok(GrantLifetime {
        expires_at,
        max_ttl_seconds: input.max_ttl_seconds,
        default_ttl_seconds: input.default_ttl_seconds,
        tags: Vec::new(),
    })
}

/// When a grant with `lifetime` created at `now` ends: the earliest of its `expires_at` and its
/// length (`default_ttl_seconds`, else `max_ttl_seconds`). A lifetime the secret's cap forbids
/// violates its limits; with no lifetime asked, the cap applies.
pub(crate) fn lifetime_end(
    lifetime: &GrantLifetime,
    cap_seconds: Option<i64>,
    now: Timestamp,
) -> Result<Option<Timestamp>> {
    if let Some(cap) = cap_seconds {
        let cap_end = now.plus_seconds(cap);
        let too_long = lifetime.max_ttl_seconds.is_some_and(|v| v > cap)
            || lifetime.default_ttl_seconds.is_some_and(|v| v > cap)
            || lifetime.expires_at.is_some_and(|at| at > cap_end);
        if too_long {
            return Err(Error::LimitViolation(Limit::GrantTooLong {
                max_seconds: cap,
            }));
        }
    }
    let length = lifetime
        .default_ttl_seconds
        .or(lifetime.max_ttl_seconds)
        .or(cap_seconds);
    let ends = [lifetime.expires_at, length.map(|s| now.plus_seconds(s))];
    Ok(ends.into_iter().flatten().min())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        Timestamp::from_unix_seconds(1_000_000)
    }

    fn lifetime(max: Option<i64>, default: Option<i64>, expires: Option<i64>) -> LifetimeInput {
        LifetimeInput {
            expires_at: expires.map(|s| now().plus_seconds(s).to_rfc3339()),
            max_ttl_seconds: max,
            default_ttl_seconds: default,
        }
    }

    #[test]
    fn lifetimes_are_validated() {
        assert!(parse_lifetime(lifetime(Some(10), Some(5), None), now()).is_ok());
        for bad in [
            lifetime(Some(5), Some(10), None),
            lifetime(Some(0), None, None),
            lifetime(None, Some(-1), None),
            lifetime(None, None, Some(-5)),
            LifetimeInput {
                expires_at: Some("tomorrow".into()),
                ..Default::default()
            },
        ] {
            assert!(matches!(
                parse_lifetime(bad, now()),
                Err(Error::InvalidGrantLifetime(_))
            ));
        }
    }

    #[test]
    fn lifetimes_take_the_earliest_end_and_respect_the_cap() {
        let p = parse_lifetime(lifetime(Some(100), Some(50), Some(70)), now()).unwrap();
        assert_eq!(
            lifetime_end(&p, None, now()).unwrap(),
            Some(now().plus_seconds(50))
        );
        let p = parse_lifetime(lifetime(Some(100), None, None), now()).unwrap();
        assert_eq!(
            lifetime_end(&p, None, now()).unwrap(),
            Some(now().plus_seconds(100))
        );
        let p = parse_lifetime(lifetime(None, None, None), now()).unwrap();
        assert_eq!(lifetime_end(&p, None, now()).unwrap(), None);
        assert_eq!(
            lifetime_end(&p, Some(30), now()).unwrap(),
            Some(now().plus_seconds(30))
        );
        let p = parse_lifetime(lifetime(Some(100), None, None), now()).unwrap();
        assert!(matches!(
            lifetime_end(&p, Some(30), now()),
            Err(Error::LimitViolation(Limit::GrantTooLong {
                max_seconds: 30
            }))
        ));
    }
}
