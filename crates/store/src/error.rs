//! sqlx errors as storage errors.

use alter_core::ports::StoreError;
use sqlx::error::ErrorKind;

/// PostgreSQL's SQLSTATE for a statement it cancelled (here: past `statement_timeout`).
const QUERY_CANCELED: &str = "57014";

/// Whether a database error's code says the database cannot serve now rather than that the
/// statement was wrong: on PostgreSQL (five-character SQLSTATEs) a connection exception
/// (class 08), insufficient resources such as a full disk (53), an operator intervention
/// such as a shutdown or restart (57P, and 57014, a statement cancelled past
/// `statement_timeout`); on SQLite (numeric result codes, extended ones carrying the primary
/// code in their low byte) SQLITE_FULL (13), SQLITE_IOERR (10) and SQLITE_CANTOPEN (14).
fn cannot_serve_now(code: &str) -> bool {
    if code.len() == 5 {
        return code.starts_with("08")
            || code.starts_with("53")
            || code.starts_with("57P")
            || code == QUERY_CANCELED;
    }
    code.parse::<u32>()
        .is_ok_and(|code| matches!(code & 0xff, 10 | 13 | 14))
}

/// Classifies a sqlx error: unique violations become conflicts; connection trouble, a
/// database restarting or out of space and statement timeouts become "unavailable" (the call
/// fails closed and is worth retrying); everything else is kept for the log.
pub fn db_error(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if matches!(db.kind(), ErrorKind::UniqueViolation) => {
            StoreError::Conflict(db.constraint().unwrap_or("unique").to_owned())
        }
        sqlx::Error::Database(db) if db.code().is_some_and(|c| cannot_serve_now(&c)) => {
            StoreError::Unavailable(e.to_string())
        }
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => StoreError::Unavailable(e.to_string()),
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_) => StoreError::Corrupt(e.to_string()),
        _ => StoreError::Other(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::cannot_serve_now;

    #[test]
    fn only_a_database_that_cannot_serve_now_is_unavailable() {
        for code in [
            "08006", "57P01", "57P03", "53100", "57014", "13", "10", "3338", "14",
        ] {
            assert!(cannot_serve_now(code), "{code}");
        }
        for code in ["23505", "42P01", "22P02", "40001", "1", "19", "2067", "5"] {
            assert!(!cannot_serve_now(code), "{code}");
        }
    }
}
