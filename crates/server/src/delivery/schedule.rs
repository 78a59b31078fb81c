//! Scheduled member messages: points-expiry notices and the weekly share
//! routine. Each run enqueues
//! what is due and records it, so a run repeated (after a restart, or by a
//! second process) sends nothing twice.

use sarafan_store::Store;
use tokio::task::JoinHandle;

/// Every `every`, enqueues the scheduled messages due for every program,
/// until the task is aborted. Failures are logged and retried next round.
pub fn spawn_schedules(store: Store, every: std::time::Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            if let Err(e) = run_schedules(&store).await {
                tracing::error!(error = %e, "scheduled messages: listing programs failed");
            }
        }
    })
}

/// One round over every program.
pub async fn run_schedules(store: &Store) -> sarafan_store::Result<()> {
    for p in store.programs().await? {
        match store.notify_expiring(p.id, sarafan_store::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(program = %p.id, notices = n, "points-expiry notices queued"),
            Err(e) => tracing::error!(program = %p.id, error = %e, "points-expiry notices failed"),
        }
        match store
            .enqueue_weekly_shares(p.id, sarafan_store::now())
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(program = %p.id, links = n, "weekly share links queued"),
            Err(e) => tracing::error!(program = %p.id, error = %e, "weekly share routine failed"),
        }
    }
    Ok(())
}
