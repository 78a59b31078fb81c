//! Settings: command-line flags, then `SARAFAN_*` environment variables, then
//! the TOML file given by `--config`, then defaults.

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use sarafan_server::client_addr::TrustedProxies;
use sarafan_server::delivery::{mail::Mailer, spawn_delivery, spawn_schedules, DeliveryConfig};
use sarafan_server::ServerConfig;
use sarafan_store::{ConnectOptions, Store};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Args, Clone, Default)]
pub struct DbArgs {
    /// TOML file with any of the settings below (flags and variables win).
    #[arg(long, env = "SARAFAN_CONFIG")]
    pub config: Option<PathBuf>,
    /// sqlite://FILE (embedded, the default: sqlite://sarafan.db) or
    /// postgres://USER@HOST/DB.
    #[arg(long, env = "SARAFAN_DATABASE_URL")]
    pub database_url: Option<String>,
    /// PostgreSQL schema to use (created if missing); default: the user's
    /// search path.
    #[arg(long, env = "SARAFAN_PG_SCHEMA")]
    pub pg_schema: Option<String>,
    /// Most database connections to hold open.
    #[arg(long, env = "SARAFAN_MAX_CONNECTIONS")]
    pub max_connections: Option<u32>,
    /// Log format: text for people, json for log collectors.
    #[arg(long, env = "SARAFAN_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
}

#[derive(Args, Clone, Default)]
pub struct ServeArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "SARAFAN_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Public base URL used in links (referral links, QR codes)
    /// [default: http://<listen>].
    #[arg(long, env = "SARAFAN_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// SMTP server for member e-mail: smtps://USER:PASSWORD@HOST:465 (TLS),
    /// smtp://USER:PASSWORD@HOST:587?tls=required (STARTTLS) or
    /// smtp://HOST:25 (plain, local relays only). Without it e-mails are
    /// written to the log instead of sent.
    #[arg(long, env = "SARAFAN_SMTP_URL")]
    pub smtp_url: Option<String>,
    /// Sender of member e-mail [default: Sarafan <noreply@localhost>].
    #[arg(long, env = "SARAFAN_SMTP_FROM")]
    pub smtp_from: Option<String>,
    /// Let webhook URLs point at loopback, private, link-local and other
    /// non-public addresses (a store's CRM on the same LAN). Off: tenants
    /// could otherwise make the server probe the network it runs in.
    #[arg(long, env = "SARAFAN_ALLOW_PRIVATE_WEBHOOKS")]
    pub allow_private_webhooks: bool,
    /// Hours a response saved for an Idempotency-Key is replayed
    /// [default: 24; 1 to 720].
    #[arg(long, env = "SARAFAN_IDEMPOTENCY_HOURS")]
    pub idempotency_hours: Option<u32>,
    /// Reverse proxies (CIDRs or addresses, comma-separated) whose
    /// Forwarded / X-Forwarded-For headers name the shopper's address;
    /// from anyone else those headers are ignored [default:
    /// 127.0.0.0/8,::1].
    #[arg(long, env = "SARAFAN_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Option<Vec<String>>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The settings file: the same names as the flags, with underscores.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    database_url: Option<String>,
    pg_schema: Option<String>,
    max_connections: Option<u32>,
    log_format: Option<LogFormat>,
    listen: Option<SocketAddr>,
    public_url: Option<String>,
    smtp_url: Option<String>,
    smtp_from: Option<String>,
    allow_private_webhooks: Option<bool>,
    idempotency_hours: Option<u32>,
    trusted_proxies: Option<Vec<String>>,
}

/// Every setting, resolved.
pub struct Settings {
    pub database_url: String,
    pub pg_schema: Option<String>,
    pub max_connections: u32,
    pub log_format: LogFormat,
    pub listen: SocketAddr,
    pub public_url: String,
    pub smtp_url: Option<String>,
    pub smtp_from: String,
    pub allow_private_webhooks: bool,
    pub idempotency_hours: u32,
    pub trusted_proxies: TrustedProxies,
}

fn read_file(path: Option<&PathBuf>) -> Result<FileSettings> {
    let Some(path) = path else {
        return Ok(FileSettings::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--config: cannot read {}", path.display()))?;
    toml::from_str(&text)
        .with_context(|| format!("--config: {} is not a valid settings file", path.display()))
}

impl DbArgs {
    /// Resolves the settings; `default_db` replaces the usual default
    /// database (the demo keeps its own file).
    pub fn resolve(self, default_db: Option<&str>) -> Result<Settings> {
        ServeArgs {
            db: self,
            ..Default::default()
        }
        .resolve(default_db)
    }
}

impl ServeArgs {
    pub fn resolve(self, default_db: Option<&str>) -> Result<Settings> {
        let file = read_file(self.db.config.as_ref())?;
        let listen = self
            .listen
            .or(file.listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
        let database_url = self
            .db
            .database_url
            .or(file.database_url)
            .unwrap_or_else(|| default_db.unwrap_or("sqlite://sarafan.db").to_owned());
        if !(database_url.starts_with("sqlite:") || database_url.starts_with("postgres")) {
            bail!("--database-url: {database_url:?} must start with sqlite:// or postgres://");
        }
        let public_url = self
            .public_url
            .or(file.public_url)
            .unwrap_or_else(|| format!("http://{listen}"))
            .trim_end_matches('/')
            .to_owned();
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            bail!("--public-url: {public_url:?} must start with http:// or https://");
        }
        let max_connections = self
            .db
            .max_connections
            .or(file.max_connections)
            .unwrap_or(16);
        if max_connections == 0 {
            bail!("--max-connections: must be at least 1");
        }
        let idempotency_hours = self
            .idempotency_hours
            .or(file.idempotency_hours)
            .unwrap_or(24);
        if !(1..=720).contains(&idempotency_hours) {
            bail!("--idempotency-hours: must be between 1 and 720 (30 days)");
        }
        let trusted_proxies = match self.trusted_proxies.or(file.trusted_proxies) {
            Some(list) => TrustedProxies::parse(&list)
                .map_err(|e| anyhow::anyhow!("--trusted-proxies: {e}"))?,
            None => TrustedProxies::default(),
        };
        Ok(Settings {
            trusted_proxies,
            database_url,
            pg_schema: self.db.pg_schema.or(file.pg_schema),
            max_connections,
            log_format: self.db.log_format.or(file.log_format).unwrap_or_default(),
            listen,
            public_url,
            smtp_url: self.smtp_url.or(file.smtp_url),
            smtp_from: self
                .smtp_from
                .or(file.smtp_from)
                .unwrap_or_else(|| "Sarafan <noreply@localhost>".into()),
            allow_private_webhooks: self.allow_private_webhooks
                || file.allow_private_webhooks.unwrap_or(false),
            idempotency_hours,
        })
    }
}

impl Settings {
    pub async fn open_store(&self) -> Result<Store> {
        let opts = ConnectOptions {
            url: self.database_url.clone(),
            pg_schema: self.pg_schema.clone(),
            max_connections: self.max_connections,
        };
        Store::open(&opts)
            .await
            .with_context(|| format!("--database-url: cannot open {}", self.redacted_url()))
    }

    /// The database URL without its password, fit for logs.
    pub fn redacted_url(&self) -> String {
        match (self.database_url.find("://"), self.database_url.rfind('@')) {
            (Some(s), Some(at)) if at > s => {
                let creds = &self.database_url[s + 3..at];
                let user = creds.split(':').next().unwrap_or_default();
                format!(
                    "{}{user}:***{}",
                    &self.database_url[..s + 3],
                    &self.database_url[at..]
                )
            }
            _ => self.database_url.clone(),
        }
    }

    /// The outbox worker's settings: SMTP when configured, else the log.
    pub fn delivery_config(&self) -> Result<DeliveryConfig> {
        let timeout = std::time::Duration::from_secs(15);
        let mailer = match &self.smtp_url {
            Some(url) => Mailer::smtp(url, &self.smtp_from, timeout),
            None => Mailer::log(&self.smtp_from),
        }
        .map_err(anyhow::Error::msg)?;
        Ok(DeliveryConfig {
            allow_private: self.allow_private_webhooks,
            ..DeliveryConfig::new(mailer, self.public_url.clone())
        })
    }

    pub fn server_config(&self) -> ServerConfig {
        ServerConfig {
            public_url: self.public_url.clone(),
            allow_private_webhooks: self.allow_private_webhooks,
            idempotency_ttl: self.idempotency_ttl(),
            trusted_proxies: self.trusted_proxies.clone(),
            ..ServerConfig::default()
        }
    }

    fn idempotency_ttl(&self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.idempotency_hours) * 3600)
    }
}

pub fn init_logging(settings: &Settings) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match settings.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Serves until Ctrl-C or SIGTERM, then drains requests and closes the
/// database cleanly.
pub async fn serve(store: Store, settings: Settings, banner: Option<String>) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| {
            format!(
                "--listen: cannot listen on {} (in use? pick another with --listen)",
                settings.listen
            )
        })?;
    if let Some(banner) = banner {
        println!("{banner}");
    }
    tracing::info!(listen = %settings.listen, database = %settings.redacted_url(), "serving");
    let (app, clicks) =
        sarafan_server::app_with_click_writer(store.clone(), settings.server_config());
    let jobs = sarafan_server::spawn_ledger_jobs(store.clone(), std::time::Duration::from_secs(60));
    let purge = sarafan_server::spawn_idempotency_purge(
        store.clone(),
        settings.idempotency_ttl(),
        std::time::Duration::from_secs(3600),
    );
    if settings.smtp_url.is_none() {
        tracing::warn!("no --smtp-url: member e-mails are written to the log, not sent");
    }
    let delivery = spawn_delivery(store.clone(), settings.delivery_config()?);
    let schedules = spawn_schedules(store.clone(), std::time::Duration::from_secs(60));
    sarafan_server::serve(listener, app, shutdown_signal()).await?;
    jobs.abort();
    purge.abort();
    schedules.abort();
    // Every click the server answered is written before the database closes.
    clicks.drained().await;
    delivery.abort();
    store.close().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}
