//! Versions of a program's referral rules (kept by [`crate::versions`]).

use crate::versions::Version;
use crate::{Result, Store};
use sarafan_core::ids::ProgramId;
use sarafan_core::referral::rules::active_version;
use sarafan_core::referral::ReferralRules;
use time::OffsetDateTime;

pub type ReferralRuleVersion = Version<ReferralRules>;

impl Store {
    /// Adds a version; its number is the next one, whatever the caller sent.
    pub async fn add_referral_rules(
        &self,
        program: ProgramId,
        rules: &ReferralRules,
    ) -> Result<ReferralRules> {
        self.add_version(program, rules).await
    }

    /// Every version, oldest first.
    pub async fn referral_rules(&self, program: ProgramId) -> Result<Vec<ReferralRuleVersion>> {
        self.versions(program).await
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
