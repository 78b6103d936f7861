//! Parameter constraints (the `params` kind): conditions on JSON body fields (by JSON pointer) and
//! query parameters. A constraint that cannot be checked fails: a body that is not JSON, a field
//! that is missing (for every operator but `forbidden`).

use alter_core::rules::{REDACTED, TargetFacts};
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::limits::{MAX_FIELD_LEN, MAX_LIST, MAX_PATTERN_LEN, REGEX_SIZE_LIMIT};

/// Where the parameter is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Location {
    /// A field of the JSON body, named by a JSON pointer (`/amount`, `/items/0/sku`).
    Body,
    /// A query parameter, by name (every occurrence must pass).
    Query,
}

/// The operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Equal to `value` (a scalar).
    Equals,
    /// Equal to one of `value` (a list of scalars).
    OneOf,
    /// A number no greater than `value`.
    Max,
    /// A number no less than `value`.
    Min,
    /// A string fully matching the regex `value`.
    Pattern,
    /// Must be absent.
    Forbidden,
    /// Must be present.
    Required,
}

/// One constraint as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    /// `body` or `query`.
    #[serde(rename = "in")]
    pub location: Location,
    /// JSON pointer (body) or name (query).
    pub field: String,
    /// The operator.
    pub op: Op,
    /// Its operand (none for `forbidden` and `required`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

/// A compiled constraint.
#[derive(Debug, Clone)]
pub struct Constraint {
    spec: ParamSpec,
    regex: Option<Regex>,
    bound: f64,
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// The constraint holds.
    Pass,
    /// It does not (why, naming the field only).
    Fail(String),
    /// It cannot be known from the facts (the body was over the audit cap): evaluation denies,
    /// a replay counts it indeterminate.
    Unknown(String),
}

fn is_scalar(v: &Value) -> bool {
    !matches!(v, Value::Array(_) | Value::Object(_))
}

/// Anchored regex with size limits.
pub fn anchored_regex(pattern: &str) -> Result<Regex, String> {
    if pattern.len() > MAX_PATTERN_LEN {
        return Err(format!(
            "pattern is longer than {MAX_PATTERN_LEN} characters"
        ));
    }
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(_) => format!("pattern {pattern:?} is too large"),
            _ => format!("pattern {pattern:?} is not a valid regular expression"),
        })
}

impl Constraint {
    /// Checks a constraint's shape and compiles it.
    pub fn compile(spec: &ParamSpec) -> Result<Constraint, String> {
        let field = &spec.field;
        if field.is_empty() || field.len() > MAX_FIELD_LEN {
            return Err(format!("field must be 1 to {MAX_FIELD_LEN} characters"));
        }
        if spec.location == Location::Body && !field.starts_with('/') {
            return Err(format!(
                "body field {field:?} must be a JSON pointer (starting with `/`)"
            ));
        }
        let mut regex = None;
        let mut bound = 0.0;
        let value = spec.value.as_ref();
        match (spec.op, value) {
            (Op::Forbidden | Op::Required, None) => {}
            (Op::Forbidden | Op::Required, Some(_)) => {
                return Err(format!("{field}: `forbidden` and `required` take no value"));
            }
            (Op::Equals, Some(v)) if is_scalar(v) => {}
            (Op::OneOf, Some(Value::Array(items)))
                if !items.is_empty() && items.len() <= MAX_LIST && items.iter().all(is_scalar) => {}
            (Op::Max | Op::Min, Some(Value::Number(n))) => {
                bound = n
                    .as_f64()
                    .filter(|f| f.is_finite())
                    .ok_or_else(|| format!("{field}: the bound must be a finite number"))?;
            }
            (Op::Pattern, Some(Value::String(p))) => regex = Some(anchored_regex(p)?),
            _ => {
                return Err(format!(
                    "{field}: `equals` takes a scalar, `one_of` a list of 1 to {MAX_LIST} scalars, \
                     `max`/`min` a number, `pattern` a regex string"
                ));
            }
        }
        Ok(Constraint {
            spec: spec.clone(),
            regex,
            bound,
        })
    }

    /// Checks the constraint on a target.
    pub fn check(&self, target: &TargetFacts) -> Check {
        let field = &self.spec.field;
        match self.spec.location {
            Location::Body => {
                let found = match &target.body {
                    None => None,
                    Some(body) => match &body.json {
                        Some(json) => json.pointer(field),
                        None if body.truncated => {
                            return Check::Unknown(format!(
                                "the body is over the audit cap, {field} cannot be checked"
                            ));
                        }
                        None => return Check::Fail("the body is not JSON".into()),
                    },
                };
                match found {
                    None => self.absent(),
                    // Only a replay of the audit log sees this: the value was not kept.
                    Some(v) if v.as_str() == Some(REDACTED) && self.spec.op != Op::Forbidden => {
                        Check::Unknown(format!("{field} was redacted in the log"))
                    }
                    Some(v) => self.value_passes(v),
                }
            }
            Location::Query => {
                let mut any = false;
                for (_, text) in target.query.iter().filter(|(k, _)| k == field) {
                    any = true;
                    if text == REDACTED && self.spec.op != Op::Forbidden {
                        return Check::Unknown(format!("{field} was redacted in the log"));
                    }
                    if let fail @ Check::Fail(_) = self.text_passes(text) {
                        return fail;
                    }
                }
                if any { Check::Pass } else { self.absent() }
            }
        }
    }

    fn absent(&self) -> Check {
        if self.spec.op == Op::Forbidden {
            Check::Pass
        } else {
            Check::Fail(format!("{} is missing", self.spec.field))
        }
    }

    fn verdict(&self, ok: bool) -> Check {
        if ok {
            Check::Pass
        } else {
            Check::Fail(format!(
                "{} fails `{}`",
                self.spec.field,
                serde_json::to_value(self.spec.op)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            ))
        }
    }

    fn value_passes(&self, v: &Value) -> Check {
        let ok = match self.spec.op {
            Op::Forbidden => false,
            Op::Required => true,
            Op::Equals => self.spec.value.as_ref().is_some_and(|e| same(e, v)),
            Op::OneOf => match &self.spec.value {
                Some(Value::Array(items)) => items.iter().any(|e| same(e, v)),
                _ => false,
            },
            Op::Max => v.as_f64().is_some_and(|n| n <= self.bound),
            Op::Min => v.as_f64().is_some_and(|n| n >= self.bound),
            Op::Pattern => match (v, &self.regex) {
                (Value::String(s), Some(re)) => re.is_match(s),
                _ => false,
            },
        };
        self.verdict(ok)
    }

    fn text_passes(&self, text: &str) -> Check {
        let ok = match self.spec.op {
            Op::Forbidden => false,
            Op::Required => true,
            Op::Equals => self.spec.value.as_ref().is_some_and(|e| same_text(e, text)),
            Op::OneOf => match &self.spec.value {
                Some(Value::Array(items)) => items.iter().any(|e| same_text(e, text)),
                _ => false,
            },
            Op::Max => number(text).is_some_and(|n| n <= self.bound),
            Op::Min => number(text).is_some_and(|n| n >= self.bound),
            Op::Pattern => self.regex.as_ref().is_some_and(|re| re.is_match(text)),
        };
        self.verdict(ok)
    }
}

/// A finite number from text.
pub fn number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|f| f.is_finite())
}

/// JSON equality where numbers compare by value (`1` equals `1.0`).
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// Whether a query value's text equals a JSON scalar.
pub fn same_text(expected: &Value, text: &str) -> bool {
    match expected {
        Value::String(s) => s == text,
        Value::Number(n) => number(text).is_some_and(|t| Some(t) == n.as_f64()),
        Value::Bool(b) => text == if *b { "true" } else { "false" },
        _ => false,
    }
}
