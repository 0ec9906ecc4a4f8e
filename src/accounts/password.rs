//! argon2id password hashes (PHC strings, with their own salt and
//! parameters, so the parameters can be raised later without a migration).
//!
//! A hash takes tens of milliseconds of CPU and 19 MiB: the server computes
//! them through [`Passwords`], on blocking threads, a bounded number at once.

use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use tokio::sync::Semaphore;

pub fn hash(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("could not hash the password: {e}"))
}

/// Whether `password` matches `phc`. A malformed hash matches nothing.
pub fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Spends the time a real check would when the account does not exist, so
/// that timing does not tell which login names are taken.
pub fn verify_nothing(password: &str) {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let phc = DUMMY.get_or_init(|| hash("not a real password").unwrap_or_default());
    let _ = verify(password, phc);
}

/// Checks that may wait for a turn, per check computing at once: enough to
/// ride out a burst of logins, few enough that a flood is told to come back
/// within a second or two rather than queued for minutes.
pub const WAITING_PER_SLOT: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("the server is busy checking other passwords; try again in a moment")]
    Busy,
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// Hashes and checks passwords on tokio's blocking threads, never on the
/// threads that serve requests, `at_once` at a time; as many again times
/// [`WAITING_PER_SLOT`] wait their turn, and past that a caller gets
/// [`PasswordError::Busy`] at once.
pub struct Passwords {
    /// Checks computing now.
    running: Arc<Semaphore>,
    /// Checks computing or waiting to.
    admitted: Arc<Semaphore>,
}

impl Passwords {
    pub fn new(at_once: usize) -> Passwords {
        let at_once = at_once.max(1);
        Passwords {
            running: Arc::new(Semaphore::new(at_once)),
            admitted: Arc::new(Semaphore::new(at_once * (1 + WAITING_PER_SLOT))),
        }
    }

    /// Runs `work` on a blocking thread when its turn comes. The permits go
    /// with the work, not with the caller: a request dropped while its hash
    /// computes does not free a slot before the hash is done.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let admitted = self
            .admitted
            .clone()
            .try_acquire_owned()
            .map_err(|_| PasswordError::Busy)?;
        let running = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| PasswordError::Busy)?;
        tokio::task::spawn_blocking(move || {
            let done = work();
            drop((running, admitted));
            done
        })
        .await
        .map_err(|e| PasswordError::Failed(anyhow::anyhow!("the password check stopped: {e}")))
    }

    /// A new PHC string for `password`.
    pub async fn hash(&self, password: &str) -> Result<String, PasswordError> {
        let password = password.to_owned();
        self.run(move || hash(&password)).await?.map_err(Into::into)
    }

    /// Whether `password` matches `phc`; with no hash (no such account), as
    /// long a check that matches nothing.
    pub async fn verify(&self, password: &str, phc: Option<String>) -> Result<bool, PasswordError> {
        let password = password.to_owned();
        self.run(move || match phc {
            Some(phc) => verify(&password, &phc),
            None => {
                verify_nothing(&password);
                false
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_is_argon2id_and_checks_only_its_password() {
        let phc = hash("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(verify("correct horse", &phc));
        assert!(!verify("correct horse!", &phc));
        assert!(!verify("correct horse", "not a hash"));
        assert_ne!(phc, hash("correct horse").unwrap(), "salted");
    }

    #[actix_rt::test]
    async fn checks_past_the_waiting_line_are_refused_at_once_and_the_rest_complete() {
        // Arrange: one check at a time.
        let passwords = Arc::new(Passwords::new(1));
        let phc = hash("correct horse").unwrap();

        // Act: more checks at once than may run and wait.
        let checks: Vec<_> = (0..1 + WAITING_PER_SLOT + 3)
            .map(|_| {
                let (passwords, phc) = (passwords.clone(), phc.clone());
                actix_rt::spawn(async move { passwords.verify("correct horse", Some(phc)).await })
            })
            .collect();
        let mut outcomes = Vec::new();
        for check in checks {
            outcomes.push(check.await.unwrap());
        }

        // Assert
        let busy = outcomes
            .iter()
            .filter(|o| matches!(o, Err(PasswordError::Busy)))
            .count();
        let matched = outcomes.iter().filter(|o| matches!(o, Ok(true))).count();
        assert_eq!((matched, busy), (1 + WAITING_PER_SLOT, 3));
        assert!(passwords.verify("wrong", None).await.is_ok_and(|m| !m));
    }
}
