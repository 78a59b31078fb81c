//! CSV import and export: `sarafan import members|purchases`, `sarafan
//! export members|statement|referrals`. Files stream row by row (the `csv`
//! crate), in chunks to the store, and exports page through the database,
//! so memory stays flat however long the file is.
//!
//! An import first checks the whole file — every bad row reported with its
//! line number and reason, duplicates and conflicts with members already in
//! the program included — and imports nothing unless every row is good;
//! `--dry-run` stops after that check. Re-running an import adds nothing
//! twice: members are found again by their identifiers (their opening
//! balances by a key of the external id, booked in the member's chunk),
//! purchases by their order id.

use crate::config::DbArgs;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use sarafan_core::ids::{MemberId, ProgramId};
use sarafan_core::member::{Consent, MemberFields, NewMember};
use sarafan_server::api::events::{parse as parse_event, EventRequest, EventType};
use sarafan_store::ledger::{EventIn, ItemResult, LedgerContext};
use sarafan_store::referrals::ReferralFilter;
use sarafan_store::{ImportRow, MemberFilter, Store};
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

#[derive(Subcommand)]
pub enum ImportCommand {
    /// Customers: external_id (required), email, phone, name, locale,
    /// consent_email, consent_sms, consent_messengers, and points: their
    /// balance at the store, booked once as an opening-balance grant.
    Members(ImportArgs),
    /// Purchase history: order_id, external_id, amount (minor units),
    /// currency, occurred_at (RFC 3339), channel, store_id. Booked through
    /// the ledger with the order id as key, so nothing is booked twice.
    Purchases(ImportArgs),
}

#[derive(Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// The program's id (see `sarafan program list`).
    #[arg(long)]
    pub program: ProgramId,
    /// The CSV file; its first line names the columns.
    pub file: PathBuf,
    /// Check every row and report; import nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The file's encoding; `auto` reads UTF-8 (with or without BOM) and
    /// recognises Windows-1251.
    #[arg(long, value_enum, default_value = "auto")]
    pub encoding: Encoding,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Encoding {
    Auto,
    #[value(name = "utf-8")]
    Utf8,
    #[value(name = "windows-1251")]
    Windows1251,
}

#[derive(Subcommand)]
pub enum ExportCommand {
    /// Every member, oldest first.
    Members(ExportArgs),
    /// Every ledger posting of every member, with its reason.
    Statement(ExportArgs),
    /// Every referral, oldest first: who invited whom, how, how far it got
    /// and the points each side was granted.
    Referrals(ExportArgs),
}

#[derive(Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[arg(long)]
    pub program: ProgramId,
    /// Where to write (default: standard output).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// Rows per chunk sent to the store.
const CHUNK: usize = 5000;

/// Opens `path` as UTF-8 text (a BOM skipped), transcoding Windows-1251.
fn open_text(path: &Path, encoding: Encoding) -> Result<(Box<dyn Read + Send>, &'static str)> {
    let mut file =
        File::open(path).with_context(|| format!("{}: cannot open the file", path.display()))?;
    let mut sample = vec![0; 64 * 1024];
    let n = read_full(&mut file, &mut sample)?;
    sample.truncate(n);
    let bom = sample.starts_with(b"\xEF\xBB\xBF");
    let encoding = match encoding {
        Encoding::Auto if bom => Encoding::Utf8,
        Encoding::Auto => match std::str::from_utf8(&sample) {
            Ok(_) => Encoding::Utf8,
            // Cut in the middle of a character at the end of the sample.
            Err(e) if e.error_len().is_none() => Encoding::Utf8,
            Err(e) if looks_like_1251(&sample) => {
                let _ = e;
                Encoding::Windows1251
            }
            Err(e) => {
                let line = sample[..e.valid_up_to()]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count()
                    + 1;
                bail!(
                    "{}: line {line} is not UTF-8 (byte {} of the file); save the file as UTF-8 \
                     (\"CSV UTF-8\" in Excel) or pass --encoding windows-1251",
                    path.display(),
                    e.valid_up_to()
                )
            }
        },
        other => other,
    };
    file.seek(SeekFrom::Start(if bom { 3 } else { 0 }))?;
    Ok(match encoding {
        Encoding::Windows1251 => (
            Box::new(
                encoding_rs_io::DecodeReaderBytesBuilder::new()
                    .encoding(Some(encoding_rs::WINDOWS_1251))
                    .build(file),
            ),
            "Windows-1251",
        ),
        _ => (Box::new(file), if bom { "UTF-8 with BOM" } else { "UTF-8" }),
    })
}

fn read_full(file: &mut File, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Whether non-ASCII bytes are mostly Windows-1251 Cyrillic letters
/// (0xC0–0xFF, plus Ё/ё).
fn looks_like_1251(sample: &[u8]) -> bool {
    let high: Vec<u8> = sample.iter().copied().filter(|b| *b >= 0x80).collect();
    let letters = high
        .iter()
        .filter(|&&b| b >= 0xC0 || b == 0xA8 || b == 0xB8)
        .count();
    !high.is_empty() && letters * 10 >= high.len() * 8
}

fn progress(path: &Path) -> ProgressBar {
    let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:12} [{bar:40}] {bytes}/{total_bytes} {per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}

/// The columns of a file: each known column's index; unknown or repeated
/// columns are an error that names them.
fn columns(
    headers: &csv::StringRecord,
    known: &[&str],
    required: &[&str],
) -> Result<Vec<Option<usize>>> {
    let mut idx = vec![None; known.len()];
    let mut unknown = Vec::new();
    for (i, h) in headers.iter().enumerate() {
        let h = h.trim().to_ascii_lowercase();
        match known.iter().position(|k| *k == h) {
            Some(k) if idx[k].is_some() => bail!("line 1: column {h:?} appears twice"),
            Some(k) => idx[k] = Some(i),
            None => unknown.push(format!("{h:?}")),
        }
    }
    if !unknown.is_empty() {
        bail!(
            "line 1: unknown column(s) {}; the columns are: {}",
            unknown.join(", "),
            known.join(", ")
        );
    }
    for r in required {
        if idx[known.iter().position(|k| k == r).unwrap_or(0)].is_none() {
            bail!(
                "line 1: the column {r:?} is required; the columns are: {}",
                known.join(", ")
            );
        }
    }
    Ok(idx)
}

/// A cell by column, `None` when the column is absent or the cell empty.
fn cell<'r>(record: &'r csv::StringRecord, idx: &[Option<usize>], col: usize) -> Option<&'r str> {
    idx[col]
        .and_then(|i| record.get(i))
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn flag(field: &str, raw: Option<&str>) -> Result<bool, String> {
    match raw.map(str::to_ascii_lowercase).as_deref() {
        None | Some("0" | "false" | "no" | "n") => Ok(false),
        Some("1" | "true" | "yes" | "y") => Ok(true),
        Some(other) => Err(format!(
            "{field}: {other:?} is not a yes/no value; use true or false"
        )),
    }
}

const MEMBER_COLUMNS: [&str; 9] = [
    "external_id",
    "email",
    "phone",
    "name",
    "locale",
    "consent_email",
    "consent_sms",
    "consent_messengers",
    "points",
];

/// The opening balance of a row: 0 when absent.
fn points_cell(raw: Option<&str>) -> Result<i64, String> {
    match raw {
        None => Ok(0),
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|p| *p >= 0)
            .ok_or_else(|| format!("points: {s:?} is not a whole number of points (0 or more)")),
    }
}

/// A customer and their opening balance.
fn member_row(
    record: &csv::StringRecord,
    idx: &[Option<usize>],
) -> Result<(NewMember, i64), String> {
    let c = |i| cell(record, idx, i);
    if c(0).is_none() {
        return Err(
            "external_id: is empty; every imported customer needs the store's id, \
                    so that re-running the import finds them"
                .into(),
        );
    }
    let points = points_cell(c(8))?;
    let consent = Consent {
        email: flag("consent_email", c(5))?,
        sms: flag("consent_sms", c(6))?,
        messengers: flag("consent_messengers", c(7))?,
    };
    NewMember::parse(MemberFields {
        external_id: c(0),
        email: c(1),
        phone: c(2),
        name: c(3),
        locale: c(4),
        consent,
    })
    .map(|m| (m, points))
    .map_err(|e| e.to_string())
}

/// Reads the file on a blocking thread, sending good rows in chunks and
/// printing each bad row; returns how many rows were read and were bad.
fn read_rows<T: Send + 'static>(
    path: &Path,
    encoding: Encoding,
    known: &'static [&'static str],
    required: &'static [&'static str],
    parse: fn(&csv::StringRecord, &[Option<usize>]) -> Result<T, String>,
    label: &'static str,
    tx: mpsc::Sender<Vec<(u64, T)>>,
) -> Result<tokio::task::JoinHandle<Result<(u64, u64)>>> {
    let (text, name) = open_text(path, encoding)?;
    eprintln!("{}: reading as {name}", path.display());
    let bar = progress(path);
    bar.set_message(label);
    Ok(tokio::task::spawn_blocking(move || {
        let mut reader = csv::ReaderBuilder::new()
            .flexible(false)
            .from_reader(BufReader::with_capacity(1 << 16, text));
        let headers = reader
            .headers()
            .context("line 1: cannot read the column names")?
            .clone();
        let idx = columns(&headers, known, required)?;
        let (mut rows, mut bad) = (0u64, 0u64);
        let mut chunk = Vec::with_capacity(CHUNK);
        let mut record = csv::StringRecord::new();
        loop {
            let line = reader.position().line() + 1;
            match reader.read_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {
                    rows += 1;
                    let line = record.position().map_or(line, |p| p.line());
                    match parse(&record, &idx) {
                        Ok(v) => chunk.push((line, v)),
                        Err(reason) => {
                            bad += 1;
                            bar.suspend(|| eprintln!("line {line}: {reason}"));
                        }
                    }
                }
                Err(e) => {
                    rows += 1;
                    bad += 1;
                    let line = e.position().map_or(line, |p| p.line());
                    bar.suspend(|| eprintln!("line {line}: malformed CSV: {}", csv_reason(&e)));
                    if !matches!(
                        e.kind(),
                        csv::ErrorKind::Utf8 { .. } | csv::ErrorKind::UnequalLengths { .. }
                    ) {
                        break;
                    }
                }
            }
            if chunk.len() == CHUNK {
                bar.set_position(reader.position().byte());
                if tx
                    .blocking_send(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK)))
                    .is_err()
                {
                    break;
                }
            }
        }
        if !chunk.is_empty() {
            let _ = tx.blocking_send(chunk);
        }
        bar.finish_and_clear();
        Ok((rows, bad))
    }))
}

fn csv_reason(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => {
            format!(
                "{len} fields where the header has {expected_len}; quote cells that contain commas"
            )
        }
        csv::ErrorKind::Utf8 { .. } => {
            "not UTF-8; save the file as UTF-8 or pass --encoding windows-1251".into()
        }
        _ => e.to_string(),
    }
}

pub async fn import(cmd: ImportCommand) -> Result<()> {
    match cmd {
        ImportCommand::Members(a) => import_members(a).await,
        ImportCommand::Purchases(a) => import_purchases(a).await,
    }
}

async fn open(db: DbArgs, program: ProgramId) -> Result<Store> {
    let store = db.resolve(None)?.open_store().await?;
    store.program(program).await?.with_context(|| {
        format!("--program: no program {program}; `sarafan program list` shows the ids")
    })?;
    Ok(store)
}

/// One pass over the members file: a dry run (checked, rolled back) or the
/// import itself.
async fn members_pass(
    store: &Store,
    ctx: &LedgerContext,
    a: &ImportArgs,
    dry_run: bool,
) -> Result<(u64, sarafan_store::ImportTally)> {
    let (tx, mut rx) = mpsc::channel::<Vec<(u64, (NewMember, i64))>>(4);
    let reader = read_rows(
        &a.file,
        a.encoding,
        &MEMBER_COLUMNS,
        &["external_id"],
        member_row,
        if dry_run { "checking" } else { "importing" },
        tx,
    )?;
    let (rows_tx, rows_rx) = mpsc::channel(4);
    let forward = tokio::spawn(async move {
        while let Some(chunk) = rx.recv().await {
            let rows = chunk
                .into_iter()
                .map(|(line, (member, points))| ImportRow {
                    line,
                    member,
                    points,
                })
                .collect();
            if rows_tx.send(rows).await.is_err() {
                break;
            }
        }
    });
    let tally = store.import_members(ctx, rows_rx, dry_run).await?;
    forward.await?;
    let (_, bad) = reader.await??;
    Ok((bad, tally))
}

async fn import_members(a: ImportArgs) -> Result<()> {
    let store = open(a.db.clone(), a.program).await?;
    let ctx = store
        .ledger_context(a.program)
        .await?
        .context("--program: the program has no ledger context")?;
    let (bad, check) = members_pass(&store, &ctx, &a, true).await?;
    for (line, reason) in &check.refused {
        eprintln!("line {line}: {reason}");
    }
    let refused = bad + check.refused.len() as u64;
    if refused > 0 {
        bail!("{refused} bad row(s) listed above; nothing was imported. Fix them and run again");
    }
    if a.dry_run {
        println!(
            "dry run: every row is good; {} member(s) would be created, {} are there already. Nothing was imported",
            check.created, check.existing
        );
        return Ok(());
    }
    let (_, done) = members_pass(&store, &ctx, &a, false).await?;
    for (line, reason) in &done.refused {
        eprintln!("line {line}: {reason} (changed since the check)");
    }
    for (line, reason) in &done.balances_refused {
        eprintln!("line {line}: opening balance: {reason}");
    }
    println!(
        "imported {} member(s); {} were there already",
        done.created, done.existing
    );
    println!(
        "opening balances: {} booked; {} were booked before",
        done.balances_booked, done.balances_replayed
    );
    store.close().await;
    if !done.balances_refused.is_empty() {
        bail!(
            "{} opening balance(s) refused (listed above)",
            done.balances_refused.len()
        );
    }
    Ok(())
}

const PURCHASE_COLUMNS: [&str; 7] = [
    "order_id",
    "external_id",
    "amount",
    "currency",
    "occurred_at",
    "channel",
    "store_id",
];

fn purchase_row(record: &csv::StringRecord, idx: &[Option<usize>]) -> Result<EventIn, String> {
    let c = |i| cell(record, idx, i).map(str::to_owned);
    let amount = c(2)
        .map(|a| {
            a.parse::<i64>().map_err(|_| {
                format!("amount: {a:?} is not a whole number of minor units (kopecks), e.g. 45000")
            })
        })
        .transpose()?;
    let request = EventRequest {
        kind: EventType::Purchase,
        id: c(0).ok_or("order_id: is empty; it keys the purchase so it is never booked twice")?,
        member_id: None,
        external_id: Some(c(1).ok_or("external_id: is empty; name the customer")?),
        occurred_at: c(4),
        amount,
        currency: c(3),
        lines: Vec::new(),
        store_id: c(6),
        channel: c(5),
        order_id: None,
        name: None,
        properties: None,
        referral_code: None,
    };
    parse_event(request, sarafan_store::now()).map_err(|e| e.to_string())
}

async fn import_purchases(a: ImportArgs) -> Result<()> {
    let store = open(a.db.clone(), a.program).await?;
    let ctx = store
        .ledger_context(a.program)
        .await?
        .context("--program: the program has no ledger context")?;
    // The check: every row parses (members are checked by the ledger as it books).
    let (tx, mut rx) = mpsc::channel(4);
    let reader = read_rows(
        &a.file,
        a.encoding,
        &PURCHASE_COLUMNS,
        &["order_id", "external_id", "amount"],
        purchase_row,
        "checking",
        tx,
    )?;
    let mut good = 0u64;
    while let Some(chunk) = rx.recv().await {
        good += chunk.len() as u64;
    }
    let (_, bad) = reader.await??;
    if bad > 0 {
        bail!("{bad} bad row(s) listed above; nothing was imported. Fix them and run again");
    }
    if a.dry_run {
        println!("dry run: all {good} purchase(s) are well-formed. Nothing was imported");
        return Ok(());
    }
    let (tx, mut rx) = mpsc::channel::<Vec<(u64, EventIn)>>(4);
    let reader = read_rows(
        &a.file,
        a.encoding,
        &PURCHASE_COLUMNS,
        &["order_id", "external_id", "amount"],
        purchase_row,
        "booking",
        tx,
    )?;
    let (mut booked, mut replayed, mut refused) = (0u64, 0u64, 0u64);
    while let Some(chunk) = rx.recv().await {
        let (lines, events): (Vec<u64>, Vec<EventIn>) = chunk.into_iter().unzip();
        for (line, result) in lines.iter().zip(store.ingest(&ctx, &events).await?) {
            match result {
                ItemResult::Accepted(_) => booked += 1,
                ItemResult::Replayed(_) => replayed += 1,
                ItemResult::Rejected(e) => {
                    refused += 1;
                    eprintln!("line {line}: {e}");
                }
            }
        }
    }
    reader.await??;
    println!("booked {booked} purchase(s); {replayed} were booked before; {refused} refused");
    store.close().await;
    if refused > 0 {
        bail!("{refused} purchase(s) refused (listed above); fix them and run again: nothing is booked twice");
    }
    Ok(())
}

pub async fn export(cmd: ExportCommand) -> Result<()> {
    let a = match &cmd {
        ExportCommand::Members(a) | ExportCommand::Statement(a) | ExportCommand::Referrals(a) => a,
    };
    let store = open(a.db.clone(), a.program).await?;
    let out: Box<dyn Write> = match &a.output {
        Some(p) => Box::new(
            File::create(p).with_context(|| format!("--output: cannot create {}", p.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut w = csv::Writer::from_writer(std::io::BufWriter::new(out));
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{msg:12} {spinner} {human_pos} rows {per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message("exporting");
    match cmd {
        ExportCommand::Members(_) => export_members(&store, a.program, &mut w, &bar, false).await?,
        ExportCommand::Statement(_) => {
            export_members(&store, a.program, &mut w, &bar, true).await?
        }
        ExportCommand::Referrals(_) => export_referrals(&store, a.program, &mut w, &bar).await?,
    }
    w.flush()?;
    bar.finish_and_clear();
    store.close().await;
    Ok(())
}

type CsvOut<'a> = csv::Writer<std::io::BufWriter<Box<dyn Write + 'a>>>;

/// Members (or, with `statement`, their ledger postings) a page at a time.
async fn export_members(
    store: &Store,
    program: ProgramId,
    w: &mut CsvOut<'_>,
    bar: &ProgressBar,
    statement: bool,
) -> Result<()> {
    if statement {
        w.write_record([
            "member_id",
            "external_id",
            "transfer_id",
            "seq",
            "kind",
            "event_id",
            "asset",
            "amount",
            "reason",
            "created_at",
        ])?;
    } else {
        w.write_record([
            "id",
            "external_id",
            "email",
            "phone",
            "name",
            "locale",
            "status",
            "consent_email",
            "consent_sms",
            "consent_messengers",
            "created_at",
        ])?;
    }
    let mut after: Option<MemberId> = None;
    loop {
        let page = store
            .members(
                program,
                &MemberFilter {
                    after,
                    limit: 500,
                    ..Default::default()
                },
            )
            .await?;
        for m in &page.items {
            if statement {
                let mut from = None;
                loop {
                    let (lines, next) = store
                        .statement(program, m.id, from, sarafan_store::MAX_PAGE)
                        .await?;
                    for l in &lines {
                        w.write_record([
                            m.id.to_string(),
                            m.external_id.clone().unwrap_or_default(),
                            l.transfer_id.to_string(),
                            l.seq.to_string(),
                            l.kind.clone(),
                            l.event_key.clone().unwrap_or_default(),
                            l.asset.clone(),
                            l.amount.to_string(),
                            l.why().to_string(),
                            rfc3339(l.created_at),
                        ])?;
                        bar.inc(1);
                    }
                    match next {
                        Some(after) => from = Some(after),
                        None => break,
                    }
                }
            } else {
                w.write_record([
                    m.id.to_string(),
                    m.external_id.clone().unwrap_or_default(),
                    m.email.clone().unwrap_or_default(),
                    m.phone.clone().unwrap_or_default(),
                    m.name.clone().unwrap_or_default(),
                    m.locale.clone().unwrap_or_default(),
                    m.status.as_str().to_owned(),
                    m.consent.email.to_string(),
                    m.consent.sms.to_string(),
                    m.consent.messengers.to_string(),
                    rfc3339(m.created_at),
                ])?;
                bar.inc(1);
            }
        }
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    Ok(())
}

/// Referrals a page at a time, each with both members' store ids and the
/// points granted to each side (voided or clawed-back grants not counted).
async fn export_referrals(
    store: &Store,
    program: ProgramId,
    w: &mut CsvOut<'_>,
    bar: &ProgressBar,
) -> Result<()> {
    w.write_record([
        "referral_id",
        "inviter_member_id",
        "inviter_external_id",
        "friend_member_id",
        "friend_external_id",
        "code",
        "channel",
        "status",
        "touched_at",
        "signed_up_at",
        "qualified_at",
        "rewarded_at",
        "rejected_at",
        "reject_reason",
        "inviter_points",
        "friend_points",
    ])?;
    let mut after = None;
    loop {
        let (page, next) = store
            .referrals(
                program,
                &ReferralFilter {
                    after,
                    limit: 500,
                    ..Default::default()
                },
            )
            .await?;
        let ids: Vec<MemberId> = page.iter().flat_map(|r| [r.referrer, r.friend]).collect();
        let external = store.external_ids(program, &ids).await?;
        let ext = |m: MemberId| external.get(&m).cloned().unwrap_or_default();
        let time = |t: Option<time::OffsetDateTime>| t.map(rfc3339).unwrap_or_default();
        for r in &page {
            let points = |level: u8| {
                r.rewards
                    .iter()
                    .filter(|x| x.level == level && x.kind == "points" && x.status == "granted")
                    .map(|x| x.amount)
                    .sum::<i64>()
                    .to_string()
            };
            w.write_record([
                r.id.to_string(),
                r.referrer.to_string(),
                ext(r.referrer),
                r.friend.to_string(),
                ext(r.friend),
                r.code.clone().unwrap_or_default(),
                r.channel.clone(),
                r.status.as_str().to_owned(),
                rfc3339(r.touched_at),
                rfc3339(r.signed_up_at),
                time(r.qualified_at),
                time(r.rewarded_at),
                time(r.rejected_at),
                r.reject_reason.clone().unwrap_or_default(),
                points(1),
                points(0),
            ])?;
            bar.inc(1);
        }
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    Ok(())
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_1251_is_recognised() {
        let (cp1251, _, _) =
            encoding_rs::WINDOWS_1251.encode("external_id,name\nC1,Ольга Иванова\n");
        assert!(looks_like_1251(&cp1251));
        assert!(std::str::from_utf8(&cp1251).is_err());
        assert!(
            !looks_like_1251("Ольга".as_bytes()),
            "UTF-8 Cyrillic is not 1251"
        );
    }

    #[test]
    fn columns_name_unknown_and_missing() {
        let h = csv::StringRecord::from(vec!["external_id", "emial"]);
        let e = columns(&h, &MEMBER_COLUMNS, &["external_id"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"emial\"") && e.contains("email"), "{e}");
        let h = csv::StringRecord::from(vec!["email"]);
        let e = columns(&h, &MEMBER_COLUMNS, &["external_id"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"external_id\" is required"), "{e}");
        let h = csv::StringRecord::from(vec!["email", "EMAIL", "external_id"]);
        assert!(columns(&h, &MEMBER_COLUMNS, &[])
            .unwrap_err()
            .to_string()
            .contains("twice"));
    }
}
