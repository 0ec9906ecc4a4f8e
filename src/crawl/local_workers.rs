//! LocalWorkers: `bazaar worker` child processes that `serve` starts against
//! itself, restarted with backoff whenever one exits.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::process::Command;

use crate::backoff::Backoff;

/// The waits before restarting a worker that exited: 500 ms, doubling up
/// to 30 s.
const RESTART: Backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
/// A worker that ran this long before exiting restarts without delay growth.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// How to start the children.
#[derive(Debug, Clone)]
pub struct LocalWorkersConfig {
    pub exe: PathBuf,
    pub server: String,
    pub token: String,
    pub count: u32,
    pub slots: u32,
    pub json_logs: bool,
}

pub struct LocalWorkers {
    config: LocalWorkersConfig,
}

impl LocalWorkers {
    pub fn new(config: LocalWorkersConfig) -> LocalWorkers {
        LocalWorkers { config }
    }

    fn command(&self, index: u32) -> Command {
        let c = &self.config;
        let mut cmd = Command::new(&c.exe);
        cmd.arg("worker")
            .args(["--server", &c.server])
            .args(["--name", &format!("local-{index}")])
            .args(["--slots", &c.slots.to_string()])
            // The token travels in the environment, not on the command line
            // where every user's `ps` could read it.
            .env("BAZAAR_WORKER_TOKEN", &c.token)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if c.json_logs {
            cmd.arg("--json-logs");
        }
        // Children die with the server, even when it is killed with SIGKILL.
        #[cfg(target_os = "linux")]
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd
    }
}

impl Actor for LocalWorkers {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        for index in 0..self.config.count {
            let mut exits = 0;
            let mut cmd = self.command(index);
            // Spawned on the actor's context, so stopping the actor drops the
            // loop and with it the child (kill_on_drop).
            async move {
                loop {
                    let started = Instant::now();
                    match cmd.spawn() {
                        Ok(mut child) => {
                            tracing::info!(index, pid = child.id(), "local worker started");
                            match child.wait().await {
                                Ok(status) => tracing::warn!(index, %status, "local worker exited"),
                                Err(err) => {
                                    tracing::error!(index, error = %err, "lost a local worker")
                                }
                            }
                        }
                        Err(err) => {
                            tracing::error!(index, error = %err, "could not start a local worker")
                        }
                    }
                    exits = if started.elapsed() > HEALTHY_RUN {
                        1
                    } else {
                        exits + 1
                    };
                    let backoff = RESTART.after(exits);
                    tracing::info!(
                        index,
                        wait_ms = backoff.as_millis() as u64,
                        "restarting local worker"
                    );
                    tokio::time::sleep(backoff).await;
                }
            }
            .into_actor(self)
            .spawn(ctx);
        }
    }
}

impl Supervised for LocalWorkers {
    fn restarting(&mut self, _: &mut Context<Self>) {
        tracing::warn!("local workers supervisor restarted");
    }
}
