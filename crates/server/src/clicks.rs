//! The click writer: referral-link clicks leave the request path through a
//! bounded channel, and one background task writes whatever has queued in
//! one transaction. Under load the batches grow by themselves (clicks queue
//! while a batch commits); when idle, a click is written at once.
//!
//! The channel closes when the application (every clone of its state) is
//! dropped, i.e. when the server has finished its last request after a
//! graceful shutdown; the writer then writes what is left and ends.
//! [`ClickWriter::drained`] waits for that.

use sarafan_store::{Click, Store};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Clicks queued at most; a full queue slows the redirect down instead of
/// losing clicks.
const QUEUE: usize = 65_536;
/// Rows written per transaction at most.
const BATCH: usize = 4_096;
/// Attempts at writing one batch before its clicks are logged as lost.
const ATTEMPTS: u32 = 8;

/// The sending side, held by the application state.
#[derive(Clone)]
pub struct ClickSink {
    tx: mpsc::Sender<Click>,
}

impl ClickSink {
    /// Queues a click; waits only when the queue is full.
    pub async fn record(&self, click: Click) {
        metrics::counter!("sarafan_referral_clicks_total").increment(1);
        if self.tx.send(click).await.is_err() {
            // Only possible if the writer died; it logs why.
            metrics::counter!("sarafan_referral_clicks_lost_total").increment(1);
        }
    }
}

/// The writer task, to wait for on shutdown.
pub struct ClickWriter {
    handle: JoinHandle<()>,
}

impl ClickWriter {
    /// Resolves once every queued click is written, which happens after the
    /// application holding the [`ClickSink`] is dropped.
    pub async fn drained(self) {
        if let Err(e) = self.handle.await {
            tracing::error!(error = %e, "click writer failed");
        }
    }
}

/// Starts the writer on the current Tokio runtime.
pub fn spawn(store: Store) -> (ClickSink, ClickWriter) {
    let (tx, rx) = mpsc::channel(QUEUE);
    let handle = tokio::spawn(run(store, rx));
    (ClickSink { tx }, ClickWriter { handle })
}

async fn run(store: Store, mut rx: mpsc::Receiver<Click>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        write(&store, &batch).await;
        batch.clear();
    }
}

/// Writes one batch, retrying with back-off while the database is away.
async fn write(store: &Store, batch: &[Click]) {
    let mut pause = Duration::from_millis(20);
    for attempt in 1..=ATTEMPTS {
        match store.record_clicks(batch).await {
            Ok(()) => {
                metrics::counter!("sarafan_referral_clicks_written_total")
                    .increment(batch.len() as u64);
                return;
            }
            Err(e) if attempt < ATTEMPTS => {
                tracing::warn!(error = %e, clicks = batch.len(), attempt, "writing clicks failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            Err(e) => {
                tracing::error!(error = %e, clicks = batch.len(), "writing clicks failed; they are lost");
                metrics::counter!("sarafan_referral_clicks_lost_total")
                    .increment(batch.len() as u64);
            }
        }
    }
}
