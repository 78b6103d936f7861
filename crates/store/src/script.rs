//! A transaction's statements sent in as few round trips as the engine allows.
//!
//! A SQLite connection runs on a worker thread of its own: each statement is a hand-off to it
//! and back, which on a VM whose cores idle costs about as much as the statement. A [`Script`]
//! runs several statements in one hand-off on SQLite (one multi-statement string; SQLite binds
//! `$N` parameters by number across all of it). On PostgreSQL each statement is a network
//! round trip: neighbouring statements that declare the columns they return
//! ([`Stmt::returning`]) are sent as one prepared statement — each a `MATERIALIZED` common
//! table expression, their rows joined by `UNION ALL` and told apart by a `script_part`
//! column — and the rest one by one. So one piece of code serves both engines.
//!
//! PostgreSQL reads the joined statements' rows arm by arm, so each that returns rows runs
//! (and takes its row locks) in script order. Writes without rows to return run after those,
//! in an order PostgreSQL leaves unspecified: none may rely on another's order or effects (in
//! the commit, every row they write was locked by the read before them).
//!
//! (Sending a PostgreSQL script as one simple-protocol query, values written as literals, was
//! measured and dropped: PostgreSQL then plans every statement anew, which cost more CPU and
//! latency than the round trips saved — docs/benchmarks.md. A joined statement is prepared
//! and its plan kept like any other.)

use std::fmt::Write as _;

use futures_util::TryStreamExt;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Either, Executor};

use alter_core::ports::{StoreError, StoreResult};

use crate::db_error;
use crate::rows::get;

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

/// A column a statement returns: its name and PostgreSQL type.
pub(crate) type Column = (&'static str, &'static str);

/// One statement, its parameters numbered `$1`, `$2`… of its own.
#[derive(Debug)]
pub(crate) struct Stmt {
    sql: String,
    params: Vec<Value>,
    /// Worth a prepared statement kept in the connection's cache: its text recurs.
    recurring: bool,
    /// The columns it returns, when declared: it may then be joined with its neighbours.
    returns: Option<&'static [Column]>,
}

impl Stmt {
    pub(crate) fn new(sql: impl Into<String>) -> Stmt {
        Stmt {
            sql: sql.into(),
            params: Vec::new(),
            recurring: true,
            returns: None,
        }
    }

    /// Declares the columns the statement returns (none for a write without `RETURNING`):
    /// on PostgreSQL it is then sent as one with its neighbours that declare theirs. Only for
    /// a statement whose text may stand in a `WITH` clause (a `SELECT`, `INSERT`, `UPDATE` or
    /// `DELETE`). Joined statements share one snapshot: none sees another's writes, and no
    /// two may write the same row.
    pub(crate) fn returning(mut self, columns: &'static [Column]) -> Stmt {
        self.returns = Some(columns);
        self
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

    /// Runs the statements in order: one hand-off on SQLite; on PostgreSQL one round trip
    /// for each run of neighbours that declared their columns, and one for each other
    /// statement. Returns each statement's rows. An error stops the script where it failed;
    /// the caller rolls back.
    pub(crate) async fn run(self, conn: &mut AnyConnection) -> StoreResult<Vec<Vec<AnyRow>>> {
        if self.stmts.is_empty() {
            return Ok(Vec::new());
        }
        if conn.backend_name() != SQLITE {
            return self.run_on_postgres(conn).await;
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

impl Script {
    async fn run_on_postgres(self, conn: &mut AnyConnection) -> StoreResult<Vec<Vec<AnyRow>>> {
        let mut results = Vec::with_capacity(self.stmts.len());
        let mut stmts = self.stmts.into_iter().peekable();
        while let Some(first) = stmts.next() {
            let mut run = vec![first];
            while run[0].returns.is_some() {
                match stmts.next_if(|next| next.returns.is_some()) {
                    Some(next) => run.push(next),
                    None => break,
                }
            }
            let parts = run.len();
            let joined = parts > 1;
            let stmt = if joined { join(run)? } else { run.remove(0) };
            let query = bind_all(sqlx::query(&stmt.sql), stmt.params).persistent(stmt.recurring);
            let rows = query.fetch_all(&mut *conn).await.map_err(db_error)?;
            if !joined {
                results.push(rows);
                continue;
            }
            let mut split: Vec<Vec<AnyRow>> = (0..parts).map(|_| Vec::new()).collect();
            for row in rows {
                let part: i64 = get(&row, "script_part")?;
                split
                    .get_mut(usize::try_from(part).unwrap_or(usize::MAX))
                    .ok_or_else(|| StoreError::Other(format!("no script part {part}")))?
                    .push(row);
            }
            results.extend(split);
        }
        Ok(results)
    }
}

/// The statements of `run` as one: each a `MATERIALIZED` common table expression, the rows of
/// those that return any read in order through `UNION ALL`, each arm naming every column any
/// of them returns (`NULL` where it is another's) after its index as `script_part`.
fn join(run: Vec<Stmt>) -> StoreResult<Stmt> {
    for stmt in &run {
        check_joinable(stmt)?;
    }
    let mut columns: Vec<Column> = Vec::new();
    for column in run.iter().flat_map(|stmt| stmt.returns.unwrap_or_default()) {
        match columns.iter().find(|(name, _)| *name == column.0) {
            Some(known) if known.1 != column.1 => {
                return Err(StoreError::Other(format!(
                    "joined statements return column {} as both {} and {}",
                    column.0, known.1, column.1
                )));
            }
            Some(_) => {}
            None => columns.push(*column),
        }
    }
    let recurring = run.iter().all(|stmt| stmt.recurring);
    let mut sql = String::from("WITH ");
    let mut arms = Vec::new();
    let mut params = Vec::new();
    for (i, stmt) in run.into_iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        let _ = write!(
            sql,
            "s{i} AS MATERIALIZED ({})",
            renumber(&stmt.sql, params.len())
        );
        let returns = stmt.returns.unwrap_or_default();
        if !returns.is_empty() {
            let mut arm = format!("SELECT {i}::BIGINT AS script_part");
            for (name, kind) in &columns {
                if returns.iter().any(|(own, _)| own == name) {
                    let _ = write!(arm, ", \"{name}\"");
                } else {
                    let _ = write!(arm, ", NULL::{kind} AS \"{name}\"");
                }
            }
            let _ = write!(arm, " FROM s{i}");
            arms.push(arm);
        }
        params.extend(stmt.params);
    }
    if arms.is_empty() {
        sql.push_str(" SELECT 0::BIGINT AS script_part WHERE false");
    } else {
        sql.push(' ');
        sql.push_str(&arms.join(" UNION ALL "));
    }
    Ok(Stmt {
        sql,
        params,
        recurring,
        returns: None,
    })
}

/// Refuses what joining would silently change: a statement whose placeholders do not match
/// its parameters (joined, a stray `$N` would take a neighbour's value), and a statement that
/// returns no rows but is not a write (PostgreSQL skips a `SELECT` nothing reads, and with it
/// any row locks it takes).
fn check_joinable(stmt: &Stmt) -> StoreResult<()> {
    let highest = placeholders(&stmt.sql).map(|(_, n)| n).max().unwrap_or(0);
    if highest != stmt.params.len() {
        return Err(StoreError::Other(format!(
            "a statement to join names ${highest} but binds {} parameters",
            stmt.params.len()
        )));
    }
    let verb = stmt.sql.trim_start().get(..6).unwrap_or_default();
    let writes = ["INSERT", "UPDATE", "DELETE"]
        .iter()
        .any(|w| verb.eq_ignore_ascii_case(w));
    if stmt.returns.is_some_and(<[Column]>::is_empty) && !writes {
        return Err(StoreError::Other(
            "a statement to join returns no rows and writes none".into(),
        ));
    }
    Ok(())
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
    let mut copied = 0;
    for (digits, n) in placeholders(sql) {
        out.push_str(&sql[copied..digits.start]);
        out.push_str(&(n + offset).to_string());
        copied = digits.end;
    }
    out.push_str(&sql[copied..]);
    out
}

/// The `$N` placeholders of `sql`: where each one's digits are, and its number.
fn placeholders(sql: &str) -> impl Iterator<Item = (std::ops::Range<usize>, usize)> + '_ {
    sql.match_indices('$').filter_map(move |(at, _)| {
        let start = at + 1;
        let digits = start..start + sql[start..].bytes().take_while(u8::is_ascii_digit).count();
        sql[digits.clone()].parse().ok().map(|n| (digits, n))
    })
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

    /// A connection to a scratch database of each engine (PostgreSQL when configured), beside
    /// the database it keeps alive (dropped after it).
    async fn connections() -> Vec<(sqlx::AnyConnection, ScratchDatabase)> {
        sqlx::any::install_default_drivers();
        let mut databases = vec![ScratchDatabase::sqlite().unwrap()];
        databases.extend(ScratchDatabase::postgres().await.unwrap());
        let mut connections = Vec::new();
        for db in databases {
            let url = if db.url().starts_with("sqlite") {
                format!("{}?mode=rwc", db.url())
            } else {
                db.url().to_owned()
            };
            let conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
                .await
                .unwrap();
            connections.push((conn, db));
        }
        connections
    }

    /// Every value comes back from the database exactly as it went in, and none of them runs
    /// as SQL, on both engines.
    #[tokio::test]
    async fn values_reach_the_database_as_values() {
        for (mut conn, db) in connections().await {
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

    /// Statements that declare their columns come back each with its own rows, in order, and
    /// with their writes made, whether PostgreSQL got them as one statement or SQLite as one
    /// string; a run ends at a statement that declares none.
    #[tokio::test]
    async fn joined_statements_return_each_its_own_rows() {
        for (mut conn, db) in connections().await {
            let mut setup = Script::new();
            setup.push(Stmt::new("CREATE TABLE t (id TEXT PRIMARY KEY, n BIGINT)"));
            setup.push(Stmt::new("INSERT INTO t VALUES ('a', 1), ('b', 2)"));
            setup.run(&mut conn).await.unwrap();

            let mut script = Script::new();
            let inserted = script.push(
                Stmt::new("INSERT INTO t VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING id")
                    .returning(&[("id", "TEXT")])
                    .bind("c")
                    .bind(3i64),
            );
            let none = script.push(
                Stmt::new("SELECT id, n FROM t WHERE id = $1")
                    .returning(&[("id", "TEXT"), ("n", "BIGINT")])
                    .bind("zzz"),
            );
            let read = script.push(
                Stmt::new("SELECT id, n FROM t WHERE id IN ($1, $2) ORDER BY id")
                    .returning(&[("id", "TEXT"), ("n", "BIGINT")])
                    .bind("a")
                    .bind("b"),
            );
            let written = script.push(
                Stmt::new("UPDATE t SET n = n + $1 WHERE id = $2")
                    .returning(&[])
                    .bind(10i64)
                    .bind("a"),
            );
            let moved = script.push(
                Stmt::new("UPDATE t SET n = n * 2 WHERE id = $1 RETURNING n")
                    .returning(&[("n", "BIGINT")])
                    .bind("b"),
            );
            let after = script.push(Stmt::new("SELECT id, n FROM t ORDER BY id"));
            let results = script.run(&mut conn).await.unwrap();
            assert_eq!(results.len(), 6, "{}", db.url());
            let ids = |at: usize| -> Vec<String> {
                results[at]
                    .iter()
                    .map(|r| r.try_get("id").unwrap())
                    .collect()
            };
            assert_eq!(ids(inserted), ["c"], "{}", db.url());
            assert!(results[none].is_empty(), "{}", db.url());
            assert_eq!(ids(read), ["a", "b"], "{}", db.url());
            let n: i64 = results[read][1].try_get("n").unwrap();
            assert_eq!(n, 2, "{}", db.url());
            assert!(results[written].is_empty(), "{}", db.url());
            let n: i64 = results[moved][0].try_get("n").unwrap();
            assert_eq!(n, 4, "{}", db.url());
            let all: Vec<(String, i64)> = results[after]
                .iter()
                .map(|r| (r.try_get("id").unwrap(), r.try_get("n").unwrap()))
                .collect();
            assert_eq!(
                all,
                [("a".into(), 11), ("b".into(), 4), ("c".into(), 3)],
                "{}",
                db.url()
            );

            // Neither a statement binding fewer values than it names, nor a read returning
            // nothing (PostgreSQL would skip it, and its locks), is joined.
            for refused in [
                vec![
                    Stmt::new("SELECT id FROM t WHERE id = $1 OR id = $2")
                        .returning(&[("id", "TEXT")])
                        .bind("a"),
                    Stmt::new("SELECT n FROM t WHERE id = $1")
                        .returning(&[("n", "BIGINT")])
                        .bind("b"),
                ],
                vec![
                    Stmt::new("SELECT id FROM t FOR UPDATE").returning(&[]),
                    Stmt::new("SELECT n FROM t").returning(&[("n", "BIGINT")]),
                ],
            ] {
                let mut script = Script::new();
                for stmt in refused {
                    script.push(stmt);
                }
                if !db.url().starts_with("sqlite") {
                    assert!(script.run(&mut conn).await.is_err());
                }
            }

            // Two columns of one name and different types cannot be joined.
            let mut clash = Script::new();
            clash.push(Stmt::new("SELECT id FROM t").returning(&[("id", "TEXT")]));
            clash.push(Stmt::new("SELECT n AS id FROM t").returning(&[("id", "BIGINT")]));
            if !db.url().starts_with("sqlite") {
                assert!(clash.run(&mut conn).await.is_err());
            }
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
