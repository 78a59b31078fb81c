//! Fresh, throw-away stores for tests: a temporary SQLite file, or a new
//! schema in the PostgreSQL test database (`SARAFAN_TEST_POSTGRES_URL`,
//! created by `.ci/run`), so tests run in parallel without sharing rows.

use crate::{Backend, ConnectOptions, Store};

/// One test per backend for each `async fn name(Backend)` named: a module
/// `name` with tests `sqlite` and `postgres`.
#[macro_export]
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name($crate::Backend::Sqlite).await
            }
            #[tokio::test]
            async fn postgres() {
                super::$name($crate::Backend::Postgres).await
            }
        }
    )*};
}

/// A store that lives as long as this value (the SQLite file is deleted
/// with it).
pub struct TempStore {
    pub store: Store,
    opts: ConnectOptions,
    _dir: Option<tempfile::TempDir>,
}

impl std::ops::Deref for TempStore {
    type Target = Store;
    fn deref(&self) -> &Store {
        &self.store
    }
}

/// PostgreSQL for tests; `.ci/run` creates this database.
pub fn postgres_url() -> String {
    std::env::var("SARAFAN_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/sarafan_test".into())
}

/// Opens and migrates a fresh store. Panics with the fix when the database
/// is not there: tests cannot run without it.
pub async fn temp_store(backend: Backend) -> TempStore {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("a temporary directory");
            let url = format!("sqlite://{}", dir.path().join("test.db").display());
            let opts = ConnectOptions::new(url);
            let store = Store::open(&opts).await.expect("open SQLite");
            TempStore {
                store,
                opts,
                _dir: Some(dir),
            }
        }
        Backend::Postgres => {
            let opts = ConnectOptions {
                pg_schema: Some(format!("t_{}", uuid::Uuid::now_v7().simple())),
                max_connections: 4,
                ..ConnectOptions::new(postgres_url())
            };
            let store = Store::open(&opts)
                .await
                .expect("open PostgreSQL (run `bash .ci/run`: it starts PostgreSQL and creates sarafan_test)");
            TempStore {
                store,
                opts,
                _dir: None,
            }
        }
    }
}

/// `store` as seen by another process that died: its idempotency claims
/// belong to an instance that holds no liveness lock.
pub fn dead_instance(store: &Store) -> Store {
    Store {
        db: store.db.clone(),
        instance: std::sync::Arc::new(crate::idempotency::Instance::dead()),
    }
}

/// Another live process on `store`'s database (its own pools and instance).
pub async fn sibling(store: &TempStore) -> Store {
    Store::connect(&store.opts)
        .await
        .expect("connect a sibling")
}
