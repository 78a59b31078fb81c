//! Group commit for single events. A till sends one event per checkout;
//! booking each in its own transaction costs a commit (an fsync) and the
//! context loads per event. Requests instead queue their event here, and a
//! writer books whatever has queued, for each program in one transaction,
//! then answers every caller with its own result. Under load the groups grow
//! by themselves (events queue while a group commits); when idle, an event
//! is booked at once, so nothing waits for a timer.
//!
//! Nothing changes for the caller: the same checks, results and problems as
//! a batch item, and an event's key keeps it idempotent. A group the
//! database refuses as a whole is booked again one event at a time, so one
//! bad event cannot fail its neighbours.

use crate::api::events::book_events;
use crate::problem::{ApiError, ApiResult};
use sarafan_core::ids::ProgramId;
use sarafan_store::ledger::{EventIn, ItemResult};
use sarafan_store::{Backend, Store};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Mutex};

/// Events queued at most; a full queue makes callers wait.
const QUEUE: usize = 16_384;
/// Events taken into one group at most.
const GROUP: usize = 1_024;

struct Job {
    program: ProgramId,
    event: EventIn,
    reply: oneshot::Sender<ApiResult<ItemResult>>,
}

/// The sending side, held by the application state.
#[derive(Clone)]
pub struct Booker {
    tx: mpsc::Sender<Job>,
}

impl Booker {
    /// Books one event with whatever else is queued and returns its result.
    pub async fn book(&self, program: ProgramId, event: EventIn) -> ApiResult<ItemResult> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            program,
            event,
            reply,
        };
        if self.tx.send(job).await.is_err() {
            return Err(ApiError::Internal("the booking writer has stopped".into()));
        }
        answer.await.unwrap_or_else(|_| {
            Err(ApiError::Internal(
                "the booking writer dropped an event".into(),
            ))
        })
    }

    /// Events queued and not yet taken by a writer.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }
}

/// The receiving side: writers take groups from it.
#[derive(Clone)]
pub struct Queue {
    rx: Arc<Mutex<mpsc::Receiver<Job>>>,
}

impl Queue {
    /// Waits for at least one event, takes every event queued by then (up
    /// to a group's worth), books them and answers their callers. Returns
    /// how many it took, or `None` once every [`Booker`] is gone and the
    /// queue is empty.
    pub async fn book_next_group(&self, store: &Store) -> Option<usize> {
        let mut jobs = Vec::with_capacity(GROUP);
        if self.rx.lock().await.recv_many(&mut jobs, GROUP).await == 0 {
            return None;
        }
        let taken = jobs.len();
        metrics::histogram!("sarafan_booking_group_events").record(taken as f64);
        let mut by_program: BTreeMap<ProgramId, Vec<Job>> = BTreeMap::new();
        for job in jobs {
            by_program.entry(job.program).or_default().push(job);
        }
        for (program, group) in by_program {
            book_group(store, program, group).await;
        }
        Some(taken)
    }
}

/// A booker and its queue with no writer running: [`spawn`] starts the
/// writers; a test takes groups itself with [`Queue::book_next_group`].
pub fn queue() -> (Booker, Queue) {
    let (tx, rx) = mpsc::channel(QUEUE);
    (
        Booker { tx },
        Queue {
            rx: Arc::new(Mutex::new(rx)),
        },
    )
}

/// Starts the writers on the current Tokio runtime. SQLite has one writer
/// connection, so one writer; PostgreSQL books two groups at once, one
/// collecting while the other commits. The writers end once every
/// [`Booker`] is dropped and the queue is empty.
pub fn spawn(store: Store) -> Booker {
    let (booker, queue) = queue();
    let writers = match store.backend() {
        Backend::Sqlite => 1,
        Backend::Postgres => 2,
    };
    for _ in 0..writers {
        let (store, queue) = (store.clone(), queue.clone());
        tokio::spawn(async move { while queue.book_next_group(&store).await.is_some() {} });
    }
    booker
}

/// Books one program's group in one transaction and answers each caller.
async fn book_group(store: &Store, program: ProgramId, group: Vec<Job>) {
    let (events, replies): (Vec<EventIn>, Vec<_>) =
        group.into_iter().map(|j| (j.event, j.reply)).unzip();
    match book_events(store, program, &events).await {
        Ok(results) => {
            let mut results = results.into_iter();
            for reply in replies {
                // A caller that went away needs no answer: its event is
                // booked, and a retry under its key replays it.
                let _ = reply.send(results.next().unwrap_or_else(|| Err(too_few())));
            }
        }
        Err(e) if events.len() == 1 => {
            if let Some(reply) = replies.into_iter().next() {
                let _ = reply.send(Err(e));
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, events = events.len(), "a booking group failed; booking its events one by one");
            for (event, reply) in events.iter().zip(replies) {
                let result = book_events(store, program, std::slice::from_ref(event))
                    .await
                    .and_then(|mut r| r.pop().unwrap_or_else(|| Err(too_few())));
                let _ = reply.send(result);
            }
        }
    }
}

fn too_few() -> ApiError {
    ApiError::Internal("booking returned too few results".into())
}
