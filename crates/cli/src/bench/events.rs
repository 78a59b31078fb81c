//! `sarafan bench events`: single purchase events over HTTP, the way a till
//! sends them (one `POST /api/v1/events` per checkout), to a server started
//! in this process on 127.0.0.1.
//!
//! Closed loop (the default): `--clients` callers, each sending its next
//! event when the last is answered, measure the most the server books.
//! Open loop (`--rate`): events are sent at a fixed rate whatever the
//! answers do, and each latency counts from when its request was due, so a
//! stall shows in the figures instead of slowing the sender down.

use super::{bench_program, bench_store, ms, percentile, tag, CATEGORIES, CURRENCY};
use anyhow::{ensure, Context, Result};
use clap::Args;
use sarafan_core::apikey::Scope;
use sarafan_server::ServerConfig;
use sarafan_store::Store;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

#[derive(Args)]
pub struct EventsArgs {
    /// Database to run on, as for `bench ingest`. Default: a fresh
    /// temporary SQLite file.
    #[arg(long)]
    database_url: Option<String>,
    /// Members enrolled before the run; each event is one member's purchase.
    #[arg(long, default_value_t = 10_000)]
    members: usize,
    /// Concurrent callers (closed loop), or the most requests in flight at
    /// once (open loop).
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Send this many events a second (open loop) instead of as fast as the
    /// callers are answered.
    #[arg(long)]
    rate: Option<u32>,
    /// How long to send, in seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Keep the PostgreSQL schema instead of dropping it at the end.
    #[arg(long)]
    keep: bool,
}

pub async fn events(args: EventsArgs) -> Result<()> {
    ensure!(args.members > 0, "--members must be at least 1");
    ensure!(args.clients > 0, "--clients must be at least 1");
    ensure!(args.seconds > 0, "--seconds must be at least 1");
    ensure!(args.rate != Some(0), "--rate must be at least 1");
    ensure!(args.seconds <= 3600, "--seconds must be at most 3600");
    ensure!(args.clients <= 10_000, "--clients must be at most 10000");
    ensure!(
        args.rate.map_or(0, u64::from) * args.seconds <= 10_000_000,
        "--rate × --seconds must be at most 10,000,000 events; lower one of them"
    );
    let (store, schema, _tmp) = bench_store(args.database_url.as_deref()).await?;
    let result = measure(&store, &args).await;
    if let (Some(schema), false) = (&schema, args.keep) {
        store.bench_drop_schema(schema).await?;
    }
    store.close().await;
    result
}

/// One request's fate: how long it took and its status (0: no answer).
type Sample = (Duration, u16);

async fn measure(store: &Store, args: &EventsArgs) -> Result<()> {
    let tag = tag(store);
    let (program, externals) = bench_program(store, "Sarafan events bench", args.members).await?;
    let (_, token) = store.issue_api_key(program, "bench", Scope::Server).await?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let config = ServerConfig {
        public_url: format!("http://{addr}"),
        ..ServerConfig::default()
    };
    let (app, clicks) = sarafan_server::app_with_click_writer(store.clone(), config);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(sarafan_server::serve(listener, app, async {
        let _ = stopped.await;
    }));

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients)
        .build()?;
    let target = Arc::new(Target {
        client,
        url: format!("http://{addr}/api/v1/events"),
        auth: format!("Bearer {token}"),
        externals,
        run: format!("{:08x}", rand::random::<u32>()),
    });
    let mode = match args.rate {
        None => format!("closed loop, {} clients", args.clients),
        Some(r) => format!("open loop at {r}/s, at most {} in flight", args.clients),
    };
    println!(
        "{tag}  events  POST /api/v1/events for {} s, {mode}, {} members",
        args.seconds, args.members
    );
    let window = Duration::from_secs(args.seconds);
    let start = Instant::now();
    let mut samples = match args.rate {
        None => closed_loop(&target, args.clients, window).await,
        Some(rate) => open_loop(&target, rate, args.clients, window).await,
    };
    let elapsed = start.elapsed();
    let _ = stop.send(());
    server.await?.context("the bench server failed")?;
    clicks.drained().await;

    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for (_, s) in &samples {
        *statuses.entry(*s).or_default() += 1;
    }
    let booked = statuses.get(&201).copied().unwrap_or(0);
    samples.sort_unstable();
    let latencies: Vec<Duration> = samples.iter().map(|(d, _)| *d).collect();
    println!(
        "{tag}  events  {booked} booked in {:.2} s = {:.0} events/s; answers {statuses:?} (0: no answer)",
        elapsed.as_secs_f64(),
        booked as f64 / elapsed.as_secs_f64(),
    );
    println!(
        "{tag}  latency p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.90)),
        ms(percentile(&latencies, 0.99)),
        ms(percentile(&latencies, 0.999)),
        ms(percentile(&latencies, 1.0)),
    );

    // Correctness: every 201 is one event row, the ledger balances.
    let counts = store.bench_ledger_counts(program).await?;
    let rows = counts
        .iter()
        .find(|(n, _)| *n == "events")
        .map_or(0, |(_, c)| *c);
    let violations = store.verify_ledger(program).await?;
    ensure!(
        rows == booked as i64,
        "{booked} events answered 201 but {rows} event rows were written"
    );
    ensure!(
        violations.is_empty(),
        "the ledger is inconsistent: {}",
        violations.join("; ")
    );
    ensure!(
        booked == samples.len(),
        "{} of {} requests were not booked: {statuses:?}",
        samples.len() - booked,
        samples.len()
    );
    println!("{tag}  verify  ok: {rows} event rows for {booked} answers 201, ledger consistent");
    Ok(())
}

/// Where and as whom the events are sent.
struct Target {
    client: reqwest::Client,
    url: String,
    auth: String,
    externals: Vec<String>,
    /// Keeps order ids unique across runs on a kept database.
    run: String,
}

impl Target {
    /// Sends the `n`th purchase: a member picked by a fixed scramble of `n`,
    /// one to three lines.
    async fn send(&self, n: usize) -> u16 {
        let member = &self.externals[n.wrapping_mul(2_654_435_761) % self.externals.len()];
        let lines: Vec<serde_json::Value> = (0..1 + n % 3)
            .map(|l| {
                serde_json::json!({
                    "sku": format!("sku-{:04}", (n + l * 7) % 200),
                    "category": CATEGORIES[(n + l) % CATEGORIES.len()],
                    "quantity": 1 + (n + l) % 3,
                    "unit_price": 1_900 + ((n * 31 + l * 17) % 580) * 100,
                })
            })
            .collect();
        let amount: u64 = lines
            .iter()
            .map(|l| l["quantity"].as_u64().unwrap_or(0) * l["unit_price"].as_u64().unwrap_or(0))
            .sum();
        let body = serde_json::json!({
            "type": "purchase",
            "id": format!("till-{}-{n:09}", self.run),
            "external_id": member,
            "amount": amount,
            "currency": CURRENCY,
            "lines": lines,
            "channel": "pos",
        });
        match self
            .client
            .post(&self.url)
            .header("Authorization", &self.auth)
            .json(&body)
            .send()
            .await
        {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        }
    }
}

/// `clients` callers, each sending its next event once the last is answered.
async fn closed_loop(target: &Arc<Target>, clients: usize, window: Duration) -> Vec<Sample> {
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + window;
    let callers: Vec<_> = (0..clients)
        .map(|_| {
            let (target, next) = (Arc::clone(target), Arc::clone(&next));
            tokio::spawn(async move {
                let mut samples = Vec::new();
                while Instant::now() < deadline {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let t = Instant::now();
                    let status = target.send(n).await;
                    samples.push((t.elapsed(), status));
                }
                samples
            })
        })
        .collect();
    let mut all = Vec::new();
    for c in callers {
        all.extend(c.await.unwrap_or_default());
    }
    all
}

/// Events due every `1/rate` s; each latency counts from when it was due.
async fn open_loop(
    target: &Arc<Target>,
    rate: u32,
    in_flight: usize,
    window: Duration,
) -> Vec<Sample> {
    let slots = Arc::new(Semaphore::new(in_flight));
    let total = (u128::from(rate) * window.as_millis() / 1000) as usize;
    let start = tokio::time::Instant::now();
    let mut sent = Vec::with_capacity(total);
    for n in 0..total {
        let due = start + Duration::from_nanos(n as u64 * 1_000_000_000 / u64::from(rate));
        tokio::time::sleep_until(due).await;
        let (target, slots) = (Arc::clone(target), Arc::clone(&slots));
        sent.push(tokio::spawn(async move {
            let _slot = slots.acquire_owned().await;
            let status = target.send(n).await;
            (due.elapsed(), status)
        }));
    }
    let mut all = Vec::with_capacity(total);
    for s in sent {
        all.push(s.await.unwrap_or((Duration::ZERO, 0)));
    }
    all
}
