//! `kill -9` of `sarafan serve` while single events go through the group
//! commit, then a restart and every event sent again: each event answered
//! 201 before the crash is still booked (answered 200 now), and each order
//! is booked exactly once.

mod common;

use common::{program, Db};
use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

/// Orders sent in all; the server is killed after `KILL_AFTER` answers.
const ORDERS: usize = 600;
const KILL_AFTER: usize = 150;
/// Requests in flight at once.
const CALLERS: usize = 32;

struct Server {
    child: Child,
    base: String,
}

impl Server {
    async fn start(db: &Db) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let base = format!("http://127.0.0.1:{port}");
        // Held by the server value at once, so a failed start is killed too.
        let server = Self {
            child: Command::new(env!("CARGO_BIN_EXE_sarafan"))
                .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
                .args(["--public-url", &base])
                .args(&db.args)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
            base,
        };
        let client = reqwest::Client::new();
        for _ in 0..500 {
            if client
                .get(format!("{}/readyz", server.base))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return server;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("the server did not become ready");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn order(n: usize) -> serde_json::Value {
    serde_json::json!({"type": "purchase", "id": format!("order-{n:04}"),
        "external_id": format!("cust-{:07}", n % 20), "amount": 10_000 + n as i64, "currency": "RUB"})
}

/// Sends orders `0..ORDERS` with `CALLERS` in flight; returns each answer's
/// (order, status), 0 when no answer came (the server was gone). With
/// `kill`, kills the server -9 once `KILL_AFTER` answers have come.
async fn send_all(
    server: &Arc<Mutex<Server>>,
    base: &str,
    key: &str,
    kill: bool,
) -> Vec<(usize, u16)> {
    let client = reqwest::Client::new();
    let next = Arc::new(Mutex::new(0usize));
    let answers = Arc::new(Mutex::new(Vec::new()));
    let mut callers = Vec::new();
    for _ in 0..CALLERS {
        let (client, next, answers, server) = (
            client.clone(),
            Arc::clone(&next),
            Arc::clone(&answers),
            Arc::clone(server),
        );
        let (url, auth) = (format!("{base}/api/v1/events"), format!("Bearer {key}"));
        callers.push(tokio::spawn(async move {
            loop {
                let n = {
                    let mut next = next.lock().unwrap();
                    if *next == ORDERS {
                        return;
                    }
                    *next += 1;
                    *next - 1
                };
                let status = match client
                    .post(&url)
                    .header("Authorization", &auth)
                    .json(&order(n))
                    .send()
                    .await
                {
                    Ok(r) => r.status().as_u16(),
                    Err(_) => 0,
                };
                let mut answers = answers.lock().unwrap();
                answers.push((n, status));
                if kill && answers.iter().filter(|(_, s)| *s != 0).count() == KILL_AFTER {
                    // SIGKILL: no shutdown, no flush.
                    let _ = server.lock().unwrap().child.kill();
                }
            }
        }));
    }
    for c in callers {
        c.await.unwrap();
    }
    Arc::try_unwrap(answers).unwrap().into_inner().unwrap()
}

fn killed_mid_load_loses_and_duplicates_nothing(db: Db) {
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async move {
            let (program_id, admin_key) = program(&db);
            let store = db.store().await;
            let program = sarafan_core::ids::ProgramId(program_id.parse().unwrap());
            let members: Vec<String> = (0..20).map(|i| format!("cust-{i:07}")).collect();
            store.bench_insert_members(program, &members).await.unwrap();

            let first = Arc::new(Mutex::new(Server::start(&db).await));
            let base = first.lock().unwrap().base.clone();
            let before = send_all(&first, &base, &admin_key, true).await;
            let _ = first.lock().unwrap().child.wait();
            let acked: BTreeSet<usize> = before
                .iter()
                .filter(|(_, s)| *s == 201)
                .map(|(n, _)| *n)
                .collect();
            assert!(
                acked.len() >= KILL_AFTER / 2,
                "the crash came too early to test anything: {} acknowledged",
                acked.len()
            );
            let unanswered = before.iter().filter(|(_, s)| *s == 0).count();
            eprintln!("acknowledged {}, unanswered {unanswered}", acked.len());
            assert!(unanswered > 0, "the kill interrupted nothing");
            assert!(
                before.iter().all(|(_, s)| matches!(s, 0 | 201)),
                "before the crash every answer is 201 or none: {before:?}"
            );

            let second = Arc::new(Mutex::new(Server::start(&db).await));
            let base = second.lock().unwrap().base.clone();
            let after = send_all(&second, &base, &admin_key, false).await;
            for (n, status) in &after {
                if acked.contains(n) {
                    assert_eq!(*status, 200, "order {n} was acknowledged, then lost");
                } else {
                    assert!(matches!(status, 200 | 201), "order {n}: {status}");
                }
            }
            let counts = store.bench_ledger_counts(program).await.unwrap();
            let events = counts
                .iter()
                .find(|(t, _)| *t == "events")
                .map_or(0, |(_, c)| *c);
            assert_eq!(events, ORDERS as i64, "each order booked exactly once");
            assert_eq!(
                store.verify_ledger(program).await.unwrap(),
                Vec::<String>::new()
            );
        });
}

on_both!(killed_mid_load_loses_and_duplicates_nothing);
