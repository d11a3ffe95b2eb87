//! A client of Postgres' streaming replication protocol, for logical decoding.
//!
//! tokio-postgres cannot open replication connections (`replication=database`), and
//! outflow needs exactly three things from one: create a slot *with an exported
//! snapshot* and keep the connection idle while snapshot readers import it, start
//! logical replication, and exchange CopyBoth messages (XLogData, keepalives, standby
//! status updates) with control over which LSN is reported as flushed. That is a few
//! hundred lines on top of `postgres-protocol` (startup, SCRAM/MD5 messages), so outflow
//! owns it rather than adapting a crate whose client starts streaming on connect
//! (pgwire-replication 0.5) — see docs/architecture.md.
//!
//! Every message from the server is length-checked before use; malformed or unexpected
//! messages are [`ReplicationError::Protocol`], server errors [`ReplicationError::Server`]
//! with SQLSTATE, and I/O failures [`ReplicationError::Io`] (transient).

use std::fmt;

use crate::position::Lsn;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use postgres_protocol::authentication::sasl::{ChannelBinding, SCRAM_SHA_256, ScramSha256};
use postgres_protocol::message::frontend;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// Errors of the replication connection.
#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    /// The network failed (transient).
    #[error("replication connection I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The server reported an error.
    #[error("server error {code}: {message}{}", detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Server {
        /// SQLSTATE.
        code: String,
        /// Message.
        message: String,
        /// Detail, if any.
        detail: Option<String>,
    },
    /// The server sent something the protocol does not allow here.
    #[error("replication protocol: {0}")]
    Protocol(String),
    /// Authentication is not possible (no password given, unsupported method).
    #[error("authentication: {0}")]
    Authentication(String),
    /// TLS was required and the server refused it, or the handshake failed.
    #[error("TLS: {message}")]
    Tls {
        /// What failed.
        message: String,
        /// The TLS library's error, if any.
        #[source]
        source: Option<native_tls::Error>,
    },
}

impl ReplicationError {
    /// SQLSTATE of a server error.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            Self::Server { code, .. } => Some(code),
            _ => None,
        }
    }
}

fn protocol(message: impl Into<String>) -> ReplicationError {
    ReplicationError::Protocol(message.into())
}

/// How to reach the server.
#[derive(Clone)]
pub struct ConnectOptions {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// User (needs the REPLICATION attribute).
    pub user: String,
    /// Password, if the server asks for one.
    pub password: Option<String>,
    /// Database whose changes to decode.
    pub dbname: String,
    /// `application_name` (shows in `pg_stat_replication`).
    pub application_name: String,
    /// Session settings sent at startup (e.g. [`crate::types::SESSION_SETTINGS`]).
    pub settings: Vec<(String, String)>,
    /// TLS: the connector, and whether a server without TLS is refused. `None`: plain.
    pub tls: Option<(tokio_native_tls::TlsConnector, bool)>,
}

impl fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "********"))
            .field("dbname", &self.dbname)
            .field("application_name", &self.application_name)
            .field("tls", &self.tls.as_ref().map(|(_, required)| required))
            .finish()
    }
}

/// One backend message: type byte and body.
struct BackendMessage {
    tag: u8,
    body: Bytes,
}

/// Result of a simple query: rows of text columns (`None` = NULL).
pub type Rows = Vec<Vec<Option<String>>>;

/// A slot created by `CREATE_REPLICATION_SLOT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedSlot {
    /// Slot name.
    pub name: String,
    /// LSN from which the slot is consistent: the snapshot sees everything before it,
    /// the stream everything that commits after it.
    pub consistent_point: Lsn,
    /// Exported snapshot name, valid until this connection runs another command.
    pub snapshot: Option<String>,
}

/// The byte stream under the protocol: plain TCP or TLS over it.
enum Transport {
    Plain(TcpStream),
    Tls(Box<tokio_native_tls::TlsStream<TcpStream>>),
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// SSLRequest: asks the server to switch to TLS before the startup message.
async fn negotiate_tls(
    mut tcp: TcpStream,
    host: &str,
    connector: &tokio_native_tls::TlsConnector,
    required: bool,
) -> Result<Transport, ReplicationError> {
    const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
    tcp.write_all(&SSL_REQUEST).await?;
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer).await?;
    match answer[0] {
        b'S' => {
            let tls = connector
                .connect(host, tcp)
                .await
                .map_err(|e| ReplicationError::Tls {
                    message: "handshake failed".into(),
                    source: Some(e),
                })?;
            Ok(Transport::Tls(Box::new(tls)))
        }
        b'N' if !required => Ok(Transport::Plain(tcp)),
        b'N' => Err(ReplicationError::Tls {
            message: "the server does not accept TLS connections".into(),
            source: None,
        }),
        other => Err(protocol(format!(
            "unexpected answer {other:#04x} to SSLRequest"
        ))),
    }
}

/// A replication connection in the command state.
pub struct ReplicationConnection {
    stream: Transport,
    read: BytesMut,
    write: BytesMut,
    /// Read coalescing while streaming (see [`ReadCoalescing`]).
    coalescing: Option<ReadCoalescing>,
    /// Where a TLS connection's reads land before they join `read` (see [`Self::fill`]);
    /// empty until the first TLS read.
    tls_chunk: Vec<u8>,
}

/// Bytes read per call on a TLS connection (a TLS record is at most 16 KiB).
const TLS_READ_CHUNK: usize = 64 * 1024;

/// Fewer, larger reads while the stream is busy.
///
/// The walsender sends every message as its own TCP segment. A reader that waits on the
/// socket between segments is woken once per message, and the wake-up runs in the
/// sending walsender's time: with a fast sink the server spent more CPU waking outflow
/// than decoding (7.1 vs 4.2 server CPU s per million events, measured by
/// `outflow-bench pg-stream`). Once a read returns at least [`BUSY_READ`] bytes, the
/// socket's `SO_RCVLOWAT` is raised to [`BUSY_LOWAT`], so the kernel wakes us once per
/// that many bytes; a read that waits longer than [`BUSY_WAIT`] takes whatever arrived
/// (a non-blocking read ignores the low-water mark), and only when nothing at all
/// arrived does it drop back to waking per segment. (Measured: 32 KB and 128 KB marks
/// and leaving on any short read all cost the server more than this.) Latency cost: at most `BUSY_WAIT` for the tail of a burst. Plain TCP only.
#[derive(Debug, Default)]
struct ReadCoalescing {
    /// `SO_RCVLOWAT` is raised.
    raised: bool,
    /// Bytes the last read returned.
    last_read: usize,
}

/// `SO_RCVBUF` of replication sockets: 256 KB to 2 MB all gave the server ~5.5 CPU s
/// per million events in `outflow-bench pg-stream`; the autotuned default 7.7.
const RECEIVE_BUFFER: u32 = 512 * 1024;

/// A read at least this large means the stream is busy.
const BUSY_READ: usize = 16 * 1024;
/// The low-water mark while busy.
const BUSY_LOWAT: i32 = 64 * 1024;
/// How long a busy read waits for the low-water mark before taking what there is.
const BUSY_WAIT: std::time::Duration = std::time::Duration::from_millis(2);

/// Sets `SO_RCVLOWAT` on a TCP socket.
#[allow(unsafe_code)]
fn set_recv_lowat(socket: &TcpStream, bytes: i32) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let value: libc::c_int = bytes;
    // SAFETY: the descriptor belongs to `socket`, open for the duration of the call;
    // the option value is a c_int on the stack whose size is passed with it.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            std::ptr::from_ref(&value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

impl fmt::Debug for ReplicationConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplicationConnection")
            .finish_non_exhaustive()
    }
}

fn cstring(body: &mut Bytes) -> Result<String, ReplicationError> {
    let end = body
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| protocol("unterminated string"))?;
    let text = String::from_utf8_lossy(&body[..end]).into_owned();
    body.advance(end + 1);
    Ok(text)
}

fn server_error(mut body: Bytes) -> ReplicationError {
    let (mut code, mut message, mut detail) = (String::new(), String::new(), None);
    while body.has_remaining() {
        let field = body.get_u8();
        if field == 0 {
            break;
        }
        let Ok(value) = cstring(&mut body) else { break };
        match field {
            b'C' => code = value,
            b'M' => message = value,
            b'D' => detail = Some(value),
            _ => {}
        }
    }
    ReplicationError::Server {
        code,
        message,
        detail,
    }
}

impl ReplicationConnection {
    /// Connects and authenticates (trust, cleartext, MD5 or SCRAM-SHA-256).
    pub async fn connect(options: &ConnectOptions) -> Result<Self, ReplicationError> {
        let address = tokio::net::lookup_host((options.host.as_str(), options.port))
            .await?
            .next()
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("{} resolves to no address", options.host),
                )
            })?;
        let socket = if address.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        // A fixed receive buffer (set before connecting, so the window scale fits it):
        // with the kernel's autotuned one, read coalescing saved outflow's CPU but not
        // the server's (see `ReadCoalescing`).
        socket.set_recv_buffer_size(RECEIVE_BUFFER)?;
        let tcp = socket.connect(address).await?;
        tcp.set_nodelay(true)?;
        let stream = match &options.tls {
            None => Transport::Plain(tcp),
            Some((connector, required)) => {
                negotiate_tls(tcp, &options.host, connector, *required).await?
            }
        };
        let mut conn = Self {
            stream,
            read: BytesMut::with_capacity(64 * 1024),
            write: BytesMut::with_capacity(1024),
            coalescing: None,
            tls_chunk: Vec::new(),
        };
        let mut params: Vec<(&str, &str)> = vec![
            ("user", options.user.as_str()),
            ("database", options.dbname.as_str()),
            ("replication", "database"),
            ("application_name", options.application_name.as_str()),
            ("client_encoding", "UTF8"),
        ];
        params.extend(
            options
                .settings
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        frontend::startup_message(params, &mut conn.write)?;
        conn.flush().await?;
        conn.authenticate(options).await?;
        loop {
            let message = conn.receive().await?;
            match message.tag {
                b'Z' => return Ok(conn),
                b'S' | b'K' | b'N' => {}
                b'E' => return Err(server_error(message.body)),
                other => {
                    return Err(protocol(format!(
                        "unexpected message {:?} during startup",
                        char::from(other)
                    )));
                }
            }
        }
    }

    async fn authenticate(&mut self, options: &ConnectOptions) -> Result<(), ReplicationError> {
        let password = || {
            options.password.as_deref().ok_or_else(|| {
                ReplicationError::Authentication(
                    "the server asks for a password; set database.password".into(),
                )
            })
        };
        let mut scram: Option<ScramSha256> = None;
        loop {
            let message = self.receive().await?;
            if message.tag == b'E' {
                return Err(server_error(message.body));
            }
            if message.tag != b'R' {
                return Err(protocol(format!(
                    "expected authentication, got {:?}",
                    char::from(message.tag)
                )));
            }
            let mut body = message.body;
            if body.remaining() < 4 {
                return Err(protocol("short authentication message"));
            }
            match body.get_i32() {
                0 => return Ok(()),
                3 => {
                    frontend::password_message(password()?.as_bytes(), &mut self.write)?;
                    self.flush().await?;
                }
                5 => {
                    if body.remaining() < 4 {
                        return Err(protocol("short MD5 salt"));
                    }
                    let mut salt = [0u8; 4];
                    body.copy_to_slice(&mut salt);
                    let hash = postgres_protocol::authentication::md5_hash(
                        options.user.as_bytes(),
                        password()?.as_bytes(),
                        salt,
                    );
                    frontend::password_message(hash.as_bytes(), &mut self.write)?;
                    self.flush().await?;
                }
                10 => {
                    let mut mechanisms = Vec::new();
                    while body.has_remaining() && body[0] != 0 {
                        mechanisms.push(cstring(&mut body)?);
                    }
                    if !mechanisms.iter().any(|m| m == SCRAM_SHA_256) {
                        return Err(ReplicationError::Authentication(format!(
                            "no supported SASL mechanism in {mechanisms:?}"
                        )));
                    }
                    let client =
                        ScramSha256::new(password()?.as_bytes(), ChannelBinding::unsupported());
                    frontend::sasl_initial_response(
                        SCRAM_SHA_256,
                        client.message(),
                        &mut self.write,
                    )?;
                    self.flush().await?;
                    scram = Some(client);
                }
                11 => {
                    let client = scram
                        .as_mut()
                        .ok_or_else(|| protocol("SASL continue without SASL start"))?;
                    client
                        .update(&body)
                        .map_err(|e| ReplicationError::Authentication(e.to_string()))?;
                    frontend::sasl_response(client.message(), &mut self.write)?;
                    self.flush().await?;
                }
                12 => {
                    let client = scram
                        .as_mut()
                        .ok_or_else(|| protocol("SASL final without SASL start"))?;
                    client
                        .finish(&body)
                        .map_err(|e| ReplicationError::Authentication(e.to_string()))?;
                }
                other => {
                    return Err(ReplicationError::Authentication(format!(
                        "unsupported authentication request {other}"
                    )));
                }
            }
        }
    }

    async fn flush(&mut self) -> Result<(), ReplicationError> {
        self.stream.write_all(&self.write).await?;
        self.write.clear();
        Ok(())
    }

    /// Reads one complete backend message.
    async fn receive(&mut self) -> Result<BackendMessage, ReplicationError> {
        loop {
            if self.read.len() >= 5 {
                let len =
                    u32::from_be_bytes([self.read[1], self.read[2], self.read[3], self.read[4]])
                        as usize;
                if len < 4 {
                    return Err(protocol(format!("message length {len} below 4")));
                }
                if self.read.len() > len {
                    let tag = self.read[0];
                    let mut frame = self.read.split_to(len + 1);
                    frame.advance(5);
                    return Ok(BackendMessage {
                        tag,
                        body: frame.freeze(),
                    });
                }
                self.read.reserve(len + 1 - self.read.len());
            }
            if self.fill().await? == 0 {
                return Err(ReplicationError::Io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "server closed the replication connection",
                )));
            }
        }
    }

    /// Reads more bytes into the buffer (0: end of stream), coalescing while busy.
    async fn fill(&mut self) -> std::io::Result<usize> {
        if let Transport::Tls(tls) = &mut self.stream {
            // tokio-native-tls zeroes all the spare capacity of the buffer it reads into,
            // on every read. With a large message's length reserved ahead (a 100 MB row
            // is one 200 MB message), each 16 KiB record would cost a memset of the rest
            // of it: quadratic, and such a row never arrived. A small buffer keeps each
            // read's cost to its own bytes.
            if self.tls_chunk.is_empty() {
                self.tls_chunk = vec![0; TLS_READ_CHUNK];
            }
            let read = tls.read(&mut self.tls_chunk).await?;
            self.read.extend_from_slice(&self.tls_chunk[..read]);
            return Ok(read);
        }
        let (Some(coalescing), Transport::Plain(tcp)) = (&mut self.coalescing, &mut self.stream)
        else {
            return self.stream.read_buf(&mut self.read).await;
        };
        // Busy from a large read until a wait finds nothing at all (hysteresis: a short
        // read in the middle of a burst does not fall back to per-segment wake-ups).
        let busy = coalescing.raised || coalescing.last_read >= BUSY_READ;
        if busy != coalescing.raised {
            set_recv_lowat(tcp, if busy { BUSY_LOWAT } else { 1 })?;
            coalescing.raised = busy;
        }
        if self.read.capacity() - self.read.len() < BUSY_LOWAT as usize {
            self.read.reserve(BUSY_LOWAT as usize * 2);
        }
        let read = if busy {
            match tokio::time::timeout(BUSY_WAIT, tcp.read_buf(&mut self.read)).await {
                Ok(read) => read?,
                Err(_) => match tcp.try_read_buf(&mut self.read) {
                    Ok(read) => read,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        // Idle: wake per segment again.
                        set_recv_lowat(tcp, 1)?;
                        coalescing.raised = false;
                        tcp.read_buf(&mut self.read).await?
                    }
                    Err(e) => return Err(e),
                },
            }
        } else {
            tcp.read_buf(&mut self.read).await?
        };
        coalescing.last_read = read;
        Ok(read)
    }

    /// Runs a replication command or SQL statement with the simple query protocol and
    /// returns its rows as text.
    pub async fn simple_query(&mut self, sql: &str) -> Result<Rows, ReplicationError> {
        frontend::query(sql, &mut self.write)?;
        self.flush().await?;
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            let message = self.receive().await?;
            match message.tag {
                b'T' | b'C' | b'I' | b'N' | b'S' => {}
                b'D' => rows.push(data_row(message.body)?),
                b'E' => error = Some(server_error(message.body)),
                b'Z' => return error.map_or(Ok(rows), Err),
                other => {
                    return Err(protocol(format!(
                        "unexpected message {:?} in a query",
                        char::from(other)
                    )));
                }
            }
        }
    }

    /// `CREATE_REPLICATION_SLOT <name> LOGICAL pgoutput`, exporting a snapshot if asked.
    pub async fn create_slot(
        &mut self,
        name: &str,
        export_snapshot: bool,
    ) -> Result<CreatedSlot, ReplicationError> {
        self.create(name, "", export_snapshot).await
    }

    /// Creates a temporary slot (dropped when this connection closes) exporting a
    /// snapshot: a consistent view at a new point, valid while the connection is idle.
    pub async fn create_temporary_slot(
        &mut self,
        name: &str,
    ) -> Result<CreatedSlot, ReplicationError> {
        self.create(name, "TEMPORARY ", true).await
    }

    async fn create(
        &mut self,
        name: &str,
        temporary: &str,
        export_snapshot: bool,
    ) -> Result<CreatedSlot, ReplicationError> {
        let snapshot = if export_snapshot {
            "EXPORT_SNAPSHOT"
        } else {
            "NOEXPORT_SNAPSHOT"
        };
        let rows = self
            .simple_query(&format!(
                "CREATE_REPLICATION_SLOT {} {temporary}LOGICAL pgoutput {snapshot}",
                quote_identifier(name)
            ))
            .await?;
        let row = rows
            .first()
            .ok_or_else(|| protocol("CREATE_REPLICATION_SLOT returned no row"))?;
        let field = |i: usize| row.get(i).cloned().flatten();
        let consistent_point = field(1)
            .ok_or_else(|| protocol("no consistent point"))?
            .parse()
            .map_err(|e: crate::position::InvalidLsn| protocol(e.to_string()))?;
        Ok(CreatedSlot {
            name: field(0).unwrap_or_else(|| name.to_owned()),
            consistent_point,
            snapshot: field(2),
        })
    }

    /// Starts logical replication from `start` and turns the connection into a stream.
    pub async fn start_replication(
        mut self,
        slot: &str,
        start: Lsn,
        plugin_options: &[(&str, &str)],
    ) -> Result<ReplicationStream, ReplicationError> {
        let options: Vec<String> = plugin_options
            .iter()
            .map(|(k, v)| format!("\"{k}\" '{}'", v.replace('\'', "''")))
            .collect();
        let sql = format!(
            "START_REPLICATION SLOT {} LOGICAL {start} ({})",
            quote_identifier(slot),
            options.join(", ")
        );
        frontend::query(&sql, &mut self.write)?;
        self.flush().await?;
        loop {
            let message = self.receive().await?;
            match message.tag {
                b'W' => {
                    self.coalescing = Some(ReadCoalescing::default());
                    return Ok(ReplicationStream { conn: self });
                }
                b'N' | b'S' => {}
                b'E' => {
                    let error = server_error(message.body);
                    return Err(error);
                }
                other => {
                    return Err(protocol(format!(
                        "unexpected message {:?} starting replication",
                        char::from(other)
                    )));
                }
            }
        }
    }
}

fn data_row(mut body: Bytes) -> Result<Vec<Option<String>>, ReplicationError> {
    if body.remaining() < 2 {
        return Err(protocol("short DataRow"));
    }
    let count = body.get_u16();
    let mut row = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        if body.remaining() < 4 {
            return Err(protocol("short DataRow column"));
        }
        let len = body.get_i32();
        if len < 0 {
            row.push(None);
            continue;
        }
        let len = len as usize;
        if body.remaining() < len {
            return Err(protocol("DataRow column past the end"));
        }
        row.push(Some(String::from_utf8_lossy(&body[..len]).into_owned()));
        body.advance(len);
    }
    Ok(row)
}

/// Quotes an identifier for SQL and replication commands: in double quotes, a double
/// quote inside doubled. The crate's one quoting rule.
pub(crate) fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// What the stream delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamMessage {
    /// A pgoutput message.
    XLogData {
        /// LSN where the data starts.
        wal_start: Lsn,
        /// Current end of WAL on the server.
        wal_end: Lsn,
        /// Server time (µs since 2000-01-01).
        server_time: i64,
        /// The pgoutput message.
        data: Bytes,
    },
    /// A keepalive.
    Keepalive {
        /// Current end of WAL on the server.
        wal_end: Lsn,
        /// Server time.
        server_time: i64,
        /// The server wants a status update now.
        reply_requested: bool,
    },
}

/// A connection in CopyBoth mode, streaming changes.
pub struct ReplicationStream {
    conn: ReplicationConnection,
}

impl fmt::Debug for ReplicationStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplicationStream").finish_non_exhaustive()
    }
}

impl ReplicationStream {
    /// The next message; `None` when the server ended the stream (CopyDone).
    pub async fn next(&mut self) -> Result<Option<StreamMessage>, ReplicationError> {
        loop {
            let message = self.conn.receive().await?;
            match message.tag {
                b'd' => return parse_copy_data(message.body).map(Some),
                b'c' => return Ok(None),
                b'N' | b'S' => {}
                b'E' => return Err(server_error(message.body)),
                other => {
                    return Err(protocol(format!(
                        "unexpected message {:?} while streaming",
                        char::from(other)
                    )));
                }
            }
        }
    }

    /// Sends a Standby Status Update. `flushed` is what the server may consider durable
    /// on our side (it becomes the slot's `confirmed_flush_lsn`).
    pub async fn send_status(
        &mut self,
        written: Lsn,
        flushed: Lsn,
        now_postgres_micros: i64,
        reply_requested: bool,
    ) -> Result<(), ReplicationError> {
        let mut body = BytesMut::with_capacity(34);
        body.put_u8(b'r');
        body.put_u64(written.0);
        body.put_u64(flushed.0);
        body.put_u64(flushed.0);
        body.put_i64(now_postgres_micros);
        body.put_u8(u8::from(reply_requested));
        self.conn.write.put_u8(b'd');
        self.conn.write.put_u32(4 + body.len() as u32);
        self.conn.write.extend_from_slice(&body);
        self.conn.flush().await
    }
}

fn parse_copy_data(mut body: Bytes) -> Result<StreamMessage, ReplicationError> {
    if !body.has_remaining() {
        return Err(protocol("empty CopyData"));
    }
    match body.get_u8() {
        b'w' => {
            if body.remaining() < 24 {
                return Err(protocol("short XLogData"));
            }
            let wal_start = Lsn(body.get_u64());
            let wal_end = Lsn(body.get_u64());
            let server_time = body.get_i64();
            Ok(StreamMessage::XLogData {
                wal_start,
                wal_end,
                server_time,
                data: body,
            })
        }
        b'k' => {
            if body.remaining() < 17 {
                return Err(protocol("short keepalive"));
            }
            Ok(StreamMessage::Keepalive {
                wal_end: Lsn(body.get_u64()),
                server_time: body.get_i64(),
                reply_requested: body.get_u8() == 1,
            })
        }
        other => Err(protocol(format!(
            "unknown CopyData kind {:?}",
            char::from(other)
        ))),
    }
}

/// Current time in µs since the Postgres epoch, for status updates.
pub fn postgres_now() -> i64 {
    outflow_core::now_us() - crate::pgoutput::POSTGRES_EPOCH_OFFSET_US
}
