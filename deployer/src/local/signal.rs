//! Signals to the local mesh's processes, by pid (rustix, without unsafe code): the one place
//! `up`, `down` and the supervisor stop a process or ask whether it exists.

use rustix::process::{kill_process, test_kill_process, Pid, Signal};

/// Asks a process to stop (SIGTERM); false if there was none to ask.
pub(crate) fn terminate(pid: i32) -> bool {
    send(pid, Signal::TERM)
}

/// Stops a process at once (SIGKILL); false if there was none to stop.
pub(crate) fn kill(pid: i32) -> bool {
    send(pid, Signal::KILL)
}

/// A process with this pid exists (possibly a zombie, see `state::alive`).
pub(crate) fn exists(pid: i32) -> bool {
    Pid::from_raw(pid).is_some_and(|p| test_kill_process(p).is_ok())
}

fn send(pid: i32, signal: Signal) -> bool {
    Pid::from_raw(pid).is_some_and(|p| kill_process(p, signal).is_ok())
}
