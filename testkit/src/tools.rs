//! Finding the server binaries, with the install command in every failure.

use std::path::{Path, PathBuf};

/// Where `scripts/install-lab.sh` installs what does not come from apt:
/// `$OUTFLOW_LAB_DIR`, default `~/.local/share/outflow-lab`.
pub(crate) fn lab_dir() -> PathBuf {
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

/// Where `scripts/install-lab.sh` unpacks the PostgreSQL servers it takes from npm
/// (`<root>/<major>/bin`): `$OUTFLOW_PG_ROOT`, default `/opt/outflow-lab/postgresql`.
fn lab_postgres_root() -> PathBuf {
    std::env::var_os("OUTFLOW_PG_ROOT").map_or_else(
        || PathBuf::from("/opt/outflow-lab/postgresql"),
        PathBuf::from,
    )
}

/// Server bin directories by major version: the lab's npm builds, then Debian's
/// (`/usr/lib/postgresql/<major>/bin`); the first found for a major wins.
fn postgres_installs() -> std::collections::BTreeMap<u32, PathBuf> {
    let mut found = std::collections::BTreeMap::new();
    for root in [lab_postgres_root(), PathBuf::from("/usr/lib/postgresql")] {
        for entry in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            let Some(major) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let bin = entry.path().join("bin");
            if bin.join("postgres").is_file() {
                found.entry(major).or_insert(bin);
            }
        }
    }
    found
}

/// The bin directory of the PostgreSQL server the lab runs: `OUTFLOW_PG_BINDIR` if set;
/// else the major version `OUTFLOW_PG_VERSION` names; else the newest installed.
pub(crate) fn postgres_bindir() -> PathBuf {
    if let Some(dir) = std::env::var_os("OUTFLOW_PG_BINDIR") {
        return PathBuf::from(dir);
    }
    let installs = postgres_installs();
    let wanted = std::env::var("OUTFLOW_PG_VERSION").ok();
    let chosen = match wanted.as_deref().map(str::trim) {
        Some(version) if !version.is_empty() => {
            let major: u32 = version.parse().unwrap_or_else(|_| {
                panic!("testkit: OUTFLOW_PG_VERSION={version:?} is not a major version (14..18)")
            });
            installs.get(&major).cloned().ok_or(major)
        }
        _ => installs.values().next_back().cloned().ok_or(0),
    };
    match chosen {
        Ok(bin) => bin,
        Err(major) => panic!(
            "testkit: PostgreSQL {} is not installed (looked in {}/<major>/bin and \
             /usr/lib/postgresql/<major>/bin; found {:?}).\n\
             Install it with: OUTFLOW_PG_VERSIONS=\"{}\" bash scripts/install-lab.sh",
            if major == 0 {
                "(any version)".to_owned()
            } else {
                major.to_string()
            },
            lab_postgres_root().display(),
            installs.keys().collect::<Vec<_>>(),
            if major == 0 { 18 } else { major },
        ),
    }
}
