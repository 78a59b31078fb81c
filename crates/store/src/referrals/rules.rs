//! Versions of a program's referral rules.

use crate::{now, with_db, Result, Store, StoreError};
use sarafan_core::ids::ProgramId;
use sarafan_core::referral::rules::active_version;
use sarafan_core::referral::ReferralRules;
use sqlx::types::Json;
use time::OffsetDateTime;

#[derive(Debug, Clone, PartialEq)]
pub struct ReferralRuleVersion {
    pub rules: ReferralRules,
    pub created_at: OffsetDateTime,
}

impl Store {
    /// Adds a version; its number is the next one, whatever the caller sent.
    pub async fn add_referral_rules(
        &self,
        program: ProgramId,
        rules: &ReferralRules,
    ) -> Result<ReferralRules> {
        let mut rules = rules.clone();
        with_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let last: Option<i32> =
                sqlx::query_scalar("SELECT MAX(version) FROM referral_rules WHERE program_id = $1")
                    .bind(program.0)
                    .fetch_one(&mut *tx)
                    .await?;
            rules.version = u32::try_from(last.unwrap_or(0) + 1)
                .map_err(|_| StoreError::Corrupt("referral rule version".into()))?;
            sqlx::query(
                "INSERT INTO referral_rules (program_id, version, effective_from, rules, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(program.0)
            .bind(rules.version as i32)
            .bind(rules.effective_from)
            .bind(Json(&rules))
            .bind(now())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(rules)
    }

    /// Every version, oldest first.
    pub async fn referral_rules(&self, program: ProgramId) -> Result<Vec<ReferralRuleVersion>> {
        let rows: Vec<(Json<ReferralRules>, OffsetDateTime)> = with_db!(self, read, |pool| {
            sqlx::query_as(
                "SELECT rules, created_at FROM referral_rules WHERE program_id = $1 ORDER BY version",
            )
            .bind(program.0)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(rules, created_at)| ReferralRuleVersion {
                rules: rules.0,
                created_at,
            })
            .collect())
    }

    /// The version in force at `at`, if the program has one.
    pub async fn referral_rules_at(
        &self,
        program: ProgramId,
        at: OffsetDateTime,
    ) -> Result<Option<ReferralRules>> {
        let versions: Vec<_> = self
            .referral_rules(program)
            .await?
            .into_iter()
            .map(|v| v.rules)
            .collect();
        Ok(active_version(&versions, at).cloned())
    }
}
