//! `bazaar-worker` as an operator starts it: arguments it cannot use are
//! refused with a line that says which, before it connects anywhere.

use std::process::Command;

fn refusal(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_bazaar-worker"))
        .args(args)
        .env("BAZAAR_WORKER_TOKEN", "t")
        .output()
        .expect("run bazaar-worker");
    assert!(!out.status.success(), "{args:?} was accepted");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_server_that_is_not_a_websocket_url_is_refused() {
    let err = refusal(&["--server", "http://127.0.0.1:1"]);
    assert!(
        err.contains("--server must be a ws:// or wss:// URL, not http://127.0.0.1:1/"),
        "{err}"
    );
}

#[test]
fn slots_out_of_range_are_refused() {
    for slots in ["0", "257"] {
        let err = refusal(&["--server", "ws://127.0.0.1:1", "--slots", slots]);
        assert!(err.contains("--slots must be between 1 and 256"), "{err}");
    }
}

#[test]
fn a_missing_token_is_named() {
    let out = Command::new(env!("CARGO_BIN_EXE_bazaar-worker"))
        .args(["--server", "ws://127.0.0.1:1"])
        .env_remove("BAZAAR_WORKER_TOKEN")
        .output()
        .expect("run bazaar-worker");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--token"), "{err}");
}
