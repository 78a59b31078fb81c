//! Versions of a program's earn rules.

use crate::{now, with_db, Result, Store, StoreError};
use sarafan_core::ids::ProgramId;
use sarafan_core::ledger::rules::EarnRules;
use sqlx::types::Json;
use time::OffsetDateTime;

#[derive(Debug, Clone, PartialEq)]
pub struct RuleVersion {
    pub rules: EarnRules,
    pub created_at: OffsetDateTime,
}

impl Store {
    /// Adds a version; its number is the next one, whatever the caller sent.
    pub async fn add_earn_rules(&self, program: ProgramId, rules: &EarnRules) -> Result<EarnRules> {
        let mut rules = rules.clone();
        with_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let last: Option<i32> =
                sqlx::query_scalar("SELECT MAX(version) FROM earn_rules WHERE program_id = $1")
                    .bind(program.0)
                    .fetch_one(&mut *tx)
                    .await?;
            rules.version = u32::try_from(last.unwrap_or(0) + 1)
                .map_err(|_| StoreError::Corrupt("rule version".into()))?;
            sqlx::query(
                "INSERT INTO earn_rules (program_id, version, effective_from, rules, created_at) VALUES ($1, $2, $3, $4, $5)",
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
    pub async fn earn_rules(&self, program: ProgramId) -> Result<Vec<RuleVersion>> {
        let rows: Vec<(Json<EarnRules>, OffsetDateTime)> = with_db!(self, read, |pool| {
            sqlx::query_as(
                "SELECT rules, created_at FROM earn_rules WHERE program_id = $1 ORDER BY version",
            )
            .bind(program.0)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(rules, created_at)| RuleVersion {
                rules: rules.0,
                created_at,
            })
            .collect())
    }
}
