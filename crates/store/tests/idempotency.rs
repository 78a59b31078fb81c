//! Idempotency claims and their owners: a claim of a live process is kept,
//! a claim of a dead one is taken over at once, and an owner that lost its
//! claim cannot overwrite the new owner's response.

use sarafan_core::ids::ProgramId;
use sarafan_core::program::{Currency, Locale, ProgramName, ProgramSettings};
use sarafan_store::testing::{dead_instance, sibling, temp_store, TempStore};
use sarafan_store::{Backend, IdempotencyBegin, IdempotencyScope, NewProgram, SavedResponse};
use time::Duration;
use uuid::Uuid;

async fn setup(backend: Backend) -> (TempStore, ProgramId) {
    let store = temp_store(backend).await;
    let retailer = store.create_retailer("R").await.unwrap();
    let program = store
        .create_program(
            retailer,
            &NewProgram {
                name: ProgramName::parse("P").unwrap(),
                currency: Currency::parse("RUB").unwrap(),
                locale: Locale::parse("locale", "ru").unwrap(),
                terms: String::new(),
                settings: ProgramSettings::default(),
            },
        )
        .await
        .unwrap();
    (store, program.id)
}

fn scope(program: ProgramId, key: &str) -> IdempotencyScope<'_> {
    IdempotencyScope {
        program,
        caller: Uuid::nil(),
        method: "POST",
        path: "/members",
        key,
    }
}

fn day_ago() -> time::OffsetDateTime {
    sarafan_store::now() - Duration::DAY
}

fn saved(status: u16) -> SavedResponse {
    SavedResponse {
        status,
        content_type: None,
        body: b"{}".to_vec(),
    }
}

async fn dead_claims_are_taken_over_and_fenced(backend: Backend) {
    let (store, program) = setup(backend).await;
    let dead = dead_instance(&store);
    let s = scope(program, "k1");
    assert_eq!(
        dead.idempotency_begin(&s, b"f", day_ago()).await.unwrap(),
        IdempotencyBegin::Run
    );
    // Another request under the key is still refused.
    assert_eq!(
        store.idempotency_begin(&s, b"g", day_ago()).await.unwrap(),
        IdempotencyBegin::Mismatch
    );
    assert_eq!(
        store.idempotency_begin(&s, b"f", day_ago()).await.unwrap(),
        IdempotencyBegin::Run
    );
    // The old owner, were it alive after all, no longer writes.
    dead.idempotency_finish(&s, &saved(500)).await.unwrap();
    dead.idempotency_abandon(&s).await.unwrap();
    store.idempotency_finish(&s, &saved(201)).await.unwrap();
    assert_eq!(
        dead.idempotency_begin(&s, b"f", day_ago()).await.unwrap(),
        IdempotencyBegin::Replay(saved(201))
    );
}

/// On PostgreSQL several processes serve one database: a live sibling's
/// claim stays its own.
async fn a_live_siblings_claim_is_kept(backend: Backend) {
    let (store, program) = setup(backend).await;
    let other = sibling(&store).await;
    let s = scope(program, "k1");
    assert_eq!(
        other.idempotency_begin(&s, b"f", day_ago()).await.unwrap(),
        IdempotencyBegin::Run
    );
    assert_eq!(
        store.idempotency_begin(&s, b"f", day_ago()).await.unwrap(),
        IdempotencyBegin::InProgress
    );
    other.idempotency_finish(&s, &saved(201)).await.unwrap();
    assert_eq!(
        store.idempotency_begin(&s, b"f", day_ago()).await.unwrap(),
        IdempotencyBegin::Replay(saved(201))
    );
}

sarafan_store::on_both!(dead_claims_are_taken_over_and_fenced);

mod a_live_siblings_claim_is_kept_on_postgres {
    #[tokio::test]
    async fn postgres() {
        super::a_live_siblings_claim_is_kept(sarafan_store::Backend::Postgres).await
    }
}
