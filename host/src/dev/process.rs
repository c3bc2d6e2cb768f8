//! Component processes: spawned in their own process group with their output in a log file,
//! watched for early exit, and stopped as a group (SIGTERM, then SIGKILL).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use super::{ComponentState, DevError};

/// Whether components outlive the process that started them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// They keep running until `wasmray dev down` (the CLI's `dev up`).
    Detached,
    /// The kernel kills them when this process ends, however it ends (tests: a panic, an abort
    /// or Ctrl-C never leaves an orphan apiserver behind).
    TiedToThisProcess,
}

/// One running component.
#[derive(Debug)]
pub struct Component {
    name: String,
    child: Option<Child>,
    pid: u32,
    log: PathBuf,
    /// How it was started, so that it can be started again the same way.
    binary: PathBuf,
    args: Vec<String>,
    lifetime: Lifetime,
}

impl Component {
    /// Starts `binary args…` with its output in `logs/<name>.log`.
    pub fn spawn(name: &str, binary: &Path, args: &[String], logs: &Path, lifetime: Lifetime) -> Result<Self, DevError> {
        let log = logs.join(format!("{name}.log"));
        let out = File::create(&log).map_err(|e| DevError::io(&log, e))?;
        let child = launch(binary, args, out, lifetime, &log)?;
        tracing::debug!(component = name, pid = child.id(), "Started");
        Ok(Self {
            name: name.to_string(),
            pid: child.id(),
            child: Some(child),
            log,
            binary: binary.to_path_buf(),
            args: args.to_vec(),
            lifetime,
        })
    }

    /// Stops the component and starts it again with the same binary and flags, its output
    /// appended to the same log.
    pub fn restart(&mut self) -> Result<(), DevError> {
        self.stop();
        let out = File::options().append(true).open(&self.log).map_err(|e| DevError::io(&self.log, e))?;
        let child = launch(&self.binary, &self.args, out, self.lifetime, &self.log)?;
        tracing::debug!(component = self.name, pid = child.id(), "Restarted");
        self.pid = child.id();
        self.child = Some(child);
        Ok(())
    }

    /// The component's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What `state.json` records about it.
    pub fn state(&self) -> ComponentState {
        ComponentState { name: self.name.clone(), pid: self.pid, log: self.log.clone() }
    }

    /// An error if the process has exited; `port` (when not 0) lets a bind failure be named.
    pub fn check_alive(&mut self, port: u16, phase: &str) -> Result<(), DevError> {
        let Some(child) = self.child.as_mut() else { return Ok(()) };
        match child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => {
                let tail = std::fs::read_to_string(&self.log).unwrap_or_default();
                if port != 0 && tail.contains("address already in use") {
                    return Err(DevError::PortBusy { component: self.name.clone(), port, log: self.log.clone() });
                }
                Err(DevError::ComponentDied {
                    component: self.name.clone(),
                    status: status.to_string(),
                    phase: phase.to_string(),
                    log: self.log.clone(),
                })
            }
            Err(e) => Err(DevError::io(&self.log, e)),
        }
    }

    /// The error for "did not become ready in time".
    pub fn not_ready(&self, after: Duration, detail: String) -> DevError {
        DevError::NotReady { component: self.name.clone(), after, detail, log: self.log.clone() }
    }

    /// Stops the process group and reaps the child.
    pub fn stop(&mut self) {
        stop_group(self.pid);
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }
}

/// Runs `binary args…` with stdout and stderr to `out`, in its own process group.
fn launch(binary: &Path, args: &[String], out: File, lifetime: Lifetime, log: &Path) -> Result<Child, DevError> {
    let err = out.try_clone().map_err(|e| DevError::io(log, e))?;
    let mut command = Command::new(binary);
    command.args(args).stdin(Stdio::null()).stdout(out).stderr(err);
    // Its own process group, so a terminal's Ctrl-C aimed at `dev up` does not reach it and
    // `dev down` can signal the component together with anything it forked.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    match lifetime {
        Lifetime::Detached => command.spawn(),
        Lifetime::TiedToThisProcess => spawn_tied(command),
    }
    .map_err(|e| DevError::io(binary, e))
}

/// SIGTERM to the process group, SIGKILL after a grace period if it is still there.
pub fn stop_group(pid: u32) {
    let Ok(raw) = i32::try_from(pid) else { return };
    let group = Pid::from_raw(raw);
    if killpg(group, Signal::SIGTERM).is_err() {
        return; // already gone
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        // Signal 0 only checks existence; a zombie we have not reaped yet still counts, which
        // only costs us the wait (the caller reaps right after).
        if kill(group, None).is_err() || is_zombie(raw) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = killpg(group, Signal::SIGKILL);
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit(')').next().map(|rest| rest.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Spawns from one long-lived thread with a parent-death signal set.
///
/// `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits, not the process; test
/// threads come and go, so every tied child is forked by this one thread, which lives as long as
/// the process does.
fn spawn_tied(command: Command) -> std::io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let sender = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("wasmray-dev-spawner".into())
            .spawn(move || {
                for (mut command, reply) in rx {
                    set_parent_death_signal(&mut command);
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("spawning a thread");
        Mutex::new(tx)
    });
    let (reply, answer) = mpsc::channel();
    sender
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .send((command, reply))
        .map_err(|_| std::io::Error::other("the spawner thread is gone"))?;
    answer.recv().map_err(|_| std::io::Error::other("the spawner thread is gone"))?
}

#[allow(unsafe_code)]
fn set_parent_death_signal(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec and only calls prctl(2), which is
    // async-signal-safe; it allocates nothing and touches no lock.
    unsafe {
        command.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
        });
    }
}
