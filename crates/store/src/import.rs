//! Bulk import of a store's customers (the CLI's `sarafan import members`):
//! set-based, a chunk at a time, so a million rows take a few thousand
//! statements and constant memory. Idempotent like registration: a row
//! whose identifiers find a member with the same data is skipped, one that
//! contradicts a member is refused and named; nothing is ever overwritten.
//! Imported customers are not welcomed: they are the store's customers
//! already, so no `member.created` message is queued for them.
//!
//! A customer's balance at the store is booked in the same transaction as
//! their chunk, through the ledger's batch path, as a grant keyed
//! `opening:<external_id>`: an interrupted import never leaves a member
//! without their balance, and a re-run books nothing twice.

use crate::ledger::{book_in, Announce, EventIn, ItemResult, LedgerContext, MemberRef, Wanted};
use crate::members::{differences, MemberRow, COLUMNS, READ};
use crate::{now, with_db, Member, Result, Store, StoreError};
use sarafan_core::ids::MemberId;
use sarafan_core::member::{Email, ExternalId, NewMember, Phone};
use sarafan_core::program::Locale;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use tokio::sync::mpsc::Receiver;

/// One parsed row and the line of the file it came from.
#[derive(Debug, Clone)]
pub struct ImportRow {
    pub line: u64,
    pub member: NewMember,
    /// The customer's balance at the store (0: none), booked once.
    pub points: i64,
}

/// What an import did (or, in a dry run, would do).
#[derive(Debug, Clone, Default)]
pub struct ImportTally {
    pub created: u64,
    /// Rows naming a member already there with the same data.
    pub existing: u64,
    /// Rows refused: their line and why.
    pub refused: Vec<(u64, String)>,
    /// Opening balances booked now, and found booked by an earlier run.
    pub balances_booked: u64,
    pub balances_replayed: u64,
    /// Opening balances the ledger refused (their member is imported):
    /// their line and why.
    pub balances_refused: Vec<(u64, String)>,
}

/// Members found so far by identifier, for the rows of one chunk.
#[derive(Default)]
struct Known {
    members: Vec<Member>,
    by: HashMap<(u8, String), usize>,
}

impl Known {
    fn add(&mut self, m: Member) {
        let i = self.members.len();
        for (kind, v) in [(0, &m.external_id), (1, &m.email), (2, &m.phone)] {
            if let Some(v) = v {
                self.by.insert((kind, v.clone()), i);
            }
        }
        self.members.push(m);
    }

    fn matching(&self, m: &NewMember) -> Vec<&Member> {
        let keys = [
            (0, m.external_id.as_ref().map(ExternalId::as_str)),
            (1, m.email.as_ref().map(Email::as_str)),
            (2, m.phone.as_ref().map(Phone::as_str)),
        ];
        let mut found: Vec<usize> = keys
            .iter()
            .filter_map(|(k, v)| v.and_then(|v| self.by.get(&(*k, v.to_owned())).copied()))
            .collect();
        found.sort_unstable();
        found.dedup();
        found.into_iter().map(|i| &self.members[i]).collect()
    }
}

/// What a read-only check remembers of the rows before the current chunk:
/// a 64-bit hash of each identifier → the line that gave it and a hash of
/// that row's data. 16 bytes an identifier instead of the rows
/// themselves (or a million uncommitted inserts), so the check writes
/// nothing and a 1M-row file is checked in a few tens of megabytes.
#[derive(Default)]
struct SeenInFile(HashMap<u64, (u32, u32)>);

fn hash_of(parts: &[Option<&str>]) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    parts.hash(&mut h);
    h.finish()
}

impl SeenInFile {
    fn keys(m: &NewMember) -> impl Iterator<Item = u64> + '_ {
        [
            ("e", m.external_id.as_ref().map(ExternalId::as_str)),
            ("m", m.email.as_ref().map(Email::as_str)),
            ("p", m.phone.as_ref().map(Phone::as_str)),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| hash_of(&[Some(k), Some(v)])))
    }

    fn data(m: &NewMember) -> u32 {
        let flag = |b: bool| Some(if b { "1" } else { "0" });
        hash_of(&[
            m.external_id.as_ref().map(ExternalId::as_str),
            m.email.as_ref().map(Email::as_str),
            m.phone.as_ref().map(Phone::as_str),
            m.name.as_deref(),
            m.locale.as_ref().map(Locale::as_str),
            flag(m.consent.email),
            flag(m.consent.sms),
            flag(m.consent.messengers),
        ]) as u32
    }

    /// Why `r` cannot follow the rows seen so far, if it cannot: a
    /// customer given twice must be given the same way both times.
    fn conflict(&self, r: &ImportRow) -> Option<String> {
        let mut earlier: Vec<(u32, u32)> = Self::keys(&r.member)
            .filter_map(|k| self.0.get(&k).copied())
            .collect();
        earlier.sort_unstable();
        earlier.dedup();
        match earlier.as_slice() {
            [] => None,
            [(_, data)] if *data == Self::data(&r.member) => None,
            [(line, _)] => Some(format!(
                "a member with these identifiers exists earlier in the file (line {line}) with \
                 different data; give each customer once"
            )),
            many => Some(format!(
                "its identifiers belong to different customers earlier in the file (lines {})",
                many.iter()
                    .map(|(l, _)| l.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    fn has(&self, m: &NewMember) -> bool {
        Self::keys(m).any(|k| self.0.contains_key(&k))
    }

    fn add(&mut self, r: &ImportRow) {
        let seen = (
            u32::try_from(r.line).unwrap_or(u32::MAX),
            Self::data(&r.member),
        );
        for k in Self::keys(&r.member) {
            self.0.entry(k).or_insert(seen);
        }
    }
}

impl Store {
    /// Imports the rows received on `chunks`, each chunk committed on its
    /// own (a few thousand rows in a few statements), so an interrupted
    /// import leaves a prefix that running it again completes. With
    /// `dry_run` it only reads: each chunk is matched against the members
    /// already there, and against the file's earlier rows by the hashes of
    /// their identifiers, so the report is exact (duplicates across chunks
    /// included) and nothing is written.
    pub async fn import_members(
        &self,
        ctx: &LedgerContext,
        mut chunks: Receiver<Vec<ImportRow>>,
        dry_run: bool,
    ) -> Result<ImportTally> {
        let program = ctx.program;
        let mut tally = ImportTally::default();
        let mut seen = SeenInFile::default();
        with_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            while let Some(rows) = chunks.recv().await {
                let ext: Vec<&str> = rows
                    .iter()
                    .filter_map(|r| r.member.external_id.as_ref().map(ExternalId::as_str))
                    .collect();
                let emails: Vec<&str> = rows
                    .iter()
                    .filter_map(|r| r.member.email.as_ref().map(Email::as_str))
                    .collect();
                let phones: Vec<&str> = rows
                    .iter()
                    .filter_map(|r| r.member.phone.as_ref().map(Phone::as_str))
                    .collect();
                let mut known = Known::default();
                // One SELECT per identifier, each on its own unique index
                // (SQLite plans `a IN .. OR b IN ..` as a scan of the
                // table). The builder's placeholders are SQLite's anonymous
                // `?`: sqlx looks each named `$n` up by a linear scan, which
                // made binding thousands of them quadratic.
                let mut q = sqlx::QueryBuilder::new("");
                let mut any = false;
                for (column, values) in [
                    ("external_id", &ext),
                    ("email", &emails),
                    ("phone", &phones),
                ] {
                    if values.is_empty() {
                        continue;
                    }
                    if any {
                        q.push(" UNION ");
                    }
                    any = true;
                    q.push(format!(
                        "SELECT {COLUMNS}{READ} FROM members WHERE program_id = "
                    ))
                    .push_bind(program.0)
                    .push(format!(" AND {column} IN ("));
                    let mut list = q.separated(", ");
                    for v in values.iter() {
                        list.push_bind(*v);
                    }
                    q.push(")");
                }
                if any {
                    for row in q.build_query_as::<MemberRow>().fetch_all(&mut *tx).await? {
                        known.add(Member::try_from(row)?);
                    }
                }
                let at = now();
                let mut fresh: Vec<(MemberId, &NewMember)> = Vec::new();
                // Rows imported now or found imported: their balances are booked.
                let mut kept: Vec<&ImportRow> = Vec::new();
                for r in &rows {
                    if dry_run {
                        if let Some(why) = seen.conflict(r) {
                            tally.refused.push((r.line, why));
                            continue;
                        }
                    }
                    match known.matching(&r.member).as_slice() {
                        [] if dry_run && seen.has(&r.member) => {
                            tally.existing += 1;
                            seen.add(r);
                        }
                        [] => {
                            let id = MemberId::generate();
                            fresh.push((id, &r.member));
                            kept.push(r);
                            if dry_run {
                                seen.add(r);
                                continue;
                            }
                            known.add(Member {
                                program_id: program,
                                id,
                                external_id: r.member.external_id.as_ref().map(|x| x.as_str().to_owned()),
                                email: r.member.email.as_ref().map(|x| x.as_str().to_owned()),
                                phone: r.member.phone.as_ref().map(|x| x.as_str().to_owned()),
                                name: r.member.name.clone(),
                                locale: r.member.locale.as_ref().map(|l| l.as_str().to_owned()),
                                status: sarafan_core::member::MemberStatus::Active,
                                consent: r.member.consent,
                                created_at: at,
                                updated_at: at,
                                erased_at: None,
                                card_serial: None,
                            });
                        }
                        [one] => {
                            let diff = differences(&r.member, one);
                            if diff.is_empty() {
                                tally.existing += 1;
                                kept.push(r);
                                if dry_run {
                                    seen.add(r);
                                }
                            } else {
                                tally.refused.push((
                                    r.line,
                                    format!(
                                        "a member with these identifiers exists (in the program or earlier in the file) \
                                         with a different {}",
                                        diff.join(", ")
                                    ),
                                ));
                            }
                        }
                        _ => tally.refused.push((
                            r.line,
                            "its identifiers belong to two different members (in the program or earlier in the file)"
                                .to_owned(),
                        )),
                    }
                }
                tally.created += fresh.len() as u64;
                if dry_run {
                    tx.rollback().await?;
                    tx = pool.begin().await?;
                    continue;
                }
                for part in fresh.chunks(1000) {
                    let mut q =
                        sqlx::QueryBuilder::new(format!("INSERT INTO members ({COLUMNS}) "));
                    q.push_values(part, |mut b, (id, m)| {
                        b.push_bind(program.0)
                            .push_bind(id.0)
                            .push_bind(m.external_id.as_ref().map(ExternalId::as_str))
                            .push_bind(m.email.as_ref().map(Email::as_str))
                            .push_bind(m.phone.as_ref().map(Phone::as_str))
                            .push_bind(m.name.as_deref())
                            .push_bind(m.locale.as_ref().map(Locale::as_str))
                            .push("'active'")
                            .push_bind(m.consent.email)
                            .push_bind(m.consent.sms)
                            .push_bind(m.consent.messengers)
                            .push_bind(at)
                            .push_bind(at)
                            .push("NULL");
                    });
                    q.build().execute(&mut *tx).await?;
                }
                let (lines, grants): (Vec<u64>, Vec<EventIn>) = kept
                    .iter()
                    .filter_map(|r| opening_grant(ctx, r, at))
                    .unzip();
                if !grants.is_empty() {
                    // Keys checked up front: a re-run finds its grants booked.
                    let mut wanted = Wanted::of(ctx, &grants);
                    wanted.check_keys = true;
                    let results = book_in(&mut *tx, ctx, &grants, &wanted, Announce::No)
                        .await?
                        .ok_or_else(|| {
                            StoreError::Corrupt(
                                "an opening balance was booked by another writer during the import"
                                    .into(),
                            )
                        })?;
                    for (line, result) in lines.into_iter().zip(results) {
                        match result {
                            ItemResult::Accepted(_) => tally.balances_booked += 1,
                            ItemResult::Replayed(_) => tally.balances_replayed += 1,
                            ItemResult::Rejected(e) => {
                                tally.balances_refused.push((line, e.to_string()))
                            }
                        }
                    }
                }
                tx.commit().await?;
                tx = pool.begin().await?;
            }
            tx.rollback().await?;
        });
        Ok(tally)
    }
}

/// The grant of a row's opening balance, if it has one.
fn opening_grant(
    ctx: &LedgerContext,
    r: &ImportRow,
    at: time::OffsetDateTime,
) -> Option<(u64, EventIn)> {
    let ext = r.member.external_id.as_ref().filter(|_| r.points > 0)?;
    Some((
        r.line,
        EventIn::grant(
            format!("opening:{}", ext.as_str()),
            // By external id, as the key: the request (and so the
            // fingerprint a re-run is compared by) names the customer the
            // store's way.
            MemberRef::External(ext.clone()),
            at,
            (ctx.settings.earn_asset, r.points),
            "opening balance (imported)",
            None,
        ),
    ))
}
