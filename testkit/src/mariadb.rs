//! A private MariaDB server with a ROW binlog, full row images and row metadata, and
//! GTIDs (always on in MariaDB; strict mode here).

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use mysql_async::prelude::Queryable as _;

use crate::process;
use crate::tools;

/// User with replication and all other privileges that tests and connectors use.
pub const CDC_USER: &str = "cdc";
/// Its password.
pub const CDC_PASSWORD: &str = "cdc";
/// A user like [`CDC_USER`] (same password) that may only connect over TLS
/// (`REQUIRE SSL`).
pub const CDC_TLS_USER: &str = "cdc_tls";
/// The server id of the lab server (connectors must pick another).
pub const SERVER_ID: u32 = 1;

/// A running MariaDB server owned by this test process.
#[derive(Debug)]
pub struct MariaDbServer {
    port: u16,
    socket: std::path::PathBuf,
    tls_dir: std::path::PathBuf,
    binlog_dir: std::path::PathBuf,
    error_log: std::path::PathBuf,
    pid: AtomicU32,
}

const INSTALL_HINT: &str = "apt-get install -y mariadb-server mariadb-client";

impl MariaDbServer {
    pub(crate) fn start() -> Self {
        let mariadbd = tools::find_binary("mariadbd", "OUTFLOW_MARIADBD", INSTALL_HINT);
        let mariadbd = if mariadbd.is_file() {
            mariadbd
        } else {
            std::path::PathBuf::from("/usr/sbin/mariadbd")
        };
        let install_db = tools::find_binary(
            "mariadb-install-db",
            "OUTFLOW_MARIADB_INSTALL_DB",
            INSTALL_HINT,
        );
        let client = tools::find_binary("mariadb", "OUTFLOW_MARIADB_CLIENT", INSTALL_HINT);

        let dir = process::server_dir("mariadb");
        let root = dir.path().to_owned();
        let data = root.join("data");
        let socket = root.join("sock");
        let error_log = root.join("err.log");
        let owner = if crate::sys::is_root() {
            let user = process::system_user("mysql").unwrap_or_else(|| {
                panic!("testkit: running as root but there is no `mysql` user; {INSTALL_HINT}")
            });
            process::chown_tree(&root, user.0, user.1);
            Some(user)
        } else {
            None
        };

        let mut install = Command::new(&install_db);
        install.arg(format!("--datadir={}", data.display())).args([
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--no-defaults",
        ]);
        if owner.is_some() {
            install.arg("--user=mysql");
        }
        process::run("mariadb-install-db", &mut install);

        let port = process::free_port();
        // TLS with a certificate for `localhost` from a test CA, as the Postgres server.
        let tls_dir = root.join("tls");
        crate::postgres::make_certificates(&tls_dir);
        if let Some((uid, gid)) = owner {
            process::chown_tree(&tls_dir, uid, gid);
            for file in ["ca.crt", "server.crt", "server.key"] {
                process::chown_tree(&tls_dir.join(file), uid, gid);
            }
        }
        let recipe = {
            let tls_dir = tls_dir.clone();
            let (data, socket, root, error_log) = (
                data.clone(),
                socket.clone(),
                root.clone(),
                error_log.clone(),
            );
            move || {
                let mut server = Command::new(&mariadbd);
                server
                    .arg("--no-defaults")
                    .arg(format!("--datadir={}", data.display()))
                    .arg(format!("--port={port}"))
                    .arg("--bind-address=127.0.0.1")
                    .arg(format!("--socket={}", socket.display()))
                    .arg(format!("--pid-file={}", root.join("pid").display()))
                    .arg(format!("--log-error={}", error_log.display()))
                    .arg(format!("--tmpdir={}", root.display()))
                    .arg(format!("--log-bin={}", data.join("binlog").display()))
                    .args([
                        "--binlog-format=ROW",
                        "--binlog-row-image=FULL",
                        "--binlog-row-metadata=FULL",
                        "--gtid-strict-mode=ON",
                        "--log-slave-updates=ON",
                        "--innodb-flush-log-at-trx-commit=2",
                        "--sync-binlog=0",
                        "--skip-name-resolve",
                        "--max-connections=500",
                    ])
                    .arg(format!("--server-id={SERVER_ID}"))
                    .arg(format!("--ssl-ca={}", tls_dir.join("ca.crt").display()))
                    .arg(format!(
                        "--ssl-cert={}",
                        tls_dir.join("server.crt").display()
                    ))
                    .arg(format!(
                        "--ssl-key={}",
                        tls_dir.join("server.key").display()
                    ))
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null());
                if let Some((uid, gid)) = owner {
                    std::os::unix::process::CommandExt::uid(&mut server, uid);
                    std::os::unix::process::CommandExt::gid(&mut server, gid);
                }
                server
            }
        };
        let pid = process::spawn_restartable("mariadb", Box::new(recipe), libc::SIGTERM, Some(dir));
        let server = Self {
            port,
            socket,
            tls_dir,
            binlog_dir: data,
            error_log,
            pid: AtomicU32::new(pid),
        };
        server.wait_ready(pid);

        let grant = format!(
            "CREATE USER '{CDC_USER}'@'%' IDENTIFIED BY '{CDC_PASSWORD}'; \
             GRANT ALL PRIVILEGES ON *.* TO '{CDC_USER}'@'%' WITH GRANT OPTION; \
             CREATE USER '{CDC_TLS_USER}'@'%' IDENTIFIED BY '{CDC_PASSWORD}' REQUIRE SSL; \
             GRANT ALL PRIVILEGES ON *.* TO '{CDC_TLS_USER}'@'%'; FLUSH PRIVILEGES;"
        );
        process::run(
            "creating the cdc user",
            Command::new(&client)
                .arg(format!("--socket={}", server.socket.display()))
                .args(["-uroot", "-e", &grant]),
        );
        server
    }

    fn wait_ready(&self, pid: u32) {
        process::wait_ready(
            "mariadb",
            pid,
            Duration::from_secs(60),
            || self.socket.exists() && process::port_open(self.port),
            || process::log_tail(&self.error_log, 30),
        );
    }

    /// Stops the server (SIGTERM, a clean shutdown) and starts it again on the same data
    /// and port; returns when it accepts connections. For a [`crate::dedicated_mariadb`]
    /// only: every connection to it breaks.
    pub fn restart(&self) {
        let pid = process::restart(self.pid.load(Ordering::SeqCst), None);
        self.pid.store(pid, Ordering::SeqCst);
        self.wait_ready(pid);
    }

    /// PEM file of the CA that issued the server's certificate (for `localhost`).
    pub fn tls_root_cert(&self) -> std::path::PathBuf {
        self.tls_dir.join("ca.crt")
    }

    /// TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Path of the Unix socket.
    pub fn socket(&self) -> &std::path::Path {
        &self.socket
    }

    /// Directory holding the binlog files (`binlog.000001`, ...).
    pub fn binlog_dir(&self) -> &std::path::Path {
        &self.binlog_dir
    }

    /// Connection options for `database` (or none) as the cdc user.
    pub fn opts(&self, database: Option<&str>) -> mysql_async::Opts {
        mysql_async::OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(self.port)
            .user(Some(CDC_USER))
            .pass(Some(CDC_PASSWORD))
            .db_name(database)
            .prefer_socket(false)
            .into()
    }

    /// Connects as the cdc user.
    pub async fn connect(&self, database: Option<&str>) -> mysql_async::Conn {
        mysql_async::Conn::new(self.opts(database))
            .await
            .unwrap_or_else(|e| panic!("testkit: cannot connect to mariadb: {e}"))
    }

    /// Creates a fresh database for one test.
    pub async fn create_database(&'static self, prefix: &str) -> MariaDbDatabase {
        let name = crate::unique_name(prefix);
        let mut conn = self.connect(None).await;
        conn.query_drop(format!("CREATE DATABASE `{name}`"))
            .await
            .unwrap_or_else(|e| panic!("testkit: cannot create database {name}: {e}"));
        let _ = conn.disconnect().await;
        MariaDbDatabase { server: self, name }
    }
}

/// A database of its own for one test, on the shared server.
#[derive(Debug)]
pub struct MariaDbDatabase {
    server: &'static MariaDbServer,
    name: String,
}

impl MariaDbDatabase {
    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server it lives on.
    pub fn server(&self) -> &'static MariaDbServer {
        self.server
    }

    /// A new connection with it as the default database.
    pub async fn connect(&self) -> mysql_async::Conn {
        self.server.connect(Some(&self.name)).await
    }
}
