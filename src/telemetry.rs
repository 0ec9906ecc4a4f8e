//! tracing set-up: human-readable logs by default, JSON with `--json-logs`.

use std::io::IsTerminal;

use tracing_subscriber::fmt;
use tracing_subscriber::prelude::*;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber. `RUST_LOG`, when set, wins over `filter`.
pub fn init(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(filter));
    let registry = tracing_subscriber::registry().with(filter);
    // Logs go to stderr so that stdout stays free for command output.
    let result = match format {
        LogFormat::Text => registry
            .with(
                fmt::layer()
                    .with_writer(std::io::stderr)
                    // Colours only on a terminal: log files stay greppable.
                    .with_ansi(std::io::stderr().is_terminal()),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(fmt::layer().json().with_writer(std::io::stderr))
            .try_init(),
    };
    if let Err(err) = result {
        eprintln!("logging was already set up: {err}");
    }
    log_panics();
}

/// Sends every panic to the log, in place of the default hook's line on
/// stderr: with JSON logs it is one event among the others, and a panic in
/// a supervised actor names the actor (`supervision`), which then restarts.
fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let panic = crate::supervision::panic_message(info.payload());
        let location = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
            .unwrap_or_default();
        let thread = std::thread::current();
        let thread = thread.name().unwrap_or("unnamed");
        // Captured only when RUST_BACKTRACE asks, as the default hook does.
        let backtrace = std::backtrace::Backtrace::capture();
        let backtrace = match backtrace.status() {
            std::backtrace::BacktraceStatus::Captured => backtrace.to_string(),
            _ => String::new(),
        };
        match crate::supervision::current() {
            Some(actor) => tracing::error!(
                actor = actor.as_str(),
                panic,
                location,
                thread,
                backtrace,
                "panic in an actor"
            ),
            None => tracing::error!(panic, location, thread, backtrace, "panic"),
        }
    }));
}
