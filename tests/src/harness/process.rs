//! Server processes: each in its own process group, signalled as a whole.

use std::fs::File;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{io, HarnessError, Result};

/// A running server (one process group), killed when dropped.
#[derive(Debug)]
pub(crate) struct ServerProcess {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl ServerProcess {
    /// Starts `command` in a new process group, its output appended to
    /// `log`, as `user` (uid, gid) when given.
    pub(crate) fn spawn(
        name: &str,
        mut command: Command,
        log: &Path,
        user: Option<(u32, u32)>,
    ) -> Result<Self> {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .map_err(io(format!("open {}", log.display())))?;
        let err = out.try_clone().map_err(io("clone log handle"))?;
        command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        if let Some((uid, gid)) = user {
            command.uid(uid).gid(gid);
        }
        let child = command.spawn().map_err(|e| HarnessError::Command {
            what: format!("start {name}"),
            detail: e.to_string(),
        })?;
        Ok(Self {
            name: name.to_string(),
            child: Some(child),
            log: log.to_path_buf(),
        })
    }

    /// Whether the process is still alive (and not reaped).
    pub(crate) fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Sends `signal` (e.g. `STOP`) to the whole process group and to
    /// every descendant of the server: PostgreSQL's backends make
    /// themselves leaders of groups of their own, so the group alone
    /// would miss them.
    pub(crate) fn signal_group(&self, signal: &str) -> Result<()> {
        let Some(child) = &self.child else {
            return Err(HarnessError::Command {
                what: format!("signal {} {signal}", self.name),
                detail: "not running".into(),
            });
        };
        let tree = process_tree(child.id());
        run_kill(&format!("-{signal}"), &format!("-{}", child.id()))?;
        for pid in tree {
            let _ = run_kill(&format!("-{signal}"), &pid.to_string());
        }
        Ok(())
    }

    /// Sends `signal` to the group leader only (e.g. `INT` for a fast shutdown).
    pub(crate) fn signal_leader(&self, signal: &str) -> Result<()> {
        let Some(child) = &self.child else {
            return Err(HarnessError::Command {
                what: format!("signal {} {signal}", self.name),
                detail: "not running".into(),
            });
        };
        run_kill(&format!("-{signal}"), &child.id().to_string())
    }

    /// Waits up to `timeout` for the process to exit; kills the group if it
    /// does not.
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while self.is_running() {
            if Instant::now() > deadline {
                return self.kill();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child = None;
        Ok(())
    }

    /// SIGKILLs the whole group, reaps the leader, and waits (up to 10 s)
    /// until no member is left: a PostgreSQL backend still dying holds the
    /// shared memory a restarted server needs.
    pub(crate) fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            let group = format!("-{}", child.id());
            // Found before the leader dies: its children are re-parented
            // then, and their own groups (PostgreSQL backends) would
            // survive a kill of this one.
            let tree: Vec<String> = process_tree(child.id())
                .into_iter()
                .map(|p| p.to_string())
                .collect();
            // The group may already be gone; that is what we want.
            let _ = run_kill("-KILL", &group);
            for pid in &tree {
                let _ = run_kill("-KILL", pid);
            }
            let _ = child.kill();
            let _ = child.wait();
            let deadline = Instant::now() + Duration::from_secs(10);
            let alive =
                || run_kill("-0", &group).is_ok() || tree.iter().any(|p| run_kill("-0", p).is_ok());
            while alive() && Instant::now() < deadline {
                let _ = run_kill("-KILL", &group);
                for pid in &tree {
                    let _ = run_kill("-KILL", pid);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// The last lines of the server's log, for error messages.
    pub(crate) fn log_tail(&self) -> String {
        log_tail(&self.log)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// `root` and every process descended from it, from `/proc`.
fn process_tree(root: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parents.push((pid, ppid));
            }
        }
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    tree
}

fn run_kill(signal: &str, target: &str) -> Result<()> {
    let status = Command::new("kill")
        .args([signal, "--", target])
        .stderr(Stdio::null())
        .status()
        .map_err(|e| HarnessError::Command {
            what: format!("kill {signal} {target}"),
            detail: e.to_string(),
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(HarnessError::Command {
            what: format!("kill {signal} {target}"),
            detail: status.to_string(),
        })
    }
}

/// The last 30 lines of a log file.
pub(crate) fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// A port on 127.0.0.1 that was free a moment ago.
pub(crate) fn free_port() -> Result<u16> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(io("find a free port"))
}

/// Whether this process runs as root.
pub(crate) fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .is_some_and(|uid| uid == "0")
    })
}

/// The uid and gid of a system user, from /etc/passwd.
pub(crate) fn user_ids(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == name).then_some(())?;
        let _password = fields.next()?;
        Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
    })
}

/// Runs a setup command to completion (as `user` when given), returning an
/// error with its output when it fails.
pub(crate) async fn run(
    what: &str,
    program: &Path,
    args: &[&str],
    user: Option<(u32, u32)>,
) -> Result<()> {
    let mut command = tokio::process::Command::new(program);
    command.args(args).stdin(Stdio::null()).kill_on_drop(true);
    if let Some((uid, gid)) = user {
        command.uid(uid).gid(gid);
    }
    let output = command.output().await.map_err(|e| HarnessError::Command {
        what: what.to_string(),
        detail: e.to_string(),
    })?;
    if output.status.success() {
        return Ok(());
    }
    Err(HarnessError::Command {
        what: what.to_string(),
        detail: format!(
            "{}\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    })
}
