//! Starting and stopping a node: `Application` on a port it picks, stopped
//! through its handle, and a process whose every background task ends
//! before it exits. The handover itself (1001, workers draining) is in
//! chat.rs and worker_protocol.rs.

use std::time::{Duration, Instant};

use bazaar::config::Settings;
use bazaar::startup::Application;

use crate::helpers::{spawn_app, AppOptions, Backend};

#[actix_web::test]
async fn a_node_built_on_port_0_serves_on_the_port_it_reports_until_its_handle_stops_it() {
    // Arrange
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = Settings {
        data_dir: dir.path().to_path_buf(),
        ..Settings::default()
    };
    settings.server.bind = "127.0.0.1:0".into();
    settings.workers.local = 0;
    settings.crawl.every = Duration::ZERO;
    let app = Application::build(settings).await.expect("build");
    let port = app.port();
    let stop = app.stop_handle();
    let running = actix_web::rt::spawn(app.run_until_stopped());

    // Act
    let health = awc::Client::new()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .map(|resp| resp.status().as_u16());
    let asked = Instant::now();
    stop.stop();
    let stopped = tokio::time::timeout(Duration::from_secs(10), running).await;

    // Assert
    assert_ne!(port, 0, "the port the kernel picked");
    assert_eq!(health.ok(), Some(200));
    let stopped = stopped
        .expect("stopped within 10 s")
        .expect("did not panic");
    assert!(stopped.is_ok(), "{stopped:?}");
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "nothing to hand over, yet the stop took {:?}",
        asked.elapsed()
    );
}

#[actix_web::test]
async fn sigterm_stops_a_busy_mailer_and_notifier_and_the_process_exits_cleanly() {
    // Arrange: the Mailer and the Notifier query the database nonstop, so
    // the signal finds them mid-query.
    let mut app = spawn_app(
        Backend::Sqlite,
        AppOptions {
            env: vec![
                ("BAZAAR_MAIL__TICK".into(), "5ms".into()),
                ("BAZAAR_MAIL__NOTIFY_EVERY".into(), "5ms".into()),
            ],
            ..AppOptions::default()
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Act
    let exit = app.terminate(Duration::from_secs(10)).await;

    // Assert: exit 0 and nothing panicked on the way out, as a mid-query
    // database connection dropped with the runtime used to.
    let log = app.log();
    let status = exit.unwrap_or_else(|| panic!("still running 10 s after SIGTERM; log:\n{log}"));
    assert!(status.success(), "exit status {status}; log:\n{log}");
    assert!(!log.contains("panic"), "{log}");
    assert!(log.contains("every background task has stopped"), "{log}");
}
