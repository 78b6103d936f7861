//! A transaction's statements sent in as few round trips as the engine allows.
//!
//! A SQLite connection runs on a worker thread of its own: each statement is a hand-off to it
//! and back, which on a VM whose cores idle costs about as much as the statement. A [`Script`]
//! runs several statements in one hand-off on SQLite (one multi-statement string; SQLite binds
//! `$N` parameters by number across all of it) and one by one on PostgreSQL, whose statements
//! are network round trips either way — so one piece of code serves both engines.
//!
//! (Sending a PostgreSQL script as one simple-protocol query, values written as literals, was
//! measured and dropped: PostgreSQL then plans every statement anew, which cost more CPU and
//! latency than the round trips saved — docs/benchmarks.md. One round trip with the plans
//! kept needs a pipelined extended protocol, which sqlx does not offer.)

use futures_util::TryStreamExt;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Either, Executor};

use alter_core::ports::{StoreError, StoreResult};

use crate::db_error;

/// The `Any` driver's name for SQLite connections.
const SQLITE: &str = "SQLite";

/// One parameter value.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    Text(String),
    Int(i64),
    Blob(Vec<u8>),
    /// A NULL in a text (or untyped) column.
    Null,
    /// A NULL in an integer column: PostgreSQL refuses a text-typed NULL there.
    NullInt,
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_owned())
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int(v)
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Value {
        Value::Blob(v)
    }
}

impl From<Option<String>> for Value {
    fn from(v: Option<String>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

impl From<Option<&str>> for Value {
    fn from(v: Option<&str>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

impl From<Option<Vec<u8>>> for Value {
    fn from(v: Option<Vec<u8>>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

impl From<Option<i64>> for Value {
    fn from(v: Option<i64>) -> Value {
        v.map_or(Value::NullInt, Into::into)
    }
}

/// One statement, its parameters numbered `$1`, `$2`… of its own.
#[derive(Debug)]
pub(crate) struct Stmt {
    sql: String,
    params: Vec<Value>,
    /// Worth a prepared statement kept in the connection's cache: its text recurs.
    recurring: bool,
}

impl Stmt {
    pub(crate) fn new(sql: impl Into<String>) -> Stmt {
        Stmt {
            sql: sql.into(),
            params: Vec::new(),
            recurring: true,
        }
    }

    /// Marks the statement's text as one of many shapes (a batch's size shows in it), when
    /// `varies`: not worth a prepared statement kept in the connection's cache.
    pub(crate) fn one_off_if(mut self, varies: bool) -> Stmt {
        self.recurring = !varies;
        self
    }

    /// Binds the next parameter.
    pub(crate) fn bind(mut self, value: impl Into<Value>) -> Stmt {
        self.params.push(value.into());
        self
    }
}

/// Statements run in order on one connection; each statement's rows come back separately.
#[derive(Debug, Default)]
pub(crate) struct Script {
    stmts: Vec<Stmt>,
}

impl Script {
    pub(crate) fn new() -> Script {
        Script::default()
    }

    /// Adds a statement; returns its index among the script's results.
    pub(crate) fn push(&mut self, stmt: Stmt) -> usize {
        self.stmts.push(stmt);
        self.stmts.len() - 1
    }

    /// Runs the statements in order: one hand-off on SQLite, one round trip each on
    /// PostgreSQL. Returns each statement's rows. An error stops the script where it failed;
    /// the caller rolls back.
    pub(crate) async fn run(self, conn: &mut AnyConnection) -> StoreResult<Vec<Vec<AnyRow>>> {
        if self.stmts.is_empty() {
            return Ok(Vec::new());
        }
        if conn.backend_name() != SQLITE {
            let mut results = Vec::with_capacity(self.stmts.len());
            for stmt in self.stmts {
                let query =
                    bind_all(sqlx::query(&stmt.sql), stmt.params).persistent(stmt.recurring);
                results.push(query.fetch_all(&mut *conn).await.map_err(db_error)?);
            }
            return Ok(results);
        }
        let count = self.stmts.len();
        let recurring = self.stmts.iter().all(|stmt| stmt.recurring);
        let mut sql = String::new();
        let mut params = Vec::new();
        for stmt in self.stmts {
            sql.push_str(&renumber(&stmt.sql, params.len()));
            sql.push_str(";\n");
            params.extend(stmt.params);
        }
        let query = bind_all(sqlx::query(&sql), params).persistent(recurring);
        let mut results = vec![Vec::new()];
        // sqlx means to drop multi-statement prepared queries (sqlx#3108): running the
        // statements one by one, as on PostgreSQL, is then the fallback.
        let mut stream = Executor::fetch_many(&mut *conn, query);
        while let Some(item) = stream.try_next().await.map_err(db_error)? {
            match item {
                Either::Left(_) => results.push(Vec::new()),
                Either::Right(row) => {
                    if let Some(rows) = results.last_mut() {
                        rows.push(row);
                    }
                }
            }
        }
        // Each statement ends with its result: one more entry than statements were run.
        results.pop();
        if results.len() != count {
            return Err(StoreError::Other(format!(
                "a script of {count} statements ran {}",
                results.len()
            )));
        }
        Ok(results)
    }
}

fn bind_all<'q>(
    mut query: crate::rows::AnyQuery<'q>,
    params: Vec<Value>,
) -> crate::rows::AnyQuery<'q> {
    for value in params {
        query = match value {
            Value::Text(v) => query.bind(v),
            Value::Int(v) => query.bind(v),
            Value::Blob(v) => query.bind(v),
            Value::Null => query.bind(None::<String>),
            Value::NullInt => query.bind(None::<i64>),
        };
    }
    query
}

/// `sql` with each `$N` placeholder moved up by `offset`. Our statements hold no `$` inside
/// string literals.
fn renumber(sql: &str, offset: usize) -> String {
    if offset == 0 {
        return sql.to_owned();
    }
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        out.push(c);
        if c != '$' {
            continue;
        }
        let start = i + 1;
        let mut end = start;
        while let Some(&(j, d)) = chars.peek() {
            if !d.is_ascii_digit() {
                break;
            }
            end = j + 1;
            chars.next();
        }
        match sql[start..end].parse::<usize>() {
            Ok(n) => out.push_str(&(n + offset).to_string()),
            Err(_) => out.push_str(&sql[start..end]),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::{Script, Stmt, Value, renumber};
    use crate::scratch::ScratchDatabase;
    use sqlx::Row;

    /// Texts that would end or escape a quoted or dollar-quoted literal, or comment out the
    /// rest, were they ever written into a statement's text.
    const HOSTILE: &[&str] = &[
        "",
        "plain",
        "it's",
        "a\\b\\",
        "$v0$",
        "x$v0",
        "$v0",
        "$v0$$v1$",
        "$$",
        "'); DROP TABLE probe; --",
        "$v0$); DROP TABLE probe; --",
        "--",
        "/* x",
        "é 日本 🦀",
    ];

    /// Every value comes back from the database exactly as it went in, and none of them runs
    /// as SQL, on both engines.
    #[tokio::test]
    async fn values_reach_the_database_as_values() {
        sqlx::any::install_default_drivers();
        let mut databases = vec![ScratchDatabase::sqlite().unwrap()];
        databases.extend(ScratchDatabase::postgres().await.unwrap());
        for db in &databases {
            let url = if db.url().starts_with("sqlite") {
                format!("{}?mode=rwc", db.url())
            } else {
                db.url().to_owned()
            };
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
                .await
                .unwrap();
            let mut script = Script::new();
            script.push(Stmt::new("CREATE TABLE probe (v TEXT)"));
            let texts: Vec<usize> = HOSTILE
                .iter()
                .map(|text| script.push(Stmt::new("SELECT CAST($1 AS TEXT) AS v").bind(*text)))
                .collect();
            let ints: Vec<(i64, usize)> = [0, -1, 42, i64::MIN, i64::MAX]
                .into_iter()
                .map(|n| {
                    (
                        n,
                        script.push(Stmt::new("SELECT CAST($1 AS BIGINT) AS v").bind(n)),
                    )
                })
                .collect();
            // Written into the text, `1-$1` of -1 would be `1--1`: a comment to the line's end.
            let minus = script.push(Stmt::new("SELECT 1-CAST($1 AS BIGINT) AS v").bind(-1i64));
            let nulls = script.push(
                Stmt::new("SELECT CAST($1 AS TEXT) AS t, CAST($2 AS BIGINT) AS n")
                    .bind(Value::Null)
                    .bind(Value::NullInt),
            );
            let count = script.push(Stmt::new("SELECT count(*) AS n FROM probe"));
            let results = script.run(&mut conn).await.unwrap();
            for (text, at) in HOSTILE.iter().zip(texts) {
                let back: String = results[at][0].try_get("v").unwrap();
                assert_eq!(&back, text, "{}", db.url());
            }
            for (n, at) in ints {
                let back: i64 = results[at][0].try_get("v").unwrap();
                assert_eq!(back, n, "{}", db.url());
            }
            let back: i64 = results[minus][0].try_get("v").unwrap();
            assert_eq!(back, 2);
            let t: Option<String> = results[nulls][0].try_get("t").unwrap();
            let n: Option<i64> = results[nulls][0].try_get("n").unwrap();
            assert_eq!((t, n), (None, None));
            let probes: i64 = results[count][0].try_get("n").unwrap();
            assert_eq!(probes, 0, "the probe table is still there and empty");
        }
    }

    #[test]
    fn placeholders_move_by_the_offset() {
        assert_eq!(
            renumber("a = $1 AND b IN ($2, $10)", 0),
            "a = $1 AND b IN ($2, $10)"
        );
        assert_eq!(
            renumber("a = $1 AND b IN ($2, $10)", 7),
            "a = $8 AND b IN ($9, $17)"
        );
        assert_eq!(renumber("x = 'y'", 3), "x = 'y'");
    }
}
