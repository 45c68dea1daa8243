//! The least an HTTP/1.1 reverse proxy built on Portico's HTTP stack can do, for
//! `bench/proxy`'s `floor` target: each client connection gets one backend connection, and
//! every request goes to the backend as it came, with `Host` set to the backend's authority
//! and one `X-Forwarded-For`, and its answer comes back as it came. No routing, limits,
//! security headers or metrics.
//!
//! Like Portico (`server.per_core_runtimes`), it serves each client connection, and that
//! connection's backend connection, on one of a single-threaded runtime per core, the
//! connections dealt out in turn; `--shared-runtime` serves them all as tasks of one
//! multi-threaded runtime instead, as Portico does with that setting off.
//!
//! Portico's distance from nginx is the sum of its HTTP library's and its own; this target
//! measures the first, so that a benchmark run shows how much of the gap is Portico's.

use anyhow::Context as _;
use clap::Parser;
use http::header::{HeaderValue, HOST};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

#[derive(Parser)]
#[command(about = "A minimal HTTP/1.1 reverse proxy on hyper, the floor of Portico's stack")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9002")]
    listen: String,
    /// The backend's address (host:port); every request goes there.
    #[arg(long)]
    backend: String,
    /// Serve every connection on one multi-threaded runtime instead of a single-threaded
    /// runtime per core.
    #[arg(long)]
    shared_runtime: bool,
}

/// Why a request found no answer; hyper closes the client connection on it.
type ProxyError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener = TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let backend: Arc<str> = args.backend.into();
    let cores = if args.shared_runtime {
        Vec::new()
    } else {
        core_runtimes()?
    };
    // Dealt out in turn; with no core runtimes, `next()` gives none.
    let mut turns = cores.iter().cycle();
    loop {
        let stream = portico_bench::accept(&listener, "proxy-floor").await;
        let _ = stream.set_nodelay(true);
        let Some(core) = turns.next() else {
            tokio::spawn(serve(stream, backend.clone()));
            continue;
        };
        // A tokio socket belongs to the runtime that registered it: hand the core the
        // plain socket and let it register it there.
        let stream = stream.into_std()?;
        let backend = backend.clone();
        core.spawn(async move {
            match TcpStream::from_std(stream) {
                Ok(stream) => serve(stream, backend).await,
                Err(e) => eprintln!("proxy-floor: cannot take a connection: {e}"),
            }
        });
    }
}

/// One single-threaded runtime per core, each on a thread of its own, for as long as the
/// process runs.
fn core_runtimes() -> anyhow::Result<Vec<tokio::runtime::Handle>> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (0..cores)
        .map(|n| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot build a core's runtime")?;
            let handle = runtime.handle().clone();
            std::thread::Builder::new()
                .name(format!("floor-core-{n}"))
                .spawn(move || runtime.block_on(std::future::pending::<()>()))
                .context("cannot start a core's thread")?;
            Ok(handle)
        })
        .collect()
}

/// Serves one client connection; its backend connection is opened with its first request
/// and again whenever the backend closed it.
async fn serve(client: TcpStream, backend: Arc<str>) {
    let upstream: Arc<Mutex<Option<SendRequest<Incoming>>>> = Arc::default();
    let service = hyper::service::service_fn(move |request| {
        forward(request, backend.clone(), upstream.clone())
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(client), service)
        .await;
}

async fn forward(
    mut request: Request<Incoming>,
    backend: Arc<str>,
    upstream: Arc<Mutex<Option<SendRequest<Incoming>>>>,
) -> Result<Response<Incoming>, ProxyError> {
    let mut upstream = upstream.lock().await;
    let sender = match upstream.take().filter(|s| !s.is_closed()) {
        Some(sender) => upstream.insert(sender),
        None => upstream.insert(connect(&backend).await?),
    };
    sender.ready().await?;
    let headers = request.headers_mut();
    headers.insert(HOST, HeaderValue::from_str(&backend)?);
    headers.insert("x-forwarded-for", HeaderValue::from_static("127.0.0.1"));
    Ok(sender.send_request(request).await?)
}

async fn connect(backend: &str) -> Result<SendRequest<Incoming>, ProxyError> {
    let stream = TcpStream::connect(backend).await?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}
