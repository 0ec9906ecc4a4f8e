//! Secrets that are generated into the data dir on first start when the
//! configuration does not give them. They are never logged.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use rand::Rng;

/// The files `load_or_create` keeps in the data dir: what a restored server
/// needs besides its database to keep sessions, links and workers valid.
pub const FILES: [&str; 3] = ["session_key", "worker_token", "api_token"];

/// The configured secret, else the one in `data_dir/name`, else a new one
/// written there (readable by the owner only).
pub fn load_or_create(
    configured: Option<&str>,
    data_dir: &Path,
    name: &str,
) -> anyhow::Result<String> {
    if let Some(secret) = configured.filter(|s| !s.is_empty()) {
        return Ok(secret.to_owned());
    }
    let path = data_dir.join(name);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim();
        if !existing.is_empty() {
            return Ok(existing.to_owned());
        }
    }
    let secret: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(40)
        .map(char::from)
        .collect();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&path)
        .with_context(|| format!("could not write {}", path.display()))?;
    writeln!(file, "{secret}").with_context(|| format!("could not write {}", path.display()))?;
    tracing::info!(file = %path.display(), "generated a new {name}");
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_secret_is_kept_across_starts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = load_or_create(None, dir.path(), "worker_token").expect("create");
        let second = load_or_create(None, dir.path(), "worker_token").expect("read");
        assert_eq!(first, second);
        assert_eq!(first.len(), 40);
        assert_eq!(
            load_or_create(Some("given"), dir.path(), "worker_token").expect("given"),
            "given"
        );
    }
}
