//! Key holders: the local master key or OpenBao/Vault Transit, from the configuration; and
//! `alter keys rotate`, which moves a database's keys from the configured holder to another.

use std::path::Path;
use std::sync::Arc;

use alter_core::kek_versions;
pub use alter_core::kek_versions::{KEYRING_REFRESH, KekStatus, Retired, SWITCH_SECONDS};
use alter_core::operators::{operator_action, record_key_command};
use alter_core::ports::{Clock, KeyHolder, StoreError};
use alter_core::time::SystemClock;
use alter_core::vault::Rotated;
use alter_crypto::{ExposeSecret, MasterKey, SecretString};
use alter_store::{SqlStore, StoreOptions};
use alter_upstream::transit::Transit;

use crate::config::{Config, TransitConfig};
use crate::{StartupError, key_files};

/// The variable that may give the Transit token directly.
pub const TRANSIT_TOKEN_ENV: &str = "ALTER_KEY_HOLDER_TRANSIT_TOKEN";

/// The key holder of a configuration: `[key_holder.transit]`, else the local master key
/// (`ALTER_MASTER_KEY`, else `master_key_file`). Both at once is refused: which one holds the
/// keys must be unambiguous.
pub fn key_holder(
    config: &Config,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Arc<dyn KeyHolder>, StartupError> {
    match &config.key_holder.transit {
        Some(transit_config) => {
            if config.master_key_file.is_some() || env("ALTER_MASTER_KEY").is_some() {
                return Err(StartupError::KeyHolder(
                    "both [key_holder.transit] and a master key (master_key_file or \
                     ALTER_MASTER_KEY) are configured: keep only the one that holds the keys"
                        .into(),
                ));
            }
            transit(transit_config, env(TRANSIT_TOKEN_ENV))
        }
        None => Ok(Arc::new(crate::master_key(config, env)?)),
    }
}

/// A Transit key holder; the token is `token` if given, else read from `token_file`.
pub fn transit(
    config: &TransitConfig,
    token: Option<String>,
) -> Result<Arc<dyn KeyHolder>, StartupError> {
    let token = match (token, &config.token_file) {
        (Some(token), _) => SecretString::from(token),
        (None, Some(path)) => key_files::read_private(path)?,
        (None, None) => {
            return Err(StartupError::KeyHolder(format!(
                "set key_holder.transit.token_file or {TRANSIT_TOKEN_ENV}"
            )));
        }
    };
    let holder = Transit::new(&alter_upstream::transit::TransitConfig {
        address: config.address.clone(),
        mount: config.mount.clone(),
        key: config.key.clone(),
        token: SecretString::from(token.expose_secret().trim().to_owned()),
    })
    .map_err(|e| StartupError::KeyHolder(e.to_string()))?;
    Ok(Arc::new(holder))
}

/// A local master key file as a key holder.
pub fn master_key_file(path: &Path) -> Result<Arc<dyn KeyHolder>, StartupError> {
    Ok(Arc::new(key_files::read_master_key(path)?))
}

/// `alter keys new-master-key FILE`: a new master key in a new file (mode 0600); an existing
/// file is never overwritten.
/// Returns the new key's fingerprint.
pub fn new_master_key_file(path: &Path) -> Result<String, StartupError> {
    let key = MasterKey::generate()?;
    key_files::write_private(path, key.encode().expose_secret().as_bytes())
        .map_err(|e| StartupError::Files(format!("{}: {e}", path.display())))?;
    Ok(key.fingerprint())
}

/// `alter keys rotate`: re-wraps every KEK and the MAC root of the configured database, held
/// by the configured key holder, under `to`, in one transaction checked before it commits.
/// Running nodes keep serving (they hold the KEKs unwrapped); nodes started afterwards need
/// `to`.
pub async fn rotate(
    config: &Config,
    env: impl Fn(&str) -> Option<String>,
    to: &dyn KeyHolder,
) -> Result<Rotated, StartupError> {
    let from = key_holder(config, env)?;
    let store = key_store(config).await?;
    let rotated =
        alter_core::vault::rotate_key_holder(&store, from.as_ref(), to, SystemClock.now())
            .await
            .map_err(|e| match e {
                alter_core::Error::Storage(StoreError::Conflict(why)) => StartupError::Database(
                    format!("{why}: another rotation ran at the same time; run it again"),
                ),
                other => crate::opening_failed(other),
            });
    let recorded = match &rotated {
        Ok(r) => {
            let detail = format!(
                "KEK versions {:?} now under {}",
                r.kek_versions, r.key_holder
            );
            record(&store, operator_action::KEY_HOLDER_ROTATED, detail).await
        }
        Err(_) => Ok(()),
    };
    store.close().await;
    recorded.and(rotated)
}

/// Records a key command's change as an operator event; it already committed, so a failure
/// says so rather than hiding it.
async fn record(store: &SqlStore, action: &str, detail: String) -> Result<(), StartupError> {
    record_key_command(store, SystemClock.now(), action, detail)
        .await
        .map_err(|e| {
            StartupError::Database(format!(
                "the change was made, but its operator event ({action}) was not recorded: {e}"
            ))
        })
}

/// `alter keys rotate-kek`: adds a KEK version, wrapped by the configured key holder; running
/// servers seal with it within seconds and re-wrap every data key under it in the background.
pub async fn add_kek(
    config: &Config,
    env: impl Fn(&str) -> Option<String>,
) -> Result<u32, StartupError> {
    let holder = key_holder(config, env)?;
    let store = key_store(config).await?;
    let added = kek_versions::add_kek_version(&store, holder.as_ref(), SystemClock.now()).await;
    let recorded = match &added {
        Ok(version) => {
            let detail = format!("added KEK v{version}");
            record(&store, operator_action::KEK_ADDED, detail).await
        }
        Err(_) => Ok(()),
    };
    store.close().await;
    let added = added.map_err(key_command_failed)?;
    recorded.map(|()| added)
}

/// `alter keys retire-kek`: deletes the KEK versions older than the newest once no sealed
/// value names them.
pub async fn retire_keks(
    config: &Config,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Retired, StartupError> {
    let holder = key_holder(config, env)?;
    let store = key_store(config).await?;
    let retired = kek_versions::retire_old_keks(&store, holder.as_ref(), SystemClock.now()).await;
    let recorded = match &retired {
        Ok(r) => {
            let detail = format!("deleted {} version(s) below KEK v{}", r.deleted, r.kept);
            record(&store, operator_action::KEKS_RETIRED, detail).await
        }
        Err(_) => Ok(()),
    };
    store.close().await;
    let retired = retired.map_err(key_command_failed)?;
    recorded.map(|()| retired)
}

/// `alter keys status`: the stored KEK versions and the re-wrap's progress.
pub async fn kek_status(config: &Config) -> Result<KekStatus, StartupError> {
    let store = key_store(config).await?;
    let status = kek_versions::kek_status(&store).await;
    store.close().await;
    status.map_err(key_command_failed)
}

fn key_command_failed(e: alter_core::Error) -> StartupError {
    match e {
        alter_core::Error::Storage(StoreError::Conflict(why)) => StartupError::Database(why),
        other => crate::opening_failed(other),
    }
}

/// The configured database, migrated, for the key commands. They append no audit event (their
/// changes are operator events, which are not chained), so the chain key the store is
/// connected with does not matter.
async fn key_store(config: &Config) -> Result<SqlStore, StartupError> {
    let store = SqlStore::connect(
        &config.database_url,
        &StoreOptions {
            max_connections: 2,
            ..StoreOptions::default()
        },
        alter_core::audit::ChainKey::derive(&MasterKey::generate()?),
    )
    .await
    .map_err(|e| StartupError::Database(e.to_string()))?;
    if let Err(e) = store.migrate().await {
        store.close().await;
        return Err(StartupError::Database(e.to_string()));
    }
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str, env: &[(&str, &str)]) -> Config {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::load(Some(file.path()), |k| {
            env.iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.clone())
        })
        .unwrap()
    }

    fn err(holder: Result<Arc<dyn KeyHolder>, StartupError>) -> String {
        match holder {
            Ok(holder) => panic!("accepted: {holder:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn transit_comes_from_the_file_or_the_environment() {
        let base = "database_url = \"sqlite://x.db\"\n";
        let from_file = config(
            &format!(
                "{base}[key_holder.transit]\naddress = \"http://127.0.0.1:8200\"\nkey = \"alter\"\n"
            ),
            &[(TRANSIT_TOKEN_ENV, "s.SECRET")],
        );
        let transit = from_file.key_holder.transit.as_ref().unwrap();
        assert_eq!(
            (transit.mount.as_str(), transit.key.as_str()),
            ("transit", "alter")
        );
        let holder = key_holder(&from_file, |k| {
            (k == TRANSIT_TOKEN_ENV).then(|| "s.SECRET".into())
        })
        .unwrap();
        assert!(holder.identity().contains("\"alter\""));
        assert!(!format!("{holder:?}{}", holder.identity()).contains("SECRET"));

        let from_env = config(
            base,
            &[
                (
                    "ALTER_KEY_HOLDER_TRANSIT_ADDRESS",
                    "https://bao.example.com",
                ),
                ("ALTER_KEY_HOLDER_TRANSIT_MOUNT", "kms/transit"),
                ("ALTER_KEY_HOLDER_TRANSIT_KEY", "k1"),
            ],
        );
        let transit = from_env.key_holder.transit.as_ref().unwrap();
        assert_eq!(transit.mount, "kms/transit");
        // No token anywhere: said clearly.
        let e = err(key_holder(&from_env, |_| None));
        assert!(
            e.contains("token_file") && e.contains(TRANSIT_TOKEN_ENV),
            "{e}"
        );
    }

    #[test]
    fn a_master_key_and_transit_together_are_refused() {
        let both = config(
            "database_url = \"sqlite://x.db\"\nmaster_key_file = \"/nonexistent\"\n[key_holder.transit]\naddress = \"http://h\"\nkey = \"k\"\n",
            &[],
        );
        let e = err(key_holder(&both, |_| Some("token".into())));
        assert!(e.contains("keep only the one"), "{e}");
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "database_url = \"sqlite://x.db\"\n[key_holder.transit]\naddress = \"http://h\"\nkey = \"k\"\ncolour = \"blue\"\n").unwrap();
        assert!(
            Config::load(Some(file.path()), |_| None).is_err(),
            "unknown keys are refused"
        );
    }

    #[test]
    fn a_new_master_key_file_is_private_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.key");
        let fingerprint = new_master_key_file(&path).unwrap();
        let key = key_files::read_master_key(&path).unwrap();
        assert_eq!(key.fingerprint(), fingerprint);
        assert!(new_master_key_file(&path).is_err());
        assert_eq!(
            key_files::read_master_key(&path).unwrap().fingerprint(),
            fingerprint
        );
    }
}
