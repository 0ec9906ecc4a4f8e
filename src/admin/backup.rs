//! `bazaar admin backup` and `bazaar admin restore`: an online copy of the
//! SQLite database, with the secrets files of the data dir inside it, and
//! putting one back while no server runs.
//!
//! A backup is one SQLite file: the database as it was at one instant, plus
//! a table `backup_files` that holds the data dir's secrets files (the
//! session key, the worker and API tokens), which restore writes back and
//! then drops. One file is what an operator copies off the machine; the
//! secrets inside it are why the file is readable by its owner only.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sea_orm::sqlx::{self, ConnectOptions, Connection, SqliteConnection};

use crate::config::Settings;
use crate::db;
use crate::secrets;

/// The file in the data dir that every server holds a shared lock on while
/// it runs, and a restore an exclusive one: a restore never replaces a
/// database under a running server, and no server starts mid-restore.
pub const LOCK_FILE: &str = "bazaar.lock";

/// The table of a backup that carries the secrets files.
const FILES_TABLE: &str = "backup_files";

/// Tables whose row counts a backup and a restore report.
const COUNTED: [&str; 4] = ["messages", "games", "offers", "users"];

/// How long a backup's reading connection waits for a write lock it never
/// needs but SQLite may briefly take while it opens the log.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Takes the shared lock on `data_dir` for as long as the returned file
/// stays open, as a server does while it runs and a command that writes the
/// database (`migrate`, `admin prune`, `admin create-user`) while it does.
/// Several may share a data dir (the nodes of a cluster); only a restore
/// excludes them. `then` is what to do once a restore under way ends.
pub fn lock_shared(data_dir: &Path, then: &str) -> anyhow::Result<File> {
    let (path, file) = open_lock(data_dir)?;
    match try_flock(&file, libc::LOCK_SH) {
        Ok(true) => Ok(file),
        Ok(false) => bail!(
            "a restore is under way in {} (it holds {}); {then} once it has finished",
            data_dir.display(),
            path.display()
        ),
        Err(err) => Err(err).with_context(|| format!("could not lock {}", path.display())),
    }
}

/// flock(2) without waiting; `false` when another open file holds a lock
/// that excludes this one. The lock ends when the file is closed, however
/// the process ends, and a child process never inherits it (Rust opens
/// files close-on-exec).
fn try_flock(file: &File, operation: libc::c_int) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor stays open for as long as `file` lives.
    if unsafe { libc::flock(file.as_raw_fd(), operation | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    if err.kind() == std::io::ErrorKind::WouldBlock {
        Ok(false)
    } else {
        Err(err)
    }
}

fn open_lock(data_dir: &Path) -> anyhow::Result<(PathBuf, File)> {
    let path = data_dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("could not open {}", path.display()))?;
    Ok((path, file))
}

/// What a backup wrote.
#[derive(Debug)]
pub struct Backup {
    pub file: PathBuf,
    pub bytes: u64,
    pub took: Duration,
    pub counts: Vec<(&'static str, i64)>,
    pub secrets: Vec<String>,
}

impl std::fmt::Display for Backup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "wrote {} ({} bytes) in {:.2}s",
            self.file.display(),
            self.bytes,
            self.took.as_secs_f64()
        )?;
        for (table, rows) in &self.counts {
            writeln!(f, "  {table}: {rows}")?;
        }
        if self.secrets.is_empty() {
            writeln!(
                f,
                "  no secrets files in the data dir (a secret set in the configuration is not one)"
            )
        } else {
            writeln!(f, "  secrets files: {}", self.secrets.join(", "))
        }
    }
}

/// `bazaar admin backup FILE`: copies the running database into FILE.
///
/// The copy is `VACUUM INTO` on a connection of its own rather than SQLite's
/// online backup API: it reads the whole database in one read transaction,
/// which in WAL mode is a consistent snapshot that makes no writer wait, and
/// it finishes however busy the server is. The backup API copies in steps
/// and starts over whenever another connection writes, which on a server
/// storing chat every few milliseconds may be forever; copied in one step it
/// would hold the same read transaction as `VACUUM INTO`, and sqlx does not
/// expose it. The copy is also compact: no free pages, no log.
pub async fn backup(settings: &Settings, file: &Path, force: bool) -> anyhow::Result<Backup> {
    let started = Instant::now();
    let url = settings.database_url();
    let Some(database) = sqlite_path(&url) else {
        bail!(
            "bazaar admin backup is for SQLite, and database.url is {}.\n\
             Back up PostgreSQL with pg_dump (the password from PGPASSWORD or ~/.pgpass):\n  \
             pg_dump -Fc -f {} '{}'\n\
             and copy the secrets files of the data dir ({}) beside it: {}",
            db::redact(&url),
            file.display(),
            db::redact(&url),
            settings.data_dir.display(),
            secrets::FILES.join(", ")
        );
    };
    if !database.is_file() {
        bail!("there is no database at {}", database.display());
    }
    if file.exists() {
        if same_file(file, &database) {
            bail!("{} is the database itself", file.display());
        }
        if !force {
            bail!("{} exists; pass --force to replace it", file.display());
        }
    }
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            bail!("there is no directory {} to write into", dir.display());
        }
    }
    let partial = Partial::beside(file)?;

    let mut live = SqliteConnectOptions::new()
        .filename(&database)
        .create_if_missing(false)
        .busy_timeout(BUSY_TIMEOUT)
        .disable_statement_logging()
        .connect()
        .await
        .with_context(|| format!("could not open the database at {}", database.display()))?;
    sqlx::query("VACUUM INTO ?")
        .bind(partial.path.to_string_lossy().into_owned())
        .execute(&mut live)
        .await
        .with_context(|| {
            format!(
                "could not copy the database into {}",
                partial.path.display()
            )
        })?;
    live.close().await.ok();

    // A backup is a file on its own: a rollback journal, never a log beside it.
    let mut copy = open_file(&partial.path, SqliteJournalMode::Delete).await?;
    let secrets = store_secrets(&mut copy, &settings.data_dir).await?;
    let counts = counts(&mut copy).await?;
    copy.close().await.ok();

    let bytes = partial.finish(file)?;
    Ok(Backup {
        file: file.to_owned(),
        bytes,
        took: started.elapsed(),
        counts,
        secrets,
    })
}

/// What a restore did.
#[derive(Debug)]
pub struct Restore {
    pub from: PathBuf,
    pub database: PathBuf,
    /// Where the database it replaced went, if there was one.
    pub previous: Option<PathBuf>,
    pub counts: Vec<(&'static str, i64)>,
    pub secrets: Vec<String>,
    /// Secrets files that were replaced, where they went.
    pub previous_secrets: Vec<PathBuf>,
}

impl std::fmt::Display for Restore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "restored {} into {}",
            self.from.display(),
            self.database.display()
        )?;
        for (table, rows) in &self.counts {
            writeln!(f, "  {table}: {rows}")?;
        }
        match &self.previous {
            Some(previous) => writeln!(f, "the previous database is now {}", previous.display())?,
            None => writeln!(f, "there was no database before")?,
        }
        if self.secrets.is_empty() {
            writeln!(
                f,
                "the backup holds no secrets files: the data dir keeps its own"
            )?;
        } else {
            writeln!(f, "secrets files restored: {}", self.secrets.join(", "))?;
        }
        for previous in &self.previous_secrets {
            writeln!(f, "the replaced secrets file is now {}", previous.display())?;
        }
        Ok(())
    }
}

/// `bazaar admin restore FILE`: puts a backup in place of the database,
/// while no server runs on the data dir. FILE is checked before anything is
/// touched; the database it replaces is renamed, never deleted.
pub async fn restore(settings: &Settings, file: &Path) -> anyhow::Result<Restore> {
    let url = settings.database_url();
    let Some(database) = sqlite_path(&url) else {
        bail!(
            "bazaar admin restore is for SQLite, and database.url is {}.\n\
             Restore PostgreSQL with pg_restore, the servers stopped:\n  \
             pg_restore --clean --if-exists -d '{}' {}\n\
             and put the secrets files back into the data dir ({}): {}",
            db::redact(&url),
            db::redact(&url),
            file.display(),
            settings.data_dir.display(),
            secrets::FILES.join(", ")
        );
    };
    let data_dir = &settings.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("could not create {}", data_dir.display()))?;
    let _lock = lock_for_restore(data_dir)?;
    check_backup(file).await?;

    let staged = Partial::beside(&database)?;
    std::fs::copy(file, &staged.path).with_context(|| {
        format!(
            "could not copy {} to {}",
            file.display(),
            staged.path.display()
        )
    })?;
    let mut copy = open_file(&staged.path, SqliteJournalMode::Delete).await?;
    let files = take_secrets(&mut copy).await?;
    let counts = counts(&mut copy).await?;
    copy.close().await.ok();

    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ").to_string();
    let previous = move_aside(&database, &stamp)?;
    let mut secrets = Vec::new();
    let mut previous_secrets = Vec::new();
    for (name, content) in files {
        let path = data_dir.join(&name);
        match std::fs::read(&path) {
            Ok(current) if current == content => {}
            Ok(_) => {
                let aside = aside_name(&path, &stamp);
                rename(&path, &aside)?;
                previous_secrets.push(aside);
                write_private(&path, &content)?;
            }
            Err(_) => write_private(&path, &content)?,
        }
        secrets.push(name);
    }
    staged.finish(&database)?;
    Ok(Restore {
        from: file.to_owned(),
        database,
        previous,
        counts,
        secrets,
        previous_secrets,
    })
}

/// Takes the exclusive lock on `data_dir`, which fails while a server runs.
fn lock_for_restore(data_dir: &Path) -> anyhow::Result<File> {
    let (path, file) = open_lock(data_dir)?;
    match try_flock(&file, libc::LOCK_EX) {
        Ok(true) => Ok(file),
        Ok(false) => bail!(
            "a server is running on {} (it holds {}); stop it before restoring",
            data_dir.display(),
            path.display()
        ),
        Err(err) => Err(err).with_context(|| format!("could not lock {}", path.display())),
    }
}

/// Fails unless `file` is a sound SQLite database that Bazaar wrote with
/// migrations this build knows. Reads it without writing anything, not
/// even a lock.
async fn check_backup(file: &Path) -> anyhow::Result<()> {
    if !file.is_file() {
        bail!("there is no file {}", file.display());
    }
    let not_sqlite = || format!("{} is not a SQLite database", file.display());
    let mut conn = SqliteConnectOptions::new()
        .filename(file)
        .read_only(true)
        .immutable(true)
        .disable_statement_logging()
        .connect()
        .await
        .with_context(not_sqlite)?;
    let problems: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut conn)
        .await
        .with_context(not_sqlite)?;
    if problems != ["ok"] {
        bail!(
            "{} is damaged (PRAGMA integrity_check): {}",
            file.display(),
            problems.join("; ")
        );
    }
    let versions: Vec<String> = sqlx::query_scalar("SELECT version FROM seaql_migrations")
        .fetch_all(&mut conn)
        .await
        .with_context(|| {
            format!(
                "{} is a SQLite database but not Bazaar's: it has no migrations table",
                file.display()
            )
        })?;
    conn.close().await.ok();
    let known: Vec<String> = Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    if versions.is_empty() {
        bail!(
            "{} is not a Bazaar database: no migration has run on it",
            file.display()
        );
    }
    let unknown: Vec<&String> = versions.iter().filter(|v| !known.contains(v)).collect();
    if !unknown.is_empty() {
        bail!(
            "{} was written by a newer Bazaar (migrations this build does not know: {})",
            file.display(),
            unknown
                .iter()
                .map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

/// Opens a database file of our own (a backup being written or restored).
async fn open_file(path: &Path, journal: SqliteJournalMode) -> anyhow::Result<SqliteConnection> {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .journal_mode(journal)
        .disable_statement_logging()
        .connect()
        .await
        .with_context(|| format!("could not open {}", path.display()))
}

/// Copies the secrets files of `data_dir` into the backup; their names.
async fn store_secrets(
    copy: &mut SqliteConnection,
    data_dir: &Path,
) -> anyhow::Result<Vec<String>> {
    sqlx::query(&format!(
        "CREATE TABLE {FILES_TABLE} (name TEXT PRIMARY KEY, content BLOB NOT NULL)"
    ))
    .execute(&mut *copy)
    .await
    .context("could not add the secrets files to the backup")?;
    let mut names = Vec::new();
    for name in secrets::FILES {
        let path = data_dir.join(name);
        let content = match std::fs::read(&path) {
            Ok(content) => content,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(err) => {
                return Err(err).with_context(|| format!("could not read {}", path.display()))
            }
        };
        sqlx::query(&format!(
            "INSERT INTO {FILES_TABLE} (name, content) VALUES (?, ?)"
        ))
        .bind(name)
        .bind(content)
        .execute(&mut *copy)
        .await
        .context("could not add the secrets files to the backup")?;
        names.push(name.to_owned());
    }
    Ok(names)
}

/// Reads the secrets files out of a backup being restored and drops their
/// table, so that the restored database is the server's own again. A copy
/// of a database made otherwise has none.
async fn take_secrets(copy: &mut SqliteConnection) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let exists: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?")
            .bind(FILES_TABLE)
            .fetch_one(&mut *copy)
            .await?;
    if exists == 0 {
        return Ok(Vec::new());
    }
    let files: Vec<(String, Vec<u8>)> =
        sqlx::query_as(&format!("SELECT name, content FROM {FILES_TABLE}"))
            .fetch_all(&mut *copy)
            .await?;
    // Only names a server reads: a crafted backup must not write elsewhere.
    if let Some((name, _)) = files
        .iter()
        .find(|(name, _)| !secrets::FILES.contains(&name.as_str()))
    {
        bail!("the backup holds a file {name:?}, which is not a secrets file of Bazaar");
    }
    sqlx::query(&format!("DROP TABLE {FILES_TABLE}"))
        .execute(&mut *copy)
        .await?;
    Ok(files)
}

async fn counts(conn: &mut SqliteConnection) -> anyhow::Result<Vec<(&'static str, i64)>> {
    let mut counts = Vec::new();
    for table in COUNTED {
        let rows: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&mut *conn)
            .await
            .with_context(|| format!("could not count the {table}"))?;
        counts.push((table, rows));
    }
    Ok(counts)
}

/// Renames the database and its log to `NAME.before-restore-STAMP` (a log
/// holds commits not yet copied into the database: the renamed pair is the
/// whole database) and removes its shared-memory index, which SQLite
/// rebuilds. `None` when there was no database.
fn move_aside(database: &Path, stamp: &str) -> anyhow::Result<Option<PathBuf>> {
    let with = |path: &Path, suffix: &str| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    let aside = aside_name(database, stamp);
    let existed = database.exists();
    if existed {
        rename(database, &aside)?;
    }
    for suffix in ["-wal", "-journal"] {
        let stale = with(database, suffix);
        if stale.exists() {
            rename(&stale, &with(&aside, suffix))?;
        }
    }
    let shm = with(database, "-shm");
    match std::fs::remove_file(&shm) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(err).with_context(|| format!("could not remove {}", shm.display())),
    }
    Ok(existed.then_some(aside))
}

fn aside_name(path: &Path, stamp: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".before-restore-{stamp}"));
    PathBuf::from(name)
}

fn rename(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::rename(from, to)
        .with_context(|| format!("could not rename {} to {}", from.display(), to.display()))
}

/// Writes `content` to `path` (owner-only), whole or not at all.
fn write_private(path: &Path, content: &[u8]) -> anyhow::Result<()> {
    let partial = Partial::beside(path)?;
    std::fs::write(&partial.path, content)
        .with_context(|| format!("could not write {}", partial.path.display()))?;
    partial.finish(path)?;
    Ok(())
}

/// A file being written beside its final name, removed unless it gets there.
struct Partial {
    path: PathBuf,
    done: bool,
}

impl Partial {
    fn beside(target: &Path) -> anyhow::Result<Partial> {
        let name = target
            .file_name()
            .with_context(|| format!("{} is not a file name", target.display()))?;
        let mut partial = std::ffi::OsString::from(".");
        partial.push(name);
        partial.push(format!(".partial-{}", std::process::id()));
        let path = target.with_file_name(partial);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => {
                return Err(err).with_context(|| format!("could not remove {}", path.display()))
            }
        }
        Ok(Partial { path, done: false })
    }

    /// Makes it owner-only, flushes it to disk and renames it to `target`;
    /// its size.
    fn finish(mut self, target: &Path) -> anyhow::Result<u64> {
        let file = File::open(&self.path)
            .with_context(|| format!("could not open {}", self.path.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("could not restrict {}", self.path.display()))?;
        }
        file.sync_all()
            .with_context(|| format!("could not flush {}", self.path.display()))?;
        let bytes = file.metadata()?.len();
        rename(&self.path, target)?;
        self.done = true;
        // The rename is durable once the directory is.
        let dir = match target.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        if let Ok(dir) = File::open(dir) {
            dir.sync_all().ok();
        }
        Ok(bytes)
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Whether two paths name one file.
fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The file of a `sqlite:` URL; `None` for any other database.
fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or(rest);
    Some(PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_of_a_sqlite_url() {
        assert_eq!(
            sqlite_path("sqlite://data/bazaar.db?mode=rwc"),
            Some(PathBuf::from("data/bazaar.db"))
        );
        assert_eq!(
            sqlite_path("sqlite:///srv/bazaar/bazaar.db"),
            Some(PathBuf::from("/srv/bazaar/bazaar.db"))
        );
        assert_eq!(sqlite_path("postgres://bazaar@db/bazaar"), None);
    }

    #[test]
    fn a_server_and_a_restore_exclude_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let server = lock_shared(dir.path(), "start the server").unwrap();
        let sibling = lock_shared(dir.path(), "start the server").unwrap();
        let refused = lock_for_restore(dir.path()).unwrap_err().to_string();
        assert!(refused.contains("a server is running"), "{refused}");
        drop((server, sibling));
        let restore = lock_for_restore(dir.path()).unwrap();
        let refused = lock_shared(dir.path(), "start the server")
            .unwrap_err()
            .to_string();
        assert!(refused.contains("a restore is under way"), "{refused}");
        drop(restore);
    }
}
