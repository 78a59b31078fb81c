//! Test harness: a real server on 127.0.0.1:0 over a fresh database per
//! test (a temporary SQLite file, or a fresh PostgreSQL schema).

use reqwest::{Client, Method, RequestBuilder, Response};
use sarafan_core::apikey::Scope;
use sarafan_core::ids::ProgramId;
use sarafan_core::program::{Currency, Locale, ProgramName, ProgramSettings};
use sarafan_server::ServerConfig;
use sarafan_store::testing::{temp_store, TempStore};
use sarafan_store::{Backend, NewProgram, Store};
use serde_json::Value;
use tokio::sync::oneshot;

#[derive(Clone, Copy, Debug)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// Runs each named `async fn name(db: Db)` once per backend, as
/// `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name($crate::helpers::Db::Sqlite).await
            }
            #[tokio::test]
            async fn postgres() {
                super::$name($crate::helpers::Db::Postgres).await
            }
        }
    )*};
}

pub struct Tenant {
    pub program: ProgramId,
    pub admin_key: String,
}

pub struct TestApp {
    pub base: String,
    pub client: Client,
    pub store: Store,
    /// The first program and its admin key.
    pub program: ProgramId,
    pub key: String,
    shutdown: Option<oneshot::Sender<()>>,
    _db: TempStore,
}

impl TestApp {
    /// A test server that accepts webhook URLs on 127.0.0.1, where the
    /// tests' receivers listen.
    pub async fn spawn(db: Db) -> Self {
        let config = ServerConfig {
            allow_private_webhooks: true,
            ..ServerConfig::default()
        };
        Self::spawn_with(db, config).await
    }

    /// Like [`TestApp::spawn`], with these settings (the public URL is the
    /// test server's own).
    pub async fn spawn_with(db: Db, config: ServerConfig) -> Self {
        let db = temp_store(match db {
            Db::Sqlite => Backend::Sqlite,
            Db::Postgres => Backend::Postgres,
        })
        .await;
        let store = db.store.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let app = sarafan_server::app(
            store.clone(),
            ServerConfig {
                public_url: base.clone(),
                ..config
            },
        );
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(sarafan_server::serve(listener, app, async {
            let _ = rx.await;
        }));
        let mut app = Self {
            base,
            client: Client::new(),
            store,
            program: ProgramId::generate(),
            key: String::new(),
            shutdown: Some(tx),
            _db: db,
        };
        let tenant = app.new_tenant("Test Coffee").await;
        app.program = tenant.program;
        app.key = tenant.admin_key;
        app
    }

    /// Creates another program with its own admin key.
    pub async fn new_tenant(&self, name: &str) -> Tenant {
        let retailer = self.store.create_retailer(name).await.unwrap();
        let program = self
            .store
            .create_program(
                retailer,
                &NewProgram {
                    name: ProgramName::parse(name).unwrap(),
                    currency: Currency::parse("RUB").unwrap(),
                    locale: Locale::parse("locale", "ru").unwrap(),
                    terms: "Bring a friend, both get 300 points.".into(),
                    settings: ProgramSettings::default(),
                },
            )
            .await
            .unwrap();
        let (_, admin_key) = self
            .store
            .issue_api_key(program.id, "test admin", Scope::Admin)
            .await
            .unwrap();
        Tenant {
            program: program.id,
            admin_key,
        }
    }

    pub async fn key_for(&self, program: ProgramId, scope: Scope) -> String {
        self.store
            .issue_api_key(program, "test", scope)
            .await
            .unwrap()
            .1
    }

    pub fn request(&self, method: Method, path: &str, key: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(key)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path, &self.key)
            .send()
            .await
            .unwrap()
    }

    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.request(Method::POST, path, &self.key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn patch(&self, path: &str, body: Value) -> Response {
        self.request(Method::PATCH, path, &self.key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Earn rules of 1 point per 1.00 RUB, in force since 2020.
    pub async fn one_point_per_rouble(&self) {
        let resp = self
            .post(
                "/api/v1/earn-rules",
                serde_json::json!({"effective_from": "2020-01-01T00:00:00Z",
                    "base_rate": {"points": 1, "per_minor": 100}}),
            )
            .await;
        assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    }

    /// Registers a member and returns its id.
    pub async fn member(&self, body: Value) -> String {
        let resp = self.post("/api/v1/members", body).await;
        assert!(
            resp.status().is_success(),
            "registration failed: {}",
            resp.status()
        );
        json(resp).await["id"].as_str().unwrap().to_owned()
    }

    pub async fn member_count(&self) -> usize {
        json(self.get("/api/v1/members?limit=500").await).await["items"]
            .as_array()
            .unwrap()
            .len()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub async fn json(resp: Response) -> Value {
    resp.json().await.expect("JSON body")
}

/// Asserts a problem+json response with this status and `type`, and returns it.
pub async fn problem(resp: Response, status: u16, slug: &str) -> Value {
    assert_eq!(resp.status().as_u16(), status, "status");
    let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert_eq!(ct, "application/problem+json");
    let body = json(resp).await;
    assert_eq!(body["type"], format!("/problems/{slug}"), "{body}");
    assert_eq!(body["status"], status);
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    body
}
