//! `sarafan staff`: console accounts of a program.

use crate::config::DbArgs;
use anyhow::{bail, Result};
use clap::Subcommand;
use sarafan_core::ids::ProgramId;
use sarafan_core::member::Email;
use sarafan_core::staff::{check_new_password, hash_password, Role};
use sarafan_store::staff::{NewStaff, StaffCreated};
use sarafan_store::{Program, Store};

#[derive(Subcommand)]
pub enum StaffCommand {
    /// Create a console account for a program's staff and print how to
    /// sign in (the password is printed when generated).
    Create {
        #[command(flatten)]
        db: DbArgs,
        /// The program: its id or its exact name (see `sarafan program list`).
        #[arg(long)]
        program: String,
        /// The staff member's e-mail; they sign in with it.
        #[arg(long)]
        email: String,
        /// owner, manager, analyst or cashier.
        #[arg(long)]
        role: String,
        /// The password (at least 10 characters); left out, one is generated
        /// and printed.
        #[arg(long, env = "SARAFAN_STAFF_PASSWORD")]
        password: Option<String>,
        /// The name shown in the console.
        #[arg(long)]
        name: Option<String>,
    },
    /// List a program's staff.
    List {
        #[command(flatten)]
        db: DbArgs,
        /// The program: its id or its exact name.
        #[arg(long)]
        program: String,
    },
}

/// The program named by `raw`: an id, or an exact name that only one
/// program has.
pub async fn find_program(store: &Store, raw: &str) -> Result<Program> {
    if let Ok(id) = ProgramId::parse("program", raw) {
        return match store.program(id).await? {
            Some(p) => Ok(p),
            None => bail!("--program: no program {id}; `sarafan program list` shows the ids"),
        };
    }
    let named: Vec<Program> = store
        .programs()
        .await?
        .into_iter()
        .filter(|p| p.name == raw.trim())
        .collect();
    match named.len() {
        0 => bail!("--program: no program is named {raw:?}; give its id or exact name (`sarafan program list`)"),
        1 => Ok(named.into_iter().next().expect("one")),
        _ => bail!(
            "--program: {} programs are named {raw:?}; give the id of one: {}",
            named.len(),
            named.iter().map(|p| p.id.to_string()).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// A readable random password: 20 characters from an alphabet without
/// look-alikes (about 115 bits).
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    (0..20)
        .map(|_| {
            let i = rand::random::<u32>() as usize % ALPHABET.len();
            ALPHABET[i] as char
        })
        .collect()
}

/// Creates a staff account; returns the password (`Some` when generated).
pub async fn create(
    store: &Store,
    program: &Program,
    email: &str,
    role: &str,
    password: Option<String>,
    name: Option<&str>,
) -> Result<(Email, Option<String>)> {
    let email = Email::parse(email).map_err(|e| anyhow::anyhow!("--{e}"))?;
    let role = Role::parse("--role", role).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (password, generated) = match password {
        Some(p) => {
            check_new_password("--password", &p).map_err(|e| anyhow::anyhow!("{e}"))?;
            (p, false)
        }
        None => (generate_password(), true),
    };
    let name = name.map(str::trim).filter(|n| !n.is_empty());
    let hash = {
        let password = password.clone();
        tokio::task::spawn_blocking(move || hash_password(&password, rand::random())).await?
    };
    match store
        .create_staff(
            program.id,
            &NewStaff {
                email: &email,
                name,
                role,
                password_hash: &hash,
            },
        )
        .await?
    {
        StaffCreated::Created(_) => Ok((email, generated.then_some(password))),
        StaffCreated::EmailTaken => bail!(
            "--email: {} already has a console account in {}; use another address",
            email.as_str(),
            program.name
        ),
    }
}

pub async fn run(cmd: StaffCommand) -> Result<()> {
    match cmd {
        StaffCommand::Create {
            db,
            program,
            email,
            role,
            password,
            name,
        } => {
            let settings = db.resolve(None)?;
            let store = settings.open_store().await?;
            let program = find_program(&store, &program).await?;
            let role_name = role.trim().to_ascii_lowercase();
            let (email, generated) =
                create(&store, &program, &email, &role, password, name.as_deref()).await?;
            println!(
                "{role_name} {} created for program {} ({})",
                email.as_str(),
                program.id,
                program.name
            );
            if let Some(p) = generated {
                println!("password (shown once): {p}");
            }
            println!("sign in at <public URL>/console");
            Ok(())
        }
        StaffCommand::List { db, program } => {
            let store = db.resolve(None)?.open_store().await?;
            let program = find_program(&store, &program).await?;
            for s in store.staff(program.id).await? {
                println!(
                    "{}  {}  {}{}",
                    s.id,
                    s.role.as_str(),
                    s.email,
                    if s.active { "" } else { "  (disabled)" }
                );
            }
            Ok(())
        }
    }
}
