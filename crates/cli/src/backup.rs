//! `alter backup` and `alter restore`: run where the database is (beside the server), not over
//! HTTP. The database and master key come from `alter server`'s configuration (`--config` and
//! `ALTER_*`) or from `alter dev`'s data directory (`--data`).

use std::path::PathBuf;
use std::process::ExitCode;

use alter_server::backup::BackupError;
use alter_server::config::Config;
use clap::Args;

/// Which database: `alter server`'s configuration, or `alter dev`'s data directory.
#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// The TOML configuration file of `alter server`; `ALTER_*` variables override it (with
    /// neither this nor --data, `ALTER_DATABASE_URL` and `ALTER_MASTER_KEY[_FILE]` alone).
    #[arg(long, conflicts_with = "data")]
    config: Option<PathBuf>,
    /// The data directory of `alter dev` (its `alter.db` and `master.key`) instead.
    #[arg(long)]
    data: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The new file to write (mode 0600); an existing file is refused.
    file: PathBuf,
    #[command(flatten)]
    database: DatabaseArgs,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A file written by `alter backup`.
    file: PathBuf,
    #[command(flatten)]
    database: DatabaseArgs,
    /// Replace a database that already holds data (stop every server using it first).
    #[arg(long)]
    force: bool,
}

impl DatabaseArgs {
    fn database_url(&self) -> Result<String, String> {
        match &self.data {
            Some(dir) => Ok(alter_server::dev::database_url(dir)),
            None => self.config().map(|config| config.database_url),
        }
    }

    fn config(&self) -> Result<Config, String> {
        Config::load(self.config.as_deref(), |k| std::env::var(k).ok()).map_err(|e| e.to_string())
    }
}

pub async fn backup(args: BackupArgs) -> ExitCode {
    let url = match args.database.database_url() {
        Ok(url) => url,
        Err(e) => return fail(&e, 1),
    };
    match alter_server::backup::backup(&url, &args.file).await {
        Ok(()) => {
            println!(
                "backed up to {} (mode 0600)\nthe backup holds sealed credentials: keep the master key apart from it, and both safe",
                args.file.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => failed(&e),
    }
}

pub async fn restore(args: RestoreArgs) -> ExitCode {
    let (url, key_holder) = match &args.database.data {
        Some(dir) => {
            let key_file = alter_server::dev::master_key_file(dir);
            if !key_file.exists() {
                return fail(
                    &format!(
                        "{} is missing: copy the master key of the vault the backup was taken from there first",
                        key_file.display()
                    ),
                    1,
                );
            }
            (
                alter_server::dev::database_url(dir),
                alter_server::keys::master_key_file(&key_file),
            )
        }
        None => match args.database.config() {
            Ok(config) => (
                config.database_url.clone(),
                alter_server::keys::key_holder(&config, |k| std::env::var(k).ok()),
            ),
            Err(e) => return fail(&e, 1),
        },
    };
    let key_holder = match key_holder {
        Ok(holder) => holder,
        Err(e) => return fail(&e, 1),
    };
    match alter_server::backup::restore(&args.file, &url, key_holder.as_ref(), args.force).await {
        Ok(()) => {
            println!(
                "restored {} into {url}\nstart the server on it with the same master key",
                args.file.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => failed(&e),
    }
}

/// Exit 5 when the file or database to write already exists (a conflict, as in the operator
/// commands), 1 otherwise.
fn failed(e: &BackupError) -> ExitCode {
    let code = match e {
        BackupError::Exists(_) => 5,
        _ => 1,
    };
    fail(e, code)
}

fn fail(e: &dyn std::fmt::Display, code: u8) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(code)
}
