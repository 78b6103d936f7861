//! Reading portable column types back into domain types.

use alter_core::ids::Id;
use alter_core::ports::{StoreError, StoreResult};
use alter_core::time::Timestamp;
use serde::de::DeserializeOwned;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, Executor, Row};

use crate::error::db_error;

/// A query with its parameters bound.
pub type AnyQuery<'q> = Query<'q, Any, AnyArguments<'q>>;

/// Runs a write statement; returns how many rows it changed.
pub async fn execute<'q, 'c>(
    executor: impl Executor<'c, Database = Any>,
    query: AnyQuery<'q>,
) -> StoreResult<u64> {
    Ok(query
        .execute(executor)
        .await
        .map_err(db_error)?
        .rows_affected())
}

/// Runs `query` and maps the row it returns, if any.
pub async fn fetch_optional<'q, 'c, T>(
    executor: impl Executor<'c, Database = Any>,
    query: AnyQuery<'q>,
    map: fn(&AnyRow) -> StoreResult<T>,
) -> StoreResult<Option<T>> {
    query
        .fetch_optional(executor)
        .await
        .map_err(db_error)?
        .as_ref()
        .map(map)
        .transpose()
}

/// Runs `query` and maps every row it returns.
pub async fn fetch_all<'q, 'c, T>(
    executor: impl Executor<'c, Database = Any>,
    query: AnyQuery<'q>,
    map: fn(&AnyRow) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    query
        .fetch_all(executor)
        .await
        .map_err(db_error)?
        .iter()
        .map(map)
        .collect()
}

/// A non-null column.
pub fn get<'r, T>(row: &'r AnyRow, column: &str) -> StoreResult<T>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get(column).map_err(db_error)
}

/// A 0/1 flag column.
pub fn flag(row: &AnyRow, column: &str) -> StoreResult<bool> {
    match get::<i64>(row, column)? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(corrupt(column)),
    }
}

/// A text column holding an enum's stored form, read back with the enum's `parse`.
pub fn parsed<T>(row: &AnyRow, column: &str, parse: fn(&str) -> Option<T>) -> StoreResult<T> {
    let text: String = get(row, column)?;
    parse(&text).ok_or_else(|| corrupt(column))
}

/// A UUID column.
pub fn id<K>(row: &AnyRow, column: &str) -> StoreResult<Id<K>> {
    let text: String = get(row, column)?;
    Id::parse(&text).ok_or_else(|| corrupt(column))
}

/// A nullable UUID column.
pub fn opt_id<K>(row: &AnyRow, column: &str) -> StoreResult<Option<Id<K>>> {
    let text: Option<String> = get(row, column)?;
    text.map(|t| Id::parse(&t).ok_or_else(|| corrupt(column)))
        .transpose()
}

/// A time column.
pub fn time(row: &AnyRow, column: &str) -> StoreResult<Timestamp> {
    get::<i64>(row, column).map(Timestamp::from_micros)
}

/// A nullable time column.
pub fn opt_time(row: &AnyRow, column: &str) -> StoreResult<Option<Timestamp>> {
    Ok(get::<Option<i64>>(row, column)?.map(Timestamp::from_micros))
}

/// A JSON text column.
pub fn json<T: DeserializeOwned>(row: &AnyRow, column: &str) -> StoreResult<T> {
    let text: String = get(row, column)?;
    serde_json::from_str(&text).map_err(|_| corrupt(column))
}

/// A nullable JSON text column.
pub fn opt_json<T: DeserializeOwned>(row: &AnyRow, column: &str) -> StoreResult<Option<T>> {
    let text: Option<String> = get(row, column)?;
    text.map(|t| serde_json::from_str(&t).map_err(|_| corrupt(column)))
        .transpose()
}

/// A 32-byte hash column.
pub fn hash32(row: &AnyRow, column: &str) -> StoreResult<[u8; 32]> {
    let bytes: Vec<u8> = get(row, column)?;
    bytes.try_into().map_err(|_| corrupt(column))
}

/// Serializes a value for a JSON text column.
pub fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Other(e.to_string()))
}

/// Microseconds for a nullable time column.
pub fn micros(t: Option<Timestamp>) -> Option<i64> {
    t.map(Timestamp::micros)
}

fn corrupt(column: &str) -> StoreError {
    StoreError::Corrupt(format!("column {column} holds an unexpected value"))
}
