//! `bazaar bench soak`, shortened: what an operator reads after the crawl
//! and the chat, from the real binary and the server it starts.

use std::collections::HashMap;
use std::process::{Command, Stdio};

/// Runs `bazaar bench soak ARGS`; (exit code, stdout, stderr).
fn soak(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_bazaar"))
        .args(["bench", "soak"])
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run bazaar bench soak");
    (
        output.status.code().expect("an exit code"),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The CSV line of the report, by its header's names.
fn csv(out: &str) -> HashMap<String, String> {
    let lines: Vec<&str> = out.lines().collect();
    let header = lines
        .iter()
        .position(|l| l.starts_with("pages,crawled,"))
        .unwrap_or_else(|| panic!("no CSV header in:\n{out}"));
    let values = lines
        .get(header + 1)
        .unwrap_or_else(|| panic!("no CSV line in:\n{out}"));
    let names = lines[header].split(',').map(str::to_owned);
    names.zip(values.split(',').map(str::to_owned)).collect()
}

#[test]
fn a_crawl_then_a_chat_leave_the_memory_flat_with_nothing_lost() {
    let (code, out, err) = soak(&[
        "--pages",
        "1000",
        "--duration",
        "20",
        "--sample-secs",
        "2",
        "--rate",
        "200",
    ]);

    assert_eq!(code, 0, "{out}{err}");
    let row = csv(&out);
    let number = |name: &str| -> i64 {
        row[name]
            .parse()
            .unwrap_or_else(|_| panic!("{name} is not a number in:\n{out}"))
    };
    // The crawl fetched every game page of the store.
    assert!(out.contains("crawl 1000 of 1000 game pages in "), "{out}");
    assert_eq!(number("crawled"), 1000, "{out}");
    // 200 messages a second for 20 s: the senders kept the pace (a few may
    // still be due at the end), and every member got every message, in
    // order.
    let sent = number("sent");
    assert!((3_800..=4_000).contains(&sent), "{out}");
    assert_eq!(number("delivered"), sent * 10, "{out}");
    assert_eq!(number("loss"), 0, "{out}");
    assert_eq!(number("seq_gaps"), 0, "{out}");
    // A progress line per sample, every 2 s to the end.
    let samples: Vec<&str> = err.lines().filter(|l| l.contains("  RSS ")).collect();
    assert_eq!(samples.len(), 10, "{err}");
    assert!(samples[9].trim_start().starts_with("20 s  sent "), "{err}");
    // Flat by the command's own rule: at most 4 MiB of growth over the
    // last 10 s (5 % of a debug server's ~50 MiB is less). In those 10 s
    // the server stores 2,000 messages and sends 20,000 frames; keeping
    // 256 bytes of each frame, or 2.5 KiB of each message, would pass
    // 4 MiB and read "growing", while a healthy server moved by about
    // 0.1 MiB there when this was written.
    assert_eq!(row["verdict"], "flat", "{out}{err}");
    assert!(
        out.contains("KiB): flat  database at the first chat sample "),
        "{out}"
    );
    assert!(number("second_half_growth_kib") <= 4096, "{out}");
}

#[test]
fn a_sample_interval_longer_than_half_the_chat_is_refused() {
    let (code, out, err) = soak(&["--duration", "20", "--sample-secs", "15"]);

    assert_ne!(code, 0, "{out}{err}");
    assert!(
        err.contains("--sample-secs (15) must be at most half of --duration (20)"),
        "{err}"
    );
    assert_eq!(out, "");
}
