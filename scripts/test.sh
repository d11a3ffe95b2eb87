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

# The suite above ran on the newest PostgreSQL (18); the Postgres connector's live tests
# also run on the oldest supported major.
if [ $# -eq 0 ]; then
  OUTFLOW_PG_VERSION=14 cargo test --locked -p outflow-postgres --test main
  echo "[test] Postgres connector on PostgreSQL 14 passed after $((SECONDS - start)) s"
fi

# The REST API against its OpenAPI document (schemathesis from PyPI; docs/testing.md).
if [ $# -eq 0 ]; then
  bash scripts/schemathesis.sh 30
  echo "[test] schemathesis done after $((SECONDS - start)) s"
fi

# Benchmarks, as a smoke only (docs/benchmarks.md): each criterion bench runs every
# case once, and the end-to-end harness drains a few thousand changes per scenario kind.
if [ $# -eq 0 ]; then
  cargo bench --locked -p outflow-postgres --bench decode -- --test
  cargo bench --locked -p outflow-mysql --bench row_decode -- --test
  cargo bench --locked -p outflow-interchange --bench encode -- --test
  cargo bench --locked -p outflow-lake --bench write -- --test
  cargo run --release --locked -p outflow-bench -- pg-stream mysql-stream pg-snapshot \
    --changes 3000 --rows 3000 --sinks null,lake,kafka
  cargo run --release --locked -p outflow-bench -- latency --seconds 2 --rate 500 --sinks null
  # The Debezium peer's path (docs/benchmarks.md, "Debezium as the peer").
  cargo run --release --locked -p outflow-bench -- pg-stream mysql-stream --changes 3000 \
    --sinks kafka-json,debezium
  echo "[test] benchmark smoke done after $((SECONDS - start)) s"
fi
