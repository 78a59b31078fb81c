//! Clicks on referral links: written in batches (one multi-row INSERT per
//! chunk, one transaction per batch) and counted per channel and day.

use crate::{with_db, Backend, Result, Store};
use sarafan_core::ids::{MemberId, ProgramId};
use sarafan_core::link::{Channel, ReferralCode};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

/// One click on a referral link, as the redirect saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Click {
    pub program: ProgramId,
    /// UUIDv7, made when the click arrived.
    pub id: Uuid,
    pub code: ReferralCode,
    pub member: MemberId,
    pub at: OffsetDateTime,
    pub channel: Channel,
    /// SHA-256 of IP and user agent (`sarafan_core::link::visitor_hash`).
    pub visitor_hash: [u8; 32],
    /// The `Referer` header, cut to 500 characters.
    pub referer: Option<String>,
}

/// Clicks of one channel on one day (UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClickCount {
    pub day: Date,
    pub channel: String,
    pub clicks: u64,
}

/// Rows per INSERT statement at most (8 parameters a row).
const ROWS_PER_STATEMENT: usize = 256;

/// Splits `n` rows into INSERTs of power-of-two sizes (256, …, 2, 1), so
/// statements come in nine shapes the statement cache keeps prepared,
/// instead of a new multi-row statement to prepare for every batch size.
fn chunk_sizes(mut n: usize) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        let size = match n {
            0 => return None,
            n if n >= ROWS_PER_STATEMENT => ROWS_PER_STATEMENT,
            n => 1 << (usize::BITS - 1 - n.leading_zeros()),
        };
        n -= size;
        Some(size)
    })
}

impl Store {
    /// Writes a batch of clicks, of any programs, in one transaction.
    pub async fn record_clicks(&self, clicks: &[Click]) -> Result<()> {
        if clicks.is_empty() {
            return Ok(());
        }
        with_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let mut rest = clicks;
            for size in chunk_sizes(clicks.len()) {
                let (chunk, tail) = rest.split_at(size);
                rest = tail;
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO referral_clicks (program_id, click_id, code, member_id, clicked_at, \
                     channel, visitor_hash, referer) ",
                );
                q.push_values(chunk, |mut row, c| {
                    row.push_bind(c.program.0)
                        .push_bind(c.id)
                        .push_bind(c.code.as_str())
                        .push_bind(c.member.0)
                        .push_bind(c.at)
                        .push_bind(c.channel.as_str())
                        .push_bind(&c.visitor_hash[..])
                        .push_bind(c.referer.as_deref());
                });
                q.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Clicks per channel per day (UTC) of a program from day `first` to
    /// day `last` inclusive, by day then channel.
    pub async fn clicks_by_channel_day(
        &self,
        program: ProgramId,
        first: Date,
        last: Date,
    ) -> Result<Vec<ClickCount>> {
        // SQLite keeps times as RFC 3339 text in UTC: a bare date sorts just
        // before every time of its day, so the range stays an index scan.
        let (day, from, to) = match self.backend() {
            Backend::Sqlite => ("substr(clicked_at, 1, 10)", "$2", "$3"),
            Backend::Postgres => (
                "to_char(clicked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
                "CAST($2 AS TIMESTAMP) AT TIME ZONE 'UTC'",
                "CAST($3 AS TIMESTAMP) AT TIME ZONE 'UTC'",
            ),
        };
        let sql = format!(
            "SELECT {day} AS day, channel, COUNT(*) AS clicks FROM referral_clicks \
             WHERE program_id = $1 AND clicked_at >= {from} AND clicked_at < {to} \
             GROUP BY 1, 2 ORDER BY 1, 2"
        );
        let format = time::macros::format_description!("[year]-[month]-[day]");
        let show = |d: Date| {
            d.format(&format)
                .map_err(|e| crate::StoreError::Corrupt(e.to_string()))
        };
        let (from, to) = (show(first)?, show(last.next_day().unwrap_or(last))?);
        let rows: Vec<(String, String, i64)> = with_db!(self, read, |pool| {
            sqlx::query_as(&sql)
                .bind(program.0)
                .bind(&from)
                .bind(&to)
                .fetch_all(pool)
                .await?
        });
        rows.into_iter()
            .map(|(day, channel, clicks)| {
                Ok(ClickCount {
                    day: Date::parse(&day, &format).map_err(|e| {
                        crate::StoreError::Corrupt(format!("click day {day:?}: {e}"))
                    })?,
                    channel,
                    clicks: clicks.max(0) as u64,
                })
            })
            .collect()
    }

    /// A member's latest clicks, newest first.
    pub async fn member_clicks(
        &self,
        program: ProgramId,
        member: MemberId,
        limit: u32,
    ) -> Result<Vec<Click>> {
        let rows: Vec<ClickRow> = with_db!(self, read, |pool| {
            sqlx::query_as(
                "SELECT click_id, code, member_id, clicked_at, channel, visitor_hash, referer \
                 FROM referral_clicks WHERE program_id = $1 AND member_id = $2 \
                 ORDER BY clicked_at DESC, click_id DESC LIMIT $3",
            )
            .bind(program.0)
            .bind(member.0)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(|r| click_of(program, r)).collect()
    }

    /// One click, by the id the redirect left in the shopper's cookie. The
    /// id is a UUIDv7 made as the click arrived, so its time bounds the
    /// search to a moment of the program's clicks (the table's key).
    pub async fn click(&self, program: ProgramId, id: Uuid) -> Result<Option<Click>> {
        let Some((secs, nanos)) = id.get_timestamp().map(|t| t.to_unix()) else {
            return Ok(None);
        };
        let Ok(made) = OffsetDateTime::from_unix_timestamp(secs as i64)
            .map(|t| t + time::Duration::nanoseconds(i64::from(nanos)))
        else {
            return Ok(None);
        };
        let row: Option<ClickRow> = with_db!(self, read, |pool| {
            sqlx::query_as(
                "SELECT click_id, code, member_id, clicked_at, channel, visitor_hash, referer \
                 FROM referral_clicks WHERE program_id = $1 AND clicked_at >= $2 AND clicked_at <= $3 \
                   AND click_id = $4",
            )
            .bind(program.0)
            .bind(made - time::Duration::seconds(1))
            .bind(made + time::Duration::minutes(1))
            .bind(id)
            .fetch_optional(pool)
            .await?
        });
        row.map(|r| click_of(program, r)).transpose()
    }
}

type ClickRow = (
    Uuid,
    String,
    Uuid,
    OffsetDateTime,
    String,
    Vec<u8>,
    Option<String>,
);

fn click_of(
    program: ProgramId,
    (id, code, member, at, channel, hash, referer): ClickRow,
) -> Result<Click> {
    let corrupt = |what: String| crate::StoreError::Corrupt(format!("click: {what}"));
    Ok(Click {
        program,
        id,
        code: ReferralCode::parse(&code).map_err(|e| corrupt(e.to_string()))?,
        member: MemberId(member),
        at,
        channel: Channel::parse(&channel).map_err(|e| corrupt(e.to_string()))?,
        visitor_hash: hash
            .try_into()
            .map_err(|_| corrupt("visitor hash is not 32 bytes".into()))?,
        referer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_batch_in_few_shapes() {
        for n in [0, 1, 2, 3, 255, 256, 257, 1000, 4096] {
            let sizes: Vec<_> = chunk_sizes(n).collect();
            assert_eq!(sizes.iter().sum::<usize>(), n);
            assert!(sizes
                .iter()
                .all(|s| s.is_power_of_two() && *s <= ROWS_PER_STATEMENT));
        }
        assert_eq!(chunk_sizes(7).collect::<Vec<_>>(), [4, 2, 1]);
    }
}
