//! `sarafan`: run the server, the demo store, migrations and administration.

mod bench;
mod config;
mod csvio;
mod demo;
mod staff;
mod voice;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use config::{DbArgs, ServeArgs};
use sarafan_core::apikey::Scope;
use sarafan_core::ids::ProgramId;
use sarafan_core::program::{parse_terms, Currency, Locale, ProgramName, ProgramSettings};
use sarafan_store::NewProgram;

/// mimalloc: the many small per-request allocations of the HTTP hot paths
/// (the referral redirect above all) cost less than with the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "sarafan",
    version,
    about = "Self-hosted referral and loyalty platform for retailers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (applies pending migrations first).
    Serve(ServeArgs),
    /// Create (once) and serve a demo store on a local SQLite file, and print
    /// its URLs and a fresh admin API key.
    Demo(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate(DbArgs),
    /// Manage programs (a store's loyalty and referral program).
    #[command(subcommand)]
    Program(ProgramCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Apikey(ApikeyCommand),
    /// Benchmarks (they create their own program and data).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Import members or purchase history from a CSV file.
    #[command(subcommand)]
    Import(csvio::ImportCommand),
    /// Export members or the ledger statement as CSV.
    #[command(subcommand)]
    Export(csvio::ExportCommand),
    /// Voice assistants of the whole deployment.
    #[command(subcommand)]
    Voice(voice::VoiceCommand),
    /// Console accounts of a program's staff.
    #[command(subcommand)]
    Staff(staff::StaffCommand),
}

#[derive(Subcommand)]
enum ProgramCommand {
    /// Create a program and print its id and an admin key.
    Create {
        #[command(flatten)]
        db: DbArgs,
        /// Program name shown to members, e.g. "Coffee House Rewards".
        #[arg(long)]
        name: String,
        /// ISO 4217 currency code, e.g. RUB, USD, IRR.
        #[arg(long)]
        currency: String,
        /// Default language of the program: en, ru, fa, ...
        #[arg(long, default_value = "en")]
        locale: String,
        /// Program terms in plain words.
        #[arg(long, default_value = "")]
        terms: String,
        /// The retailer (account) that owns the program.
        #[arg(long, default_value = "My store")]
        retailer: String,
    },
    /// List all programs.
    List {
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Subcommand)]
enum ApikeyCommand {
    /// Create an API key for a program and print its token (shown once).
    Create {
        #[command(flatten)]
        db: DbArgs,
        /// The program's id (see `sarafan program list`).
        #[arg(long)]
        program: ProgramId,
        /// admin, server or publishable.
        #[arg(long, default_value = "server", value_parser = parse_scope)]
        scope: Scope,
        /// What the key is for.
        #[arg(long, default_value = "cli")]
        name: String,
    },
}

fn parse_scope(s: &str) -> Result<Scope, String> {
    Scope::parse("--scope", s).map_err(|e| e.reason)
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let settings = args.resolve(None)?;
            config::init_logging(&settings);
            let store = settings.open_store().await?;
            config::serve(store, settings, None).await
        }
        Command::Demo(args) => demo::run(args).await,
        Command::Bench(cmd) => bench::run(cmd).await,
        Command::Import(cmd) => csvio::import(cmd).await,
        Command::Export(cmd) => csvio::export(cmd).await,
        Command::Voice(cmd) => voice::run(cmd).await,
        Command::Staff(cmd) => staff::run(cmd).await,
        Command::Migrate(db) => {
            let settings = db.resolve(None)?;
            config::init_logging(&settings);
            settings.open_store().await?;
            println!("database {} is up to date", settings.redacted_url());
            Ok(())
        }
        Command::Program(ProgramCommand::Create {
            db,
            name,
            currency,
            locale,
            terms,
            retailer,
        }) => {
            let program = NewProgram {
                name: ProgramName::parse(&name).map_err(|e| anyhow::anyhow!("--{e}"))?,
                currency: Currency::parse(&currency).map_err(|e| anyhow::anyhow!("--{e}"))?,
                locale: Locale::parse("locale", &locale).map_err(|e| anyhow::anyhow!("--{e}"))?,
                terms: parse_terms(&terms).map_err(|e| anyhow::anyhow!("--{e}"))?,
                settings: ProgramSettings::default(),
            };
            let store = db.resolve(None)?.open_store().await?;
            let retailer = store.create_retailer(&retailer).await?;
            let program = store.create_program(retailer, &program).await?;
            let (_, token) = store
                .issue_api_key(program.id, "admin (created by CLI)", Scope::Admin)
                .await?;
            println!("program {} created: {}", program.id, program.name);
            println!("admin API key (shown once): {token}");
            Ok(())
        }
        Command::Program(ProgramCommand::List { db }) => {
            let store = db.resolve(None)?.open_store().await?;
            for p in store.programs().await? {
                println!(
                    "{}  {}  {}  {}",
                    p.id,
                    p.currency,
                    p.locale.as_str(),
                    p.name
                );
            }
            Ok(())
        }
        Command::Apikey(ApikeyCommand::Create {
            db,
            program,
            scope,
            name,
        }) => {
            let store = db.resolve(None)?.open_store().await?;
            store.program(program).await?.with_context(|| {
                format!("--program: no program {program}; `sarafan program list` shows the ids")
            })?;
            let (key, token) = store.issue_api_key(program, &name, scope).await?;
            println!(
                "{} key {} for program {program} (shown once):",
                key.scope.as_str(),
                key.id
            );
            println!("{token}");
            Ok(())
        }
    }
}
