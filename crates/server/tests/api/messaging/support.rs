//! Test doubles for the way out: a webhook receiver that verifies
//! signatures the way docs/webhooks.md tells integrators to, a minimal SMTP
//! sink, and a fast-retrying outbox worker.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use sarafan_core::outbox::RetryPolicy;
use sarafan_server::delivery::mail::Mailer;
use sarafan_server::delivery::{spawn_delivery, DeliveryConfig, Worker as Stepped};
use sarafan_store::Store;
use sha2::Sha256;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::task::JoinHandle;

/// What a receiver does with the n-th request (0-based).
#[derive(Clone, Copy)]
pub enum Behaviour {
    Ok,
    /// Answers 500 to the first `n` requests, then 200.
    FailFirst(usize),
    /// Never answers the first request; answers 200 after.
    HangFirst,
    AlwaysFail,
}

#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Whether the receiver answered 2xx (acknowledged it).
    pub acked: bool,
    /// Whether the signature verified with the receiver's secrets.
    pub verified: bool,
}

#[derive(Default)]
struct ReceiverState {
    behaviour: Option<Behaviour>,
    secrets: Vec<String>,
    received: Vec<Received>,
}

/// A webhook receiver on 127.0.0.1.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    state: Arc<Mutex<ReceiverState>>,
}

/// Verifies a `Sarafan-Signature` header the way a receiver should: a
/// recent timestamp, and a `v1` that matches HMAC-SHA256 of "t.body" under
/// one of the receiver's secrets.
pub fn verify(header: &str, body: &[u8], secret: &str, now: i64) -> bool {
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => sigs.push(v.to_owned()),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    if (now - t).abs() > 300 {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    let expected = mac.finalize().into_bytes();
    sigs.iter()
        .filter_map(|s| hex::decode(s).ok())
        .any(|s| s.as_slice() == expected.as_slice())
}

async fn receive(
    State(state): State<Arc<Mutex<ReceiverState>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let (behaviour, n, verified) = {
        let s = state.lock().unwrap();
        let sig = headers
            .get("sarafan-signature")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let verified = s
            .secrets
            .iter()
            .any(|secret| verify(sig, &body, secret, now));
        (
            s.behaviour.unwrap_or(Behaviour::Ok),
            s.received.len(),
            verified,
        )
    };
    let status = match behaviour {
        _ if !verified => StatusCode::UNAUTHORIZED,
        Behaviour::Ok => StatusCode::OK,
        Behaviour::FailFirst(k) if n < k => StatusCode::INTERNAL_SERVER_ERROR,
        Behaviour::FailFirst(_) => StatusCode::OK,
        Behaviour::AlwaysFail => StatusCode::SERVICE_UNAVAILABLE,
        Behaviour::HangFirst if n == 0 => {
            state.lock().unwrap().received.push(Received {
                headers,
                body,
                acked: false,
                verified,
            });
            std::future::pending::<()>().await;
            unreachable!()
        }
        Behaviour::HangFirst => StatusCode::OK,
    };
    state.lock().unwrap().received.push(Received {
        headers,
        body,
        acked: status.is_success(),
        verified,
    });
    status
}

impl Receiver {
    pub async fn start(behaviour: Behaviour) -> Self {
        let state = Arc::new(Mutex::new(ReceiverState {
            behaviour: Some(behaviour),
            ..Default::default()
        }));
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, state }
    }

    /// The secrets signatures are checked against (from the create answer).
    pub fn trust(&self, secret: &str) {
        self.state.lock().unwrap().secrets.push(secret.to_owned());
    }

    pub fn set(&self, behaviour: Behaviour) {
        self.state.lock().unwrap().behaviour = Some(behaviour);
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// Waits until `n` requests arrived.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        for _ in 0..400 {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the receiver got {} of {n} requests", self.received().len());
    }
}

/// A minimal SMTP server that accepts every message and keeps it raw.
#[derive(Clone)]
pub struct SmtpSink {
    pub url: String,
    messages: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl SmtpSink {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("smtp://{}", listener.local_addr().unwrap());
        let messages = Arc::new(Mutex::new(Vec::new()));
        let store = messages.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let store = store.clone();
                tokio::spawn(async move {
                    let (read, mut write) = socket.into_split();
                    let mut lines = BufReader::new(read);
                    let _ = write.write_all(b"220 sink ESMTP\r\n").await;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                        let reply: &[u8] = match verb.as_str() {
                            "EHLO" => b"250-sink\r\n250 8BITMIME\r\n",
                            "HELO" | "MAIL" | "RCPT" | "RSET" | "NOOP" => b"250 OK\r\n",
                            "QUIT" => {
                                let _ = write.write_all(b"221 bye\r\n").await;
                                return;
                            }
                            "DATA" => {
                                let _ = write.write_all(b"354 go ahead\r\n").await;
                                let mut data = Vec::new();
                                loop {
                                    let mut l = Vec::new();
                                    if lines.read_until(b'\n', &mut l).await.unwrap_or(0) == 0 {
                                        return;
                                    }
                                    if l == b".\r\n" {
                                        break;
                                    }
                                    let l = if l.starts_with(b"..") {
                                        &l[1..]
                                    } else {
                                        &l[..]
                                    };
                                    data.extend_from_slice(l);
                                }
                                store.lock().unwrap().push(data);
                                b"250 queued\r\n"
                            }
                            _ => b"502 not implemented\r\n",
                        };
                        if write.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Self { url, messages }
    }

    pub fn messages(&self) -> Vec<Vec<u8>> {
        self.messages.lock().unwrap().clone()
    }

    pub async fn wait_for(&self, n: usize) -> Vec<Vec<u8>> {
        for _ in 0..400 {
            let got = self.messages();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "the SMTP sink got {} of {n} messages",
            self.messages().len()
        );
    }
}

/// An outbox worker that retries fast; aborted when dropped.
pub struct Worker(JoinHandle<()>);

impl Drop for Worker {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Worker {
    /// Stops the worker and waits until it has stopped.
    pub async fn stop(mut self) {
        self.0.abort();
        let handle = std::mem::replace(&mut self.0, tokio::spawn(async {}));
        let _ = handle.await;
    }
}

pub fn worker(store: &Store, mailer: Mailer, max_attempts: u32, lease: Duration) -> Worker {
    Worker(spawn_delivery(
        store.clone(),
        fast_config(mailer, max_attempts, lease),
    ))
}

/// A worker the test drives round by round (`run_once`), retrying by
/// `retry`, reaching receivers on 127.0.0.1 when `allow_private`, and
/// resolving `hosts` (name, address) without DNS.
pub fn stepped_worker(
    store: &Store,
    retry: RetryPolicy,
    allow_private: bool,
    hosts: &[(&str, &str)],
) -> Arc<Stepped> {
    let mut config = fast_config(log_mailer(), retry.max_attempts, Duration::from_secs(30));
    config.retry = retry;
    config.allow_private = allow_private;
    config.hosts = hosts
        .iter()
        .map(|(name, ip)| (name.to_string(), ip.parse().unwrap()))
        .collect();
    Arc::new(Stepped::new(store.clone(), config))
}

/// A worker the test drives round by round, mailing through `mailer`.
pub fn stepped_mailer(store: &Store, mailer: Mailer) -> Arc<Stepped> {
    Arc::new(Stepped::new(
        store.clone(),
        fast_config(mailer, 5, Duration::from_secs(30)),
    ))
}

fn fast_config(mailer: Mailer, max_attempts: u32, lease: Duration) -> DeliveryConfig {
    let mut config = DeliveryConfig::new(mailer, "http://sarafan.test");
    config.retry = RetryPolicy {
        base: Duration::from_millis(20),
        max: Duration::from_millis(100),
        max_attempts,
    };
    config.poll = Duration::from_millis(20);
    config.lease = lease;
    config.timeout = Duration::from_secs(30);
    config.allow_private = true;
    config
}

pub fn log_mailer() -> Mailer {
    Mailer::log("Sarafan <noreply@sarafan.test>").unwrap()
}
