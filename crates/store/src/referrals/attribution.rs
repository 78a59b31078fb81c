//! Binding a friend to a referrer: once, first-touch by default (last-touch
//! per program), within the window, with the fraud checks run as the bond
//! is made.

use super::{micros, Referral, ReferralRow, REFERRAL_COLUMNS};
use crate::{now, with_db, Result, Store};
use sarafan_core::ids::{MemberId, ProgramId};
use sarafan_core::referral::fraud::{
    self, Evidence, FraudReason, FraudThresholds, Identity, Velocity,
};
use sarafan_core::referral::graph;
use sarafan_core::referral::rules::{Attribution, TouchModel};
use sarafan_core::referral::ReferralState;
use sqlx::types::Json;
use std::collections::HashMap;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// How deep the cycle check walks up the referrer's chain.
const MAX_CHAIN: i32 = 64;
/// How far up the chain the friend's identifiers are compared.
const IDENTITY_DEPTH: usize = 8;
/// The span the program's normal sign-up rate is taken over.
const NORMAL_SPAN: Duration = Duration::days(7);

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

        // The referrer, then their referrers: identities to compare.
        let parents = self.chain_edges(program, t.referrer, MAX_CHAIN).await?;
        let mut up = vec![referrer.id];
        up.extend(graph::chain(&parents, t.referrer, IDENTITY_DEPTH));
        let mut identities = self.identities(program, &up).await?;
        let chain = identities.split_off(1);
        let referrer_identity = identities.pop().unwrap_or_default();
        let friend_identity = Identity {
            member: Some(friend.id),
            email: friend.email.as_deref().map(fraud::normalize_email),
            phone: friend.phone.clone(),
            payment: t.payment.clone(),
            device: t.device.clone(),
        };
        let others = self.sharing_identity(program, &friend_identity).await?;
        let velocity = self.velocity(program, t, &thresholds, at).await?;
        let evidence = Evidence {
            referrer: referrer_identity,
            friend: friend_identity.clone(),
            others: &others,
            chain: &chain,
            cycle: graph::closes_cycle(&parents, t.referrer, t.friend),
            velocity,
        };
        let reasons = fraud::assess(&evidence, &thresholds);
        let linked = fraud::linked(&evidence, &reasons);
        let (status, reject_reason) = match reasons.iter().find(|r| r.rejects()) {
            Some(r) => (ReferralState::Rejected, Some(r.code())),
            None if reasons.is_empty() => (ReferralState::SignedUp, None),
            None => (ReferralState::Review, None),
        };
        let codes: Vec<String> = reasons.into_iter().map(FraudReason::code).collect();
        if let Some(because) = linked.because {
            let mut friends: Vec<MemberId> = up.into_iter().take(linked.chain).collect();
            friends.extend(linked.sharing.iter().copied());
            friends.retain(|f| *f != t.friend);
            let burst = t.code.as_deref().filter(|_| linked.burst).map(|code| {
                let since = at - Duration::minutes(i64::from(thresholds.burst_window_minutes));
                (code, micros(since))
            });
            self.hold_linked(program, t.friend, &friends, burst, because, micros(at))
                .await?;
        }
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

    /// The identifiers of `members`, in that order: e-mail and phone from
    /// the member, payment fingerprint and device from the referral that
    /// brought them (if one did).
    async fn identities(&self, program: ProgramId, members: &[MemberId]) -> Result<Vec<Identity>> {
        type Row = (
            Uuid,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        let rows: Vec<Row> = with_db!(self, read, |pool| {
            let mut q = sqlx::QueryBuilder::new(
                "SELECT m.member_id, m.email, m.phone, r.payment_fp, r.device_hash FROM members m \
                 LEFT JOIN referrals r ON r.program_id = m.program_id AND r.friend_id = m.member_id \
                 WHERE m.program_id = ",
            );
            q.push_bind(program.0).push(" AND m.member_id IN (");
            let mut list = q.separated(", ");
            for m in members {
                list.push_bind(m.0);
            }
            q.push(")");
            q.build_query_as().fetch_all(pool).await?
        });
        let mut by_member: HashMap<MemberId, Identity> = rows
            .into_iter()
            .map(|(m, email, phone, payment, device)| {
                let id = MemberId(m);
                let identity = Identity {
                    member: Some(id),
                    email: email.as_deref().map(fraud::normalize_email),
                    phone,
                    payment,
                    device,
                };
                (id, identity)
            })
            .collect();
        Ok(members
            .iter()
            .map(|m| {
                by_member.remove(m).unwrap_or(Identity {
                    member: Some(*m),
                    ..Identity::default()
                })
            })
            .collect())
    }

    /// Puts the not yet qualified referrals of `friends` (and, for a burst,
    /// the code's other sign-ups since the time given) in review beside
    /// `friend`'s, each marked `linked:<reason>`: one scheme is judged
    /// whole. Those already rewarded go back to review too while some of
    /// their rewards are still pending, which are withheld meanwhile
    /// ([`Store::withhold_for_review`]).
    async fn hold_linked(
        &self,
        program: ProgramId,
        friend: MemberId,
        friends: &[MemberId],
        burst: Option<(&str, OffsetDateTime)>,
        because: FraudReason,
        at: OffsetDateTime,
    ) -> Result<()> {
        if friends.is_empty() && burst.is_none() {
            return Ok(());
        }
        let rows: Vec<(Uuid, String, Json<Vec<String>>)> = with_db!(self, write, |pool| {
            let mut q = sqlx::QueryBuilder::new(
                "SELECT referral_id, status, fraud_reasons FROM referrals WHERE program_id = ",
            );
            q.push_bind(program.0)
                .push(" AND status IN ('signed_up', 'rewarded') AND friend_id <> ")
                .push_bind(friend.0)
                .push(" AND (friend_id IN (");
            let mut list = q.separated(", ");
            // An impossible id keeps the list valid when it is empty.
            list.push_bind(Uuid::nil());
            for f in friends {
                list.push_bind(f.0);
            }
            q.push(")");
            if let Some((code, since)) = burst {
                q.push(" OR (code = ")
                    .push_bind(code)
                    .push(" AND created_at >= ")
                    .push_bind(since)
                    .push(")");
            }
            q.push(")");
            q.build_query_as().fetch_all(pool).await?
        });
        let mark = format!("linked:{}", because.code());
        for (id, status, Json(mut reasons)) in rows {
            if !reasons.contains(&mark) {
                reasons.push(mark.clone());
            }
            if status == ReferralState::Rewarded.as_str() {
                self.withhold_for_review(program, id, &reasons, at).await?;
                continue;
            }
            with_db!(self, write, |pool| {
                sqlx::query(
                    "UPDATE referrals SET status = 'review', fraud_reasons = $3, updated_at = $4 \
                     WHERE program_id = $1 AND referral_id = $2 AND status = 'signed_up'",
                )
                .bind(program.0)
                .bind(id)
                .bind(Json(&reasons))
                .bind(at)
                .execute(pool)
                .await?;
            });
        }
        Ok(())
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

    /// Signups before `at` from the touch's IP, device and code in the
    /// velocity window, with its code in the burst window, and the
    /// program's in the week before that; not counting the touch's friend.
    async fn velocity(
        &self,
        program: ProgramId,
        t: &Touch,
        thresholds: &FraudThresholds,
        at: OffsetDateTime,
    ) -> Result<Velocity> {
        let since = at - Duration::minutes(i64::from(thresholds.velocity_window_minutes));
        let burst_since = at - Duration::minutes(i64::from(thresholds.burst_window_minutes));
        let (ip, device, code, code_burst): (i64, i64, i64, i64) = with_db!(self, read, |pool| {
            sqlx::query_as(
                "SELECT CAST(COALESCE(SUM(CASE WHEN ip_hash = $2 AND created_at >= $5 THEN 1 ELSE 0 END), 0) AS BIGINT), \
                        CAST(COALESCE(SUM(CASE WHEN device_hash = $3 AND created_at >= $5 THEN 1 ELSE 0 END), 0) AS BIGINT), \
                        CAST(COALESCE(SUM(CASE WHEN code = $4 AND created_at >= $5 THEN 1 ELSE 0 END), 0) AS BIGINT), \
                        CAST(COALESCE(SUM(CASE WHEN code = $4 AND created_at >= $7 THEN 1 ELSE 0 END), 0) AS BIGINT) \
                 FROM referrals WHERE program_id = $1 AND created_at >= $8 AND created_at <= $9 AND friend_id <> $6 \
                   AND (ip_hash = $2 OR device_hash = $3 OR code = $4)",
            )
            .bind(program.0)
            .bind(t.ip.as_deref())
            .bind(t.device.as_deref())
            .bind(t.code.as_deref())
            .bind(micros(since))
            .bind(t.friend.0)
            .bind(micros(burst_since))
            .bind(micros(since.min(burst_since)))
            .bind(micros(at))
            .fetch_one(pool)
            .await?
        });
        let program_week: i64 = with_db!(self, read, |pool| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM referrals WHERE program_id = $1 AND signed_up_at >= $2 AND signed_up_at < $3",
            )
            .bind(program.0)
            .bind(micros(burst_since - NORMAL_SPAN))
            .bind(micros(burst_since))
            .fetch_one(pool)
            .await?
        });
        let n = |v: i64| u32::try_from(v).unwrap_or(u32::MAX);
        Ok(Velocity {
            ip: n(ip),
            device: n(device),
            code: n(code),
            code_burst: n(code_burst),
            program_week: n(program_week),
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
