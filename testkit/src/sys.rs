//! The few OS calls the lab needs that std does not offer, each with its safety argument.
#![allow(unsafe_code)]

use std::io;
use std::os::unix::process::CommandExt as _;
use std::process::Command;

/// True when this process runs as root (servers must then drop to their own users).
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Sends `signal` to `pid`; errors (no such process) are ignored by callers.
pub(crate) fn signal(pid: u32, signal: libc::c_int) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::other("pid out of range"))?;
    // SAFETY: kill takes plain integers; a stale pid yields ESRCH, not UB.
    if unsafe { libc::kill(pid, signal) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// True if a process with this pid exists.
pub(crate) fn process_alive(pid: u32) -> bool {
    match signal(pid, 0) {
        Ok(()) => true,
        Err(e) => e.raw_os_error() == Some(libc::EPERM),
    }
}

/// Makes the kernel SIGKILL the child when the thread that spawned it dies. The lab
/// spawns from one thread that lives as long as the process, so this means: when the
/// test process dies, however it dies, its servers die too.
pub(crate) fn kill_with_parent(command: &mut Command) {
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec and only calls the
    // async-signal-safe functions prctl, getppid and _exit.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl.
            if u32::try_from(libc::getppid()).ok() != Some(parent) {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

/// Runs `f` when the process exits normally (also after failed tests: the test harness
/// exits through `exit`, which runs these handlers).
pub(crate) fn at_exit(f: extern "C" fn()) {
    // SAFETY: registering a plain `extern "C" fn()` with atexit is always sound.
    unsafe {
        libc::atexit(f);
    }
}
