//! sqlx errors as storage errors.

use alter_core::ports::StoreError;
use sqlx::error::ErrorKind;

/// PostgreSQL's SQLSTATE for a statement it cancelled (here: past `statement_timeout`).
const QUERY_CANCELED: &str = "57014";

/// Classifies a sqlx error: unique violations become conflicts, connection trouble and
/// statement timeouts become "unavailable", everything else is kept for the log.
pub fn db_error(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if matches!(db.kind(), ErrorKind::UniqueViolation) => {
            StoreError::Conflict(db.constraint().unwrap_or("unique").to_owned())
        }
        sqlx::Error::Database(db) if db.code().as_deref() == Some(QUERY_CANCELED) => {
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
