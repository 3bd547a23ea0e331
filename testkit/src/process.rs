//! The one place the tests and the bench start a child process they must not leave behind: a
//! [`Guarded`] child is killed (and reaped) on drop. A whole program (the bench) can also ask,
//! with [`kill_children_on_exit`], that every guarded child be killed on panic (the hook also
//! runs when panics abort instead of unwinding) and on SIGINT/SIGTERM/SIGHUP, where destructors
//! do not run. Test binaries do not install the hooks: one test's panic must not kill the
//! processes of the tests running beside it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

static LIVE: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());
/// Scratch directories to remove when a signal ends the process (destructors do not run then).
static SCRATCH: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static HOOKS: Once = Once::new();

/// Kills every guarded child on panic and on SIGINT/SIGTERM/SIGHUP (then exits 128+signal),
/// for programs rather than test binaries. `who` prefixes the one line printed on a signal.
pub fn kill_children_on_exit(who: &'static str) {
    HOOKS.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            kill_all_registered();
            previous(info);
        }));
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        match signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) {
            Ok(mut signals) => {
                std::thread::spawn(move || {
                    if let Some(signal) = signals.forever().next() {
                        kill_all_registered();
                        let dirs = SCRATCH.lock().map(|d| d.clone()).unwrap_or_default();
                        for dir in dirs {
                            let _ = std::fs::remove_dir_all(dir);
                        }
                        eprintln!("{who}: stopped by signal {signal}; children killed");
                        std::process::exit(128 + signal);
                    }
                });
            }
            Err(err) => {
                eprintln!("{who}: no signal handler ({err}); Ctrl-C may leave children running")
            }
        }
    });
}

fn kill_all_registered() {
    let pids: Vec<u32> = LIVE
        .lock()
        .map(|set| set.iter().copied().collect())
        .unwrap_or_default();
    for pid in pids {
        kill_pid(pid);
    }
}

fn kill_pid(pid: u32) {
    let Ok(raw) = i32::try_from(pid) else { return };
    if let Some(pid) = rustix::process::Pid::from_raw(raw) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
}

/// Removes `dir` if a signal stops the program (after [`kill_children_on_exit`]); on a normal
/// exit its owner removes it.
pub fn remove_on_signal(dir: &Path) {
    if let Ok(mut dirs) = SCRATCH.lock() {
        dirs.push(dir.to_owned());
    }
}

/// A child process that is killed (and reaped) when dropped.
pub struct Guarded {
    child: Child,
    what: String,
    /// The child leads a process group of its own, killed as a whole (a browser driver's
    /// browser goes with it).
    group: bool,
}

impl Guarded {
    pub fn spawn(mut command: Command, what: &str) -> Result<Guarded> {
        let child = command
            .spawn()
            .with_context(|| format!("starting {what}: {command:?}"))?;
        if let Ok(mut set) = LIVE.lock() {
            set.insert(child.id());
        }
        Ok(Guarded {
            child,
            what: what.to_owned(),
            group: false,
        })
    }

    /// [`Guarded::spawn`] in a new process group, which is killed as a whole: for a child that
    /// starts children of its own (node and the Chromium it drives).
    pub fn spawn_group(mut command: Command, what: &str) -> Result<Guarded> {
        use std::os::unix::process::CommandExt as _;
        command.process_group(0);
        let mut guarded = Guarded::spawn(command, what)?;
        guarded.group = true;
        Ok(guarded)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its stdout, when the command was given a pipe for it (once).
    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }

    /// `Some(status)` once the process has exited.
    pub fn exited(&mut self) -> Result<Option<ExitStatus>> {
        Ok(self.child.try_wait()?)
    }

    /// Waits at most `limit` for the process to exit on its own; kills it and fails past that.
    pub fn wait_bounded(&mut self, limit: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                self.kill();
                bail!("{} did not finish within {limit:?}; killed it", self.what);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills and reaps it now (drop does the same).
    pub fn kill(&mut self) {
        if self.group {
            if let Some(pid) = i32::try_from(self.child.id())
                .ok()
                .and_then(rustix::process::Pid::from_raw)
            {
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Ok(mut set) = LIVE.lock() {
            set.remove(&self.child.id());
        }
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.kill();
    }
}
