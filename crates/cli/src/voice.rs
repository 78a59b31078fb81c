//! `sarafan voice shared …`: the deployment-wide voice assistants, one
//! skill or agent serving every program that configures its skill id (see
//! docs/voice.md). Operator-level, so a CLI command and not an API call.

use crate::config::DbArgs;
use anyhow::Result;
use clap::Subcommand;
use sarafan_core::voice::{client_id, Assistant, Client};
use sarafan_server::voice::shared;

#[derive(Subcommand)]
pub enum VoiceCommand {
    /// The deployment-wide (shared) skills and agents.
    #[command(subcommand)]
    Shared(SharedCommand),
}

#[derive(Subcommand)]
pub enum SharedCommand {
    /// Set up or update the shared skill of an assistant; prints its OAuth
    /// client and, the first time or with --rotate-secrets, its secrets.
    Set {
        #[command(flatten)]
        db: DbArgs,
        /// dialogflow, alexa or alice.
        #[arg(value_parser = parse_assistant)]
        assistant: Assistant,
        /// The skill id (Alexa, Alice) or the Dialogflow project (ES) or
        /// agent (CX) id the programs configure to join.
        #[arg(long)]
        skill_id: String,
        /// A redirect URI of the skill's account linking (https); repeat.
        /// Required: the list replaces the stored one, and without any
        /// every account linking would be refused.
        #[arg(long = "redirect-uri", required = true)]
        redirect_uris: Vec<String>,
        /// Issue new secrets (the old ones stop working at once).
        #[arg(long)]
        rotate_secrets: bool,
    },
    /// List the shared skills.
    List {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Remove a shared skill: the programs on it keep their own
    /// configurations, linking through the shared client stops.
    Remove {
        #[command(flatten)]
        db: DbArgs,
        #[arg(value_parser = parse_assistant)]
        assistant: Assistant,
    },
}

fn parse_assistant(s: &str) -> Result<Assistant, String> {
    Assistant::parse("assistant", s).map_err(|e| e.reason)
}

pub async fn run(cmd: VoiceCommand) -> Result<()> {
    let VoiceCommand::Shared(cmd) = cmd;
    match cmd {
        SharedCommand::Set {
            db,
            assistant,
            skill_id,
            redirect_uris,
            rotate_secrets,
        } => {
            let store = db.resolve(None)?.open_store().await?;
            let done =
                shared::configure(&store, assistant, &skill_id, &redirect_uris, rotate_secrets)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            let a = assistant.as_str();
            println!("shared {a} skill {}", done.config.skill_id);
            println!("endpoint: <public URL>/voice/{a}");
            println!("client id: {}", client_id(assistant, Client::Shared));
            println!("authorization URL: <public URL>/oauth/authorize");
            println!("token URL: <public URL>/oauth/token");
            if let Some(secret) = done.client_secret {
                println!("client secret (shown once): {secret}");
            }
            if let Some(secret) = done.webhook_secret {
                println!("webhook secret (shown once): {secret}");
            }
            Ok(())
        }
        SharedCommand::List { db } => {
            let store = db.resolve(None)?.open_store().await?;
            for s in store.shared_voice_assistants().await? {
                println!(
                    "{}  {}  {}",
                    s.assistant.as_str(),
                    s.skill_id,
                    s.redirect_uris.join(" ")
                );
            }
            Ok(())
        }
        SharedCommand::Remove { db, assistant } => {
            let store = db.resolve(None)?.open_store().await?;
            if !store.delete_shared_voice_assistant(assistant).await? {
                anyhow::bail!("no shared {} skill is set up", assistant.as_str());
            }
            println!("shared {} skill removed", assistant.as_str());
            Ok(())
        }
    }
}
