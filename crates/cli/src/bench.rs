//! `sarafan bench`: throughput of the purchase-event pipeline, beside the raw
//! rate of plain batched INSERTs into the same database.

mod events;
mod outbox;

use anyhow::{bail, ensure, Context, Result};
use clap::{Args, Subcommand};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sarafan_core::ids::ProgramId;
use sarafan_core::ledger::rules::{
    EarnRules, Line, Multiplier, Promotion, Purchase, Rate, Rounding,
};
use sarafan_core::member::ExternalId;
use sarafan_core::outbox::Topic;
use sarafan_core::program::{Currency, Locale, ProgramName, ProgramSettings};
use sarafan_store::ledger::{EventBody, EventIn, ItemResult, MemberRef};
use sarafan_store::referrals::FriendActivity;
use sarafan_store::{Backend, ConnectOptions, NewProgram, Store};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::io::IsTerminal;
use std::time::{Duration, Instant};
use time::format_description::well_known::Rfc3339;
use time::macros::datetime;
use time::OffsetDateTime;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Measure how many purchase events a second the ledger pipeline books,
    /// and compare with plain batched INSERTs into the same database.
    Ingest(IngestArgs),
    /// Measure how many webhook messages a second the outbox worker
    /// delivers to a local receiver.
    Outbox(outbox::OutboxArgs),
    /// Measure single purchase events over HTTP (one request per
    /// checkout): the rate booked and the latency, closed or open loop.
    Events(events::EventsArgs),
}

#[derive(Args)]
pub struct IngestArgs {
    /// Database to run on: `postgres://…` (a fresh `bench_…` schema, dropped
    /// afterwards) or `sqlite://…`. Default: a fresh temporary SQLite file.
    /// Deliberately not read from the environment.
    #[arg(long)]
    database_url: Option<String>,
    /// Members enrolled before the run.
    #[arg(long, default_value_t = 10_000)]
    members: usize,
    /// Purchase events to ingest.
    #[arg(long, default_value_t = 200_000)]
    events: usize,
    /// Events per `ingest` call (one transaction each); by default the most
    /// one `POST /api/v1/events:batch` takes.
    #[arg(long, default_value_t = sarafan_server::api::events::MAX_BATCH)]
    batch: usize,
    /// Seed of the event generator.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Keep the PostgreSQL schema instead of dropping it at the end.
    #[arg(long)]
    keep: bool,
    /// Subscribe one webhook endpoint to `purchase.processed`, so every
    /// accepted purchase also writes an outbox message (nothing delivers
    /// them: the bench runs no worker).
    #[arg(long)]
    webhook: bool,
}

pub async fn run(cmd: BenchCommand) -> Result<()> {
    // RUST_LOG=sarafan_store=debug shows each batch's load/plan/write times.
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
    match cmd {
        BenchCommand::Ingest(args) => ingest(args).await,
        BenchCommand::Outbox(args) => outbox::outbox(args).await,
        BenchCommand::Events(args) => events::events(args).await,
    }
}

const CURRENCY: &str = "RUB";
const CATEGORIES: &[&str] = &[
    "coffee",
    "tea",
    "pastry",
    "dairy",
    "snacks",
    "household",
    "produce",
    "beverages",
];
const SKUS: usize = 200;
/// Events are spread over 90 days from here.
const START: OffsetDateTime = datetime!(2025-03-01 00:00 UTC);
const SPAN_SECONDS: i64 = 90 * 24 * 3600;

/// The benchmark's database: `url`, in a fresh `bench_…` schema on
/// PostgreSQL (the caller drops it), or a temporary SQLite file (removed
/// when the returned directory is dropped).
pub(crate) async fn bench_store(
    url: Option<&str>,
) -> Result<(Store, Option<String>, Option<tempfile::TempDir>)> {
    let mut tmp = None;
    let (url, schema) = match url {
        None => {
            let dir = tempfile::Builder::new()
                .prefix("sarafan-bench-")
                .tempdir()?;
            let url = format!("sqlite://{}", dir.path().join("bench.db").display());
            tmp = Some(dir);
            (url, None)
        }
        Some(u) if u.starts_with("postgres:") || u.starts_with("postgresql:") => (
            u.to_owned(),
            Some(format!("bench_{:016x}", rand::random::<u64>())),
        ),
        Some(u) if u.starts_with("sqlite:") => (u.to_owned(), None),
        Some(u) => bail!("--database-url {u:?} is neither sqlite:… nor postgres://…"),
    };
    let store = Store::open(&ConnectOptions {
        url,
        pg_schema: schema.clone(),
        max_connections: 4,
    })
    .await
    .context("opening the benchmark database")?;
    Ok((store, schema, tmp))
}

/// The backend's name, to start the lines a bench prints.
fn tag(store: &Store) -> &'static str {
    match store.backend() {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

/// A program for a bench, in roubles, its points expiring after a year,
/// with [`rules`] and `members` members (`cust-0000000`, …); returns it
/// with the members' external ids.
async fn bench_program(
    store: &Store,
    name: &str,
    members: usize,
) -> Result<(ProgramId, Vec<String>)> {
    let retailer = store.create_retailer("Sarafan bench retail").await?;
    let program = store
        .create_program(
            retailer,
            &NewProgram {
                name: ProgramName::parse(name)?,
                currency: Currency::parse(CURRENCY)?,
                locale: Locale::parse("locale", "ru")?,
                terms: String::new(),
                settings: ProgramSettings {
                    points_expire_after_days: Some(365),
                    ..ProgramSettings::default()
                },
            },
        )
        .await?;
    store.add_earn_rules(program.id, &rules()).await?;
    let externals: Vec<String> = (0..members).map(|i| format!("cust-{i:07}")).collect();
    store.bench_insert_members(program.id, &externals).await?;
    Ok((program.id, externals))
}

async fn ingest(args: IngestArgs) -> Result<()> {
    ensure!(args.members > 0, "--members must be at least 1");
    ensure!(args.events > 0, "--events must be at least 1");
    ensure!(args.batch > 0, "--batch must be at least 1");

    let (store, schema, _tmp) = bench_store(args.database_url.as_deref()).await?;
    let result = measure(&store, &args).await;
    if let (Some(schema), false) = (&schema, args.keep) {
        store.bench_drop_schema(schema).await?;
    }
    store.close().await;
    result
}

/// Runs the benchmark; `Err` when the run was wrong, not merely slow.
async fn measure(store: &Store, args: &IngestArgs) -> Result<()> {
    let tag = tag(store);

    // Set-up (not measured): program, rules, members, events.
    let setup = Instant::now();
    let (program, externals) = bench_program(store, "Sarafan bench", args.members).await?;
    let events = generate(args, &externals)?;
    if args.webhook {
        store
            .create_webhook(
                program,
                "http://127.0.0.1:9/bench",
                "bench",
                &[Topic::PurchaseProcessed],
            )
            .await?;
    }
    let ctx = store
        .ledger_context(program)
        .await?
        .context("the program just created is missing")?;
    println!(
        "{tag}  setup   {} members, {} events generated in {:.2} s (not measured)",
        args.members,
        events.len(),
        setup.elapsed().as_secs_f64()
    );

    // The pipeline.
    let mut latencies = Vec::with_capacity(events.len() / args.batch + 1);
    let mut hook = Vec::with_capacity(latencies.capacity());
    let (mut accepted, mut replayed, mut rejected) = (0usize, 0usize, 0usize);
    let mut first_rejection = None;
    let mut points = 0i64;
    let mut balance_upserts = 0usize;
    let batches = events.len().div_ceil(args.batch);
    let progress = std::io::stderr().is_terminal();
    let start = Instant::now();
    for (n, chunk) in events.chunks(args.batch).enumerate() {
        let t = Instant::now();
        let results = store.ingest(&ctx, chunk).await?;
        latencies.push(t.elapsed());
        // What the events handler adds per batch: finding the batch's
        // referred friends with an open referral (one query).
        let acted: Vec<FriendActivity> = results
            .iter()
            .filter_map(|r| match r {
                ItemResult::Accepted(o) => Some(FriendActivity::Acted(o.member_id)),
                _ => None,
            })
            .collect();
        let t = Instant::now();
        store.referral_activity(&ctx, &acted).await?;
        hook.push(t.elapsed());
        let mut accounts = HashSet::new();
        for r in results {
            match r {
                ItemResult::Accepted(o) => {
                    accepted += 1;
                    points += o.points;
                    if o.points > 0 {
                        accounts.insert(Some(o.member_id));
                        accounts.insert(None); // the program's issued account
                    }
                }
                ItemResult::Replayed(_) => replayed += 1,
                ItemResult::Rejected(e) => {
                    rejected += 1;
                    first_rejection.get_or_insert_with(|| e.to_string());
                }
            }
        }
        balance_upserts += accounts.len();
        if progress && (n + 1) % (batches / 20).max(1) == 0 {
            eprint!("\r{tag}  ingest  {}/{} batches", n + 1, batches);
        }
    }
    let elapsed = start.elapsed();
    if progress {
        eprint!("\r\x1b[K");
    }
    let secs = elapsed.as_secs_f64();
    let events_per_s = events.len() as f64 / secs;

    let counts = store.bench_ledger_counts(program).await?;
    let count = |t: &str| counts.iter().find(|(n, _)| *n == t).map_or(0, |(_, c)| *c);
    let rows = ["events", "transfers"]
        .iter()
        .map(|t| count(t))
        .sum::<i64>() as usize;
    let rows_per_event = rows as f64 / events.len() as f64;
    println!(
        "{tag}  ingest  {} events in {secs:.2} s = {events_per_s:.0} events/s ({rows_per_event:.1} rows/event)",
        events.len()
    );
    latencies.sort_unstable();
    hook.sort_unstable();
    println!(
        "{tag}  referral hook after each batch: p50 {:.2} ms, p90 {:.2} ms, max {:.2} ms",
        ms(percentile(&hook, 0.50)),
        ms(percentile(&hook, 0.90)),
        ms(percentile(&hook, 1.0)),
    );
    println!(
        "{tag}  ingest  batch of {}: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        args.batch,
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.90)),
        ms(percentile(&latencies, 0.99)),
        ms(percentile(&latencies, 1.0)),
    );
    println!(
        "{tag}  rows    events {}, transfers {} ({} of them carry a lot) = {rows} rows; \
         plus {balance_upserts} balance upserts into {} balance rows (not counted)",
        count("events"),
        count("transfers"),
        count("lots"),
        count("balances"),
    );

    if args.webhook {
        println!("{tag}  outbox  {} messages queued", count("outbox"));
    }

    // The baseline: the same rows again, as plain batched INSERTs into
    // copies of the same tables, committed as the pipeline committed them.
    let pipeline_rows_per_s = rows as f64 / secs;
    let (raw_rows, raw) = store.bench_raw_insert(program, args.batch).await?;
    ensure!(
        raw_rows == rows,
        "the baseline inserted {raw_rows} rows, the pipeline wrote {rows}"
    );
    let raw_rows_per_s = rows as f64 / raw.as_secs_f64();
    println!(
        "{tag}  raw     the same {rows} rows into copies of the tables in {:.2} s = {raw_rows_per_s:.0} rows/s \
         ({batches} transactions, as the pipeline)",
        raw.as_secs_f64(),
    );
    println!(
        "{tag}  compare pipeline {pipeline_rows_per_s:.0} rows/s / raw {raw_rows_per_s:.0} rows/s = {:.2}; \
         {events_per_s:.0} events/s vs raw {:.0} events/s",
        pipeline_rows_per_s / raw_rows_per_s,
        raw_rows_per_s / rows_per_event,
    );

    // Correctness.
    let verifying = Instant::now();
    let violations = store.verify_ledger(program).await?;
    let totals = store
        .ledger_totals(program, sarafan_core::ledger::Asset::Points)
        .await?;
    let mut problems = Vec::new();
    if accepted != events.len() {
        problems.push(format!(
            "{accepted} of {} events accepted ({replayed} replayed, {rejected} rejected{})",
            events.len(),
            first_rejection
                .map(|e| format!(", first: {e}"))
                .unwrap_or_default()
        ));
    }
    if count("events") != events.len() as i64 {
        problems.push(format!(
            "{} event rows for {} events",
            count("events"),
            events.len()
        ));
    }
    if totals.issued != points || totals.outstanding != points {
        problems.push(format!(
            "outcomes earned {points} points but the ledger issued {} and members hold {}",
            totals.issued, totals.outstanding
        ));
    }
    problems.extend(violations.iter().take(10).cloned());
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("{tag}  verify  FAILED: {p}");
        }
        bail!(
            "benchmark run is invalid: {} problem(s), {} ledger violation(s)",
            problems.len(),
            violations.len()
        );
    }
    println!(
        "{tag}  verify  ok: {accepted}/{} accepted, {points} points issued, ledger consistent \
         (0 violations; checked in {:.1} s)",
        events.len(),
        verifying.elapsed().as_secs_f64()
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The `q` quantile of sorted `v` (nearest rank).
fn percentile(v: &[Duration], q: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// A realistic rule set: 1 point per 1 RUB, a few category and SKU
/// multipliers, a double-points fortnight and a bonus for big baskets.
fn rules() -> EarnRules {
    let m = |key: &str, basis_points| Multiplier {
        key: key.into(),
        basis_points,
    };
    EarnRules {
        version: 1,
        effective_from: datetime!(2024-01-01 00:00 UTC),
        base_rate: Rate {
            points: 1,
            per_minor: 100,
        },
        rounding: Rounding::Floor,
        category_multipliers: vec![
            m("coffee", 20_000),
            m("pastry", 15_000),
            m("household", 5_000),
        ],
        sku_multipliers: vec![m("sku-0007", 30_000), m("sku-0042", 0)],
        min_order: 5_000,
        cap_per_order: Some(50_000),
        cap_per_day: None,
        promotions: vec![
            Promotion {
                name: "spring double points".into(),
                starts_at: datetime!(2025-03-10 00:00 UTC),
                ends_at: datetime!(2025-03-24 00:00 UTC),
                basis_points: 20_000,
                condition: None,
            },
            Promotion {
                name: "big basket".into(),
                starts_at: datetime!(2025-01-01 00:00 UTC),
                ends_at: datetime!(2026-01-01 00:00 UTC),
                basis_points: 15_000,
                condition: Some("order.amount > 100000".into()),
            },
        ],
        condition: None,
    }
}

/// `args.events` purchases by members picked uniformly, in time order, each
/// with 1–5 lines from a fixed catalogue; deterministic for a seed.
fn generate(args: &IngestArgs, externals: &[String]) -> Result<Vec<EventIn>> {
    let mut rng = StdRng::seed_from_u64(args.seed);
    let catalogue: Vec<(String, &str, i64)> = (0..SKUS)
        .map(|i| {
            let category = CATEGORIES[rng.gen_range(0..CATEGORIES.len())];
            let price = rng.gen_range(19..600) * 100 - rng.gen_range(0..2) * 10;
            (format!("sku-{i:04}"), category, price)
        })
        .collect();
    let members: Vec<ExternalId> = externals
        .iter()
        .map(|x| ExternalId::parse(x))
        .collect::<Result<_, _>>()?;
    let mut events = Vec::with_capacity(args.events);
    for i in 0..args.events {
        let key = format!("ord-{i:09}");
        let member = &members[rng.gen_range(0..members.len())];
        let offset = SPAN_SECONDS * i as i64 / args.events as i64 + rng.gen_range(0..60);
        let at = START + time::Duration::seconds(offset);
        let lines: Vec<Line> = (0..rng.gen_range(1..=5))
            .map(|_| {
                let (sku, category, price) = &catalogue[rng.gen_range(0..SKUS)];
                Line {
                    sku: sku.clone(),
                    category: Some((*category).to_owned()),
                    quantity: rng.gen_range(1..=3),
                    unit_price: *price,
                }
            })
            .collect();
        let total: i64 = lines
            .iter()
            .map(|l| i64::from(l.quantity) * l.unit_price)
            .sum();
        // One order in five has a basket discount of 5–15 %.
        let amount = if rng.gen_bool(0.2) {
            total - total * rng.gen_range(5..=15) / 100
        } else {
            total
        };
        let purchase = Purchase {
            amount,
            currency: CURRENCY.into(),
            channel: Some(if rng.gen_bool(0.3) { "online" } else { "pos" }.into()),
            store_id: Some(format!("store-{:02}", rng.gen_range(1..=20))),
            lines,
            at,
        };
        // The request as a client would send it to POST /events, and its
        // fingerprint, built the way the server builds them.
        let request = serde_json::json!({
            "type": "purchase",
            "id": key,
            "member_id": null,
            "external_id": member.as_str(),
            "occurred_at": at.format(&Rfc3339)?,
            "amount": amount,
            "currency": CURRENCY,
            "lines": purchase.lines.iter().map(|l| serde_json::json!({
                "sku": l.sku,
                "category": l.category,
                "quantity": l.quantity,
                "unit_price": l.unit_price,
            })).collect::<Vec<_>>(),
            "store_id": purchase.store_id,
            "channel": purchase.channel,
            "order_id": null,
            "name": null,
            "properties": null,
        });
        let fingerprint: [u8; 32] = Sha256::digest(serde_json::to_vec(&request)?).into();
        events.push(EventIn {
            key,
            request,
            fingerprint,
            member: MemberRef::External(member.clone()),
            at,
            body: EventBody::Purchase(purchase),
        });
    }
    Ok(events)
}
