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

/// Rows per INSERT statement: 8 parameters each stays under SQLite's limit
/// of 32,766 bound parameters.
const ROWS_PER_STATEMENT: usize = 500;

impl Store {
    /// Writes a batch of clicks, of any programs, in one transaction.
    pub async fn record_clicks(&self, clicks: &[Click]) -> Result<()> {
        if clicks.is_empty() {
            return Ok(());
        }
        with_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            for chunk in clicks.chunks(ROWS_PER_STATEMENT) {
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
        type Row = (
            Uuid,
            String,
            OffsetDateTime,
            String,
            Vec<u8>,
            Option<String>,
        );
        let rows: Vec<Row> = with_db!(self, read, |pool| {
            sqlx::query_as(
                "SELECT click_id, code, clicked_at, channel, visitor_hash, referer \
                 FROM referral_clicks WHERE program_id = $1 AND member_id = $2 \
                 ORDER BY clicked_at DESC, click_id DESC LIMIT $3",
            )
            .bind(program.0)
            .bind(member.0)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
        });
        let corrupt = |what: String| crate::StoreError::Corrupt(format!("click: {what}"));
        rows.into_iter()
            .map(|(id, code, at, channel, hash, referer)| {
                Ok(Click {
                    program,
                    id,
                    code: ReferralCode::parse(&code).map_err(|e| corrupt(e.to_string()))?,
                    member,
                    at,
                    channel: Channel::parse(&channel).map_err(|e| corrupt(e.to_string()))?,
                    visitor_hash: hash
                        .try_into()
                        .map_err(|_| corrupt("visitor hash is not 32 bytes".into()))?,
                    referer,
                })
            })
            .collect()
    }
}
