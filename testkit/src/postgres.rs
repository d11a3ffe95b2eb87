//! A private PostgreSQL server with logical decoding on.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::process;
use crate::tools;

/// Users with password authentication that tests may create (pg_hba.conf asks them for a
/// password; all other users are trusted): `outflow_md5` (md5) and `outflow_scram`
/// (SCRAM-SHA-256).
pub const PASSWORD_USERS: [&str; 2] = ["outflow_md5", "outflow_scram"];

/// A user that may only connect over TLS (pg_hba.conf rejects it on plain TCP; trusted
/// over TLS).
pub const TLS_ONLY_USER: &str = "outflow_tls";

/// A user authenticated by client certificate (`cert` in pg_hba.conf): its certificate
/// and key are [`PostgresServer::client_certificate`].
pub const CERT_USER: &str = "outflow_cert";

/// A running PostgreSQL server owned by this test process. It accepts TLS with a
/// certificate for the name `localhost` (not for the address `127.0.0.1`, so host-name
/// checks can be seen to fail) issued by a test CA ([`PostgresServer::tls_root_cert`]).
#[derive(Debug)]
pub struct PostgresServer {
    port: u16,
    bindir: std::path::PathBuf,
    socket_dir: std::path::PathBuf,
    tls_dir: std::path::PathBuf,
    log: std::path::PathBuf,
    pid: AtomicU32,
    major: u32,
}

/// Makes a test CA, a server certificate signed by it and a client certificate for
/// [`CERT_USER`] with the `openssl` tool.
pub(crate) fn make_certificates(dir: &std::path::Path) {
    if let Err(e) = std::fs::create_dir_all(dir) {
        panic!("testkit: cannot create {}: {e}", dir.display());
    }
    let openssl = |args: &[&str]| {
        let mut command = Command::new("openssl");
        command.args(args).current_dir(dir);
        process::run("openssl", &mut command);
    };
    let key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509", "-days", "3", "-subj", "/CN=outflow test CA"];
    ca.extend(key);
    ca.extend(["-keyout", "ca.key", "-out", "ca.crt"]);
    openssl(&ca);
    if let Err(e) = std::fs::write(dir.join("server.ext"), "subjectAltName=DNS:localhost\n") {
        panic!("testkit: cannot write server.ext: {e}");
    }
    for (name, subject, ext) in [
        ("server", "/CN=localhost", Some("server.ext")),
        ("client", "/CN=outflow_cert", None),
    ] {
        let (key_file, csr, crt) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
        );
        let mut request = vec!["req", "-subj", subject];
        request.extend(key);
        request.extend(["-keyout", &key_file, "-out", &csr]);
        openssl(&request);
        let mut sign = vec![
            "x509",
            "-req",
            "-days",
            "3",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &crt,
        ];
        if let Some(ext) = ext {
            sign.extend(["-extfile", ext]);
        }
        openssl(&sign);
    }
    use std::os::unix::fs::PermissionsExt as _;
    for key in ["server.key", "client.key"] {
        if let Err(e) =
            std::fs::set_permissions(dir.join(key), std::fs::Permissions::from_mode(0o600))
        {
            panic!("testkit: cannot restrict {key}: {e}");
        }
    }
}

/// The major version of the server in `bindir`, from `postgres --version`
/// ("postgres (PostgreSQL) 18.4").
fn server_major(bindir: &std::path::Path) -> u32 {
    let output = Command::new(bindir.join("postgres"))
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("testkit: cannot run {}/postgres: {e}", bindir.display()));
    let text = String::from_utf8_lossy(&output.stdout);
    text.split_whitespace()
        .last()
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("testkit: cannot read the version in {text:?}"))
}

impl PostgresServer {
    pub(crate) fn start() -> Self {
        let bindir = tools::postgres_bindir();
        let major = server_major(&bindir);
        let dir = process::server_dir("postgres");
        let root = dir.path().to_owned();
        let data = root.join("data");
        let log = root.join("postgres.log");
        let owner = if crate::sys::is_root() {
            let user = process::system_user("postgres").unwrap_or_else(|| {
                panic!(
                    "testkit: running as root but there is no `postgres` user to run the server as"
                )
            });
            process::chown_tree(&root, user.0, user.1);
            Some(user)
        } else {
            None
        };
        let as_owner = |command: &mut Command| {
            if let Some((uid, gid)) = owner {
                std::os::unix::process::CommandExt::uid(command, uid);
                std::os::unix::process::CommandExt::gid(command, gid);
            }
        };

        let mut initdb = Command::new(bindir.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--locale=C",
            ])
            .env("HOME", &root);
        as_owner(&mut initdb);
        process::run("initdb", &mut initdb);
        let tls_dir = root.join("tls");
        make_certificates(&tls_dir);
        if let Some((uid, gid)) = owner {
            process::chown_tree(&tls_dir, uid, gid);
            for file in [
                "ca.crt",
                "server.crt",
                "server.key",
                "client.crt",
                "client.key",
            ] {
                process::chown_tree(&tls_dir.join(file), uid, gid);
            }
        }
        // Password methods for the users tests create to exercise authentication, a
        // TLS-only user and a certificate user; every other user is trusted.
        let hba = "local all all trust\n\
                   hostnossl all outflow_tls 127.0.0.1/32 reject\n\
                   hostssl all outflow_cert 127.0.0.1/32 cert\n\
                   host all outflow_md5 127.0.0.1/32 md5\n\
                   host all outflow_scram 127.0.0.1/32 scram-sha-256\n\
                   host all all 127.0.0.1/32 trust\n\
                   host replication all 127.0.0.1/32 trust\n";
        if let Err(e) = std::fs::write(data.join("pg_hba.conf"), hba) {
            panic!("testkit: cannot write pg_hba.conf: {e}");
        }

        let port = process::free_port();
        let recipe = {
            let (bindir, data, root, tls_dir, log) = (
                bindir.clone(),
                data.clone(),
                root.clone(),
                tls_dir.clone(),
                log.clone(),
            );
            move || {
                let mut postgres = Command::new(bindir.join("postgres"));
                postgres
                    .arg("-D")
                    .arg(&data)
                    .arg("-p")
                    .arg(port.to_string())
                    .arg("-k")
                    .arg(&root)
                    .args([
                        "-c",
                        "listen_addresses=127.0.0.1",
                        "-c",
                        "wal_level=logical",
                        "-c",
                        "max_replication_slots=64",
                        "-c",
                        "max_wal_senders=64",
                        "-c",
                        "max_connections=300",
                        "-c",
                        "fsync=off",
                        "-c",
                        "full_page_writes=off",
                        "-c",
                        "log_min_messages=warning",
                        "-c",
                        "ssl=on",
                    ])
                    .arg("-c")
                    .arg(format!(
                        "ssl_cert_file={}",
                        tls_dir.join("server.crt").display()
                    ))
                    .arg("-c")
                    .arg(format!(
                        "ssl_key_file={}",
                        tls_dir.join("server.key").display()
                    ))
                    .arg("-c")
                    .arg(format!("ssl_ca_file={}", tls_dir.join("ca.crt").display()))
                    .env("HOME", &root)
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(
                        std::fs::OpenOptions::new()
                            .create(true)
                            .append(true)
                            .open(&log)
                            .unwrap_or_else(|e| {
                                panic!("testkit: cannot open {}: {e}", log.display())
                            }),
                    );
                if let Some((uid, gid)) = owner {
                    // The log file was opened by us; the server writes through the
                    // inherited fd.
                    process::chown_tree(&log, uid, gid);
                    std::os::unix::process::CommandExt::uid(&mut postgres, uid);
                    std::os::unix::process::CommandExt::gid(&mut postgres, gid);
                }
                postgres
            }
        };
        // SIGQUIT is Postgres' immediate shutdown: fast, and the data is thrown away anyway.
        let pid =
            process::spawn_restartable("postgres", Box::new(recipe), libc::SIGQUIT, Some(dir));
        let server = Self {
            port,
            bindir,
            socket_dir: root,
            tls_dir,
            log,
            pid: AtomicU32::new(pid),
            major,
        };
        server.wait_ready(pid);
        server
    }

    fn wait_ready(&self, pid: u32) {
        let isready = self.client_tool("pg_isready");
        let port = self.port;
        process::wait_ready(
            "postgres",
            pid,
            Duration::from_secs(60),
            || {
                Command::new(&isready)
                    .args([
                        "-q",
                        "-h",
                        "127.0.0.1",
                        "-p",
                        &port.to_string(),
                        "-U",
                        "postgres",
                    ])
                    .status()
                    .is_ok_and(|s| s.success())
            },
            || process::log_tail(&self.log, 30),
        );
    }

    /// Restarts the server the way a crash does (immediate shutdown, then crash recovery
    /// at start) and waits until it accepts connections again. For a server of its own
    /// ([`crate::dedicated_postgres`]): every connection to it breaks.
    pub fn restart(&self) {
        let pid = process::restart(self.pid.load(Ordering::SeqCst), None);
        self.pid.store(pid, Ordering::SeqCst);
        self.wait_ready(pid);
    }

    /// PEM file of the CA that issued the server's certificate.
    pub fn tls_root_cert(&self) -> std::path::PathBuf {
        self.tls_dir.join("ca.crt")
    }

    /// PEM certificate and PKCS#8 key files of [`CERT_USER`].
    pub fn client_certificate(&self) -> (std::path::PathBuf, std::path::PathBuf) {
        (
            self.tls_dir.join("client.crt"),
            self.tls_dir.join("client.key"),
        )
    }

    /// TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Directory of the server's binaries (`postgres`, `initdb`, `pg_ctl`; the lab's npm
    /// builds carry no client tools: see [`PostgresServer::client_tool`]).
    pub fn bindir(&self) -> &std::path::Path {
        &self.bindir
    }

    /// A client tool (`psql`, `pg_recvlogical`, `pg_dump`): the server's own when its
    /// bin directory has it, else the one on `PATH` (Debian's postgresql-client, which
    /// speaks to every server version here).
    pub fn client_tool(&self, name: &str) -> std::path::PathBuf {
        let own = self.bindir.join(name);
        if own.is_file() {
            return own;
        }
        tools::search_path(name).unwrap_or_else(|| {
            panic!(
                "testkit: the PostgreSQL client tool {name} is not installed. \
                 Install it with: bash scripts/install-lab.sh (apt: postgresql-client)"
            )
        })
    }

    /// The server's major version (14 … 18).
    pub fn major_version(&self) -> u32 {
        self.major
    }

    /// Directory holding the server's Unix socket.
    pub fn socket_dir(&self) -> &std::path::Path {
        &self.socket_dir
    }

    /// A libpq-style connection string for `dbname` as the superuser `postgres`.
    pub fn connection_string(&self, dbname: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname={dbname}",
            self.port
        )
    }

    /// Connects to `dbname`; the connection runs on the current tokio runtime.
    pub async fn connect(&self, dbname: &str) -> tokio_postgres::Client {
        let (client, connection) =
            tokio_postgres::connect(&self.connection_string(dbname), tokio_postgres::NoTls)
                .await
                .unwrap_or_else(|e| panic!("testkit: cannot connect to postgres/{dbname}: {e}"));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "testkit postgres connection ended");
            }
        });
        client
    }

    /// Creates a fresh database for one test.
    pub async fn create_database(&'static self, prefix: &str) -> PostgresDatabase {
        let name = crate::unique_name(prefix);
        let admin = self.connect("postgres").await;
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap_or_else(|e| panic!("testkit: cannot create database {name}: {e}"));
        PostgresDatabase { server: self, name }
    }
}

/// A database of its own for one test, on the shared server.
#[derive(Debug)]
pub struct PostgresDatabase {
    server: &'static PostgresServer,
    name: String,
}

impl PostgresDatabase {
    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server it lives on.
    pub fn server(&self) -> &'static PostgresServer {
        self.server
    }

    /// A connection string for it.
    pub fn connection_string(&self) -> String {
        self.server.connection_string(&self.name)
    }

    /// A new connection to it.
    pub async fn connect(&self) -> tokio_postgres::Client {
        self.server.connect(&self.name).await
    }
}
