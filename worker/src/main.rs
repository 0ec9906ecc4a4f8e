//! `bazaar-worker`: a worker alone, for machines that only crawl. It takes
//! the same arguments as `bazaar worker`.

use clap::Parser;
use tracing_subscriber::EnvFilter;

use bazaar_worker::WorkerArgs;

#[derive(Parser)]
#[command(
    name = "bazaar-worker",
    version,
    about = "Takes scraping tasks from a Bazaar server and brings back prices."
)]
struct Cli {
    #[command(flatten)]
    worker: WorkerArgs,
    /// Log as JSON lines instead of text.
    #[arg(long)]
    json_logs: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // RUST_LOG, as any Rust program; the server's `log.filter` is for the
    // server's own modules.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    if cli.json_logs {
        logs.json().init();
    } else {
        logs.init();
    }
    let options = cli.worker.options()?;
    actix::System::new().block_on(bazaar_worker::run(options))
}
