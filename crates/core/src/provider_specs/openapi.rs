//! Reading an OpenAPI 3.0/3.1 document (JSON or YAML) into the operations a provider spec
//! lists. Local `$ref`s under `#/components/` are resolved into each operation's schemas, with
//! cycles and runaway expansion cut (the cut reference is kept as `{"$ref": …}`); nothing is
//! ever fetched.

use std::collections::HashSet;

use serde_json::{Map, Value, json};

use crate::error::{Error, Result, ensure};

/// Largest document accepted, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 5 * 1024 * 1024;
/// Most operations a document may have.
pub const MAX_OPERATIONS: usize = 10_000;
/// Longest operation id.
pub const MAX_OPERATION_ID_CHARS: usize = 512;
/// Longest path template.
const MAX_PATH_CHARS: usize = 2048;
/// Summaries, titles and versions longer than this are shortened.
const MAX_TEXT_CHARS: usize = 500;
/// Deepest nesting of the document itself.
const MAX_DOCUMENT_DEPTH: usize = 64;
/// References followed inside one another at most.
const MAX_REF_CHAIN: usize = 16;
/// No reference is followed below this nesting depth, so a stored schema stays well inside
/// what a JSON reader accepts.
const MAX_DEPTH_AT_REF: usize = 48;
/// Values one operation's schemas may grow to before further references are cut.
const OPERATION_NODE_BUDGET: usize = 5_000;
/// Values a whole document's schemas may grow to before further references are cut.
const DOCUMENT_NODE_BUDGET: usize = 500_000;

/// The HTTP methods an OpenAPI path item names operations under.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// What a document holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// `info.title`.
    pub title: Option<String>,
    /// `info.version`.
    pub spec_version: Option<String>,
    /// Every operation, in document order.
    pub operations: Vec<Operation>,
}

/// One operation of a provider's API.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    /// Its `operationId`, or `"{method} {path}"` (lower-case method) when it has none.
    pub operation_id: String,
    /// Upper-case HTTP method.
    pub method: String,
    /// The path template (`/v1/charges/{id}`).
    pub path_template: String,
    /// Its summary.
    pub summary: Option<String>,
    /// Its parameters (path-level ones included, the operation's winning), references
    /// resolved.
    pub params_schema: Option<Vec<Value>>,
    /// The JSON request body's schema.
    pub request_schema: Option<Value>,
    /// The first 2xx JSON response's schema.
    pub response_schema: Option<Value>,
}

/// Parses and validates a document: JSON when it starts with `{`, YAML otherwise.
pub fn parse(bytes: &[u8]) -> Result<Document> {
    ensure(bytes.len() <= MAX_DOCUMENT_BYTES, || {
        format!(
            "the document is larger than {} MiB",
            MAX_DOCUMENT_BYTES / 1024 / 1024
        )
    })?;
    let text = std::str::from_utf8(bytes)
        .map_err(|_| Error::Invalid("the document is not UTF-8 text".into()))?;
    // Refused before any parser sees it: a deeply nested document costs the YAML parser time
    // worse than quadratic in its depth.
    ensure(nesting(text) <= MAX_DOCUMENT_DEPTH, || {
        format!("the document nests deeper than {MAX_DOCUMENT_DEPTH} levels")
    })?;
    let root: Value = if text.trim_start().starts_with('{') {
        serde_json::from_str(text)
            .map_err(|e| Error::Invalid(format!("the document is not valid JSON: {e}")))?
    } else {
        serde_norway::from_str(text)
            .map_err(|e| Error::Invalid(format!("the document is not valid YAML: {e}")))?
    };
    read(&root)
}

/// How deep the text nests, read without parsing: brackets and braces (JSON, YAML flow style)
/// and, for YAML block style, indentation in steps of at least two spaces. Over-counts rather
/// than under-counts (brackets inside strings count too).
fn nesting(text: &str) -> usize {
    let mut deepest = 0;
    let mut open: usize = 0;
    for c in text.chars() {
        match c {
            '[' | '{' => {
                open += 1;
                deepest = deepest.max(open);
            }
            ']' | '}' => open = open.saturating_sub(1),
            _ => {}
        }
    }
    let indented = text
        .lines()
        .map(|line| line.len() - line.trim_start_matches([' ', '-']).len())
        .max()
        .unwrap_or(0)
        / 2;
    deepest.max(indented)
}

fn read(root: &Value) -> Result<Document> {
    let Value::Object(doc) = root else {
        return Err(Error::Invalid(
            "the document must be an OpenAPI object".into(),
        ));
    };
    ensure(depth(root) <= MAX_DOCUMENT_DEPTH, || {
        format!("the document nests deeper than {MAX_DOCUMENT_DEPTH} levels")
    })?;
    let version = doc.get("openapi").and_then(Value::as_str).unwrap_or("");
    ensure(
        version.starts_with("3.0") || version.starts_with("3.1"),
        || "openapi must be 3.0.x or 3.1.x (Swagger 2.0 documents must be converted first)".into(),
    )?;
    let info = doc.get("info");
    let text = |field: &str| {
        info.and_then(|i| i.get(field))
            .and_then(Value::as_str)
            .and_then(shortened)
    };
    let Some(Value::Object(paths)) = doc.get("paths") else {
        return Err(Error::Invalid("paths must be an object".into()));
    };
    let mut resolver = Resolver::new(root);
    let mut operations = Vec::new();
    let mut seen = HashSet::new();
    for (path, item) in paths {
        ensure(
            path.starts_with('/')
                && path.chars().count() <= MAX_PATH_CHARS
                && !path.chars().any(char::is_control),
            || {
                format!(
                    "path {path:?} must start with / and be at most {MAX_PATH_CHARS} characters without control characters"
                )
            },
        )?;
        let item = resolver.target(item);
        let Value::Object(item) = item else {
            return Err(Error::Invalid(format!("paths.{path} must be an object")));
        };
        for method in METHODS {
            let Some(op) = item.get(method) else {
                continue;
            };
            ensure(operations.len() < MAX_OPERATIONS, || {
                format!("the document has more than {MAX_OPERATIONS} operations")
            })?;
            let operation = resolver.operation(path, method, item, op)?;
            ensure(seen.insert(operation.operation_id.clone()), || {
                format!(
                    "operation id {:?} is used twice; operation ids must be unique",
                    operation.operation_id
                )
            })?;
            operations.push(operation);
        }
    }
    Ok(Document {
        title: text("title"),
        spec_version: text("version"),
        operations,
    })
}

/// Text shortened to [`MAX_TEXT_CHARS`], control characters removed; `None` when blank.
fn shortened(text: &str) -> Option<String> {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_TEXT_CHARS)
        .collect();
    let clean = clean.trim();
    (!clean.is_empty()).then(|| clean.to_owned())
}

/// How deeply a value nests (a scalar is 1).
fn depth(value: &Value) -> usize {
    // Iterative, so a hostile document cannot exhaust the stack here.
    let mut deepest = 0;
    let mut todo = vec![(value, 1)];
    while let Some((value, level)) = todo.pop() {
        deepest = deepest.max(level);
        match value {
            Value::Object(map) => todo.extend(map.values().map(|v| (v, level + 1))),
            Value::Array(items) => todo.extend(items.iter().map(|v| (v, level + 1))),
            _ => {}
        }
    }
    deepest
}

/// Copies values out of the document with their local references resolved.
struct Resolver<'a> {
    root: &'a Value,
    /// References being expanded, innermost last.
    chain: Vec<&'a str>,
    /// Values copied for the current operation.
    operation_nodes: usize,
    /// Values copied for the whole document.
    document_nodes: usize,
}

impl<'a> Resolver<'a> {
    fn new(root: &'a Value) -> Self {
        Resolver {
            root,
            chain: Vec::new(),
            operation_nodes: 0,
            document_nodes: 0,
        }
    }

    /// What `value` stands for: the target of its `$ref` (followed a few times), or itself.
    fn target(&self, mut value: &'a Value) -> &'a Value {
        for _ in 0..MAX_REF_CHAIN {
            match value
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| self.lookup(r))
            {
                Some(target) => value = target,
                None => break,
            }
        }
        value
    }

    /// The value a local reference points at.
    fn lookup(&self, reference: &str) -> Option<&'a Value> {
        reference
            .strip_prefix('#')
            .filter(|p| p.starts_with("/components/"))
            .and_then(|pointer| self.root.pointer(pointer))
    }

    fn operation(
        &mut self,
        path: &str,
        method: &str,
        item: &'a Map<String, Value>,
        op: &'a Value,
    ) -> Result<Operation> {
        self.operation_nodes = 0;
        let op = self.target(op);
        ensure(op.is_object(), || {
            format!("paths.{path}.{method} must be an object")
        })?;
        let operation_id = match op.get("operationId") {
            None | Some(Value::Null) => format!("{method} {path}"),
            Some(Value::String(id)) => {
                ensure(
                    !id.trim().is_empty()
                        && id.chars().count() <= MAX_OPERATION_ID_CHARS
                        && !id.chars().any(char::is_control),
                    || {
                        format!(
                            "operationId {id:?} must be 1 to {MAX_OPERATION_ID_CHARS} characters without control characters"
                        )
                    },
                )?;
                id.clone()
            }
            Some(_) => {
                return Err(Error::Invalid(format!(
                    "paths.{path}.{method}.operationId must be a string"
                )));
            }
        };
        Ok(Operation {
            operation_id,
            method: method.to_ascii_uppercase(),
            path_template: path.to_owned(),
            summary: op
                .get("summary")
                .and_then(Value::as_str)
                .and_then(shortened),
            params_schema: self.parameters(item.get("parameters"), op.get("parameters")),
            request_schema: self.request_schema(op),
            response_schema: self.response_schema(op),
        })
    }

    /// The path item's parameters overridden by the operation's (same `name` and `in`).
    fn parameters(
        &mut self,
        shared: Option<&'a Value>,
        own: Option<&'a Value>,
    ) -> Option<Vec<Value>> {
        let mut out: Vec<Value> = Vec::new();
        // Where each (name, in) sits in `out`: a linear search per parameter would make a
        // document with many parameters cost quadratic time.
        let mut at: std::collections::HashMap<(String, String), usize> = Default::default();
        for list in [shared, own].into_iter().flatten() {
            let Value::Array(items) = list else { continue };
            for item in items {
                let param = self.resolve(item, 0);
                // Parameter objects only: anything else describes nothing a client can use.
                if !param.is_object() {
                    continue;
                }
                let text =
                    |field: &str| param.get(field).map(|v| v.to_string()).unwrap_or_default();
                match param.get("name") {
                    Some(_) => {
                        let key = (text("name"), text("in"));
                        match at.get(&key) {
                            Some(&i) => out[i] = param,
                            None => {
                                at.insert(key, out.len());
                                out.push(param);
                            }
                        }
                    }
                    None => out.push(param),
                }
            }
        }
        (!out.is_empty()).then_some(out)
    }

    fn request_schema(&mut self, op: &'a Value) -> Option<Value> {
        let body = self.target(op.get("requestBody")?);
        self.json_schema(body)
    }

    fn response_schema(&mut self, op: &'a Value) -> Option<Value> {
        let Some(Value::Object(responses)) = op.get("responses") else {
            return None;
        };
        let mut codes: Vec<&String> = responses
            .keys()
            .filter(|code| code.starts_with('2'))
            .collect();
        codes.sort();
        let first = codes.first()?;
        let response = self.target(responses.get(first.as_str())?);
        self.json_schema(response)
    }

    /// The schema of a body's or response's JSON content (`application/json`, or another
    /// `…json` media type).
    fn json_schema(&mut self, holder: &'a Value) -> Option<Value> {
        let Some(Value::Object(content)) = holder.get("content") else {
            return None;
        };
        let media = content.get("application/json").or_else(|| {
            content
                .iter()
                .find(|(media, _)| {
                    let essence = media.split(';').next().unwrap_or("").trim();
                    essence.starts_with("application/") && essence.ends_with("json")
                })
                .map(|(_, v)| v)
        })?;
        let schema = media.get("schema")?;
        Some(self.resolve(schema, 0))
    }

    /// A copy of `value` with its references resolved.
    fn resolve(&mut self, value: &'a Value, depth: usize) -> Value {
        self.operation_nodes += 1;
        self.document_nodes += 1;
        match value {
            Value::Object(map) => {
                if let Some(Value::String(reference)) = map.get("$ref") {
                    return self.follow(reference, depth);
                }
                Value::Object(
                    map.iter()
                        .map(|(k, v)| (k.clone(), self.resolve(v, depth + 1)))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|item| self.resolve(item, depth + 1))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// The resolved target of a reference, or the reference itself where it cannot or may
    /// not be followed: not local, missing, a cycle, too deep, or over budget.
    fn follow(&mut self, reference: &'a str, depth: usize) -> Value {
        let followable = !self.chain.contains(&reference)
            && self.chain.len() < MAX_REF_CHAIN
            && depth < MAX_DEPTH_AT_REF
            && self.operation_nodes < OPERATION_NODE_BUDGET
            && self.document_nodes < DOCUMENT_NODE_BUDGET;
        match self.lookup(reference).filter(|_| followable) {
            Some(target) => {
                self.chain.push(reference);
                let out = self.resolve(target, depth);
                self.chain.pop();
                out
            }
            None => json!({ "$ref": reference }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(paths: Value, components: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "openapi": "3.1.0",
            "info": {"title": "Acme API", "version": "2024-06-01"},
            "paths": paths,
            "components": components,
        }))
        .unwrap()
    }

    fn error(bytes: &[u8]) -> String {
        match parse(bytes) {
            Err(Error::Invalid(message)) => message,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn operations_are_read_with_their_references_resolved() {
        let bytes = doc(
            json!({
                "/v1/charges/{id}": {
                    "parameters": [{"$ref": "#/components/parameters/Id"}],
                    "get": {
                        "operationId": "GetCharge",
                        "summary": "Retrieve a charge",
                        "parameters": [{"name": "expand", "in": "query", "schema": {"type": "array"}}],
                        "responses": {
                            "404": {"description": "no"},
                            "200": {"$ref": "#/components/responses/Charge"}
                        }
                    },
                    "post": {
                        "requestBody": {"content": {"application/json; charset=utf-8": {
                            "schema": {"$ref": "#/components/schemas/ChargeUpdate"}
                        }}},
                        "responses": {"201": {"description": "ok", "content": {"application/json": {
                            "schema": {"$ref": "#/components/schemas/Charge"}
                        }}}}
                    },
                    "x-internal": {"get": 1}
                }
            }),
            json!({
                "parameters": {"Id": {"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}},
                "responses": {"Charge": {"description": "ok", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Charge"}
                }}}},
                "schemas": {
                    "Charge": {"type": "object", "properties": {"amount": {"type": "integer"}}},
                    "ChargeUpdate": {"type": "object", "properties": {"description": {"type": "string"}}}
                }
            }),
        );
        let parsed = parse(&bytes).unwrap();
        assert_eq!(parsed.title.as_deref(), Some("Acme API"));
        assert_eq!(parsed.spec_version.as_deref(), Some("2024-06-01"));
        let [get, post] = parsed.operations.as_slice() else {
            panic!("{:?}", parsed.operations)
        };
        assert_eq!(
            (
                get.operation_id.as_str(),
                get.method.as_str(),
                get.path_template.as_str()
            ),
            ("GetCharge", "GET", "/v1/charges/{id}")
        );
        assert_eq!(get.summary.as_deref(), Some("Retrieve a charge"));
        let params = get.params_schema.as_ref().unwrap();
        assert_eq!(params.len(), 2);
        assert_eq!(params[0]["name"], "id", "the path-level reference resolved");
        assert_eq!(params[1]["name"], "expand");
        assert_eq!(
            get.response_schema.as_ref().unwrap()["properties"]["amount"]["type"],
            "integer",
            "the 2xx response's reference and its schema's reference resolved"
        );
        assert_eq!(get.request_schema, None);
        assert_eq!(
            post.operation_id, "post /v1/charges/{id}",
            "an operation without an id gets a derived one"
        );
        assert_eq!(
            post.request_schema.as_ref().unwrap()["properties"]["description"]["type"],
            "string"
        );
        assert_eq!(post.params_schema.as_ref().unwrap().len(), 1);
    }

    #[test]
    fn an_operation_parameter_overrides_the_path_level_one() {
        let bytes = doc(
            json!({"/a/{id}": {
                "parameters": [{"name": "id", "in": "path", "description": "shared"}],
                "get": {"parameters": [{"name": "id", "in": "path", "description": "own"}]}
            }}),
            json!({}),
        );
        let parsed = parse(&bytes).unwrap();
        let params = parsed.operations[0].params_schema.as_ref().unwrap();
        assert_eq!(params.len(), 1);
        assert_eq!(params[0]["description"], "own");
    }

    #[test]
    fn cycles_are_cut_at_the_repeated_reference() {
        let bytes = doc(
            json!({"/nodes": {"get": {"responses": {"200": {"content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Node"}
            }}}}}}}),
            json!({"schemas": {"Node": {"type": "object", "properties": {
                "children": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}}
            }}}}),
        );
        let parsed = parse(&bytes).unwrap();
        let schema = parsed.operations[0].response_schema.as_ref().unwrap();
        assert_eq!(schema["type"], "object");
        assert_eq!(
            schema["properties"]["children"]["items"],
            json!({"$ref": "#/components/schemas/Node"})
        );
    }

    #[test]
    fn exponential_expansion_is_cut_by_the_budget() {
        // Each level refers to the next twice: fully expanded it would be 2^40 values.
        let mut schemas = Map::new();
        for level in 0..40 {
            let next = json!({"$ref": format!("#/components/schemas/L{}", level + 1)});
            schemas.insert(
                format!("L{level}"),
                json!({"type": "object", "properties": {"a": next, "b": next}}),
            );
        }
        schemas.insert("L40".into(), json!({"type": "string"}));
        let bytes = doc(
            json!({"/x": {"post": {"requestBody": {"content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/L0"}
            }}}}}}),
            json!({ "schemas": schemas }),
        );
        let parsed = parse(&bytes).unwrap();
        let schema = parsed.operations[0].request_schema.as_ref().unwrap();
        let text = serde_json::to_string(schema).unwrap();
        assert!(text.len() < 2_000_000, "{}", text.len());
        assert!(text.contains("\"$ref\""), "some references were cut");
        // What was stored reads back.
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(&back, schema);
    }

    #[test]
    fn remote_and_missing_references_are_kept_as_they_are() {
        let bytes = doc(
            json!({"/x": {"get": {"parameters": [
                {"$ref": "https://example.com/params.json#/Id"},
                {"$ref": "#/components/parameters/Missing"},
                {"$ref": "#/info"}
            ]}}}),
            json!({}),
        );
        let parsed = parse(&bytes).unwrap();
        let params = parsed.operations[0].params_schema.as_ref().unwrap();
        assert_eq!(params.len(), 3);
        assert_eq!(
            params[0],
            json!({"$ref": "https://example.com/params.json#/Id"})
        );
        assert_eq!(params[2], json!({"$ref": "#/info"}), "only components");
    }

    #[test]
    fn yaml_documents_are_read_too() {
        let yaml = "openapi: 3.0.3\ninfo:\n  title: Acme\n  version: '1'\npaths:\n  /users/{id}:\n    get:\n      operationId: getUser\n      responses:\n        200:\n          description: ok\n          content:\n            application/json:\n              schema:\n                type: object\n";
        let parsed = parse(yaml.as_bytes()).unwrap();
        assert_eq!(parsed.operations[0].operation_id, "getUser");
        assert_eq!(
            parsed.operations[0].response_schema,
            Some(json!({"type": "object"}))
        );
    }

    #[test]
    fn bad_documents_are_refused_with_a_reason() {
        assert!(error(b"{not json").contains("JSON"));
        assert!(error(b"a: [unclosed").contains("YAML"));
        assert!(error(b"[1, 2]").contains("OpenAPI object"));
        assert!(error(&[0xff, 0xfe]).contains("UTF-8"));
        let swagger = json!({"swagger": "2.0", "paths": {}});
        assert!(error(&serde_json::to_vec(&swagger).unwrap()).contains("3.0.x"));
        let no_paths = json!({"openapi": "3.0.0", "info": {"title": "x"}});
        assert!(error(&serde_json::to_vec(&no_paths).unwrap()).contains("paths"));
        let duplicate = doc(
            json!({"/a": {"get": {"operationId": "x"}}, "/b": {"get": {"operationId": "x"}}}),
            json!({}),
        );
        assert!(error(&duplicate).contains("used twice"));
        let clash = doc(
            json!({"/a": {"get": {}}, "/b": {"get": {"operationId": "get /a"}}}),
            json!({}),
        );
        assert!(
            error(&clash).contains("used twice"),
            "derived ids are unique too"
        );
        let bad_path = doc(json!({"a": {"get": {}}}), json!({}));
        assert!(error(&bad_path).contains("must start with /"));
        let bad_id = doc(json!({"/a": {"get": {"operationId": 7}}}), json!({}));
        assert!(error(&bad_id).contains("must be a string"));
        let control = doc(json!({"/a": {"get": {"operationId": "a\nb"}}}), json!({}));
        assert!(error(&control).contains("control"));
        let long = doc(
            json!({"/a": {"get": {"operationId": "x".repeat(513)}}}),
            json!({}),
        );
        assert!(error(&long).contains("512"));
    }

    #[test]
    fn yaml_alias_bombs_are_refused() {
        // Nine levels of tenfold aliases: a billion strings if expanded.
        let mut yaml =
            String::from("openapi: 3.0.0\npaths: {}\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for level in 1..10 {
            let prev = format!("*a{}", level - 1);
            let items = [prev.as_str(); 10].join(", ");
            yaml.push_str(&format!("a{level}: &a{level} [{items}]\n"));
        }
        let started = std::time::Instant::now();
        assert!(error(yaml.as_bytes()).contains("YAML"));
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn limits_are_enforced() {
        let big = vec![b' '; MAX_DOCUMENT_BYTES + 1];
        assert!(error(&big).contains("larger than"));
        let mut paths = Map::new();
        for i in 0..=MAX_OPERATIONS / 2 {
            paths.insert(format!("/p{i}"), json!({"get": {}, "post": {}}));
        }
        let many = doc(Value::Object(paths), json!({}));
        assert!(error(&many).contains("more than 10000 operations"));
        let mut deep = json!({"type": "string"});
        for _ in 0..MAX_DOCUMENT_DEPTH {
            deep = json!({ "items": deep });
        }
        let nested = doc(json!({"/a": {"get": {"x": deep}}}), json!({}));
        assert!(error(&nested).contains("nests deeper"));
    }
}
