//! `sarafan bench outbox`: how many webhook messages a second the outbox
//! worker delivers to a receiver on 127.0.0.1 that acknowledges at once.

use super::{bench_store, ms, percentile};
use anyhow::{ensure, Result};
use clap::Args;
use sarafan_core::ids::MemberId;
use sarafan_core::outbox::Topic;
use sarafan_core::program::{Currency, Locale, ProgramName, ProgramSettings};
use sarafan_server::delivery::{mail::Mailer, spawn_delivery, DeliveryConfig};
use sarafan_store::outbox::Outgoing;
use sarafan_store::{NewProgram, Store};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct OutboxArgs {
    /// Database to run on, as for `bench ingest`. Default: a fresh
    /// temporary SQLite file.
    #[arg(long)]
    database_url: Option<String>,
    /// Messages to deliver.
    #[arg(long, default_value_t = 20_000)]
    messages: usize,
    /// Members the messages are about (the worker keeps each member's
    /// messages to one endpoint in order).
    #[arg(long, default_value_t = 1_000)]
    members: usize,
    /// Queue messages at this many a second while the worker runs, instead
    /// of queueing them all first: whether delivery keeps up with the load.
    #[arg(long)]
    rate: Option<u32>,
    /// Keep the PostgreSQL schema instead of dropping it at the end.
    #[arg(long)]
    keep: bool,
}

pub async fn outbox(args: OutboxArgs) -> Result<()> {
    ensure!(args.messages > 0, "--messages must be at least 1");
    ensure!(args.members > 0, "--members must be at least 1");
    ensure!(args.rate != Some(0), "--rate must be at least 1");
    let (store, schema, _tmp) = bench_store(args.database_url.as_deref()).await?;
    let result = measure(&store, &args).await;
    if let (Some(schema), false) = (&schema, args.keep) {
        store.bench_drop_schema(schema).await?;
    }
    store.close().await;
    result
}

/// A webhook receiver on 127.0.0.1 that answers 200 to every request and
/// counts them.
async fn receiver() -> Result<(String, Arc<AtomicUsize>)> {
    let count = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&count);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            counter.fetch_add(1, Ordering::Relaxed);
            async { "ok" }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, count))
}

async fn measure(store: &Store, args: &OutboxArgs) -> Result<()> {
    let tag = super::tag(store);
    let retailer = store.create_retailer("Sarafan bench retail").await?;
    let program = store
        .create_program(
            retailer,
            &NewProgram {
                name: ProgramName::parse("Sarafan outbox bench")?,
                currency: Currency::parse("RUB")?,
                locale: Locale::parse("locale", "en")?,
                terms: String::new(),
                settings: ProgramSettings::default(),
            },
        )
        .await?;
    let (url, received) = receiver().await?;
    store
        .create_webhook(program.id, &url, "bench", &[Topic::MemberCreated])
        .await?;
    let members: Vec<MemberId> = (0..args.members)
        .map(|_| MemberId(uuid::Uuid::now_v7()))
        .collect();
    let event = |i: usize| {
        let member = members[i % members.len()];
        Outgoing::new(
            Topic::MemberCreated,
            Some(member),
            serde_json::json!({"member": {"id": member.0, "external_id": format!("bench-{i}")}}),
        )
    };
    let queue = |from: usize, to: usize| {
        let events: Vec<Outgoing> = (from..to).map(event).collect();
        async move {
            for chunk in events.chunks(500) {
                store.enqueue(program.id, chunk).await?;
            }
            anyhow::Ok(())
        }
    };

    let mailer = Mailer::log("Sarafan <bench@localhost>").map_err(anyhow::Error::msg)?;
    // The receiver is on 127.0.0.1.
    let config = DeliveryConfig {
        allow_private: true,
        ..DeliveryConfig::new(mailer, "http://localhost")
    };
    let mut backlog = Vec::new();
    let start = match args.rate {
        None => {
            let t = Instant::now();
            queue(0, args.messages).await?;
            println!(
                "{tag}  queued  {} messages in {:.2} s (not measured)",
                args.messages,
                t.elapsed().as_secs_f64()
            );
            let start = Instant::now();
            let worker = spawn_delivery(store.clone(), config);
            wait_for(&received, args.messages, None).await;
            worker.abort();
            start
        }
        Some(rate) => {
            let start = Instant::now();
            let worker = spawn_delivery(store.clone(), config);
            // Ten ticks a second, each queueing its share on time.
            let tick = Duration::from_millis(100);
            let per_tick = (rate as usize).div_ceil(10);
            let mut queued = 0;
            let mut next = Instant::now();
            while queued < args.messages {
                let to = (queued + per_tick).min(args.messages);
                queue(queued, to).await?;
                queued = to;
                backlog.push(queued - received.load(Ordering::Relaxed));
                next += tick;
                tokio::time::sleep_until(next.into()).await;
            }
            let queued_in = start.elapsed();
            println!(
                "{tag}  queued  {} messages at {rate}/s in {:.2} s",
                args.messages,
                queued_in.as_secs_f64()
            );
            wait_for(&received, args.messages, Some(&mut backlog)).await;
            worker.abort();
            start
        }
    };
    let secs = start.elapsed().as_secs_f64();
    let got = received.load(Ordering::Relaxed);
    println!(
        "{tag}  deliver {got} messages in {secs:.2} s = {:.0} messages/s",
        got as f64 / secs
    );
    if !backlog.is_empty() {
        let mut sorted: Vec<Duration> = backlog
            .iter()
            .map(|&b| Duration::from_millis(b as u64))
            .collect();
        sorted.sort_unstable();
        println!(
            "{tag}  backlog every 100 ms: p50 {:.0}, p90 {:.0}, max {:.0} messages",
            ms(percentile(&sorted, 0.5)),
            ms(percentile(&sorted, 0.9)),
            ms(percentile(&sorted, 1.0)),
        );
    }
    // Every message recorded as delivered, none twice (the worker was
    // stopped only after the receiver had them all; the results are saved
    // right after each answer).
    let mut counts = Vec::new();
    for _ in 0..100 {
        counts = store.bench_outbox_counts(program.id).await?;
        if counts.iter().all(|(status, _)| status == "delivered") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ensure!(
        got == args.messages,
        "the receiver got {got} requests for {} messages",
        args.messages
    );
    println!("{tag}  outbox  {counts:?}");
    Ok(())
}

/// Waits until the receiver has `n` requests, sampling the backlog (queued
/// minus received) every 100 ms when asked.
async fn wait_for(received: &AtomicUsize, n: usize, mut backlog: Option<&mut Vec<usize>>) {
    let mut last = (0, Instant::now());
    loop {
        let got = received.load(Ordering::Relaxed);
        if got >= n {
            return;
        }
        if got != last.0 {
            last = (got, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(60) {
            eprintln!("no delivery for a minute: {got} of {n}; giving up");
            return;
        }
        if let Some(b) = backlog.as_deref_mut() {
            b.push(n - got);
        }
        tokio::time::sleep(Duration::from_millis(if backlog.is_some() {
            100
        } else {
            5
        }))
        .await;
    }
}
