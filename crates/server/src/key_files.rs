//! Secret files: the master key and the operator admin token. New files are created with mode
//! 0600; existing ones readable by group or others are refused.

use std::io::Write;
use std::path::Path;

use alter_crypto::{ExposeSecret, MasterKey, SecretString};

use crate::StartupError;

/// Reads a master key file.
pub fn read_master_key(path: &Path) -> Result<MasterKey, StartupError> {
    let text = read_private(path)?;
    MasterKey::from_encoded(text.expose_secret())
        .map_err(|e| StartupError::MasterKey(format!("{}: {e}", path.display())))
}

/// Shortest accepted admin token, whether from a file or the environment.
const MIN_ADMIN_TOKEN_LEN: usize = 32;

/// Reads an admin token file.
pub fn read_admin_token(path: &Path) -> Result<SecretString, StartupError> {
    let text = read_private(path)?;
    admin_token(text.expose_secret(), &path.display().to_string())
}

/// An admin token given as text (`origin` names where it came from, for the error), trimmed
/// and at least [`MIN_ADMIN_TOKEN_LEN`] characters long.
pub fn admin_token(text: &str, origin: &str) -> Result<SecretString, StartupError> {
    let token = text.trim();
    if token.len() < MIN_ADMIN_TOKEN_LEN {
        return Err(StartupError::AdminToken(format!(
            "{origin}: must be at least {MIN_ADMIN_TOKEN_LEN} characters"
        )));
    }
    Ok(SecretString::from(token.to_owned()))
}

/// `alter server init`: a new master key file and admin token file (mode 0600) in `dir`.
pub fn init_dir(dir: &Path) -> Result<(), StartupError> {
    let fail = |e: std::io::Error| StartupError::Files(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(fail)?;
    let key = MasterKey::generate()?;
    write_private(
        &dir.join("master.key"),
        key.encode().expose_secret().as_bytes(),
    )
    .map_err(fail)?;
    let token = alter_crypto::keys::mint_token("alter_admin_")?;
    write_private(&dir.join("admin.token"), token.expose_secret().as_bytes()).map_err(fail)?;
    Ok(())
}

/// Writes `contents` to a new file with mode 0600; fails if the file exists.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Reads a secret file, refusing one that group or others can read.
pub fn read_private(path: &Path) -> Result<SecretString, StartupError> {
    let fail = |why: String| StartupError::Files(format!("{}: {why}", path.display()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| fail(e.to_string()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(fail(format!(
                "permissions {:o} are too open; run chmod 600 on it",
                mode & 0o777
            )));
        }
    }
    std::fs::read_to_string(path)
        .map(SecretString::from)
        .map_err(|e| fail(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_files_round_trip_and_open_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let key = MasterKey::generate().unwrap();
        write_private(&path, key.encode().expose_secret().as_bytes()).unwrap();
        assert!(write_private(&path, b"again").is_err(), "never overwrites");
        read_master_key(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let e = read_master_key(&path).unwrap_err().to_string();
            assert!(e.contains("too open"), "{e}");
        }
    }
}
