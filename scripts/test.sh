#!/usr/bin/env bash
# The one test command: installs what the test lab needs (idempotent, quick when all is
# present), checks formatting and lints, then runs the whole suite against real servers
# that the tests start themselves. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

start=$SECONDS
bash scripts/install-lab.sh
echo "[test] lab ready after $((SECONDS - start)) s"

for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    rustup component add "$component"
  fi
done
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "[test] fmt + clippy done after $((SECONDS - start)) s"

# The crash test runs the release build of the real binary (OUTFLOW_BIN), as production
# would; the other end-to-end tests use the test profile's build.
cargo build --release --locked --bin outflow
export OUTFLOW_BIN="$PWD/target/release/outflow"
echo "[test] release binary built after $((SECONDS - start)) s"

cargo test --workspace --locked "$@"
echo "[test] all tests passed after $((SECONDS - start)) s"
