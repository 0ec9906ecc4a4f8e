//! The `bazaar` command: serve (the default), worker, migrate, bench, chat,
//! admin, sites.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use url::Url;

use bazaar::accounts::{check_new_password, store, LoginName};
use bazaar::admin::backup;
use bazaar::chat_cli::{ChatOptions, StunServer};
use bazaar::config::{LogFormat, Settings};
use bazaar::domain::user_name::UserName;
use bazaar::protocol::worker::TaskKind;
use bazaar::sites_cli::{self, CheckOptions};
use bazaar::worker::WorkerArgs;
use bazaar::{chat_cli, db, startup, telemetry, worker};
use bazaar_bench as bench;

#[derive(Parser)]
#[command(
    name = "bazaar",
    version,
    about = "Game prices from many stores, chat and auction rooms."
)]
struct Cli {
    /// The configuration file (optional; BAZAAR_* variables override it).
    #[arg(
        long,
        global = true,
        default_value = "bazaar.toml",
        env = "BAZAAR_CONFIG"
    )]
    config: PathBuf,
    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    json_logs: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve {
        /// Listen here instead of server.bind.
        #[arg(long)]
        bind: Option<String>,
        /// Start this many local worker processes (workers.local).
        #[arg(long)]
        local_workers: Option<u32>,
    },
    /// Run a worker that takes scraping tasks from a server.
    Worker(WorkerArgs),
    /// Bring the database schema up to date and exit.
    Migrate,
    /// Measure a scenario (see `bazaar bench --help`).
    Bench(bench::BenchArgs),
    /// Chat in a room from the terminal (/who, /join ROOM, /direct NAME, /quit).
    Chat {
        /// The server, e.g. http://127.0.0.1:8080 or ws://127.0.0.1:8080.
        #[arg(long)]
        server: Url,
        /// The guest name others see.
        #[arg(long)]
        name: String,
        /// The room to join first.
        #[arg(long, default_value = "lobby")]
        room: String,
        /// A STUN server for direct conversations behind NAT, as
        /// stun:host[:port]; may be given more than once.
        #[arg(long = "stun", value_name = "URL", value_parser = StunServer::parse)]
        stun: Vec<StunServer>,
    },
    /// Administration from the command line.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Check the sites file and its profiles against real pages.
    #[command(subcommand)]
    Sites(SitesCommand),
}

#[derive(Subcommand)]
enum SitesCommand {
    /// Read one page with a site's profile, as a worker would, and print what
    /// it finds and which rule found each field. Exits 0 when it found
    /// something, 1 when not, 2 when the page could not be read.
    Check {
        /// The sites file (default: crawl.sites_file, else the demo stores).
        #[arg(long)]
        sites: Option<PathBuf>,
        /// Read this saved page instead of fetching URL.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// Read the page as a listing (game links and the next page) or a
        /// game page (its offer); by default a start URL is a listing and
        /// any other URL a game page.
        #[arg(long = "as", value_name = "KIND", value_parser = parse_kind)]
        kind: Option<TaskKind>,
        /// The site's name in the sites file.
        site: String,
        /// The page.
        url: String,
    },
    /// List every problem in a sites file: unknown keys, selectors that do
    /// not parse, start URLs outside allowed_hosts. Exits 1 when it finds any.
    Lint {
        /// The sites file (default: crawl.sites_file, else the demo stores).
        #[arg(long)]
        sites: Option<PathBuf>,
    },
}

fn parse_kind(kind: &str) -> Result<TaskKind, String> {
    TaskKind::parse(kind).ok_or_else(|| "KIND is listing or page".to_owned())
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Runs a retention pass now, as the server does every
    /// `retention.every`; safe while the server runs (short transactions,
    /// as its own). With --dry-run, prints each table's rows and size and
    /// what a pass would remove, and removes nothing.
    Prune {
        /// Only report what a pass would remove.
        #[arg(long)]
        dry_run: bool,
    },
    /// Creates an account; the password is read from the first line of
    /// standard input (so it stays out of the shell history).
    CreateUser {
        /// The login name: 2-32 letters (a-z), digits, _ - or .
        name: String,
        /// The name shown to others (the login name if not given).
        #[arg(long)]
        display_name: Option<String>,
        /// Makes the account an admin.
        #[arg(long)]
        admin: bool,
    },
    /// Copies the SQLite database, with the secrets files of the data dir,
    /// into FILE while the server runs (see "Backups" in the README).
    Backup {
        /// The backup to write.
        file: PathBuf,
        /// Replaces FILE if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Puts a backup in place of the SQLite database and the secrets files
    /// of the data dir; the server must be stopped. What it replaces is
    /// renamed, never deleted.
    Restore {
        /// The backup to restore.
        file: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut settings = Settings::load(&cli.config)?;
    if cli.json_logs {
        settings.log.format = LogFormat::Json;
    }
    telemetry::init(settings.log.format, &settings.log.filter);
    let command = cli.command.unwrap_or(Command::Serve {
        bind: None,
        local_workers: None,
    });
    let system = actix::System::new();
    system.block_on(async move {
        match command {
            Command::Serve {
                bind,
                local_workers,
            } => {
                if let Some(bind) = bind {
                    settings.server.bind = bind;
                }
                if let Some(n) = local_workers {
                    settings.workers.local = n;
                }
                startup::Application::build(settings)
                    .await?
                    .run_until_stopped()
                    .await
            }
            Command::Worker(args) => worker::run(args.options()?).await,
            Command::Admin(AdminCommand::Prune { dry_run }) => {
                let _restore_waits = lock_data_dir(&settings, "admin prune")?;
                let file = settings.data_dir.join("bazaar.db");
                if settings.database.url.is_none() && !file.exists() {
                    anyhow::bail!(
                        "no database at {}: nothing to prune (is data_dir right?)",
                        file.display()
                    );
                }
                let db = db::connect(&settings.database_url()).await?;
                print!(
                    "{}",
                    bazaar::retention::prune_command(&db, &settings.retention, dry_run).await?
                );
                Ok(())
            }
            Command::Migrate => {
                let url = settings.database_url();
                std::fs::create_dir_all(&settings.data_dir)
                    .with_context(|| format!("could not create {}", settings.data_dir.display()))?;
                let _restore_waits = lock_data_dir(&settings, "migrate")?;
                db::connect(&url).await?;
                println!("database {} is up to date", db::redact(&url));
                Ok(())
            }
            Command::Bench(args) => bench::run(args, &settings).await,
            Command::Admin(AdminCommand::CreateUser {
                name,
                display_name,
                admin,
            }) => {
                let _restore_waits = lock_data_dir(&settings, "admin create-user")?;
                create_user(&settings, &name, display_name.as_deref(), admin).await
            }
            Command::Admin(AdminCommand::Backup { file, force }) => {
                print!("{}", backup::backup(&settings, &file, force).await?);
                Ok(())
            }
            Command::Admin(AdminCommand::Restore { file }) => {
                print!("{}", backup::restore(&settings, &file).await?);
                Ok(())
            }
            Command::Sites(SitesCommand::Check {
                sites,
                html,
                kind,
                site,
                url,
            }) => {
                let options = CheckOptions {
                    sites_file: sites.or(settings.crawl.sites_file.clone()),
                    public_url: settings.public_url().to_owned(),
                    site,
                    url,
                    html,
                    kind,
                };
                let code = sites_cli::check(options).await?;
                std::process::exit(code);
            }
            Command::Sites(SitesCommand::Lint { sites }) => {
                let file = sites.or(settings.crawl.sites_file.clone());
                let code = sites_cli::lint(file.as_deref(), settings.public_url())?;
                std::process::exit(code);
            }
            Command::Chat {
                server,
                name,
                room,
                stun,
            } => {
                let options = ChatOptions {
                    server,
                    name,
                    room,
                    stun,
                };
                let code = chat_cli::run(options).await?;
                if code != 0 {
                    std::process::exit(code);
                }
                Ok(())
            }
        }
    })
}

/// The shared lock servers hold on the data dir, for a command that writes
/// the database: refused while a restore replaces it, and no restore starts
/// until the command ends. A data dir that does not exist has no restore.
fn lock_data_dir(settings: &Settings, command: &str) -> anyhow::Result<Option<std::fs::File>> {
    if !settings.data_dir.is_dir() {
        return Ok(None);
    }
    backup::lock_shared(&settings.data_dir, &format!("run `bazaar {command}`")).map(Some)
}

async fn create_user(
    settings: &Settings,
    name: &str,
    display_name: Option<&str>,
    admin: bool,
) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let login = LoginName::parse(name).map_err(|e| anyhow::anyhow!(e))?;
    let display = UserName::parse_guest(display_name.unwrap_or(login.as_str()))
        .map_err(|_| anyhow::anyhow!("a display name is 1-32 letters, digits, spaces, _ - or ."))?;
    if std::io::stdin().is_terminal() {
        eprint!("Password for {login}: ");
    }
    let mut password = String::new();
    std::io::stdin()
        .read_line(&mut password)
        .context("could not read the password from standard input")?;
    let password = password.trim_end_matches(['\r', '\n']);
    check_new_password(password).map_err(|e| anyhow::anyhow!(e))?;
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("could not create {}", settings.data_dir.display()))?;
    let db = db::connect(&settings.database_url()).await?;
    let account =
        store::create_user(&db, &login, &display, password, admin, chrono::Utc::now()).await?;
    println!(
        "created {}account {} (id {})",
        if admin { "admin " } else { "" },
        account.name,
        account.id
    );
    Ok(())
}
