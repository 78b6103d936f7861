//! Host and path patterns. Path globs compile to anchored regexes, so matching is linear in the
//! path whatever the pattern: `*` stays inside one segment, `**` crosses `/`.

use regex::Regex;

use crate::limits::{MAX_PATTERN_LEN, REGEX_SIZE_LIMIT};

/// A host pattern: an exact lower-case host, or `*.suffix` (any host ending in `.suffix`, not the
/// suffix itself).
#[derive(Debug, Clone)]
pub enum HostPattern {
    /// Exactly this host.
    Exact(String),
    /// `.suffix` (with the dot): any strict subdomain.
    Suffix(String),
}

impl HostPattern {
    /// Parses and normalises (lower case) a host pattern.
    pub fn parse(text: &str) -> Result<HostPattern, String> {
        let host = text.trim().to_ascii_lowercase();
        if host.is_empty() || host.len() > 253 {
            return Err(format!(
                "host {text:?} is empty or longer than 253 characters"
            ));
        }
        let (pattern, plain) = match host.strip_prefix("*.") {
            Some(rest) => (HostPattern::Suffix(format!(".{rest}")), rest.to_owned()),
            None => (HostPattern::Exact(host.clone()), host.clone()),
        };
        let valid = !plain.is_empty()
            && plain
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
            && !plain.starts_with('.')
            && !plain.ends_with('.');
        if !valid {
            return Err(format!(
                "host {text:?} must be a host name or `*.suffix` (letters, digits, `.`, `-`)"
            ));
        }
        Ok(pattern)
    }

    /// The pattern as written back (normalised).
    pub fn text(&self) -> String {
        match self {
            HostPattern::Exact(h) => h.clone(),
            HostPattern::Suffix(s) => format!("*{s}"),
        }
    }

    /// Whether `host` (already lower case) matches.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(h) => h == host,
            HostPattern::Suffix(s) => host.len() > s.len() && host.ends_with(s.as_str()),
        }
    }
}

/// A path glob.
#[derive(Debug, Clone)]
pub struct PathGlob {
    text: String,
    regex: Regex,
    /// The same glob, case-insensitive, for filters (which read the path loosely).
    loose: Regex,
}

impl PathGlob {
    /// Compiles a glob: it must start with `/`; `*` matches within a segment, `**` any run of
    /// characters including `/`; everything else is literal.
    pub fn parse(text: &str) -> Result<PathGlob, String> {
        if !text.starts_with('/') || text.len() > MAX_PATTERN_LEN {
            return Err(format!(
                "path pattern {text:?} must start with `/` and be at most {MAX_PATTERN_LEN} characters"
            ));
        }
        if text.contains("***") {
            return Err(format!("path pattern {text:?} has `***`"));
        }
        let mut re = String::with_capacity(text.len() + 8);
        re.push_str("^(?s:");
        let mut rest = text;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("**") {
                re.push_str(".*");
                rest = after;
            } else if let Some(after) = rest.strip_prefix('*') {
                re.push_str("[^/]*");
                rest = after;
            } else {
                let end = rest.find('*').unwrap_or(rest.len());
                re.push_str(&regex::escape(&rest[..end]));
                rest = &rest[end..];
            }
        }
        re.push_str(")$");
        let build = |case_insensitive: bool| {
            regex::RegexBuilder::new(&re)
                .case_insensitive(case_insensitive)
                .size_limit(REGEX_SIZE_LIMIT)
                .dfa_size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|_| format!("path pattern {text:?} is too complex"))
        };
        Ok(PathGlob {
            text: text.to_owned(),
            regex: build(false)?,
            loose: build(true)?,
        })
    }

    /// The glob as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether `path` matches the whole glob.
    pub fn matches(&self, path: &str) -> bool {
        self.regex.is_match(path)
    }

    /// Whether any reading of `path` matches, for a filter that decides when a restrictive rule
    /// applies: the path as sent, or its canonical form ([`canonical_path`]) without regard to
    /// case (the glob's own trailing `/` aside).
    pub fn matches_loosely(&self, path: &str) -> bool {
        let canonical = canonical_path(path);
        self.regex.is_match(path)
            || self.loose.is_match(&canonical)
            || self.loose.is_match(&format!("{canonical}/"))
    }
}

/// Whether `text` matches a simple glob (for `content_match` `any_in` / `not_subset_of`): `*`
/// matches any run of characters, everything else is literal, the whole text must match. No
/// regex is compiled: these patterns come from the caller on every request.
pub fn wildcard_matches(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    // The last `*` seen and the text position it was tried at (classic backtracking to the last
    // star only: O(len(p)·len(t)) at worst).
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_stays_in_a_segment_and_double_star_crosses() {
        let g = PathGlob::parse("/repos/*/issues").unwrap();
        assert!(g.matches("/repos/acme/issues"));
        assert!(!g.matches("/repos/acme/x/issues"));
        assert!(!g.matches("/repos/acme/issues/1"));
        let g = PathGlob::parse("/repos/**").unwrap();
        assert!(g.matches("/repos/acme/x/issues"));
        assert!(!g.matches("/admin"));
        let g = PathGlob::parse("/a.b/(x)").unwrap();
        assert!(g.matches("/a.b/(x)"));
        assert!(!g.matches("/aXb/(x)"));
        assert!(PathGlob::parse("repos").is_err());
    }

    #[test]
    fn host_suffix_needs_a_subdomain() {
        let h = HostPattern::parse("*.GitHub.com").unwrap();
        assert!(h.matches("api.github.com"));
        assert!(h.matches("a.b.github.com"));
        assert!(!h.matches("github.com"));
        assert!(!h.matches("evilgithub.com"));
        assert!(HostPattern::parse("a*.b.com").is_err());
        assert!(HostPattern::parse("").is_err());
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_matches("a*c", "abbbc"));
        assert!(wildcard_matches("*", ""));
        assert!(wildcard_matches("*@acme.com", "bob@acme.com"));
        assert!(!wildcard_matches("*@acme.com", "bob@acme.com.evil"));
        assert!(wildcard_matches("a*b*c", "axxbyyc"));
        assert!(!wildcard_matches("a*b*c", "axxcyyb"));
        assert!(!wildcard_matches("abc", "ab"));
    }
}

/// The path a filter reads, so that no spelling of a path dodges a rule that should apply to
/// it: every percent-escape decoded (`%2F` included), backslashes read as `/`, empty and `.`
/// segments dropped, `..` resolved, no trailing `/`. Servers differ in which of these they
/// undo; a filter matches if the path as sent or this reading of it matches.
pub fn canonical_path(path: &str) -> String {
    let decoded = percent_decode(path).replace('\\', "/");
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    format!("/{}", segments.join("/"))
}

/// `%XX` escapes decoded (invalid ones kept as written); bytes that are not UTF-8 replaced.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                let value = hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0);
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod canonical_tests {
    use super::*;

    #[test]
    fn spellings_of_one_path_read_alike() {
        for spelled in [
            "/v1/transfers",
            "/v1/%74ransfers",
            "/v1//transfers",
            "/v1/transfers/",
            "/v1/./transfers",
            "/v1/x/../transfers",
            "/v1%2Ftransfers",
            "/v1\\transfers",
        ] {
            assert_eq!(canonical_path(spelled), "/v1/transfers", "{spelled}");
        }
        assert_eq!(canonical_path("/"), "/");
        assert_eq!(canonical_path("/a%zz"), "/a%zz");
    }
}
