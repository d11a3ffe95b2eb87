//! Owning server processes: spawning, readiness, and cleanup at process exit.
//!
//! Every server the lab starts is registered here. Servers are spawned from a single
//! long-lived thread with `PR_SET_PDEATHSIG`, so the kernel kills them if the test
//! process dies abruptly (SIGKILL, Ctrl-C); on a normal exit (all tests done, passed or
//! failed) an `atexit` handler stops them politely and deletes their directories. Lab
//! directories live under `<tmp>/outflow-testkit/<pid>-<name>-*`; directories left by
//! dead test processes are removed the next time a lab starts.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::mpsc;
use std::sync::{Mutex, Once, PoisonError};
use std::time::{Duration, Instant};

use crate::sys;

/// Builds the command that starts a server again after [`restart`].
pub(crate) type Recipe = Box<dyn Fn() -> Command + Send>;

struct Owned {
    name: String,
    child: Child,
    stop_signal: libc::c_int,
    dir: Option<tempfile::TempDir>,
    recipe: Option<Recipe>,
}

static OWNED: Mutex<Vec<Owned>> = Mutex::new(Vec::new());
static CLEANUP: Once = Once::new();

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

static SPAWNER: Mutex<Option<mpsc::Sender<SpawnRequest>>> = Mutex::new(None);

fn spawner() -> mpsc::Sender<SpawnRequest> {
    let mut guard = SPAWNER.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(tx) = guard.as_ref() {
        return tx.clone();
    }
    let (tx, rx) = mpsc::channel::<SpawnRequest>();
    std::thread::Builder::new()
        .name("testkit-spawner".into())
        .spawn(move || {
            // Lives until the process ends: children die with this thread.
            for (mut command, reply) in rx {
                sys::kill_with_parent(&mut command);
                let _ = reply.send(command.spawn());
            }
            // Never return: the channel's sender is kept in a static, but be safe.
            loop {
                std::thread::park();
            }
        })
        .unwrap_or_else(|e| panic!("testkit: cannot start the spawner thread: {e}"));
    *guard = Some(tx.clone());
    tx
}

/// Root of all lab directories.
pub(crate) fn lab_root() -> PathBuf {
    std::env::temp_dir().join("outflow-testkit")
}

/// A new directory for one server, readable by the server's user.
pub(crate) fn server_dir(name: &str) -> tempfile::TempDir {
    let root = lab_root();
    CLEANUP.call_once(|| {
        sys::at_exit(stop_all);
        remove_stale_dirs(&root);
    });
    if let Err(e) = std::fs::create_dir_all(&root) {
        panic!("testkit: cannot create {}: {e}", root.display());
    }
    // Other users (postgres, mysql) must traverse the root.
    let _ = std::fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o1777));
    tempfile::Builder::new()
        .prefix(&format!("{}-{name}-", std::process::id()))
        .tempdir_in(&root)
        .unwrap_or_else(|e| panic!("testkit: cannot create a directory for {name}: {e}"))
}

fn remove_stale_dirs(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name.split('-').next().and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|pid| pid != std::process::id() && !sys::process_alive(pid)) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Starts a server process owned by the lab. `stop_signal` is what stops it quickly at
/// exit (SIGQUIT for Postgres' immediate shutdown, SIGTERM for others).
pub(crate) fn spawn(
    name: &str,
    command: Command,
    stop_signal: libc::c_int,
    dir: Option<tempfile::TempDir>,
) -> u32 {
    register(name, spawn_child(name, command), stop_signal, dir, None)
}

/// Like [`spawn`], for a server a test may [`restart`]: `recipe` builds its command.
pub(crate) fn spawn_restartable(
    name: &str,
    recipe: Recipe,
    stop_signal: libc::c_int,
    dir: Option<tempfile::TempDir>,
) -> u32 {
    let child = spawn_child(name, recipe());
    register(name, child, stop_signal, dir, Some(recipe))
}

fn spawn_child(name: &str, command: Command) -> Child {
    let (reply_tx, reply_rx) = mpsc::channel();
    spawner()
        .send((command, reply_tx))
        .ok()
        .and_then(|()| reply_rx.recv().ok())
        .unwrap_or_else(|| Err(std::io::Error::other("spawner thread is gone")))
        .unwrap_or_else(|e| panic!("testkit: cannot start {name}: {e}"))
}

fn register(
    name: &str,
    child: Child,
    stop_signal: libc::c_int,
    dir: Option<tempfile::TempDir>,
    recipe: Option<Recipe>,
) -> u32 {
    let pid = child.id();
    OWNED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Owned {
            name: name.to_owned(),
            child,
            stop_signal,
            dir,
            recipe,
        });
    pid
}

/// Stops the server `pid` with `signal` (its own stop signal when `None`), waits for it
/// to exit (killing it after 30 s) and starts it again from its recipe, with the same
/// directory; returns the new pid. The caller waits for readiness.
pub(crate) fn restart(pid: u32, signal: Option<libc::c_int>) -> u32 {
    let mut owned = OWNED.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(server) = owned.iter_mut().find(|o| o.child.id() == pid) else {
        panic!("testkit: no lab server with pid {pid} to restart");
    };
    let Some(recipe) = server.recipe.as_ref() else {
        panic!("testkit: {} cannot be restarted", server.name);
    };
    let _ = sys::signal(pid, signal.unwrap_or(server.stop_signal));
    let deadline = Instant::now() + Duration::from_secs(30);
    while matches!(server.child.try_wait(), Ok(None)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    if matches!(server.child.try_wait(), Ok(None)) {
        let _ = server.child.kill();
        let _ = server.child.wait();
    }
    server.child = spawn_child(&server.name, recipe());
    server.child.id()
}

/// True while the lab's process with this pid runs.
pub(crate) fn running(pid: u32) -> bool {
    let mut owned = OWNED.lock().unwrap_or_else(PoisonError::into_inner);
    owned
        .iter_mut()
        .find(|o| o.child.id() == pid)
        .is_some_and(|o| matches!(o.child.try_wait(), Ok(None)))
}

/// Polls `ready` until it holds; panics with `describe()` (e.g. the server log) when the
/// server exits or `timeout` passes.
pub(crate) fn wait_ready(
    name: &str,
    pid: u32,
    timeout: Duration,
    mut ready: impl FnMut() -> bool,
    describe: impl Fn() -> String,
) {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        if ready() {
            return;
        }
        if !running(pid) {
            panic!("testkit: {name} exited during start-up\n{}", describe());
        }
        if Instant::now() > deadline {
            panic!(
                "testkit: {name} not ready after {timeout:?}\n{}",
                describe()
            );
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// The last `lines` lines of a log file, for failure messages.
pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    format!(
        "--- {} (last {lines} lines) ---\n{}",
        path.display(),
        all[start..].join("\n")
    )
}

extern "C" fn stop_all() {
    let mut owned = std::mem::take(&mut *OWNED.lock().unwrap_or_else(PoisonError::into_inner));
    for server in &owned {
        let _ = sys::signal(server.child.id(), server.stop_signal);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    for server in &mut owned {
        while matches!(server.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if matches!(server.child.try_wait(), Ok(None)) {
            tracing::warn!(server = %server.name, "did not stop in time; killing");
            let _ = server.child.kill();
            let _ = server.child.wait();
        }
    }
    let keep = std::env::var_os("OUTFLOW_KEEP_LAB").is_some();
    for server in owned {
        match server.dir {
            // Kept for post-mortems (server logs): `OUTFLOW_KEEP_LAB=1 cargo test …`.
            Some(dir) if keep => {
                let path = dir.keep();
                let _ = writeln_stderr(&format!("testkit: kept {}", path.display()));
            }
            other => drop(other),
        }
    }
}

fn writeln_stderr(line: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    writeln!(std::io::stderr(), "{line}")
}

/// A free TCP port on 127.0.0.1 (free when asked; servers bind it right after).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("testkit: no free loopback port: {e}"))
}

/// True when something accepts TCP connections on `port`.
pub(crate) fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

/// Uid and gid of a system user, from /etc/passwd.
pub(crate) fn system_user(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != name {
            return None;
        }
        let _password = fields.next()?;
        Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
    })
}

/// Gives a directory tree to a system user (when running as root).
pub(crate) fn chown_tree(path: &Path, uid: u32, gid: u32) {
    if let Err(e) = std::os::unix::fs::chown(path, Some(uid), Some(gid)) {
        panic!("testkit: cannot chown {}: {e}", path.display());
    }
}

/// Runs a short command to completion, panicking with its output on failure.
pub(crate) fn run(what: &str, command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("testkit: cannot run {what} ({command:?}): {e}"));
    if !output.status.success() {
        panic!(
            "testkit: {what} failed ({}):\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// The resident memory of process `pid` now, in bytes (from `/proc`), for the lab's
/// reports on the servers it runs.
pub(crate) fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A plain HTTP/1.0 request without a body to the loopback `port` (the lab's servers'
/// readiness probes and small admin calls): the status code and the body, or `None` if
/// nothing answers. Reads until the server closes or goes quiet for 5 s.
pub(crate) fn http(port: u16, method: &str, path: &str) -> Option<(u16, String)> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\
         Connection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = Vec::new();
    let mut chunk = [0u8; 8192];
    while let Ok(n) = stream.read(&mut chunk) {
        if n == 0 {
            break;
        }
        response.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&response);
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    Some((status, body.to_owned()))
}
