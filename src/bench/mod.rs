//! `bazaar bench <scenario>`: load generators that measure Bazaar end to end
//! on loopback, like redis-benchmark. Figures belong here, not in timed tests.

pub mod crawl;
pub mod store;

use clap::{Args, Subcommand};

use crate::config::Settings;

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Crawl a generated store with 1, 2 and 4 local workers, with and
    /// without latency, and report pages and tasks per second.
    Crawl(crawl::CrawlBench),
}

pub async fn run(args: BenchArgs, _settings: &Settings) -> anyhow::Result<()> {
    match args.scenario {
        Scenario::Crawl(bench) => crawl::run(bench).await,
    }
}
