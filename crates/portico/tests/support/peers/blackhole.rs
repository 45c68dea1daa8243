//! A TCP proxy that can turn into a black hole: it forwards bytes both ways until
//! `blackhole()`, after which the flows open at that moment stay open but nothing more
//! passes in either direction, and no FIN or RST is sent, like a firewall silently
//! dropping an idle flow. Connections made afterwards are forwarded normally, so a client
//! that notices the silence and reconnects gets through.
//!
//! Either a plain `CONNECT` proxy without auth (`BlackholeProxy::connect()`, for the
//! endpoint agents' proxy setting) or a fixed port forwarder (`forward_to`). Threads, not
//! tasks, so synchronous tests can use it; everything stops when it is dropped.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The longest `CONNECT` request head accepted.
const MAX_HEAD: usize = 8 * 1024;

pub struct BlackholeProxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

#[derive(Clone, Copy)]
enum Target {
    Connect,
    Fixed(SocketAddr),
}

#[derive(Default)]
struct Shared {
    stopping: AtomicBool,
    accepted: AtomicUsize,
    flows: Mutex<Vec<Flow>>,
}

/// One proxied connection: both sockets (to shut them at the end), its switch, and how
/// many of its two directions have ended (a flow with both ended is forgotten).
struct Flow {
    black: Arc<AtomicBool>,
    ended: Arc<AtomicUsize>,
    sockets: [TcpStream; 2],
}

impl Flow {
    fn finished(&self) -> bool {
        self.ended.load(Ordering::SeqCst) >= 2
    }
}

impl BlackholeProxy {
    /// A `CONNECT` proxy (no auth) on a free loopback port.
    pub fn connect() -> BlackholeProxy {
        Self::start(Target::Connect)
    }

    /// A forwarder from a free loopback port to `target`.
    pub fn forward_to(target: SocketAddr) -> BlackholeProxy {
        Self::start(Target::Fixed(target))
    }

    fn start(target: Target) -> BlackholeProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let accepting = shared.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if accepting.stopping.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                accepting.accepted.fetch_add(1, Ordering::SeqCst);
                let shared = accepting.clone();
                std::thread::spawn(move || open(client, target, &shared));
            }
        });
        BlackholeProxy { addr, shared }
    }

    /// `http://127.0.0.1:port`, for a proxy setting.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops forwarding on every flow open now, silently; returns how many.
    pub fn blackhole(&self) -> usize {
        let mut flows = self.shared.flows.lock().unwrap();
        flows.retain(|flow| !flow.finished());
        for flow in flows.iter() {
            flow.black.store(true, Ordering::SeqCst);
        }
        flows.len()
    }

    /// How many flows are open (in at least one direction), black ones included.
    pub fn open_flows(&self) -> usize {
        let flows = self.shared.flows.lock().unwrap();
        flows.iter().filter(|flow| !flow.finished()).count()
    }

    /// How many connections the proxy has accepted so far (a reconnect makes one more).
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for BlackholeProxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        for flow in self.shared.flows.lock().unwrap().iter() {
            for socket in &flow.sockets {
                let _ = socket.shutdown(Shutdown::Both);
            }
        }
        // Wakes the accepting thread so it sees `stopping`.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

/// Sets up one flow: the `CONNECT` exchange if any, the dial, then a pump each way.
fn open(mut client: TcpStream, target: Target, shared: &Arc<Shared>) {
    let server = match target {
        Target::Fixed(addr) => TcpStream::connect_timeout(&addr, Duration::from_secs(10)),
        Target::Connect => match read_connect_target(&mut client) {
            Some(authority) => dial(&authority),
            None => {
                let _ = client.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
                return;
            }
        },
    };
    let server = match server {
        Ok(server) => server,
        Err(_) => {
            if matches!(target, Target::Connect) {
                let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n");
            }
            return;
        }
    };
    if matches!(target, Target::Connect)
        && client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .is_err()
    {
        return;
    }
    let black = Arc::new(AtomicBool::new(false));
    let (Ok(client_copy), Ok(server_copy)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let ended = Arc::new(AtomicUsize::new(0));
    {
        let mut flows = shared.flows.lock().unwrap();
        // Ended flows go, so a long test with many reconnects holds no stale sockets.
        flows.retain(|flow| !flow.finished());
        flows.push(Flow {
            black: black.clone(),
            ended: ended.clone(),
            sockets: [client_copy, server_copy],
        });
    }
    let (Ok(up_from), Ok(up_to)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let (up_black, up_shared, up_ended) = (black.clone(), shared.clone(), ended.clone());
    std::thread::spawn(move || {
        pump(up_from, up_to, &up_black, &up_shared);
        up_ended.fetch_add(1, Ordering::SeqCst);
    });
    pump(server, client, &black, shared);
    ended.fetch_add(1, Ordering::SeqCst);
}

/// Reads a `CONNECT host:port HTTP/1.x` head, byte by byte so nothing after it is
/// consumed; the authority, or None for anything else.
fn read_connect_target(client: &mut TcpStream) -> Option<String> {
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_HEAD || client.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    client.set_read_timeout(None).ok()?;
    let head = String::from_utf8(head).ok()?;
    let mut words = head.lines().next()?.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some("CONNECT"), Some(authority), Some(version)) if version.starts_with("HTTP/1.") => {
            Some(authority.to_string())
        }
        _ => None,
    }
}

/// Dials every address the name has in turn, as proxies do (`*.localhost` names have `::1`
/// first, and a server may listen on 127.0.0.1 only).
fn dial(authority: &str) -> std::io::Result<TcpStream> {
    let mut last = std::io::Error::other("no address");
    for addr in authority.to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(10)) {
            Ok(stream) => return Ok(stream),
            Err(error) => last = error,
        }
    }
    Err(last)
}

/// Copies `from` to `to` until the end, or holds both still once the flow is black.
fn pump(mut from: TcpStream, mut to: TcpStream, black: &AtomicBool, shared: &Shared) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let read = from.read(&mut buf);
        if black.load(Ordering::SeqCst) {
            // Whatever arrived is dropped, and neither side hears anything more: not
            // even the end of the other side.
            hold(shared);
            return;
        }
        match read {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    let _ = from.shutdown(Shutdown::Both);
                    return;
                }
            }
            Err(_) => {
                let _ = to.shutdown(Shutdown::Both);
                return;
            }
        }
    }
}

/// Keeps a black flow's sockets open (unread) until the proxy is dropped.
fn hold(shared: &Shared) {
    while !shared.stopping.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
    }
}
