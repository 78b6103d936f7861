//! PostgreSQL's time partitions of request nonces (ten minutes each, by signed timestamp) and
//! audit events (a UTC month each, by `at`): created ahead, and dropped whole once every row
//! they can hold is past its use. Each table also has a DEFAULT partition for rows outside
//! them, which is pruned row by row. Migration 0028 creates the tables; SQLite has none of
//! this.
//!
//! A partition's range is read from its name (`request_nonces_p<first second>`,
//! `audit_events_pYYYYMM`), which only this module and the migration write.

use alter_core::ports::StoreResult;
use alter_core::time::Timestamp;
use sqlx::{AnyPool, Executor};

use crate::db_error;
use crate::rows::{fetch_all, get};

/// Microseconds in a day.
const DAY: i64 = 86_400_000_000;

/// A table partitioned by time.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Partitioned {
    /// `request_nonces`, by `signed_at`, ten minutes a partition.
    Nonces,
    /// `audit_events`, by `at`, a month a partition.
    AuditEvents,
}

impl Partitioned {
    fn table(self) -> &'static str {
        match self {
            Partitioned::Nonces => "request_nonces",
            Partitioned::AuditEvents => "audit_events",
        }
    }

    fn column(self) -> &'static str {
        match self {
            Partitioned::Nonces => "signed_at",
            Partitioned::AuditEvents => "at",
        }
    }

    /// The name of the partition holding `at`, and its range `[from, to)`.
    fn partition_of(self, at: i64) -> (String, i64, i64) {
        match self {
            Partitioned::Nonces => {
                let from = at.div_euclid(NONCE_SLOT) * NONCE_SLOT;
                (
                    format!("request_nonces_p{}", from / 1_000_000),
                    from,
                    from + NONCE_SLOT,
                )
            }
            Partitioned::AuditEvents => {
                let (year, month) = month_of(at);
                let (next_year, next_month) = next(year, month);
                (
                    format!("audit_events_p{year:04}{month:02}"),
                    month_start(year, month),
                    month_start(next_year, next_month),
                )
            }
        }
    }

    /// The range `[from, to)` a partition's name stands for; `None` for the DEFAULT partition
    /// and any table this module did not name.
    fn range_of(self, name: &str) -> Option<(i64, i64)> {
        let rest = name.strip_prefix(self.table())?.strip_prefix("_p")?;
        let start = match self {
            Partitioned::Nonces => rest.parse::<i64>().ok()?.checked_mul(1_000_000)?,
            Partitioned::AuditEvents => {
                let (year, month) = (rest.get(..4)?, rest.get(4..)?);
                let (year, month) = (year.parse().ok()?, month.parse().ok()?);
                if rest.len() != 6 || !(1..=12).contains(&month) {
                    return None;
                }
                month_start(year, month)
            }
        };
        let (canonical, from, to) = self.partition_of(start);
        (canonical == name).then_some((from, to))
    }

    /// The instants whose partitions are kept in place ahead of (and just before) `now`.
    fn ahead_of(self, now: i64) -> Vec<i64> {
        match self {
            // Signed timestamps lie up to the window before or after now.
            Partitioned::Nonces => (-1..=3).map(|k| now + k * NONCE_SLOT).collect(),
            Partitioned::AuditEvents => {
                let (year, month) = month_of(now);
                let second = next(year, month);
                let third = next(second.0, second.1);
                [(year, month), second, third]
                    .into_iter()
                    .map(|(y, m)| month_start(y, m))
                    .collect()
            }
        }
    }
}

/// Ten minutes, in microseconds.
const NONCE_SLOT: i64 = 600 * 1_000_000;

/// Creates the partitions of `table` for `now` and ahead of it that are missing. A range the
/// DEFAULT partition already holds rows in is skipped (PostgreSQL would refuse the partition):
/// its rows are pruned from there, and the partition is created on a later run.
pub(crate) async fn create_ahead(pool: &AnyPool, table: Partitioned, now: i64) -> StoreResult<()> {
    let existing = partitions(pool, table).await?;
    for at in table.ahead_of(now) {
        let (name, from, to) = table.partition_of(at);
        if existing.contains(&name) {
            continue;
        }
        let in_default: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT 1 FROM {t}_default WHERE {c} >= $1 AND {c} < $2 LIMIT 1",
            t = table.table(),
            c = table.column()
        ))
        .bind(from)
        .bind(to)
        .fetch_optional(pool)
        .await
        .map_err(db_error)?;
        if in_default.is_some() {
            tracing::info!(partition = %name, "rows of its range are in the DEFAULT partition: not created yet");
            continue;
        }
        // Like a drop, this locks the parent for a moment (see [`drop_partition`]).
        let mut tx = pool.begin().await.map_err(db_error)?;
        tx.execute("SET LOCAL lock_timeout = '2s'")
            .await
            .map_err(db_error)?;
        tx.execute(
            format!(
                "CREATE TABLE IF NOT EXISTS {name} PARTITION OF {t} FOR VALUES FROM ({from}) TO ({to})",
                t = table.table()
            )
            .as_str(),
        )
        .await
        .map_err(db_error)?;
        if let Partitioned::AuditEvents = table {
            // TRUNCATE triggers are not inherited from the partitioned table.
            tx.execute(
                format!(
                    "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON {name} \
                     FOR EACH STATEMENT EXECUTE FUNCTION audit_no_truncate()"
                )
                .as_str(),
            )
            .await
            .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
    }
    Ok(())
}

/// The partitions of `table` whose whole range lies before `before` (DEFAULT excluded).
pub(crate) async fn older_than(
    pool: &AnyPool,
    table: Partitioned,
    before: i64,
) -> StoreResult<Vec<String>> {
    let mut old: Vec<(i64, String)> = partitions(pool, table)
        .await?
        .into_iter()
        .filter_map(|name| {
            let (from, to) = table.range_of(&name)?;
            (to <= before).then_some((from, name))
        })
        .collect();
    old.sort();
    Ok(old.into_iter().map(|(_, name)| name).collect())
}

/// Drops a partition named by [`older_than`]. Dropping a partition locks its parent table
/// exclusively for a moment; behind a long transaction on it, the drop would make every
/// insert queue behind it, so it gives up after a short wait and is retried on the next run.
pub(crate) async fn drop_partition(pool: &AnyPool, name: &str) -> StoreResult<()> {
    let mut tx = pool.begin().await.map_err(db_error)?;
    tx.execute("SET LOCAL lock_timeout = '2s'")
        .await
        .map_err(db_error)?;
    tx.execute(format!("DROP TABLE IF EXISTS {name}").as_str())
        .await
        .map_err(db_error)?;
    tx.commit().await.map_err(db_error)
}

/// The names of `table`'s partitions, DEFAULT included.
async fn partitions(pool: &AnyPool, table: Partitioned) -> StoreResult<Vec<String>> {
    let query = sqlx::query(
        "SELECT c.relname::text AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = to_regclass($1)",
    )
    .bind(table.table());
    fetch_all(pool, query, |row| get(row, "name")).await
}

/// Forgets the nonces stored before migration 0028 (kept under their claim time, on the
/// horizon `before`), and once none is left drops their table and the trigger that consults
/// it on every claim.
pub(crate) async fn prune_legacy_nonces(pool: &AnyPool, before: Timestamp) -> StoreResult<u64> {
    let exists: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('request_nonces_legacy')::text")
            .fetch_one(pool)
            .await
            .map_err(db_error)?;
    if exists.is_none() {
        return Ok(0);
    }
    let pruned = sqlx::query("DELETE FROM request_nonces_legacy WHERE seen_at < $1")
        .bind(before.micros())
        .execute(pool)
        .await
        .map_err(db_error)?
        .rows_affected();
    let left: Option<i64> = sqlx::query_scalar("SELECT 1 FROM request_nonces_legacy LIMIT 1")
        .fetch_optional(pool)
        .await
        .map_err(db_error)?;
    if left.is_none() {
        let mut tx = pool.begin().await.map_err(db_error)?;
        for stmt in [
            "DROP TRIGGER IF EXISTS request_nonces_not_legacy ON request_nonces",
            "DROP FUNCTION IF EXISTS request_nonces_not_legacy()",
            "DROP TABLE IF EXISTS request_nonces_legacy",
        ] {
            tx.execute(stmt).await.map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
    }
    Ok(pruned)
}

/// Whether every row of the audit partition `name` is covered by its app's anchor (so that
/// dropping it removes nothing verification still needs).
pub(crate) async fn audit_partition_covered(pool: &AnyPool, name: &str) -> StoreResult<bool> {
    let uncovered: Option<i64> = sqlx::query_scalar(&format!(
        "SELECT 1 FROM {name} e WHERE NOT EXISTS (SELECT 1 FROM audit_anchors a \
         WHERE a.app_id = e.app_id AND a.through_seq >= e.seq) LIMIT 1"
    ))
    .fetch_optional(pool)
    .await
    .map_err(db_error)?;
    Ok(uncovered.is_none())
}

/// The start of the UTC month holding `at` (microseconds).
pub(crate) fn month_start_of(at: i64) -> i64 {
    let (year, month) = month_of(at);
    month_start(year, month)
}

/// The UTC (year, month) holding `at` (microseconds).
fn month_of(at: i64) -> (i64, i64) {
    // Howard Hinnant's civil_from_days.
    let z = at.div_euclid(DAY) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month)
}

/// The first microsecond of a UTC month.
fn month_start(year: i64, month: i64) -> i64 {
    // Howard Hinnant's days_from_civil, for the first day of the month.
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe - 719_468) * DAY
}

fn next(year: i64, month: i64) -> (i64, i64) {
    if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    #[test]
    fn months_are_utc_calendar_months() {
        // 2024-03-01T00:00:00Z and 2024-02-29T23:59:59Z (a leap year).
        assert_eq!(month_start(2024, 3), 1_709_251_200 * S);
        assert_eq!(month_of(1_709_251_200 * S - 1), (2024, 2));
        assert_eq!(month_of(1_709_251_200 * S), (2024, 3));
        assert_eq!(month_start(1970, 1), 0);
        assert_eq!(month_of(-1), (1969, 12));
        // 2026-12-07T22:56:00Z.
        assert_eq!(month_of(1_796_684_160 * S), (2026, 12));
        assert_eq!(month_start(2027, 1), 1_798_761_600 * S);
        for at in [
            0,
            1_709_251_200 * S + 5,
            4_102_444_800 * S,
            -86_400 * 400 * S,
        ] {
            let start = month_start_of(at);
            assert!(start <= at && month_of(start) == month_of(at));
            assert_ne!(month_of(start - 1), month_of(at));
        }
    }

    #[test]
    fn partition_names_read_back_as_their_ranges() {
        let at = 1_796_684_160 * S;
        for table in [Partitioned::Nonces, Partitioned::AuditEvents] {
            let (name, from, to) = table.partition_of(at);
            assert!(from <= at && at < to);
            assert_eq!(table.range_of(&name), Some((from, to)));
            assert_eq!(table.range_of(&format!("{}_default", table.table())), None);
        }
        assert_eq!(
            Partitioned::AuditEvents.partition_of(at).0,
            "audit_events_p202612"
        );
        assert_eq!(
            Partitioned::Nonces.partition_of(at),
            (
                "request_nonces_p1796683800".to_owned(),
                1_796_683_800 * S,
                1_796_684_400 * S
            )
        );
        assert_eq!(
            Partitioned::AuditEvents.range_of("audit_events_p202613"),
            None
        );
        assert_eq!(Partitioned::Nonces.range_of("request_nonces_p12"), None);
    }
}
