//! The ledger's time-driven work: posting points whose return window
//! passed, and expiring points lot by lot (only the points of a lot past its
//! date expire, never the whole balance).

use super::ingest::{stored, EventBody, EventIn, ItemResult, MemberRef, Wanted};
use super::writes::{LedgerIo, Rows};
use crate::{now, with_db, Result, Store};
use sarafan_core::ids::{MemberId, ProgramId};
use sarafan_core::ledger::account::Asset;
use sarafan_core::ledger::reason::Reason;
use sarafan_core::ledger::transfer::Transfer;
use sha2::Digest;
use time::OffsetDateTime;
use uuid::Uuid;

/// Lots expired or holds released per transaction; the jobs loop until
/// none are due.
const BATCH: i64 = 1000;

impl Store {
    /// Posts the pending points of every purchase or grant of `program`
    /// whose hold ended by `at`; returns the points posted. Each release is
    /// an event keyed `release:<order>`, so a repeated run books nothing
    /// twice. Holds of a blocked or erased member wait (their events are not
    /// booked): they are posted once the member is active again, instead of
    /// being refused, and logged, on every run.
    pub async fn release_due_holds(&self, program: ProgramId, at: OffsetDateTime) -> Result<i64> {
        let Some(ctx) = self.ledger_context(program).await? else {
            return Ok(0);
        };
        let mut total = 0;
        loop {
            let due: Vec<(String, Uuid)> = with_db!(self, read, |pool| {
                sqlx::query_as(
                    "SELECT h.event_key, h.member_id FROM holds h \
                     JOIN members m ON m.program_id = h.program_id AND m.member_id = h.member_id \
                     WHERE h.program_id = $1 AND h.state = 'pending' AND h.release_at <= $2 AND m.status = 'active' \
                     ORDER BY h.release_at LIMIT $3",
                )
                .bind(program.0)
                .bind(at)
                .bind(BATCH)
                .fetch_all(pool)
                .await?
            });
            let events: Vec<EventIn> = due
                .iter()
                .map(|(order, member)| {
                    let key = format!("release:{order}");
                    let request = serde_json::json!({ "release": order });
                    let fingerprint = sha2::Sha256::digest(key.as_bytes()).into();
                    EventIn {
                        key,
                        request,
                        fingerprint,
                        member: MemberRef::Id(MemberId(*member)),
                        at,
                        body: EventBody::Release {
                            order_key: order.clone(),
                        },
                    }
                })
                .collect();
            for result in self.ingest(&ctx, &events).await? {
                match result {
                    ItemResult::Accepted(o) => total += o.points,
                    ItemResult::Replayed(_) => {}
                    ItemResult::Rejected(e) => {
                        tracing::error!(program = %program, error = %e, "hold release refused")
                    }
                }
            }
            if due.len() < BATCH as usize {
                return Ok(total);
            }
        }
    }

    /// Expires every lot of `program` due at `at`; returns the points expired.
    pub async fn expire_due(&self, program: ProgramId, at: OffsetDateTime) -> Result<i64> {
        let mut total = 0;
        loop {
            let expired = with_db!(self, write, |pool| {
                let mut tx = pool.begin().await?;
                // Takes the program's ledger lock, so no refund or redemption
                // changes these lots between the read and the write.
                LedgerIo::load_batch(&mut *tx, program, &Wanted::default()).await?;
                let due: Vec<(Uuid, Uuid, String, i64, OffsetDateTime, Option<OffsetDateTime>)> = sqlx::query_as(
                    "SELECT transfer_id, member_id, asset, remaining, created_at, expires_at FROM transfers \
                     WHERE program_id = $1 AND remaining > 0 AND expires_at IS NOT NULL AND expires_at <= $2 \
                     ORDER BY transfer_id LIMIT $3",
                )
                .bind(program.0)
                .bind(at)
                .bind(BATCH)
                .fetch_all(&mut *tx)
                .await?;
                let mut rows = Rows::new(program, now());
                let mut points = 0;
                for (lot, member, asset, remaining, earned_at, expires_at) in &due {
                    let asset = Asset::parse("asset", asset)
                        .map_err(|e| crate::StoreError::Corrupt(format!("lot {lot}: {e}")))?;
                    let reason = stored(&Reason::Expired {
                        earned: earned_at.date(),
                        expired: expires_at.unwrap_or(at).date(),
                    });
                    let transfer = Transfer::expire(MemberId(*member), asset, *remaining, &reason)
                        .map_err(|e| crate::StoreError::Corrupt(format!("lot {lot}: {e}")))?;
                    rows.transfer(&transfer, "expiry", at, None)
                        .map_err(|e| crate::StoreError::Corrupt(format!("lot {lot}: {e}")))?;
                    rows.lot_updates.insert(*lot, 0);
                    points += remaining;
                }
                LedgerIo::write_batch(&mut *tx, &rows).await?;
                tx.commit().await?;
                (due.len(), points)
            });
            total += expired.1;
            if expired.0 < BATCH as usize {
                return Ok(total);
            }
        }
    }
}
