//! Finding the server binaries, with the install command in every failure.

use std::path::{Path, PathBuf};

/// Where `scripts/install-lab.sh` installs what does not come from apt:
/// `$OUTFLOW_LAB_DIR`, default `~/.local/share/outflow-lab`.
pub fn lab_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("OUTFLOW_LAB_DIR") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    home.join(".local/share/outflow-lab")
}

/// Where `scripts/install-lab.sh` puts binaries that do not come from apt.
pub fn lab_bin_dir() -> PathBuf {
    lab_dir().join("bin")
}

/// Finds `name`: the env var `env_override` if set, then the lab bin dir, then `PATH`.
/// Panics (failing the test, never skipping it) with `install_hint` when absent.
pub(crate) fn find_binary(name: &str, env_override: &str, install_hint: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env_override) {
        let path = PathBuf::from(path);
        if is_executable(&path) {
            return path;
        }
        panic!(
            "testkit: {env_override}={} is not an executable file",
            path.display()
        );
    }
    let in_lab = lab_bin_dir().join(name);
    if is_executable(&in_lab) {
        return in_lab;
    }
    if let Some(found) = search_path(name) {
        return found;
    }
    panic!(
        "testkit: `{name}` is not installed (looked in ${env_override}, {}, and PATH).\n\
         Install it with: {install_hint}",
        lab_bin_dir().display()
    );
}

pub(crate) fn search_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The bin directory of the newest PostgreSQL server installed (Debian layout
/// `/usr/lib/postgresql/<major>/bin`), or `OUTFLOW_PG_BINDIR`.
pub(crate) fn postgres_bindir() -> PathBuf {
    if let Some(dir) = std::env::var_os("OUTFLOW_PG_BINDIR") {
        return PathBuf::from(dir);
    }
    let newest = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").is_file().then_some((major, bin))
        })
        .max_by_key(|(major, _)| *major);
    match newest {
        Some((_, bin)) => bin,
        None => panic!(
            "testkit: no PostgreSQL server found under /usr/lib/postgresql/*/bin.\n\
             Install it with: apt-get install -y postgresql (or set OUTFLOW_PG_BINDIR)"
        ),
    }
}
