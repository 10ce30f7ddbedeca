//! `agora account create --role admin|carrier --email E --name N`, password from stdin.

use std::io::BufRead;

use anyhow::Context as _;
use command::accounts::handlers::{Registration, register};
use command::handling::Meta;
use command::values::{Email, Password, PersonName};
use events::domain::accounts::Role;
use uuid::Uuid;

use crate::config::Settings;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StaffRole {
    Admin,
    Carrier,
}

#[derive(Debug, clap::Subcommand)]
pub enum AccountCommand {
    /// Create an admin or carrier account; the password is read from standard input.
    Create {
        #[arg(long, value_enum)]
        role: StaffRole,
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
    },
}

pub async fn run(settings: &Settings, command: AccountCommand) -> anyhow::Result<()> {
    let AccountCommand::Create { role, email, name } = command;
    let mut password = String::new();
    std::io::stdin().lock().read_line(&mut password).context("reading the password from standard input")?;
    let password = password.trim_end_matches(['\r', '\n']);
    let registration = Registration {
        email: Email::parse(&email).map_err(|e| anyhow::anyhow!("--email {e}"))?,
        password: Password::parse(password).map_err(|e| anyhow::anyhow!("the password {e}"))?,
        name: PersonName::parse(&name).map_err(|e| anyhow::anyhow!("--name {e}"))?,
        role: match role {
            StaffRole::Admin => Role::Admin,
            StaffRole::Carrier => Role::Carrier,
        },
    };
    // Tokens are not issued here: any key will do.
    let services = crate::startup::services(settings, &[0u8; 32]).await?;
    let accepted = register(&services.ctx, registration, &Meta::new(None, Uuid::now_v7()), None)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("{}", serde_json::json!({ "id": accepted.body.get("id"), "role": format!("{role:?}").to_lowercase() }));
    Ok(())
}
