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
    /// Adds a new key-encryption key version, wrapped by the configured key holder. Running
    /// servers seal with it within seconds and re-wrap every data key under it in the
    /// background (`alter keys status` shows how far); then `alter keys retire-kek`.
    RotateKek(ConfigArg),
    /// Deletes the key-encryption key versions older than the newest, once every data key is
    /// re-wrapped under it; refuses (changing nothing) while any sealed value names one.
    RetireKek(ConfigArg),
    /// Shows the key-encryption key versions and how far the re-wrapping has come.
    Status(ConfigArg),
}

#[derive(Debug, Args)]
struct ConfigArg {
    /// The TOML configuration of `alter server` (the database and the key holder);
    /// `ALTER_*` variables override it.
    #[arg(long)]
    config: Option<PathBuf>,
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
        KeysCommand::RotateKek(args) => rotate_kek(args).await,
        KeysCommand::RetireKek(args) => retire_kek(args).await,
        KeysCommand::Status(args) => status(args).await,
    }
}

fn load(args: &ConfigArg) -> Result<Config, ExitCode> {
    Config::load(args.config.as_deref(), |k| std::env::var(k).ok()).map_err(|e| fail(&e))
}

async fn rotate_kek(args: ConfigArg) -> ExitCode {
    let config = match load(&args) {
        Ok(config) => config,
        Err(code) => return code,
    };
    match alter_server::keys::add_kek(&config, |k| std::env::var(k).ok()).await {
        Ok(version) => {
            println!(
                "added key-encryption key v{version}; running servers seal with it within \
                 {refresh} s and re-wrap every data key under it from {switch} s on \
                 (`alter keys status`); then `alter keys retire-kek`",
                refresh = alter_server::keys::KEYRING_REFRESH.as_secs(),
                switch = alter_server::keys::SWITCH_SECONDS,
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

async fn retire_kek(args: ConfigArg) -> ExitCode {
    let config = match load(&args) {
        Ok(config) => config,
        Err(code) => return code,
    };
    match alter_server::keys::retire_keks(&config, |k| std::env::var(k).ok()).await {
        Ok(retired) => {
            println!(
                "deleted {} older key-encryption key version(s); v{} is the only one left",
                retired.deleted, retired.kept
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

async fn status(args: ConfigArg) -> ExitCode {
    let config = match load(&args) {
        Ok(config) => config,
        Err(code) => return code,
    };
    match alter_server::keys::kek_status(&config).await {
        Ok(status) => {
            let versions: Vec<String> = status.versions.iter().map(|v| format!("v{v}")).collect();
            println!("key-encryption keys: {}", versions.join(", "));
            let newest = status.versions.last().copied().unwrap_or(1);
            match &status.rewrap {
                Some(p) if p.finished_at.is_some() => println!(
                    "re-wrap under v{newest}: finished ({} value(s) could not be re-wrapped)",
                    p.failed
                ),
                Some(p) => println!(
                    "re-wrap under v{newest}: in progress, at {}",
                    p.column.map_or("the end", |c| c.name())
                ),
                None if status.versions.len() > 1 => {
                    println!("re-wrap under v{newest}: not started yet")
                }
                None => println!("re-wrap: nothing to do"),
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
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
