//! Versioned rule documents (earn rules, referral rules): each program keeps
//! every version, numbered in order, and never changes one — a new version
//! with its own `effective_from` replaces it from then on.

use crate::{now, with_db, Result, Store, StoreError};
use sarafan_core::ids::ProgramId;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::types::Json;
use time::OffsetDateTime;

/// A rule document kept in versions, in its own table
/// `(program_id, version, effective_from, rules, created_at)`.
pub trait Versioned: Serialize + DeserializeOwned + Clone + Send + Sync + Unpin + 'static {
    /// The table holding the versions.
    const TABLE: &'static str;
    fn effective_from(&self) -> OffsetDateTime;
    fn set_version(&mut self, version: u32);
}

impl Versioned for sarafan_core::ledger::rules::EarnRules {
    const TABLE: &'static str = "earn_rules";
    fn effective_from(&self) -> OffsetDateTime {
        self.effective_from
    }
    fn set_version(&mut self, version: u32) {
        self.version = version;
    }
}

impl Versioned for sarafan_core::referral::ReferralRules {
    const TABLE: &'static str = "referral_rules";
    fn effective_from(&self) -> OffsetDateTime {
        self.effective_from
    }
    fn set_version(&mut self, version: u32) {
        self.version = version;
    }
}

/// One stored version and when it was added.
#[derive(Debug, Clone, PartialEq)]
pub struct Version<R> {
    pub rules: R,
    pub created_at: OffsetDateTime,
}

impl Store {
    /// Adds a version; its number is the next one, whatever the caller sent.
    pub async fn add_version<R: Versioned>(&self, program: ProgramId, rules: &R) -> Result<R> {
        let mut rules = rules.clone();
        let last_sql = format!(
            "SELECT MAX(version) FROM {} WHERE program_id = $1",
            R::TABLE
        );
        let insert_sql = format!(
            "INSERT INTO {} (program_id, version, effective_from, rules, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
            R::TABLE
        );
        with_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let last: Option<i32> = sqlx::query_scalar(&last_sql)
                .bind(program.0)
                .fetch_one(&mut *tx)
                .await?;
            let version = u32::try_from(last.unwrap_or(0) + 1)
                .map_err(|_| StoreError::Corrupt(format!("{} version", R::TABLE)))?;
            rules.set_version(version);
            sqlx::query(&insert_sql)
                .bind(program.0)
                .bind(version as i32)
                .bind(rules.effective_from())
                .bind(Json(&rules))
                .bind(now())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(rules)
    }

    /// Every version, oldest first.
    pub async fn versions<R: Versioned>(&self, program: ProgramId) -> Result<Vec<Version<R>>> {
        let sql = format!(
            "SELECT rules, created_at FROM {} WHERE program_id = $1 ORDER BY version",
            R::TABLE
        );
        let rows: Vec<(Json<R>, OffsetDateTime)> = with_db!(self, read, |pool| {
            sqlx::query_as(&sql).bind(program.0).fetch_all(pool).await?
        });
        Ok(rows
            .into_iter()
            .map(|(rules, created_at)| Version {
                rules: rules.0,
                created_at,
            })
            .collect())
    }
}
