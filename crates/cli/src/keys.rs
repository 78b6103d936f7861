//! `alter keys`: a new master key file, and the rotation of a database's keys from the
//! configured key holder to another (runs where the database is, beside the servers).

use std::path::PathBuf;
use std::process::ExitCode;

use alter_server::config::{Config, TransitConfig};
use clap::{Args, Subcommand};

/// The variable that may give the new Transit token directly.
const NEW_TRANSIT_TOKEN_ENV: &str = "ALTER_NEW_KEY_HOLDER_TRANSIT_TOKEN";

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Writes a new master key to FILE (mode 0600); an existing file is never overwritten.
    NewMasterKey {
        /// The file to create.
        file: PathBuf,
    },
    /// Re-wraps every key-encryption key and the audit MAC root of the configured database,
    /// held by the configured key holder, under a new one, in one transaction. Servers already
    /// running keep serving; servers started afterwards need the new key holder.
    Rotate(RotateArgs),
}

#[derive(Debug, Args)]
struct RotateArgs {
    /// The TOML configuration of `alter server` (the database and the current key holder);
    /// `ALTER_*` variables override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Move the keys to this master key file (see `alter keys new-master-key`).
    #[arg(
        long,
        conflicts_with = "to_transit_address",
        required_unless_present = "to_transit_address"
    )]
    to_master_key_file: Option<PathBuf>,
    /// Move the keys to OpenBao/Vault Transit at this address.
    #[arg(long, requires = "to_transit_key")]
    to_transit_address: Option<String>,
    /// The Transit engine's mount.
    #[arg(long, default_value = "transit")]
    to_transit_mount: String,
    /// The Transit key's name.
    #[arg(long)]
    to_transit_key: Option<String>,
    /// File holding the Transit token (mode 0600); ALTER_NEW_KEY_HOLDER_TRANSIT_TOKEN may give
    /// it directly.
    #[arg(long)]
    to_transit_token_file: Option<PathBuf>,
}

pub async fn keys(args: KeysArgs) -> ExitCode {
    match args.command {
        KeysCommand::NewMasterKey { file } => {
            match alter_server::keys::new_master_key_file(&file) {
                Ok(fingerprint) => {
                    println!(
                        "wrote the new master key {fingerprint} to {} (mode 0600)\nkeep it apart from the database and its backups",
                        file.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e),
            }
        }
        KeysCommand::Rotate(args) => rotate(args).await,
    }
}

async fn rotate(args: RotateArgs) -> ExitCode {
    let env = |k: &str| std::env::var(k).ok();
    let config = match Config::load(args.config.as_deref(), env) {
        Ok(config) => config,
        Err(e) => return fail(&e),
    };
    let to = match (&args.to_master_key_file, &args.to_transit_address) {
        (Some(file), _) => alter_server::keys::master_key_file(file),
        (None, Some(address)) => alter_server::keys::transit(
            &TransitConfig {
                address: address.clone(),
                mount: args.to_transit_mount.clone(),
                key: args.to_transit_key.clone().unwrap_or_default(),
                token_file: args.to_transit_token_file.clone(),
            },
            env(NEW_TRANSIT_TOKEN_ENV),
        ),
        (None, None) => return fail(&"give --to-master-key-file or --to-transit-address"),
    };
    let to = match to {
        Ok(to) => to,
        Err(e) => return fail(&e),
    };
    match alter_server::keys::rotate(&config, env, to.as_ref()).await {
        Ok(rotated) => {
            let versions: Vec<String> = rotated
                .kek_versions
                .iter()
                .map(|v| format!("v{v}"))
                .collect();
            println!(
                "re-wrapped the key-encryption keys ({}) and the audit MAC root under {}\n\
                 running servers keep serving; configure every server with the new key holder \
                 before restarting it (one still configured with the old key refuses to start)",
                versions.join(", "),
                rotated.key_holder
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::FAILURE
}
