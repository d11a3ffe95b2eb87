//! A loopback TCP forwarder that hangs up under a client's handshake.
//!
//! A database that restarts or shuts down closes the sockets of its clients wherever
//! they are, also in the middle of a TLS handshake, and the TLS library then reports a
//! handshake failure that looks like a wrong setting. The lab reproduces that moment
//! exactly, which a real restart hits only by chance: the forwarder passes everything
//! between a client and a real lab server, except that on the first `hangups`
//! connections it closes both sockets as soon as the client has sent more than
//! `after_client_bytes` bytes (the protocol's plain-text SSL request, so the cut falls
//! on the TLS ClientHello). It is fault injection on the network path, not a stand-in
//! for the server: every byte that passes is the server's own.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

/// A running forwarder on `127.0.0.1:`[`HangupProxy::port`]; stops when dropped.
#[derive(Debug)]
pub struct HangupProxy {
    port: u16,
    hung_up: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl HangupProxy {
    /// Forwards to `127.0.0.1:backend`, hanging up on the first `hangups` connections
    /// once their client has sent more than `after_client_bytes` bytes.
    pub fn start(backend: u16, hangups: usize, after_client_bytes: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the hangup proxy");
        let port = listener.local_addr().expect("proxy address").port();
        listener
            .set_nonblocking(true)
            .expect("non-blocking proxy listener");
        let hung_up = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (counter, stopped) = (Arc::clone(&hung_up), Arc::clone(&stop));
        thread::spawn(move || {
            let mut accepted = 0usize;
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let cut = (accepted < hangups).then_some(after_client_bytes);
                        accepted += 1;
                        let counter = Arc::clone(&counter);
                        thread::spawn(move || forward(client, backend, cut, &counter));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(10));
                    }
                    Err(_) => return,
                }
            }
        });
        Self {
            port,
            hung_up,
            stop,
        }
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// How many connections it has hung up on so far.
    pub fn hung_up(&self) -> usize {
        self.hung_up.load(Ordering::Relaxed)
    }
}

impl Drop for HangupProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One connection: server → client is copied on a thread of its own; client → server
/// here, counting bytes when the connection is one to cut.
fn forward(client: TcpStream, backend: u16, cut: Option<usize>, hung_up: &AtomicUsize) {
    let _ = client.set_nonblocking(false);
    let Ok(server) = TcpStream::connect(("127.0.0.1", backend)) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let (Ok(mut from_server), Ok(mut to_client)) = (server.try_clone(), client.try_clone()) else {
        return;
    };
    thread::spawn(move || {
        let _ = std::io::copy(&mut from_server, &mut to_client);
        let _ = to_client.shutdown(Shutdown::Write);
    });
    let (mut from_client, mut to_server) = (client, server);
    let mut sent = 0usize;
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from_client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(limit) = cut
            && sent + n > limit
        {
            let _ = to_server.write_all(&buf[..limit - sent]);
            hung_up.fetch_add(1, Ordering::Relaxed);
            let _ = from_client.shutdown(Shutdown::Both);
            let _ = to_server.shutdown(Shutdown::Both);
            return;
        }
        if to_server.write_all(&buf[..n]).is_err() {
            break;
        }
        sent += n;
    }
    let _ = to_server.shutdown(Shutdown::Write);
}
