//! Records the git commit the binary was built from, for `GET /` and `outflow version`.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=OUTFLOW_BUILD_COMMIT");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    let commit = std::env::var("OUTFLOW_BUILD_COMMIT").ok().or_else(|| {
        let out = Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    });
    println!(
        "cargo:rustc-env=OUTFLOW_COMMIT={}",
        commit.unwrap_or_else(|| "unknown".into())
    );
}
