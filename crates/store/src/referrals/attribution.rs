//! Binding a friend to a referrer: once, first-touch by default (last-touch
//! per program), within the window, with the fraud checks run as the bond
//! is made.

use super::{micros, Referral, ReferralRow, REFERRAL_COLUMNS};
use crate::{now, with_db, Result, Store};
use sarafan_core::ids::{MemberId, ProgramId};
use sarafan_core::referral::fraud::{self, Evidence, FraudReason, Identity, Velocity};
use sarafan_core::referral::graph;
use sarafan_core::referral::rules::{Attribution, TouchModel};
use sarafan_core::referral::ReferralState;
use sqlx::types::Json;
use std::collections::HashMap;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// How deep the cycle check walks up the referrer's chain.
const MAX_CHAIN: i32 = 64;

/// A friend meeting a referral: at registration, at a first purchase, or
/// through the referrals API.
#[derive(Debug, Clone)]
pub struct Touch {
    pub friend: MemberId,
    pub referrer: MemberId,
    /// The code typed or carried by the link, when there was one.
    pub code: Option<String>,
    /// link, qr, email, telegram, whatsapp, vk, voice, in_store, …
    pub channel: String,
    /// When the friend met the referral (the click); the window counts from it.
    pub touched_at: OffsetDateTime,
    pub payment: Option<String>,
    pub device: Option<String>,
    pub ip: Option<String>,
}

/// What an attribution did.
#[derive(Debug, Clone, PartialEq)]
pub enum Attributed {
    /// The friend is now bound to the referrer (perhaps held for review, or
    /// rejected for a cycle: see its status).
    Created(Referral),
    /// Bound to this referrer before: nothing changed.
    Existing(Referral),
    /// Last-touch: the friend moved to this referrer.
    Moved(Referral),
    /// Bound to another referrer, who keeps them.
    Taken(Referral),
    /// The touch is older than the program's window.
    WindowExpired {
        window_days: u32,
    },
    /// The friend is the referrer.
    SelfReferral,
    UnknownMember(MemberId),
}

impl Store {
    /// Binds `t.friend` to `t.referrer` at `at`. Changes nothing unless the
    /// outcome is `Created` or `Moved`.
    pub async fn attribute(
        &self,
        program: ProgramId,
        t: &Touch,
        at: OffsetDateTime,
    ) -> Result<Attributed> {
        let rules = self.referral_rules_at(program, at).await?;
        let (attribution, thresholds, version) = match &rules {
            Some(r) => (r.attribution, r.fraud, Some(r.version)),
            None => (Attribution::default(), Default::default(), None),
        };
        if t.friend == t.referrer {
            return Ok(Attributed::SelfReferral);
        }
        let touched_at = micros(t.touched_at.min(at));
        if at - touched_at > Duration::days(i64::from(attribution.window_days)) {
            return Ok(Attributed::WindowExpired {
                window_days: attribution.window_days,
            });
        }
        let (Some(friend), Some(referrer)) = (
            self.member(program, t.friend).await?,
            self.member(program, t.referrer).await?,
        ) else {
            let missing = match self.member(program, t.friend).await? {
                None => t.friend,
                Some(_) => t.referrer,
            };
            return Ok(Attributed::UnknownMember(missing));
        };
        let existing = self.referral_of_friend(program, t.friend).await?;
        if let Some(r) = &existing {
            let movable = attribution.model == TouchModel::LastTouch
                && matches!(r.status, ReferralState::SignedUp | ReferralState::Review);
            if r.referrer == t.referrer {
                return Ok(Attributed::Existing(r.clone()));
            }
            if !movable {
                return Ok(Attributed::Taken(r.clone()));
            }
        }

        let referrer_own = self.referral_of_friend(program, t.referrer).await?;
        let referrer_ids = match &referrer_own {
            Some(r) => self.identifiers(program, r.id).await?,
            None => (None, None),
        };
        let identity =
            |member: MemberId, email: &Option<String>, phone: &Option<String>| Identity {
                member: Some(member),
                email: email.as_deref().map(fraud::normalize_email),
                phone: phone.clone(),
                ..Identity::default()
            };
        let referrer_identity = Identity {
            payment: referrer_ids.0,
            device: referrer_ids.1,
            ..identity(referrer.id, &referrer.email, &referrer.phone)
        };
        let friend_identity = Identity {
            payment: t.payment.clone(),
            device: t.device.clone(),
            ..identity(friend.id, &friend.email, &friend.phone)
        };
        let others = self.sharing_identity(program, &friend_identity).await?;
        let parents = self.chain_edges(program, t.referrer, MAX_CHAIN).await?;
        let since = at - Duration::minutes(i64::from(thresholds.velocity_window_minutes));
        let velocity = self.velocity(program, t, since, t.friend).await?;
        let reasons = fraud::assess(
            &Evidence {
                referrer: referrer_identity,
                friend: friend_identity.clone(),
                others: &others,
                cycle: graph::closes_cycle(&parents, t.referrer, t.friend),
                velocity,
            },
            &thresholds,
        );
        let (status, reject_reason) = match reasons.iter().find(|r| r.rejects()) {
            Some(r) => (ReferralState::Rejected, Some(r.code())),
            None if reasons.is_empty() => (ReferralState::SignedUp, None),
            None => (ReferralState::Review, None),
        };
        let codes: Vec<String> = reasons.into_iter().map(FraudReason::code).collect();
        let at = micros(at);
        let row = NewRow {
            t,
            touched_at,
            status,
            reject_reason,
            codes,
            email: friend_identity.email,
            phone: friend_identity.phone,
            version,
            at,
        };
        match existing {
            Some(old) => Ok(self
                .rebind(program, old.id, &row)
                .await?
                .map_or(Attributed::Taken(old), Attributed::Moved)),
            None => match self.insert_referral(program, &row).await {
                Ok(r) => Ok(Attributed::Created(r)),
                Err(e) if e.is_unique_violation() => {
                    // A concurrent attribution bound the friend first.
                    match self.referral_of_friend(program, t.friend).await? {
                        Some(r) if r.referrer == t.referrer => Ok(Attributed::Existing(r)),
                        Some(r) => Ok(Attributed::Taken(r)),
                        None => Err(e),
                    }
                }
                Err(e) => Err(e),
            },
        }
    }

    /// The friend's referral, whatever its status.
    pub async fn referral_of_friend(
        &self,
        program: ProgramId,
        friend: MemberId,
    ) -> Result<Option<Referral>> {
        let sql = format!(
            "SELECT {REFERRAL_COLUMNS} FROM referrals WHERE program_id = $1 AND friend_id = $2"
        );
        let row: Option<ReferralRow> = with_db!(self, write, |pool| {
            sqlx::query_as(&sql)
                .bind(program.0)
                .bind(friend.0)
                .fetch_optional(pool)
                .await?
        });
        row.map(Referral::try_from).transpose()
    }

    /// The payment fingerprint and device a referral's friend came with.
    async fn identifiers(
        &self,
        program: ProgramId,
        referral: Uuid,
    ) -> Result<(Option<String>, Option<String>)> {
        Ok(with_db!(self, read, |pool| {
            sqlx::query_as(
                "SELECT payment_fp, device_hash FROM referrals WHERE program_id = $1 AND referral_id = $2",
            )
            .bind(program.0)
            .bind(referral)
            .fetch_optional(pool)
            .await?
        })
        .unwrap_or((None, None)))
    }

    /// Other referred friends sharing an identifier with `friend`.
    async fn sharing_identity(
        &self,
        program: ProgramId,
        friend: &Identity,
    ) -> Result<Vec<Identity>> {
        type Row = (
            Uuid,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        let rows: Vec<Row> = with_db!(self, read, |pool| {
            sqlx::query_as(
                "SELECT friend_id, email_norm, phone, payment_fp, device_hash FROM referrals \
                 WHERE program_id = $1 AND friend_id <> $2 \
                   AND (email_norm = $3 OR phone = $4 OR payment_fp = $5 OR device_hash = $6) LIMIT 20",
            )
            .bind(program.0)
            .bind(friend.member.map(|m| m.0))
            .bind(friend.email.as_deref())
            .bind(friend.phone.as_deref())
            .bind(friend.payment.as_deref())
            .bind(friend.device.as_deref())
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(m, email, phone, payment, device)| Identity {
                member: Some(MemberId(m)),
                email,
                phone,
                payment,
                device,
            })
            .collect())
    }

    /// The referral edges (friend → referrer) from `member` up its chain, at
    /// most `depth` long; rejected referrals bind no one.
    pub(crate) async fn chain_edges(
        &self,
        program: ProgramId,
        member: MemberId,
        depth: i32,
    ) -> Result<HashMap<MemberId, MemberId>> {
        let rows: Vec<(Uuid, Uuid)> = with_db!(self, read, |pool| {
            sqlx::query_as(
                "WITH RECURSIVE up (friend_id, referrer_id, depth) AS ( \
                   SELECT friend_id, referrer_id, 1 FROM referrals \
                    WHERE program_id = $1 AND friend_id = $2 AND status <> 'rejected' \
                   UNION ALL \
                   SELECT r.friend_id, r.referrer_id, up.depth + 1 FROM referrals r \
                     JOIN up ON r.friend_id = up.referrer_id \
                    WHERE r.program_id = $1 AND r.status <> 'rejected' AND up.depth < $3) \
                 SELECT friend_id, referrer_id FROM up",
            )
            .bind(program.0)
            .bind(member.0)
            .bind(depth)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(f, r)| (MemberId(f), MemberId(r)))
            .collect())
    }

    /// Signups since `since` from the touch's IP, device and code, not
    /// counting `friend`'s own referral.
    async fn velocity(
        &self,
        program: ProgramId,
        t: &Touch,
        since: OffsetDateTime,
        friend: MemberId,
    ) -> Result<Velocity> {
        let (ip, device, code): (i64, i64, i64) = with_db!(self, read, |pool| {
            sqlx::query_as(
                "SELECT CAST(COALESCE(SUM(CASE WHEN ip_hash = $2 THEN 1 ELSE 0 END), 0) AS BIGINT), \
                        CAST(COALESCE(SUM(CASE WHEN device_hash = $3 THEN 1 ELSE 0 END), 0) AS BIGINT), \
                        CAST(COALESCE(SUM(CASE WHEN code = $4 THEN 1 ELSE 0 END), 0) AS BIGINT) \
                 FROM referrals WHERE program_id = $1 AND created_at >= $5 AND friend_id <> $6 \
                   AND (ip_hash = $2 OR device_hash = $3 OR code = $4)",
            )
            .bind(program.0)
            .bind(t.ip.as_deref())
            .bind(t.device.as_deref())
            .bind(t.code.as_deref())
            .bind(since)
            .bind(friend.0)
            .fetch_one(pool)
            .await?
        });
        let n = |v: i64| u32::try_from(v).unwrap_or(u32::MAX);
        Ok(Velocity {
            ip: n(ip),
            device: n(device),
            code: n(code),
        })
    }

    async fn insert_referral(&self, program: ProgramId, r: &NewRow<'_>) -> Result<Referral> {
        let sql = format!(
            "INSERT INTO referrals (program_id, referral_id, referrer_id, friend_id, code, channel, status, \
               touched_at, signed_up_at, rejected_at, reject_reason, fraud_reasons, email_norm, phone, \
               payment_fp, device_hash, ip_hash, rules_version, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $9, $9) \
             RETURNING {REFERRAL_COLUMNS}"
        );
        let row: ReferralRow = with_db!(self, write, |pool| {
            sqlx::query_as(&sql)
                .bind(program.0)
                .bind(Uuid::now_v7())
                .bind(r.t.referrer.0)
                .bind(r.t.friend.0)
                .bind(r.t.code.as_deref())
                .bind(&r.t.channel)
                .bind(r.status.as_str())
                .bind(r.touched_at)
                .bind(r.at)
                .bind((r.status == ReferralState::Rejected).then_some(r.at))
                .bind(r.reject_reason.as_deref())
                .bind(Json(&r.codes))
                .bind(r.email.as_deref())
                .bind(r.phone.as_deref())
                .bind(r.t.payment.as_deref())
                .bind(r.t.device.as_deref())
                .bind(r.t.ip.as_deref())
                .bind(r.version.map(|v| v as i32))
                .fetch_one(pool)
                .await?
        });
        row.try_into()
    }

    /// Moves a not-yet-qualified referral to another referrer (last-touch).
    async fn rebind(
        &self,
        program: ProgramId,
        id: Uuid,
        r: &NewRow<'_>,
    ) -> Result<Option<Referral>> {
        let sql = format!(
            "UPDATE referrals SET referrer_id = $3, code = $4, channel = $5, status = $6, touched_at = $7, \
               rejected_at = $8, reject_reason = $9, fraud_reasons = $10, payment_fp = COALESCE($11, payment_fp), \
               device_hash = COALESCE($12, device_hash), ip_hash = COALESCE($13, ip_hash), updated_at = $14 \
             WHERE program_id = $1 AND referral_id = $2 AND status IN ('signed_up', 'review') \
             RETURNING {REFERRAL_COLUMNS}"
        );
        let row: Option<ReferralRow> = with_db!(self, write, |pool| {
            sqlx::query_as(&sql)
                .bind(program.0)
                .bind(id)
                .bind(r.t.referrer.0)
                .bind(r.t.code.as_deref())
                .bind(&r.t.channel)
                .bind(r.status.as_str())
                .bind(r.touched_at)
                .bind((r.status == ReferralState::Rejected).then_some(r.at))
                .bind(r.reject_reason.as_deref())
                .bind(Json(&r.codes))
                .bind(r.t.payment.as_deref())
                .bind(r.t.device.as_deref())
                .bind(r.t.ip.as_deref())
                .bind(now())
                .fetch_optional(pool)
                .await?
        });
        row.map(Referral::try_from).transpose()
    }
}

/// A referral row about to be written.
struct NewRow<'a> {
    t: &'a Touch,
    touched_at: OffsetDateTime,
    status: ReferralState,
    reject_reason: Option<String>,
    codes: Vec<String>,
    email: Option<String>,
    phone: Option<String>,
    version: Option<u32>,
    at: OffsetDateTime,
}
