//! `bazaar admin backup` and `bazaar admin restore`: a backup taken while the
//! server chats and crawls holds everything committed before it began, and
//! a restore never runs under a server, never takes a file that is not a
//! Bazaar database, and never loses the database it replaces.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use sea_orm::{ConnectionTrait, Database, Statement};

use crate::chat_client::ChatClient;
use crate::helpers::{run_bazaar, spawn_app, spawn_store, AppOptions, Backend, TestApp};

const SECRETS: [&str; 3] = ["session_key", "worker_token", "api_token"];

/// Runs `bazaar admin ARGS` on `app`'s data dir; (exit code, stdout, stderr).
fn admin(app: &TestApp, args: &[&str]) -> (i32, String, String) {
    admin_with(&app.env_vars(), args)
}

fn admin_with(env: &[(String, String)], args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_bazaar"))
        .arg("admin")
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .output()
        .expect("run bazaar admin");
    (
        output.status.code().expect("an exit code"),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The texts and seqs of a room's stored messages, as the history API
/// gives them (the rooms here hold fewer than one page).
async fn history(app: &TestApp, room: &str) -> Vec<(u64, String)> {
    let (status, body) = app
        .get_json(&format!("/api/rooms/{room}/messages?limit=200"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["has_more"], false, "{body}");
    body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            (
                m["seq"].as_u64().expect("seq"),
                m["text"].as_str().expect("text").to_owned(),
            )
        })
        .collect()
}

fn secrets_of(dir: &Path) -> Vec<String> {
    SECRETS
        .iter()
        .map(|name| std::fs::read_to_string(dir.join(name)).expect("a secrets file"))
        .collect()
}

/// The files of `dir` whose names contain `part`.
fn files_named(dir: &Path, part: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.contains(part))
        .collect();
    names.sort();
    names
}

#[actix_web::test]
async fn a_backup_taken_during_chat_and_a_crawl_restores_everything_committed_before_it() {
    // Arrange: a crawl of a slow store under way, and a room with history.
    // Long enough to outlast the test's chat and backup: 720 pages, four
    // at a time, 40 ms each.
    let store = spawn_store(80, 8, Duration::from_millis(40));
    let app = spawn_app(
        Backend::Sqlite,
        AppOptions {
            sites: Some(store.sites(4)),
            // Ana talks as fast as the replies come back.
            env: vec![
                ("BAZAAR_WS__BURST".into(), "100000".into()),
                ("BAZAAR_WS__RATE".into(), "100000".into()),
            ],
            ..Default::default()
        },
    )
    .await;
    let _worker = app.spawn_worker("a", 4, &[]);
    let crawl = app.start_crawl().await;
    app.wait_done(crawl, 30).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while app.count("SELECT COUNT(*) FROM offers").await == 0 {
        assert!(std::time::Instant::now() < deadline, "no offer stored");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut ana = ChatClient::connect(&app, Some("ana")).await.expect("ana");
    ana.join("chat:backup", None).await;
    let mut said = Vec::new();
    for i in 1..=40 {
        let text = format!("message {i}");
        ana.say("chat:backup", &text).await;
        said.push(text);
    }
    let before = said.len();
    // Each reply came after its commit; these offers are committed too.
    let offers = app
        .rows("SELECT game_id, store, price_cents FROM offers ORDER BY id")
        .await;
    let (_, report) = app.get_json(&format!("/api/crawls/{crawl}")).await;
    assert_eq!(report["status"], "running", "{report}");
    let out = tempfile::tempdir().expect("temp dir");
    let file = out.path().join("bazaar-backup.db");

    // Act: the backup runs while ana keeps talking and the crawl goes on.
    let mut backup = tokio::process::Command::new(env!("CARGO_BIN_EXE_bazaar"))
        .args(["admin", "backup"])
        .arg(&file)
        .envs(app.env_vars())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start bazaar admin backup");
    while backup.try_wait().expect("backup status").is_none() || said.len() < before + 5 {
        let text = format!("message {}", said.len() + 1);
        ana.say("chat:backup", &text).await;
        said.push(text);
    }
    let output = backup.wait_with_output().await.expect("backup output");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (_, report) = app.get_json(&format!("/api/crawls/{crawl}")).await;
    assert_eq!(report["status"], "running", "{report}");

    // Assert: it says what it wrote.
    let size = std::fs::metadata(&file).expect("the backup").len();
    assert!(
        stdout.contains(&format!("wrote {} ({size} bytes) in ", file.display())),
        "{stdout}"
    );
    for table in ["messages", "games", "offers", "users"] {
        assert!(stdout.contains(&format!("  {table}: ")), "{stdout}");
    }
    assert!(
        stdout.contains("secrets files: session_key, worker_token, api_token"),
        "{stdout}"
    );
    assert_eq!(files_named(out.path(), ""), ["bazaar-backup.db"]);

    // Act: restore it into another data dir and serve it there.
    let mut restored = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    restored
        .terminate(Duration::from_secs(20))
        .await
        .expect("the second server stops");
    let (code, stdout, stderr) = admin(&restored, &["restore", file.to_str().expect("path")]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    restored.start().await;

    // Assert: every message committed before the backup began is there, and
    // what the backup caught of the rest is an unbroken run after them.
    let messages = history(&restored, "backup").await;
    assert!(messages.len() >= before, "{messages:?}");
    for (i, (seq, text)) in messages.iter().enumerate() {
        assert_eq!(*seq, i as u64 + 1, "{messages:?}");
        assert_eq!(text, &said[i], "{messages:?}");
    }
    // Every offer stored before the backup, as the API shows it.
    for offer in &offers {
        let (game, store, price) = (&offer[0], &offer[1], &offer[2]);
        let (status, detail) = restored.get_json(&format!("/api/games/{game}")).await;
        assert_eq!(status, 200, "game {game}: {detail}");
        let found = detail["offers"]
            .as_array()
            .and_then(|o| o.iter().find(|o| o["store"] == store.as_str()))
            .unwrap_or_else(|| panic!("game {game} has no {store} offer: {detail}"));
        assert_eq!(found["price_cents"].to_string(), *price, "{detail}");
    }
    // The secrets came with it: the first server's API token is the one
    // accepted (the crawl it sees is the one the backup caught running),
    // and the token this data dir had before is not.
    assert_eq!(secrets_of(restored.dir.path()), secrets_of(app.dir.path()));
    for (token, expected) in [(&app.api_token, 409), (&restored.api_token, 401)] {
        let mut resp = restored
            .client
            .post(format!("{}/api/crawls", restored.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("POST /api/crawls");
        let body = resp.body().await.expect("body");
        assert_eq!(resp.status().as_u16(), expected, "{body:?}");
        if expected == 409 {
            let running = format!("crawl {crawl} is still running");
            assert!(
                String::from_utf8_lossy(&body).contains(&running),
                "{body:?}"
            );
        }
    }
}

#[actix_web::test]
async fn a_restore_refuses_a_running_server_and_foreign_files_and_keeps_the_database() {
    // Arrange: a backup between two messages.
    let mut app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let mut ana = ChatClient::connect(&app, Some("ana")).await.expect("ana");
    ana.join("chat:keep", None).await;
    ana.say("chat:keep", "in the backup").await;
    let out = tempfile::tempdir().expect("temp dir");
    let file = out.path().join("backup.db");
    let file = file.to_str().expect("path");
    let (code, stdout, stderr) = admin(&app, &["backup", file]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    ana.say("chat:keep", "after the backup").await;
    let data = app.dir.path().to_owned();

    // Act + Assert: refused while the server runs, which goes on serving.
    let (code, _, stderr) = admin(&app, &["restore", file]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!(
            "a server is running on {} (it holds {}); stop it before restoring",
            data.display(),
            data.join("bazaar.lock").display()
        )),
        "{stderr}"
    );
    let both = ["in the backup", "after the backup"];
    let texts = |m: Vec<(u64, String)>| m.into_iter().map(|(_, t)| t).collect::<Vec<_>>();
    assert_eq!(texts(history(&app, "keep").await), both);
    drop(ana);
    app.terminate(Duration::from_secs(20))
        .await
        .expect("the server stops");

    // Refused: a file that is not a database, and a database not Bazaar's.
    let junk = out.path().join("notes.txt");
    std::fs::write(&junk, "not a database\n").expect("write");
    let (code, _, stderr) = admin(&app, &["restore", junk.to_str().expect("path")]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!("{} is not a SQLite database", junk.display())),
        "{stderr}"
    );
    let other = out.path().join("other.db");
    let db = Database::connect(format!("sqlite://{}?mode=rwc", other.display()).as_str())
        .await
        .expect("create another database");
    db.execute_unprepared("CREATE TABLE notes (text TEXT)")
        .await
        .expect("a table");
    db.close().await.expect("close");
    let (code, _, stderr) = admin(&app, &["restore", other.to_str().expect("path")]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!(
            "{} is a SQLite database but not Bazaar's: it has no migrations table",
            other.display()
        )),
        "{stderr}"
    );
    let (code, _, stderr) = admin(&app, &["restore", "/nonexistent/backup.db"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("there is no file /nonexistent/backup.db"),
        "{stderr}"
    );
    assert!(files_named(&data, "before-restore").is_empty());
    assert!(files_named(&data, "partial").is_empty());
    app.start().await;
    assert_eq!(texts(history(&app, "keep").await), both);
    app.terminate(Duration::from_secs(20))
        .await
        .expect("the server stops");

    // Act: the backup itself.
    let (code, stdout, stderr) = admin(&app, &["restore", file]);

    // Assert: the backup's messages are served, and the database it
    // replaced is kept beside it, with the message the backup did not have.
    assert_eq!(code, 0, "{stdout}{stderr}");
    // The database, and its log if it had one, under one new name.
    let aside = files_named(&data, "bazaar.db.before-restore-");
    assert!(!aside.is_empty(), "nothing was moved aside: {stdout}");
    assert!(
        aside[1..]
            .iter()
            .all(|name| *name == format!("{}-wal", aside[0])),
        "{aside:?}"
    );
    assert!(
        stdout.contains(&format!(
            "the previous database is now {}",
            data.join(&aside[0]).display()
        )),
        "{stdout}"
    );
    assert!(files_named(&data, "partial").is_empty());
    app.start().await;
    assert_eq!(texts(history(&app, "keep").await), ["in the backup"]);
    let kept =
        Database::connect(format!("sqlite://{}?mode=ro", data.join(&aside[0]).display()).as_str())
            .await
            .expect("open the database moved aside");
    let row = kept
        .query_one(Statement::from_string(
            kept.get_database_backend(),
            "SELECT COUNT(*) FROM messages WHERE text = 'after the backup'",
        ))
        .await
        .expect("query")
        .expect("a row");
    assert_eq!(row.try_get_by_index::<i64>(0).expect("count"), 1);
}

#[actix_web::test]
async fn a_backup_never_overwrites_a_file_without_force() {
    // Arrange
    let app = spawn_app(Backend::Sqlite, AppOptions::default()).await;
    let out = tempfile::tempdir().expect("temp dir");
    let file = out.path().join("backup.db");
    std::fs::write(&file, "an older backup").expect("write");
    let path = file.to_str().expect("path");

    // Act + Assert: refused, the file as it was, nothing left beside it.
    let (code, _, stderr) = admin(&app, &["backup", path]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!("{path} exists; pass --force to replace it")),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&file).expect("read"),
        "an older backup"
    );
    assert_eq!(files_named(out.path(), ""), ["backup.db"]);

    // A directory that is not there is named.
    let missing = out.path().join("missing").join("backup.db");
    let (code, _, stderr) = admin(&app, &["backup", missing.to_str().expect("path")]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!(
            "there is no directory {} to write into",
            out.path().join("missing").display()
        )),
        "{stderr}"
    );

    // With --force it is replaced by a database.
    let (code, stdout, stderr) = admin(&app, &["backup", "--force", path]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains(&format!("wrote {path} (")), "{stdout}");
    let bytes = std::fs::read(&file).expect("read");
    assert!(bytes.starts_with(b"SQLite format 3\0"));
    assert_eq!(files_named(out.path(), ""), ["backup.db"]);
}

#[test]
fn on_postgresql_backup_and_restore_name_pg_dump_and_pg_restore() {
    let data = tempfile::tempdir().expect("temp dir");
    let env = vec![
        (
            "BAZAAR_DATA_DIR".to_owned(),
            data.path().display().to_string(),
        ),
        (
            "BAZAAR_DATABASE__URL".to_owned(),
            "postgres://bazaar:hunter2@db.internal:5432/bazaar".to_owned(),
        ),
    ];

    let (code, _, stderr) = admin_with(&env, &["backup", "/backups/bazaar.dump"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("bazaar admin backup is for SQLite"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
    assert!(
        stderr.contains(
            "pg_dump -Fc -f /backups/bazaar.dump 'postgres://bazaar:***@db.internal:5432/bazaar'"
        ),
        "{stderr}"
    );
    let (code, _, stderr) = admin_with(&env, &["restore", "/backups/bazaar.dump"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(
            "pg_restore --clean --if-exists -d 'postgres://bazaar:***@db.internal:5432/bazaar' /backups/bazaar.dump"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

/// Runs `bazaar ARGS` with `dir` as the data dir and `stdin` as its input;
/// (exit code, stderr).
fn bazaar_in(dir: &Path, args: &[&str], stdin: &str) -> (i32, String) {
    let env = [("BAZAAR_DATA_DIR".to_owned(), dir.display().to_string())];
    let output = run_bazaar(args, &env, stdin);
    (
        output.status.code().expect("an exit code"),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn commands_that_write_the_database_wait_out_a_restore() {
    // Arrange: a migrated data dir, and its lock held as a restore holds it.
    let dir = tempfile::tempdir().expect("a data dir");
    assert_eq!(bazaar_in(dir.path(), &["migrate"], "").0, 0);
    let lock = std::fs::File::open(dir.path().join("bazaar.lock")).expect("the lock file");
    {
        use std::os::fd::AsRawFd;
        // SAFETY: the descriptor stays open while `lock` lives.
        let held = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        assert_eq!(held, 0, "no one else holds the lock");
    }

    // Act
    let refused = [
        bazaar_in(dir.path(), &["migrate"], ""),
        bazaar_in(dir.path(), &["admin", "prune"], ""),
        bazaar_in(
            dir.path(),
            &["admin", "create-user", "root", "--admin"],
            "a long password\n",
        ),
    ];
    drop(lock);
    let after = bazaar_in(
        dir.path(),
        &["admin", "create-user", "root", "--admin"],
        "a long password\n",
    );

    // Assert: each was refused with the reason and what to do, and ran
    // once the restore had ended.
    for ((code, stderr), command) in
        refused
            .iter()
            .zip(["migrate", "admin prune", "admin create-user"])
    {
        assert_ne!(*code, 0, "{command}: {stderr}");
        assert!(
            stderr.contains("a restore is under way")
                && stderr.contains(&format!("run `bazaar {command}` once it has finished")),
            "{command}: {stderr}"
        );
    }
    assert_eq!(after.0, 0, "{}", after.1);
}
