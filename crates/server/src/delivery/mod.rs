//! The outbox worker: claims due messages under a lease, delivers them
//! (webhooks over HTTP, e-mail over SMTP or to the log), and records each
//! try. Failures are retried with exponential backoff and jitter until the
//! policy's last try, then dead-lettered for a manual retry.
//!
//! Several workers (or processes) may run against one database: a claim is
//! a lease, so each message is worked on by one at a time, and one whose
//! worker died is taken over when its lease runs out.

pub mod mail;
mod schedule;
mod webhook;

pub use schedule::{run_schedules, spawn_schedules};

use mail::Mailer;
use sarafan_core::ids::ProgramId;
use sarafan_core::outbox::RetryPolicy;
use sarafan_store::outbox::{Claimed, Finish};
use sarafan_store::Store;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::{JoinHandle, JoinSet};

/// How the worker delivers and retries.
#[derive(Clone)]
pub struct DeliveryConfig {
    pub retry: RetryPolicy,
    /// How long a claim holds a message. Longer than `timeout`, so a live
    /// worker finishes before anyone else may take the message over.
    pub lease: Duration,
    /// How often to look for due messages when there was nothing to do.
    pub poll: Duration,
    /// Longest a webhook receiver or the SMTP server may take.
    pub timeout: Duration,
    /// Messages claimed per program per round.
    pub batch: u32,
    pub mailer: Mailer,
    /// Base of links in e-mails (unsubscribe).
    pub public_url: String,
}

impl DeliveryConfig {
    pub fn new(mailer: Mailer, public_url: impl Into<String>) -> Self {
        Self {
            retry: RetryPolicy::default(),
            lease: Duration::from_secs(60),
            poll: Duration::from_secs(1),
            timeout: Duration::from_secs(15),
            batch: 32,
            mailer,
            public_url: public_url.into(),
        }
    }
}

struct Worker {
    store: Store,
    config: DeliveryConfig,
    http: reqwest::Client,
}

/// Runs the worker until the task is aborted (or the process ends). A
/// message in flight when it stops is delivered by the next worker once its
/// lease runs out.
pub fn spawn_delivery(store: Store, config: DeliveryConfig) -> JoinHandle<()> {
    let http = reqwest::Client::builder()
        .timeout(config.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("Sarafan-Webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default();
    let worker = Arc::new(Worker {
        store,
        config,
        http,
    });
    tokio::spawn(async move {
        loop {
            let busy = match worker.round().await {
                Ok(n) => n > 0,
                Err(e) => {
                    tracing::error!(error = %e, "outbox: a delivery round failed");
                    false
                }
            };
            if !busy {
                tokio::time::sleep(worker.config.poll).await;
            }
        }
    })
}

impl Worker {
    /// Claims and delivers one batch per program; returns how many messages
    /// it worked on.
    async fn round(self: &Arc<Self>) -> sarafan_store::Result<usize> {
        let mut done = 0;
        for program in self.store.programs().await? {
            let claimed = self
                .store
                .claim_outbox(
                    program.id,
                    sarafan_store::now(),
                    self.config.lease,
                    self.config.batch,
                )
                .await?;
            done += claimed.len();
            let mut set = JoinSet::new();
            for c in claimed {
                let me = Arc::clone(self);
                set.spawn(async move { me.deliver(c).await });
            }
            while set.join_next().await.is_some() {}
        }
        Ok(done)
    }

    async fn deliver(&self, c: Claimed) {
        let started = Instant::now();
        let finish = match c.message.channel.as_str() {
            "webhook" => webhook::deliver(&self.store, &self.http, &c).await,
            _ => mail::deliver(&self.store, &self.config, &c).await,
        };
        let finish = match finish {
            Ok(Finish::Failed { error, .. }) => self.failed(&c, error),
            Ok(f) => f,
            Err(e) => self.failed(&c, format!("storage: {e}")),
        };
        log(&c, &finish);
        match self
            .store
            .finish_outbox(&c, &finish, started.elapsed())
            .await
        {
            Ok(true) => {}
            Ok(false) => tracing::warn!(message = %c.message.id,
                "outbox: lease lost before the result was saved; another worker owns the message"),
            Err(e) => tracing::error!(message = %c.message.id, error = %e,
                "outbox: saving the result failed; the message is tried again after its lease"),
        }
    }

    /// A failed try: when to try again, or dead when it was the last.
    fn failed(&self, c: &Claimed, error: String) -> Finish {
        let attempt = u32::try_from(c.tries).unwrap_or(0) + 1;
        let retry_at = self
            .config
            .retry
            .delay_after(attempt, rand::random())
            .map(|d| sarafan_store::now() + d);
        Finish::Failed { error, retry_at }
    }
}

fn log(c: &Claimed, finish: &Finish) {
    let (id, topic, program): (_, _, ProgramId) = (c.message.id, &c.message.topic, c.program);
    match finish {
        Finish::Delivered => {
            tracing::info!(%program, message = %id, %topic, channel = %c.message.channel, "outbox: delivered")
        }
        Finish::Failed {
            error,
            retry_at: Some(at),
        } => {
            tracing::warn!(%program, message = %id, %topic, %error, retry_at = %at, "outbox: failed, will retry")
        }
        Finish::Failed {
            error,
            retry_at: None,
        } => {
            tracing::error!(%program, message = %id, %topic, %error, "outbox: dead-lettered after its last try")
        }
        Finish::Cancelled { reason } => {
            tracing::info!(%program, message = %id, %topic, %reason, "outbox: cancelled")
        }
        Finish::Deferred { until } => {
            tracing::info!(%program, message = %id, %topic, %until, "outbox: deferred (quiet hours)")
        }
    }
}
