//! `synq serve`: a synq listener on a TUN device, and its control socket for `synq stat`.

use crate::error::{Error, Result};
use crate::output;
use crate::sysctl::{config, StackArgs};
use bytes::Bytes;
use clap::{Args, ValueEnum};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::{Body, Frame, SizeHint};
use std::convert::Infallible;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use synq_core::ListenerHandle;
use synq_tokio::{Direction, Stack, TcpListener, TcpStream};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

/// What the server does with accepted connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum App {
    /// Never accept: the accept queue fills and the backlog shows.
    Hold,
    /// Send back what arrives.
    Echo,
    /// HTTP/1.1 (hyper): GET / is a short page, GET /bytes/N is N bytes.
    Http,
    /// Read and drop.
    Discard,
}

#[derive(Args, Debug)]
pub(crate) struct ServeArgs {
    /// TUN device to create in this network namespace.
    #[arg(long, value_name = "IF")]
    tun: String,
    /// The stack's own address (it answers for it on the TUN link).
    #[arg(long, value_name = "STACK_IP")]
    addr: IpAddr,
    /// The kernel side of the link: HOST_IP/PREFIX, given to IF.
    #[arg(long, value_name = "HOST_IP/PREFIX")]
    peer: String,
    /// Port to listen on.
    #[arg(long, allow_negative_numbers = true)]
    port: u16,
    /// listen() backlog (clamped as the model says).
    #[arg(long, allow_hyphen_values = true)]
    backlog: i32,
    /// What to do with accepted connections.
    #[arg(long, value_enum, default_value_t = App::Echo)]
    app: App,
    /// Unix socket `synq stat` asks (default /tmp/synq-IF.sock).
    #[arg(long, value_name = "PATH")]
    control: Option<PathBuf>,
    /// Write every packet of the TUN device to PATH (pcap, raw IP, wall-clock times).
    #[arg(long, value_name = "PATH")]
    pcap: Option<PathBuf>,
    /// MTU of the TUN device (and `synq.mtu`, so the MSS follows it). Up to 65535: a large
    /// MTU moves 64 KB per read, as segmentation offload does for kernel links.
    #[arg(long, default_value_t = 1500, allow_negative_numbers = true,
          value_parser = clap::value_parser!(u16).range(576..))]
    mtu: u16,
    /// TCP segmentation and checksum offload on the device (`IFF_VNET_HDR`): the kernel
    /// hands over segments of up to 64 KB, one read each, checksums left unfilled.
    #[arg(long)]
    offload: bool,
    /// Seed of the stack's secrets (default: from the OS; set it only for reproducible tests).
    #[arg(long, allow_negative_numbers = true)]
    seed: Option<u64>,
    /// Shards: N threads, each with a stack of its own on a queue of its own of a
    /// multi-queue TUN device (the kernel spreads flows over the queues), all with the same
    /// secrets and the same listener, as SO_REUSEPORT listeners behind RSS.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=synq_tun::MAX_QUEUES as i64))]
    threads: u16,
    #[command(flatten)]
    common: StackArgs,
}

/// The default control socket of a device.
pub(crate) fn default_control(tun: &str) -> PathBuf {
    PathBuf::from(format!("/tmp/synq-{tun}.sock"))
}

pub(crate) fn run(a: &ServeArgs) -> Result {
    let mut cfg = config(&a.common)?;
    // The advertised MSS follows the device's MTU.
    cfg.mtu = a.mtu;
    let (host, prefix) = parse_peer(&a.peer)?;
    if host.is_ipv4() != a.addr.is_ipv4() {
        return Err(Error::Usage(format!(
            "--addr {} and --peer {}: not the same address family",
            a.addr, a.peer
        )));
    }
    if host == a.addr {
        return Err(Error::Usage(format!(
            "--addr {}: the stack needs an address other than the host's",
            a.addr
        )));
    }
    check_addr(a.addr, host, prefix)?;
    if a.port == 0 {
        return Err(Error::Usage(
            "--port 0: expected a port from 1 to 65535".into(),
        ));
    }
    check_tun_name(&a.tun)?;
    check_control(&control_path(a))?;
    if a.mtu < 576 {
        return Err(Error::Usage(format!("--mtu {}: at least 576", a.mtu)));
    }
    if let Some(why) = synq_tun::unsupported() {
        return Err(Error::Usage(format!("serve: {why}")));
    }
    let rt = runtime()?;
    if a.threads > 1 {
        return serve_shards(&rt, a, cfg, host, prefix);
    }
    rt.block_on(serve(a, cfg, host, prefix))
}

/// Linux's `dev_valid_name`, and no `%` (the kernel would pick the number itself), and no
/// interface of that name that is not a TUN device: checked before anything is created.
fn check_tun_name(name: &str) -> Result {
    let bad = |why: &str| Err(Error::Usage(format!("--tun {name:?}: {why}")));
    if name.is_empty() || name.len() > 15 {
        return bad("expected an interface name of 1 to 15 bytes");
    }
    if name == "."
        || name == ".."
        || name.contains(['/', ':', '%'])
        || name.contains(char::is_whitespace)
    {
        return bad("not an interface name (no '/', ':', '%' or spaces)");
    }
    let sys = Path::new("/sys/class/net").join(name);
    if sys.exists() && !sys.join("tun_flags").exists() {
        return bad("an interface of that name exists and is not a TUN device");
    }
    Ok(())
}

/// The stack's address must be one a host can have, inside the link's prefix (else the
/// kernel has no route to it) and not the prefix's network or broadcast address.
fn check_addr(addr: IpAddr, host: IpAddr, prefix: u8) -> Result {
    let bad = |why: String| Err(Error::Usage(format!("--addr {addr}: {why}")));
    let special = match addr {
        IpAddr::V4(v) => {
            v.is_unspecified() || v.is_multicast() || v.is_broadcast() || v.is_loopback()
        }
        IpAddr::V6(v) => v.is_unspecified() || v.is_multicast() || v.is_loopback(),
    };
    if special {
        return bad("not a unicast address a host can have".into());
    }
    let (a, h, bits) = match (addr, host) {
        (IpAddr::V4(a), IpAddr::V4(h)) => (u128::from(u32::from(a)), u128::from(u32::from(h)), 32),
        (IpAddr::V6(a), IpAddr::V6(h)) => (u128::from(a), u128::from(h), 128),
        _ => return Ok(()),
    };
    let host_bits = bits - u32::from(prefix);
    let mask = u128::MAX.checked_shl(host_bits).unwrap_or(0);
    if a & mask != h & mask {
        return bad(format!(
            "outside --peer {host}/{prefix}: the kernel would have no route to it"
        ));
    }
    let ends = [h & mask, (h & mask) | (!mask & (u128::MAX >> (128 - bits)))];
    if bits == 32 && host_bits >= 2 && ends.contains(&a) {
        return bad(format!(
            "the network or broadcast address of {host}/{prefix}"
        ));
    }
    Ok(())
}

/// Where the control socket goes.
fn control_path(a: &ServeArgs) -> PathBuf {
    a.control.clone().unwrap_or_else(|| default_control(&a.tun))
}

/// The control path may hold nothing, or a socket no server answers on (one a killed
/// server left): `serve` replaces it and removes it at the end, so it must not be a file,
/// a directory or a live server's socket.
fn check_control(path: &Path) -> Result {
    use std::os::unix::fs::FileTypeExt;
    let shown = path.display();
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::Usage(format!("--control {shown}: {e}"))),
        Ok(m) if !m.file_type().is_socket() => {
            return Err(Error::Usage(format!(
                "--control {shown}: exists and is not a socket (not replacing it)"
            )))
        }
        Ok(_) => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(Error::Usage(format!(
                    "--control {shown}: a server answers there already"
                )));
            }
        }
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(Error::Usage(format!(
            "--control {shown}: no directory {}",
            dir.display()
        )));
    }
    Ok(())
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Run(format!("tokio runtime: {e}")))
}

fn parse_peer(s: &str) -> Result<(IpAddr, u8)> {
    let bad = || {
        Error::Usage(format!(
            "--peer {s:?}: expected HOST_IP/PREFIX, e.g. 10.0.0.1/24"
        ))
    };
    let (ip, prefix) = s.split_once('/').ok_or_else(bad)?;
    let ip: IpAddr = ip.parse().map_err(|_| bad())?;
    let prefix: u8 = prefix.parse().map_err(|_| bad())?;
    if prefix > if ip.is_ipv4() { 32 } else { 128 } {
        return Err(bad());
    }
    Ok((ip, prefix))
}

type Pcap = Arc<Mutex<Option<crate::capture::Writer>>>;

async fn serve(a: &ServeArgs, cfg: synq_core::Config, host: IpAddr, prefix: u8) -> Result {
    let pcap = open_pcap(a)?;
    let tun = synq_tun::Tun::create_with_address(&a.tun, a.mtu, a.offload, host, prefix)
        .map_err(|e| Error::Run(format!("cannot create TUN device {}: {e}", a.tun)))?;
    let seed = a.seed.unwrap_or_else(synq_tokio::random_seed);
    let stack = Stack::with_seed(tun, cfg, seed).map_err(|e| Error::Run(e.to_string()))?;
    let listener = start_listener(&stack, &ListenArgs::from(a), pcap.as_ref())?;
    let (ctl, _cleanup) = bind_control(a)?;
    tokio::spawn(control_loop(ctl, vec![stack.clone()]));
    tokio::spawn(app_loop(listener, a.app));
    ready_until_signal().await?;
    stack.shutdown();
    flush_pcap(pcap);
    Ok(())
}

/// The capture file `--pcap` asks for, shared by every shard.
fn open_pcap(a: &ServeArgs) -> Result<Option<Pcap>> {
    Ok(match a.pcap.as_deref() {
        Some(path) => Some(Arc::new(Mutex::new(Some(crate::capture::writer(path)?)))),
        None => None,
    })
}

fn flush_pcap(pcap: Option<Pcap>) {
    if let Some(p) = pcap {
        if let Some(w) = p.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = w.into_writer().flush();
        }
    }
}

/// The stack's address, the capture tap, and the listener.
fn start_listener(stack: &Stack, a: &ListenArgs, pcap: Option<&Pcap>) -> Result<TcpListener> {
    stack.add_address(a.addr);
    if let Some(p) = pcap {
        let p = p.clone();
        stack.set_tap(Box::new(move |_dir: Direction, pkt: &[u8]| {
            let ts = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            let mut w = p.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(w) = w.as_mut() {
                let packet = pcap_file::pcap::PcapPacket::new(ts, pkt.len() as u32, pkt);
                let _ = w.write_packet(&packet);
            }
        }));
    }
    let local = SocketAddr::new(a.addr, a.port);
    TcpListener::bind(stack, local, a.backlog)
        .map_err(|e| Error::Run(format!("listen on {local}: {e}")))
}

/// The control socket, removed again when the guard drops.
fn bind_control(a: &ServeArgs) -> Result<(tokio::net::UnixListener, RemoveOnDrop)> {
    let control = control_path(a);
    // Checked again just before: only a stale socket is removed.
    check_control(&control)?;
    let _ = std::fs::remove_file(&control);
    let ctl = tokio::net::UnixListener::bind(&control)
        .map_err(|e| Error::Usage(format!("--control {}: {e}", control.display())))?;
    Ok((ctl, RemoveOnDrop(control)))
}

/// Print `ready`, then wait for SIGTERM or SIGINT.
async fn ready_until_signal() -> Result {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Error::Run(format!("signal handler: {e}")))?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| Error::Run(format!("signal handler: {e}")))?;
    // A closed stdout is no reason to stop serving.
    let _ = output::print(|w| writeln!(w, "ready"));
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

/// A shard as its thread reports it once listening: its index, stack and listener.
type Started = Result<(usize, Stack, ListenerHandle)>;

/// `--threads N`: a multi-queue device, a thread per queue running a shard (its own
/// runtime, stack and listener, secrets and clock shared), and this thread answering the
/// control socket and the signals.
fn serve_shards(
    rt: &tokio::runtime::Runtime,
    a: &ServeArgs,
    cfg: synq_core::Config,
    host: IpAddr,
    prefix: u8,
) -> Result {
    let pcap = open_pcap(a)?;
    let n = usize::from(a.threads);
    let queues =
        synq_tun::Tun::create_queues_with_address(&a.tun, a.mtu, a.offload, n, host, prefix)
            .map_err(|e| Error::Run(format!("cannot create TUN device {}: {e}", a.tun)))?;
    let seed = a.seed.unwrap_or_else(synq_tokio::random_seed);
    let epoch = std::time::Instant::now();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Started>();
    let mut threads = Vec::with_capacity(n);
    let mut outcome = Ok(());
    for (i, queue) in queues.into_iter().enumerate() {
        let shard = Shard {
            index: i,
            queue,
            engine: synq_core::Stack::new_shard(cfg.clone(), seed, i as u32),
            epoch,
            pcap: pcap.clone(),
        };
        let (ready, stop) = (ready_tx.clone(), stop_rx.clone());
        let args = ListenArgs::from(a);
        match std::thread::Builder::new()
            .name(format!("synq-shard-{i}"))
            .spawn(move || shard.run(&args, ready, stop))
        {
            Ok(t) => threads.push(t),
            Err(e) => {
                outcome = Err(Error::Run(format!("shard thread: {e}")));
                break;
            }
        }
    }
    drop(ready_tx);
    if outcome.is_ok() {
        let mut shards = Vec::with_capacity(n);
        for _ in 0..threads.len() {
            match ready_rx.recv() {
                Ok(Ok(s)) => shards.push(s),
                Ok(Err(e)) => {
                    outcome = Err(e);
                    break;
                }
                Err(_) => {
                    outcome = Err(Error::Run("a shard thread ended before listening".into()));
                    break;
                }
            }
        }
        if outcome.is_ok() {
            shards.sort_by_key(|s| s.0);
            outcome = rt.block_on(async {
                let (ctl, _cleanup) = bind_control(a)?;
                let stacks = shards.iter().map(|s| s.1.clone()).collect();
                tokio::spawn(control_loop(ctl, stacks));
                let group = shards.iter().map(|s| (s.1.clone(), s.2)).collect();
                tokio::spawn(share_cookie_stamps(group));
                ready_until_signal().await
            });
        }
    }
    let _ = stop_tx.send(true);
    for t in threads {
        let _ = t.join();
    }
    flush_pcap(pcap);
    outcome
}

/// What a stack needs of the command line to listen and serve (owned: a shard's thread
/// takes it along).
struct ListenArgs {
    addr: IpAddr,
    port: u16,
    backlog: i32,
    app: App,
}

impl From<&ServeArgs> for ListenArgs {
    fn from(a: &ServeArgs) -> Self {
        Self {
            addr: a.addr,
            port: a.port,
            backlog: a.backlog,
            app: a.app,
        }
    }
}

/// One shard, before its thread starts it.
struct Shard {
    index: usize,
    queue: synq_tun::TunQueue,
    engine: synq_core::Stack,
    epoch: std::time::Instant,
    pcap: Option<Pcap>,
}

impl Shard {
    /// The shard's thread: its own runtime drives its queue, stack, listener and app until
    /// `stop` turns true; `ready` hears once it listens (or why it could not).
    fn run(
        self,
        a: &ListenArgs,
        ready: std::sync::mpsc::Sender<Started>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let rt = match runtime() {
            Ok(rt) => rt,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        rt.block_on(async move {
            let started = self
                .queue
                .into_tun()
                .and_then(|tun| Stack::from_engine(tun, self.engine, self.epoch))
                .map_err(|e| Error::Run(format!("shard {}: {e}", self.index)))
                .and_then(|stack| {
                    let l = start_listener(&stack, a, self.pcap.as_ref())?;
                    Ok((stack, l))
                });
            match started {
                Ok((stack, listener)) => {
                    let _ = ready.send(Ok((self.index, stack.clone(), listener.handle())));
                    tokio::spawn(app_loop(listener, a.app));
                    let _ = stop.wait_for(|&s| s).await;
                    stack.shutdown();
                }
                Err(e) => {
                    let _ = ready.send(Err(e));
                }
            }
        });
    }
}

/// Linux keeps one SYN-cookie stamp per SO_REUSEPORT group; the shards' listeners share
/// theirs a few times a second, so a cookie ACK the kernel steers to another queue than the
/// SYN's (its flow entry expired, say) is still checked.
async fn share_cookie_stamps(group: Vec<(Stack, ListenerHandle)>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
    loop {
        tick.tick().await;
        let stamps: Vec<_> = group
            .iter()
            .map(|(s, l)| s.with(|e| e.cookie_stamp(*l)))
            .collect();
        let Some(newest) = stamps.iter().flatten().max().copied() else {
            continue;
        };
        for ((s, l), stamp) in group.iter().zip(stamps) {
            if stamp != Some(newest) {
                s.with_mut(|e, _| e.share_cookie_stamp(*l, newest));
            }
        }
    }
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn app_loop(listener: TcpListener, app: App) {
    if app == App::Hold {
        // Keep the listener (and its queue) alive without ever calling accept().
        std::future::pending::<()>().await;
    }
    loop {
        let Ok((conn, _peer)) = listener.accept().await else {
            // Only a stopped driver makes accept fail; there is nothing left to serve.
            return;
        };
        tokio::spawn(async move {
            let _ = match app {
                App::Echo => echo(conn).await,
                App::Discard => discard(conn).await,
                App::Http => http(conn).await,
                App::Hold => Ok(()),
            };
        });
    }
}

async fn echo(conn: TcpStream) -> std::io::Result<()> {
    let (mut r, mut w) = conn.into_split();
    tokio::io::copy(&mut r, &mut w).await?;
    w.shutdown().await
}

async fn discard(mut conn: TcpStream) -> std::io::Result<()> {
    let mut buf = vec![0; 65536];
    while conn.read(&mut buf).await? > 0 {}
    Ok(())
}

async fn http(conn: TcpStream) -> std::io::Result<()> {
    let svc = hyper::service::service_fn(|req| async move { Ok::<_, Infallible>(route(&req)) });
    hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(conn), svc)
        .await
        .map_err(std::io::Error::other)
}

/// The page `GET /` answers.
pub(crate) const PAGE: &str = "<!doctype html><title>synq</title>\
<h1>synq</h1><p>This page crossed a userspace TCP stack.</p>\n";

/// The largest `/bytes/N` served (1 TiB).
const MAX_BYTES: u64 = 1 << 40;

fn route<B>(req: &hyper::Request<B>) -> hyper::Response<BoxBody<Bytes, Infallible>> {
    let reply = |status: u16, body: &'static str| {
        hyper::Response::builder()
            .status(status)
            .header("content-type", "text/plain")
            .body(Full::new(Bytes::from_static(body.as_bytes())).boxed())
            .unwrap_or_default()
    };
    if req.method() != hyper::Method::GET {
        return reply(405, "only GET\n");
    }
    let path = req.uri().path();
    if path == "/" {
        return hyper::Response::builder()
            .header("content-type", "text/html")
            .body(Full::new(Bytes::from_static(PAGE.as_bytes())).boxed())
            .unwrap_or_default();
    }
    let Some(n) = path.strip_prefix("/bytes/") else {
        return reply(404, "not found\n");
    };
    match n.parse::<u64>() {
        Ok(n) if n <= MAX_BYTES => hyper::Response::builder()
            .header("content-type", "application/octet-stream")
            .body(Pattern::new(n).boxed())
            .unwrap_or_default(),
        _ => reply(400, "expected /bytes/N with N at most 2^40\n"),
    }
}

/// Byte `i` of every `/bytes/N` body, so a client can check what it got.
pub(crate) fn pattern_byte(i: u64) -> u8 {
    (i % 251) as u8
}

const CHUNK: usize = 64 * 1024;

/// A body of `total` pattern bytes, streamed in 64 KiB chunks cut from one shared buffer.
struct Pattern {
    sent: u64,
    total: u64,
    block: Bytes,
}

impl Pattern {
    fn new(total: u64) -> Self {
        let block: Vec<u8> = (0..(CHUNK + 251) as u64).map(pattern_byte).collect();
        Self {
            sent: 0,
            total,
            block: block.into(),
        }
    }
}

impl Body for Pattern {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let left = self.total - self.sent;
        if left == 0 {
            return Poll::Ready(None);
        }
        let n = left.min(CHUNK as u64) as usize;
        let off = (self.sent % 251) as usize;
        let chunk = self.block.slice(off..off + n);
        self.sent += n as u64;
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.sent == self.total
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.total - self.sent)
    }
}

/// Longest control request accepted.
const MAX_REQUEST: usize = 4096;

async fn control_loop(ctl: tokio::net::UnixListener, stacks: Vec<Stack>) {
    let stacks: Arc<[Stack]> = stacks.into();
    loop {
        let Ok((conn, _)) = ctl.accept().await else {
            // Out of descriptors, say: wait instead of spinning; the server goes on.
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            continue;
        };
        let stacks = stacks.clone();
        tokio::spawn(async move {
            let _ = control_conn(conn, &stacks).await;
        });
    }
}

/// One request line, one JSON reply line, per request; errors are replies, never fatal.
async fn control_conn(conn: tokio::net::UnixStream, stacks: &[Stack]) -> std::io::Result<()> {
    let (r, mut w) = conn.into_split();
    let mut r = tokio::io::BufReader::new(r).take(MAX_REQUEST as u64 * 64);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut r)
            .take(MAX_REQUEST as u64 + 1)
            .read_until(b'\n', &mut line)
            .await?;
        if n == 0 {
            return Ok(());
        }
        let reply = if line.len() > MAX_REQUEST {
            error_reply("request too long")
        } else {
            match std::str::from_utf8(&line).map(str::trim) {
                Ok("stat") => crate::stat::snapshot(stacks).to_string(),
                Ok(other) => error_reply(&format!(
                    "unknown command {:?} (expected \"stat\")",
                    other.chars().take(64).collect::<String>()
                )),
                Err(_) => error_reply("request is not UTF-8"),
            }
        };
        w.write_all(reply.as_bytes()).await?;
        w.write_all(b"\n").await?;
        if line.len() > MAX_REQUEST {
            return Ok(());
        }
    }
}

fn error_reply(why: &str) -> String {
    serde_json::json!({ "error": why }).to_string()
}
