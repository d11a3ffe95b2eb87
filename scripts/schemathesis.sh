#!/usr/bin/env bash
# Runs schemathesis (PyPI) against schemas/openapi.yaml on a throwaway `outflow serve`
# (lake sink, temp data dir, a free loopback port): every operation with generated valid
# and invalid requests, checking that no response is a 5xx and that status codes,
# content types, headers and bodies match the document. Connector configs have
# conditional requirements the document does not express (a class's required
# properties), so the "schema-valid request must be accepted" / "invalid must be
# rejected" checks are left to tests/bad_input.rs. Usage: bash scripts/schemathesis.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
examples=${1:-30}
version=4.32.5
if ! st --version 2>/dev/null | grep -q "$version"; then
  python3 -m pip install --quiet "schemathesis==$version"
fi
bin=${OUTFLOW_BIN:-target/release/outflow}
[ -x "$bin" ] || cargo build --release --locked --bin outflow
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
data=$(mktemp -d)
OUTFLOW_DATA_DIR="$data" OUTFLOW_REST_LISTEN="127.0.0.1:$port" "$bin" serve >"$data/outflow.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
  sleep 0.1
done
st run schemas/openapi.yaml --url "http://127.0.0.1:$port" --max-examples "$examples" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance
