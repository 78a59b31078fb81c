//! Members' referral codes: one generated code each, created on first
//! request, and optional vanity codes. Codes are unique across the
//! deployment (`referral_code_routes`), so a link's code alone finds its
//! program; see docs/storage.md.

use crate::{now, with_db, Result, Store, StoreError};
use rand::RngCore;
use sarafan_core::ids::{MemberId, ProgramId};
use sarafan_core::link::{ReferralCode, VanityCode};
use uuid::Uuid;

/// A member's codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferralCodes {
    /// The code to share: the latest vanity code, else the generated one.
    pub code: ReferralCode,
    pub generated: ReferralCode,
    pub vanity: Option<ReferralCode>,
}

/// Who a code belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedCode {
    pub program: ProgramId,
    pub member: MemberId,
    pub code: ReferralCode,
    pub vanity: bool,
}

/// What setting a vanity code did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VanityOutcome {
    /// The member now shares this code (also when it already was theirs).
    Set(ReferralCodes),
    /// Another member, in this or another program, holds the code.
    Taken,
    /// No such member in the program.
    NotFound,
}

impl Store {
    /// The member's codes, creating the generated one on first call. Safe
    /// under concurrent calls: they all return the same code. `None` when the
    /// program has no such member.
    pub async fn referral_code_for(
        &self,
        program: ProgramId,
        member: MemberId,
    ) -> Result<Option<ReferralCodes>> {
        if let Some(codes) = self.member_codes(program, member).await? {
            return Ok(Some(codes));
        }
        if self.member(program, member).await?.is_none() {
            return Ok(None);
        }
        // A generated code may collide with one in use (a vanity code of the
        // same shape); a new draw then almost surely does not. A concurrent
        // call for the same member loses on the one-generated-code index and
        // reads the winner's code.
        for _ in 0..4 {
            let mut entropy = [0u8; 16];
            rand::thread_rng().fill_bytes(&mut entropy);
            let code = ReferralCode::generate(u128::from_le_bytes(entropy));
            match self.insert_code(program, member, &code, "generated").await {
                Ok(()) => break,
                Err(e) if e.is_unique_violation() => {
                    if let Some(codes) = self.member_codes(program, member).await? {
                        return Ok(Some(codes));
                    }
                }
                Err(e) => return Err(e),
            }
        }
        match self.member_codes(program, member).await? {
            Some(codes) => Ok(Some(codes)),
            None => Err(StoreError::Corrupt(
                "could not draw an unused referral code".into(),
            )),
        }
    }

    /// Gives the member a code of their choice. Codes are never reassigned,
    /// so the member's earlier codes keep working; a code held by anyone
    /// else is `Taken`.
    pub async fn set_vanity_code(
        &self,
        program: ProgramId,
        member: MemberId,
        vanity: &VanityCode,
    ) -> Result<VanityOutcome> {
        let Some(codes) = self.referral_code_for(program, member).await? else {
            return Ok(VanityOutcome::NotFound);
        };
        let code = vanity.code();
        if &codes.code == code {
            return Ok(VanityOutcome::Set(codes));
        }
        match self.resolve_referral_code(code).await? {
            Some(owner) if owner.program == program && owner.member == member => {
                // One of the member's earlier codes: make it current again.
                self.touch_code(program, code).await?;
            }
            Some(_) => return Ok(VanityOutcome::Taken),
            None => match self.insert_code(program, member, code, "vanity").await {
                Ok(()) => {}
                Err(e) if e.is_unique_violation() => return Ok(VanityOutcome::Taken),
                Err(e) => return Err(e),
            },
        }
        match self.member_codes(program, member).await? {
            Some(codes) => Ok(VanityOutcome::Set(codes)),
            None => Err(StoreError::Corrupt("member's codes vanished".into())),
        }
    }

    /// Who a code belongs to, from the code alone (any program).
    pub async fn resolve_referral_code(&self, code: &ReferralCode) -> Result<Option<ResolvedCode>> {
        let row: Option<(Uuid, Uuid, String)> = with_db!(self, read, |pool| {
            sqlx::query_as(
                "SELECT c.program_id, c.member_id, c.kind FROM referral_code_routes r \
                 JOIN referral_codes c ON c.program_id = r.program_id AND c.code = r.code \
                 WHERE r.code = $1",
            )
            .bind(code.as_str())
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(|(program, member, kind)| ResolvedCode {
            program: ProgramId(program),
            member: MemberId(member),
            code: code.clone(),
            vanity: kind == "vanity",
        }))
    }

    async fn member_codes(
        &self,
        program: ProgramId,
        member: MemberId,
    ) -> Result<Option<ReferralCodes>> {
        // Newest first; vanity codes are ordered by when they were last chosen.
        let rows: Vec<(String, String)> = with_db!(self, write, |pool| {
            sqlx::query_as(
                "SELECT code, kind FROM referral_codes WHERE program_id = $1 AND member_id = $2 \
                 ORDER BY created_at DESC, code",
            )
            .bind(program.0)
            .bind(member.0)
            .fetch_all(pool)
            .await?
        });
        let parse = |s: &str| {
            ReferralCode::parse(s).map_err(|e| StoreError::Corrupt(format!("referral code: {e}")))
        };
        let Some((generated, _)) = rows.iter().find(|(_, kind)| kind == "generated") else {
            return Ok(None);
        };
        let generated = parse(generated)?;
        let vanity = rows
            .iter()
            .find(|(_, kind)| kind == "vanity")
            .map(|(code, _)| parse(code))
            .transpose()?;
        Ok(Some(ReferralCodes {
            code: vanity.clone().unwrap_or_else(|| generated.clone()),
            generated,
            vanity,
        }))
    }

    async fn insert_code(
        &self,
        program: ProgramId,
        member: MemberId,
        code: &ReferralCode,
        kind: &str,
    ) -> Result<()> {
        with_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("INSERT INTO referral_code_routes (code, program_id) VALUES ($1, $2)")
                .bind(code.as_str())
                .bind(program.0)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO referral_codes (program_id, code, member_id, kind, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(program.0)
            .bind(code.as_str())
            .bind(member.0)
            .bind(kind)
            .bind(now())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    async fn touch_code(&self, program: ProgramId, code: &ReferralCode) -> Result<()> {
        with_db!(self, write, |pool| {
            sqlx::query(
                "UPDATE referral_codes SET created_at = $3 WHERE program_id = $1 AND code = $2",
            )
            .bind(program.0)
            .bind(code.as_str())
            .bind(now())
            .execute(pool)
            .await?;
        });
        Ok(())
    }
}
