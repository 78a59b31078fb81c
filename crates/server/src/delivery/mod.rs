//! The outbox worker: claims due messages under a lease, delivers them
//! (webhooks over HTTP, e-mail over SMTP or to the log), and records each
//! try. Failures are retried with exponential backoff and jitter until the
//! policy's last try, then dead-lettered for a manual retry.
//!
//! Deliveries run concurrently (up to [`DeliveryConfig::concurrency`] in
//! flight), grouped in *lanes*: the messages about one member to one webhook
//! endpoint (or to the member's e-mail) go one at a time, in the order they
//! were queued, so a receiver sees `member.created` before that member's
//! `reward.earned`; after a failed try the lane's messages behind it wait
//! for its retry. The worker claims more as lanes finish, so a slow
//! endpoint holds up its own lanes, not the others.
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
use sarafan_core::outbox::{Channel, RetryPolicy};
use sarafan_store::outbox::{Claimed, Finish};
use sarafan_store::{Store, WebhookEndpoint};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use uuid::Uuid;

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
    /// Most messages claimed per program at a time.
    pub batch: u32,
    /// Most messages claimed and not yet finished at a time.
    pub concurrency: usize,
    /// Whether webhooks may reach loopback, private and other non-public
    /// addresses (`sarafan serve --allow-private-webhooks`).
    pub allow_private: bool,
    /// Fixed addresses of host names, consulted before DNS like
    /// `/etc/hosts` (and checked like DNS answers): tests point a name at a
    /// private address with it.
    pub hosts: HashMap<String, std::net::IpAddr>,
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
            batch: 256,
            concurrency: 256,
            allow_private: false,
            hosts: HashMap::new(),
            mailer,
            public_url: public_url.into(),
        }
    }
}

/// Messages delivered one at a time, in order: the program, the webhook
/// endpoint (none for e-mail), and the member the messages are about (the
/// message itself when about no member, which then orders with nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Lane(ProgramId, Option<Uuid>, Uuid);

impl Lane {
    fn of(c: &Claimed) -> Self {
        let who = c.message.member.map_or(c.message.id, |m| m.0);
        Self(c.program, c.message.endpoint, who)
    }
}

/// A lane's claimed messages, oldest first, with its endpoint.
struct Batch {
    lane: Lane,
    endpoint: Option<Arc<WebhookEndpoint>>,
    messages: VecDeque<Claimed>,
}

/// How a lane's run ended: when one of its messages failed, its retry
/// time (the rest were deferred behind it).
struct LaneDone {
    failed_until: Option<OffsetDateTime>,
}

/// The continuous worker's lanes in flight.
#[derive(Default)]
struct Lanes {
    running: JoinSet<LaneDone>,
    /// Each running task's lane and how many messages it holds.
    tasks: HashMap<tokio::task::Id, (Lane, usize)>,
    /// Lanes in flight, each with what was claimed for it meanwhile.
    busy: HashMap<Lane, Batch>,
    /// Messages claimed and not finished.
    in_flight: usize,
}

impl Lanes {
    /// Runs `b` now, or after its lane's running task.
    fn add(&mut self, worker: &Arc<Worker>, b: Batch) {
        self.in_flight += b.messages.len();
        if let Some(waiting) = self.busy.get_mut(&b.lane) {
            waiting.messages.extend(b.messages);
            return;
        }
        self.busy.insert(
            b.lane,
            Batch {
                lane: b.lane,
                endpoint: b.endpoint.clone(),
                messages: VecDeque::new(),
            },
        );
        let (lane, n) = (b.lane, b.messages.len());
        let me = Arc::clone(worker);
        let task = self.running.spawn(async move { me.deliver_lane(b).await });
        self.tasks.insert(task.id(), (lane, n));
    }

    /// Forgets a finished task; returns what waits in its lane.
    fn finished(&mut self, task: tokio::task::Id) -> Option<Batch> {
        let (lane, n) = self.tasks.remove(&task)?;
        self.in_flight -= n;
        self.busy.remove(&lane)
    }
}

/// Delivers the outbox; see the module documentation.
pub struct Worker {
    store: Store,
    config: DeliveryConfig,
    http: reqwest::Client,
    /// Results on their way to the database (see [`save_results`]).
    saves: mpsc::Sender<Save>,
}

/// How a try ended, to be saved, and the lane waiting for it.
struct Save {
    claimed: Claimed,
    finish: Finish,
    took: Duration,
    saved: oneshot::Sender<()>,
}

/// Most results saved in one transaction.
const SAVES: usize = 512;

/// Saves results as they come, whatever has queued in one transaction: a
/// commit per delivered message was the worker's limit (on PostgreSQL
/// most of all). Each lane still waits for its result to be saved before
/// its next message, as before.
async fn save_results(store: Store, mut rx: mpsc::Receiver<Save>) {
    let mut batch = Vec::with_capacity(SAVES);
    while rx.recv_many(&mut batch, SAVES).await > 0 {
        let tries: Vec<(&Claimed, &Finish, Duration)> = batch
            .iter()
            .map(|s| (&s.claimed, &s.finish, s.took))
            .collect();
        match store.finish_outbox_many(&tries).await {
            Ok(saved) => {
                for (s, _) in batch.iter().zip(saved).filter(|(_, ok)| !ok) {
                    tracing::warn!(message = %s.claimed.message.id,
                        "outbox: lease lost before the result was saved; another worker owns the message");
                }
            }
            Err(e) => tracing::error!(messages = batch.len(), error = %e,
                "outbox: saving results failed; the messages are tried again after their lease"),
        }
        for s in batch.drain(..) {
            let _ = s.saved.send(());
        }
    }
}

/// Runs the worker until the task is aborted (or the process ends). A
/// message in flight when it stops is delivered by the next worker once its
/// lease runs out.
pub fn spawn_delivery(store: Store, config: DeliveryConfig) -> JoinHandle<()> {
    tokio::spawn(Arc::new(Worker::new(store, config)).run())
}

impl Worker {
    /// A worker and its result writer (on the current Tokio runtime; the
    /// writer ends with the worker).
    pub fn new(store: Store, config: DeliveryConfig) -> Self {
        let http = webhook::client(&config);
        let (saves, rx) = mpsc::channel(SAVES * 4);
        tokio::spawn(save_results(store.clone(), rx));
        Self {
            store,
            config,
            http,
            saves,
        }
    }

    /// One round, for tests that drive the worker in step: claims what is
    /// due now (up to `batch` per program), delivers it lane by lane
    /// concurrently and records every try; returns how many messages it
    /// worked on.
    pub async fn run_once(self: &Arc<Self>) -> sarafan_store::Result<usize> {
        let batches = self.claim(self.config.concurrency).await?;
        let mut set = JoinSet::new();
        let mut n = 0;
        for b in batches {
            n += b.messages.len();
            let me = Arc::clone(self);
            set.spawn(async move { me.deliver_lane(b).await });
        }
        while set.join_next().await.is_some() {}
        Ok(n)
    }

    /// Delivers until aborted: claims as room frees up (every `poll` when
    /// little is free), one task per lane; a lane's messages claimed while
    /// it is busy wait for it.
    async fn run(self: Arc<Self>) {
        let mut lanes = Lanes::default();
        let mut last_claim = None::<Instant>;
        loop {
            let room = self.config.concurrency.saturating_sub(lanes.in_flight);
            let due = last_claim.is_none_or(|t: Instant| t.elapsed() >= self.config.poll);
            if room > 0 && (room * 2 >= self.config.concurrency || due) {
                last_claim = Some(Instant::now());
                match self.claim(room).await {
                    Ok(batches) => {
                        for b in batches {
                            lanes.add(&self, b);
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "outbox: claiming messages failed"),
                }
            }
            let done = tokio::select! {
                Some(done) = lanes.running.join_next_with_id() => done,
                () = tokio::time::sleep(self.config.poll) => continue,
            };
            let (waiting, failed_until) = match done {
                Ok((id, done)) => (lanes.finished(id), done.failed_until),
                Err(e) => {
                    tracing::error!(error = %e, "outbox: a delivery task failed; \
                        its lane's messages are taken over after their lease");
                    let waiting = lanes.finished(e.id());
                    lanes.in_flight -= waiting.as_ref().map_or(0, |w| w.messages.len());
                    continue;
                }
            };
            let Some(waiting) = waiting.filter(|w| !w.messages.is_empty()) else {
                continue;
            };
            match failed_until {
                // Behind a failed message: wait for its retry, untried.
                Some(until) => {
                    lanes.in_flight -= waiting.messages.len();
                    self.defer(waiting.messages, until).await;
                }
                None => {
                    lanes.in_flight -= waiting.messages.len();
                    lanes.add(&self, waiting);
                }
            }
        }
    }

    /// Claims up to `room` due messages (at most `batch` per program),
    /// grouped by lane, oldest first, each lane with its endpoint.
    async fn claim(&self, room: usize) -> sarafan_store::Result<Vec<Batch>> {
        let mut batches: Vec<Batch> = Vec::new();
        let mut index: HashMap<Lane, usize> = HashMap::new();
        let mut room = room;
        let mut programs = self.store.programs().await?;
        // Programs take turns at being first when there is little room.
        let first = rand::random::<usize>() % programs.len().max(1);
        programs.rotate_left(first);
        for program in programs {
            if room == 0 {
                break;
            }
            let limit = room.min(self.config.batch as usize) as u32;
            let claimed = self
                .store
                .claim_outbox(program.id, sarafan_store::now(), self.config.lease, limit)
                .await?;
            room -= claimed.len().min(room);
            let endpoints: HashMap<Uuid, Arc<WebhookEndpoint>> =
                if claimed.iter().any(|c| c.message.endpoint.is_some()) {
                    self.store
                        .webhooks(program.id)
                        .await?
                        .into_iter()
                        .map(|e| (e.id, Arc::new(e)))
                        .collect()
                } else {
                    HashMap::new()
                };
            for c in claimed {
                let lane = Lane::of(&c);
                let at = *index.entry(lane).or_insert_with(|| {
                    batches.push(Batch {
                        lane,
                        endpoint: c
                            .message
                            .endpoint
                            .and_then(|id| endpoints.get(&id).cloned()),
                        messages: VecDeque::new(),
                    });
                    batches.len() - 1
                });
                batches[at].messages.push_back(c);
            }
        }
        Ok(batches)
    }

    /// Delivers a lane's messages in order. After a failed try the rest are
    /// deferred to its retry time, untried, so they stay behind it.
    async fn deliver_lane(&self, mut b: Batch) -> LaneDone {
        let mut done = LaneDone { failed_until: None };
        while let Some(c) = b.messages.pop_front() {
            let started = Instant::now();
            let finish = match Channel::parse(&c.message.channel) {
                Some(Channel::Webhook) => {
                    let endpoint = b.endpoint.as_deref();
                    Ok(webhook::deliver(&self.config, &self.http, endpoint, &c).await)
                }
                Some(Channel::Email) => mail::deliver(&self.store, &self.config, &c).await,
                None => Ok(Finish::Cancelled {
                    reason: format!("no channel {:?} in this version", c.message.channel),
                }),
            };
            let finish = match finish {
                Ok(Finish::Failed { error, .. }) => self.failed(&c, error),
                Ok(f) => f,
                Err(e) => self.failed(&c, format!("storage: {e}")),
            };
            if let Finish::Failed { retry_at, .. } = &finish {
                // A dead message holds nothing up.
                done.failed_until = *retry_at;
            }
            self.record([(c, finish, started.elapsed())]).await;
            if let Some(until) = done.failed_until {
                self.defer(std::mem::take(&mut b.messages), until).await;
            }
        }
        done
    }

    /// Defers messages behind a failed one to its retry time, untried.
    async fn defer(&self, messages: VecDeque<Claimed>, until: OffsetDateTime) {
        let deferred = Finish::Deferred { until };
        self.record(
            messages
                .into_iter()
                .map(|c| (c, deferred.clone(), Duration::ZERO)),
        )
        .await;
    }

    /// Saves how tries ended, with the other lanes' results of the moment,
    /// and returns once all are saved.
    async fn record(&self, tries: impl IntoIterator<Item = (Claimed, Finish, Duration)>) {
        let mut saving = Vec::new();
        for (claimed, finish, took) in tries {
            log(&claimed, &finish);
            let (saved, done) = oneshot::channel();
            let save = Save {
                claimed,
                finish,
                took,
                saved,
            };
            if self.saves.send(save).await.is_err() {
                break;
            }
            saving.push(done);
        }
        for done in saving {
            let _ = done.await;
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
            tracing::info!(%program, message = %id, %topic, %until, "outbox: deferred (quiet hours, or behind a failed message)")
        }
    }
}
