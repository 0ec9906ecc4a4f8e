//! Pinning a benchmark to CPUs: the server it starts on some, its own load
//! generator on others, so that a figure taken on a shared machine says
//! what one core of server did (`--server-cpus 0 --client-cpus 1`). Also the
//! server's CPU time, read from /proc, to put a cost on each delivery.

use std::fmt;

use anyhow::{bail, Context};
use clap::Args;

/// Where the benchmark's processes run.
#[derive(Debug, Clone, Default, Args)]
pub struct Pinning {
    /// CPUs the server this benchmark starts may run on, as taskset writes
    /// them: `0`, `0-1`, `0,2`.
    #[arg(long, value_name = "LIST", value_parser = CpuSet::parse)]
    server_cpus: Option<CpuSet>,
    /// CPUs this benchmark's own load generator may run on.
    #[arg(long, value_name = "LIST", value_parser = CpuSet::parse)]
    client_cpus: Option<CpuSet>,
}

impl Pinning {
    /// Pins every thread of this process to the client CPUs (threads made
    /// later inherit it); says where both run.
    pub fn apply(&self, starts_server: bool) -> anyhow::Result<()> {
        if let Some(cpus) = &self.client_cpus {
            cpus.pin_this_process()?;
        }
        if self.server_cpus.is_some() && !starts_server {
            bail!("--server-cpus pins a server this benchmark starts; with --server, pin that server yourself (taskset)");
        }
        let say = |cpus: &Option<CpuSet>| {
            cpus.as_ref()
                .map_or("any CPU".to_owned(), |c| format!("CPUs {c}"))
        };
        eprintln!(
            "server on {}, load generator on {}",
            say(&self.server_cpus),
            say(&self.client_cpus)
        );
        Ok(())
    }

    pub fn server(&self) -> Option<&CpuSet> {
        self.server_cpus.as_ref()
    }
}

/// A set of CPU numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuSet(Vec<usize>);

impl CpuSet {
    pub fn parse(list: &str) -> Result<CpuSet, String> {
        let online = online_cpus();
        let mut cpus = Vec::new();
        for part in list.split(',') {
            let part = part.trim();
            let (from, to) = part.split_once('-').unwrap_or((part, part));
            let number = |s: &str| {
                s.trim().parse::<usize>().map_err(|_| {
                    format!("{list:?}: a CPU list is numbers and ranges, e.g. 0 or 0-1 or 0,2")
                })
            };
            let (from, to) = (number(from)?, number(to)?);
            if from > to {
                return Err(format!("{list:?}: the range {part} runs backwards"));
            }
            for cpu in from..=to {
                if cpu >= online {
                    return Err(format!(
                        "{list:?}: CPU {cpu} does not exist (this machine has 0-{})",
                        online - 1
                    ));
                }
                if !cpus.contains(&cpu) {
                    cpus.push(cpu);
                }
            }
        }
        cpus.sort_unstable();
        Ok(CpuSet(cpus))
    }

    fn mask(&self) -> libc::cpu_set_t {
        // SAFETY: cpu_set_t is plain bits; CPU_ZERO and CPU_SET only write it.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_ZERO(&mut set);
            for &cpu in &self.0 {
                libc::CPU_SET(cpu, &mut set);
            }
            set
        }
    }

    /// Pins thread `tid` (0: the calling one).
    fn pin(&self, tid: libc::pid_t) -> std::io::Result<()> {
        let set = self.mask();
        // SAFETY: the mask outlives the call, and its size is the one given.
        let done = unsafe { libc::sched_setaffinity(tid, std::mem::size_of_val(&set), &set) };
        if done == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    /// Every thread this process has now: affinity is per thread.
    fn pin_this_process(&self) -> anyhow::Result<()> {
        let tasks = std::fs::read_dir("/proc/self/task")
            .context("could not list this process's threads")?;
        for task in tasks {
            let tid = task?.file_name().to_string_lossy().parse::<libc::pid_t>();
            if let Ok(tid) = tid {
                self.pin(tid)
                    .with_context(|| format!("could not pin thread {tid} to CPUs {self}"))?;
            }
        }
        Ok(())
    }

    /// Makes `cmd`'s process start on these CPUs: every thread it makes
    /// inherits them.
    pub fn apply_to(&self, cmd: &mut tokio::process::Command) {
        let cpus = self.clone();
        // SAFETY: between fork and exec the closure makes one system call
        // on memory it owns, and allocates nothing.
        unsafe {
            cmd.pre_exec(move || cpus.pin(0));
        }
    }
}

impl fmt::Display for CpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list: Vec<String> = self.0.iter().map(usize::to_string).collect();
        f.write_str(&list.join(","))
    }
}

fn online_cpus() -> usize {
    // SAFETY: sysconf reads a constant of the system.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).unwrap_or(1).max(1)
}

/// The CPU time process `pid` has used, all threads, in seconds; 0 when
/// /proc cannot tell.
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The command name may hold spaces: the fields start after its ')'.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line; 12 and 13 here.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf reads a constant of the system.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    ticks as f64 / per_second as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_read_as_taskset_writes_them() {
        assert_eq!(CpuSet::parse("0"), Ok(CpuSet(vec![0])));
        let all = online_cpus();
        if all >= 2 {
            assert_eq!(CpuSet::parse("1,0"), Ok(CpuSet(vec![0, 1])));
            assert_eq!(CpuSet::parse("0-1"), Ok(CpuSet(vec![0, 1])));
        }
        assert!(CpuSet::parse(&all.to_string())
            .unwrap_err()
            .contains("does not exist"));
        assert!(CpuSet::parse("1-0").unwrap_err().contains("backwards"));
        assert!(CpuSet::parse("one")
            .unwrap_err()
            .contains("numbers and ranges"));
        assert!(CpuSet::parse("").is_err());
    }

    #[test]
    fn this_process_has_spent_some_cpu_time() {
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(30) {}
        assert!(cpu_seconds(std::process::id()) > 0.0);
        assert_eq!(cpu_seconds(u32::MAX), 0.0);
    }

    #[tokio::test]
    async fn a_pinned_child_runs_only_on_its_cpus() {
        let cpus = CpuSet::parse("0").expect("cpu 0");
        let mut cmd = tokio::process::Command::new("cat");
        cmd.arg("/proc/self/status")
            .stdout(std::process::Stdio::piped());
        cpus.apply_to(&mut cmd);
        let out = cmd.output().await.expect("run cat");
        let status = String::from_utf8_lossy(&out.stdout);
        let allowed = status
            .lines()
            .find(|l| l.starts_with("Cpus_allowed_list:"))
            .expect("Cpus_allowed_list");
        assert_eq!(allowed.split_whitespace().nth(1), Some("0"), "{allowed}");
    }
}
