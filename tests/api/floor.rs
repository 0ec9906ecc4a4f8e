//! `bazaar bench floor`, the bare broadcaster the cluster's figures are
//! compared with: `bench chat` measures it as it measures Bazaar, so it
//! must answer that load generator fully (every message numbered without a
//! gap and delivered to every member), alone and numbered through Redis.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::free_port;

/// A child process killed when dropped, so a failed assertion leaves
/// nothing running.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn floor(port: u16, redis: Option<u16>) -> Running {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bazaar"));
    cmd.args(["bench", "floor", "--bind", &format!("127.0.0.1:{port}")]);
    if let Some(redis) = redis {
        cmd.args(["--redis", &format!("redis://127.0.0.1:{redis}/")]);
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("start bazaar bench floor");
    wait_listening(port);
    Running(child)
}

/// `bench chat` against the server on `port`: its CSV line, by the
/// header's names.
fn chat(port: u16) -> HashMap<String, String> {
    let output = Command::new(env!("CARGO_BIN_EXE_bazaar"))
        .args([
            "bench",
            "chat",
            "--server",
            &format!("http://127.0.0.1:{port}"),
            "--rooms",
            "3",
            "--members",
            "4",
            "--rate",
            "40",
            "--duration",
            "2",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run bazaar bench chat");
    let out = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = out.lines().collect();
    let header = lines
        .iter()
        .position(|l| l.starts_with("rooms,members,"))
        .unwrap_or_else(|| panic!("no CSV header in:\n{out}"));
    lines[header]
        .split(',')
        .map(str::to_owned)
        .zip(lines[header + 1].split(',').map(str::to_owned))
        .collect()
}

fn number(row: &HashMap<String, String>, name: &str) -> u64 {
    row[name]
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a count in {row:?}"))
}

/// Every message said reached every member of its room, in seq order.
fn assert_complete(row: &HashMap<String, String>) {
    let sent = number(row, "sent");
    // 3 rooms, one sender each at 40/s for 2 s.
    assert!(sent >= 200, "only {sent} sent: {row:?}");
    assert_eq!(number(row, "acked"), sent, "{row:?}");
    assert_eq!(number(row, "deliveries"), sent * 4, "{row:?}");
    assert_eq!(number(row, "loss"), 0, "{row:?}");
    assert_eq!(number(row, "seq_gaps"), 0, "{row:?}");
}

#[test]
fn a_floor_broadcaster_alone_delivers_every_message_bench_chat_sends() {
    let port = free_port();
    let _floor = floor(port, None);
    assert_complete(&chat(port));
}

/// One command in Redis's wire protocol, and its reply.
fn redis_command(port: u16, command: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to redis");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    stream
        .write_all(format!("{command}\r\n").as_bytes())
        .expect("send the command");
    let mut reply = [0u8; 64];
    let n = stream.read(&mut reply).expect("read the reply");
    String::from_utf8_lossy(&reply[..n]).into_owned()
}

#[test]
fn a_floor_broadcaster_on_redis_numbers_there_and_delivers_what_it_publishes() {
    let redis_port = free_port();
    let dir = tempfile::tempdir().expect("a folder for redis");
    let _redis = Running(
        Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &redis_port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start redis-server (scripts/test installs it)"),
    );
    wait_listening(redis_port);
    let port = free_port();
    let _floor = floor(port, Some(redis_port));

    let row = chat(port);

    assert_complete(&row);
    // The members heard each message only through the Redis subscription,
    // and Redis gave out every seq.
    let rooms: u64 = (0..3)
        .map(|room| {
            let reply = redis_command(redis_port, &format!("GET floor:seq:chat:bench-{room}"));
            let count = reply
                .lines()
                .nth(1)
                .unwrap_or_else(|| panic!("no counter for room {room}: {reply:?}"));
            count.parse::<u64>().expect("a count")
        })
        .sum();
    assert_eq!(rooms, number(&row, "sent"), "{row:?}");
}
