//! Versions of a program's earn rules (kept by [`crate::versions`]).

use crate::versions::Version;
use crate::{Result, Store};
use sarafan_core::ids::ProgramId;
use sarafan_core::ledger::rules::EarnRules;

pub type RuleVersion = Version<EarnRules>;

impl Store {
    /// Adds a version; its number is the next one, whatever the caller sent.
    pub async fn add_earn_rules(&self, program: ProgramId, rules: &EarnRules) -> Result<EarnRules> {
        self.add_version(program, rules).await
    }

    /// Every version, oldest first.
    pub async fn earn_rules(&self, program: ProgramId) -> Result<Vec<RuleVersion>> {
        self.versions(program).await
    }
}
