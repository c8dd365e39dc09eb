//! The tokio API between two stacks over an in-memory link (no root needed): data, errors,
//! backpressure, half-close, split halves, cancel safety, hyper and axum.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;
use synq_tokio::{pipe, Stack, TcpListener, TcpStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

const SERVER: &str = "192.0.2.2";
const CLIENT: &str = "192.0.2.1";

fn addr(port: u16) -> SocketAddr {
    SocketAddr::new(SERVER.parse().unwrap(), port)
}

/// Two stacks joined by a link; `sysctls` apply to both.
fn pair(sysctls: &[(&str, &str)]) -> (Stack, Stack) {
    let (a, b) = pipe(4096);
    let server = Stack::with_seed(a, synq_core::Config::default(), 1).unwrap();
    let client = Stack::with_seed(b, synq_core::Config::default(), 2).unwrap();
    server.add_address(SERVER.parse().unwrap());
    client.add_address(CLIENT.parse().unwrap());
    for (k, v) in sysctls {
        server.set_sysctl(k, v).unwrap();
        client.set_sysctl(k, v).unwrap();
    }
    (server, client)
}

/// A deterministic stream, so a byte out of place shows.
fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 253) as u8).collect()
}

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_one_megabyte_both_ways_intact() {
    let (server, client) = pair(&[]);
    let listener = TcpListener::bind(&server, addr(7), 16).unwrap();
    let srv = tokio::spawn(async move {
        let (conn, peer) = listener.accept().await.unwrap();
        assert_eq!(peer.ip().to_string(), CLIENT);
        let (mut r, mut w) = conn.into_split();
        tokio::io::copy(&mut r, &mut w).await.unwrap();
        w.shutdown().await.unwrap();
    });
    let conn = TcpStream::connect(&client, addr(7)).await.unwrap();
    assert_eq!(conn.peer_addr().unwrap(), addr(7));
    assert_eq!(conn.local_addr().unwrap().ip().to_string(), CLIENT);
    conn.set_nodelay(true).unwrap();
    // Socket options a server sets: keepalives on, Reno instead of the default CUBIC.
    conn.set_keepalive(true).unwrap();
    conn.set_congestion(synq_core::congestion::Algorithm::Reno)
        .unwrap();
    assert_eq!(
        conn.info().unwrap().congestion,
        synq_core::congestion::Algorithm::Reno
    );
    let (mut r, mut w) = conn.into_split();
    let sent = data(1 << 20);
    let expect = sent.clone();
    let writer = tokio::spawn(async move {
        w.write_all(&sent).await.unwrap();
        w.shutdown().await.unwrap();
        w
    });
    let mut got = Vec::new();
    timeout(LIMIT, r.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert!(
        got == expect,
        "echoed stream differs ({} bytes back)",
        got.len()
    );
    drop(writer.await.unwrap());
    timeout(LIMIT, srv).await.unwrap().unwrap();
}

#[tokio::test]
async fn refused_reset_and_addr_in_use_have_their_error_kinds() {
    let (server, client) = pair(&[]);
    let e = TcpStream::connect(&client, addr(9)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
    assert!(e.to_string().contains("ECONNREFUSED"), "{e}");

    let listener = TcpListener::bind(&server, addr(80), 4).unwrap();
    let e = TcpListener::bind(&server, addr(80), 4).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AddrInUse, "{e}");
    let e = TcpListener::bind(&server, "203.0.113.9:80".parse().unwrap(), 4).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AddrNotAvailable, "{e}");

    // The server closes with unread data: Linux (and synq) answer with RST.
    let mut conn = TcpStream::connect(&client, addr(80)).await.unwrap();
    let (accepted, _) = listener.accept().await.unwrap();
    conn.write_all(b"never read").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(accepted);
    let mut buf = [0; 16];
    let e = timeout(LIMIT, conn.read(&mut buf))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}");
}

#[tokio::test]
async fn connect_times_out_when_nobody_answers() {
    // The peer stack has no address 192.0.2.3: SYNs vanish. One retry: SYNs at 0 and 1 s,
    // ETIMEDOUT at about 3 s.
    let (_server, client) = pair(&[("net.ipv4.tcp_syn_retries", "1")]);
    let e = timeout(
        LIMIT,
        TcpStream::connect(&client, "192.0.2.3:80".parse().unwrap()),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
}

#[tokio::test]
async fn half_close_keeps_the_other_direction_open() {
    let (server, client) = pair(&[]);
    let listener = TcpListener::bind(&server, addr(80), 4).unwrap();
    let mut conn = TcpStream::connect(&client, addr(80)).await.unwrap();
    let (mut acc, _) = listener.accept().await.unwrap();
    conn.write_all(b"request").await.unwrap();
    conn.shutdown().await.unwrap();
    let mut req = Vec::new();
    timeout(LIMIT, acc.read_to_end(&mut req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(req, b"request");
    acc.write_all(b"response after your FIN").await.unwrap();
    acc.shutdown().await.unwrap();
    let mut resp = Vec::new();
    timeout(LIMIT, conn.read_to_end(&mut resp))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp, b"response after your FIN");
    let e = conn.write_all(b"more").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BrokenPipe, "{e}");
}

#[tokio::test]
async fn a_full_send_buffer_parks_the_writer_and_never_grows() {
    let wmem_max = 262_144;
    let (server, client) = pair(&[("net.ipv4.tcp_wmem", "4096 16384 262144")]);
    let listener = TcpListener::bind(&server, addr(80), 4).unwrap();
    let mut conn = TcpStream::connect(&client, addr(80)).await.unwrap();
    let (acc, _) = listener.accept().await.unwrap();
    // Nobody reads `acc`: the receiver's window closes, then the sender's buffer fills.
    let chunk = vec![0x5a; 64 * 1024];
    let mut written = 0usize;
    let parked = loop {
        match timeout(Duration::from_millis(500), conn.write(&chunk)).await {
            Ok(Ok(n)) => written += n,
            Ok(Err(e)) => panic!("write failed: {e}"),
            Err(_) => break true,
        }
        assert!(
            written < 64 << 20,
            "wrote {written} bytes into a peer that never reads"
        );
    };
    assert!(parked);
    let info = conn.info().unwrap();
    assert!(
        info.send_queue <= wmem_max,
        "send queue {} above tcp_wmem[2] {wmem_max}",
        info.send_queue
    );
    // Reading on the far side frees space and the writer goes on.
    let reader = tokio::spawn(async move {
        let mut acc = acc;
        let mut sink = Vec::new();
        acc.read_to_end(&mut sink).await.map(|_| sink.len())
    });
    timeout(LIMIT, conn.write_all(&chunk))
        .await
        .unwrap()
        .unwrap();
    written += chunk.len();
    conn.shutdown().await.unwrap();
    let got = timeout(LIMIT, reader).await.unwrap().unwrap().unwrap();
    assert_eq!(got, written);
}

#[tokio::test]
async fn accept_is_cancel_safe_and_backlog_plus_one_queue() {
    let (server, client) = pair(&[]);
    let listener = TcpListener::bind(&server, addr(80), 1).unwrap();
    // Cancelled accepts lose nothing.
    for _ in 0..3 {
        assert!(timeout(Duration::from_millis(20), listener.accept())
            .await
            .is_err());
    }
    let mut conns = Vec::new();
    for _ in 0..2 {
        conns.push(TcpStream::connect(&client, addr(80)).await.unwrap());
    }
    // Linux model: backlog 1 holds backlog + 1 = 2 established connections.
    let info = listener.info().unwrap();
    assert_eq!((info.recv_q, info.send_q), (2, 1));
    for c in &conns {
        let (acc, peer) = timeout(LIMIT, listener.accept()).await.unwrap().unwrap();
        assert_eq!(peer, c.local_addr().unwrap());
        drop(acc);
    }
    assert_eq!(
        listener.set_defer_accept(2).unwrap(),
        3,
        "Linux reads 2 s back as 3"
    );
}

#[tokio::test]
async fn hyper_client_and_server() {
    use http_body_util::{BodyExt, Empty, Full};
    use hyper_util::rt::TokioIo;
    let (server, client) = pair(&[]);
    let listener = TcpListener::bind(&server, addr(80), 16).unwrap();
    tokio::spawn(async move {
        let (conn, _) = listener.accept().await.unwrap();
        let svc = hyper::service::service_fn(|req: hyper::Request<_>| async move {
            let body = format!("you asked for {}", req.uri().path());
            Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(bytes::Bytes::from(
                body,
            ))))
        });
        hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(conn), svc)
            .await
            .unwrap();
    });
    let conn = TcpStream::connect(&client, addr(80)).await.unwrap();
    let (mut tx, connection) = hyper::client::conn::http1::handshake(TokioIo::new(conn))
        .await
        .unwrap();
    tokio::spawn(connection);
    for path in ["/a", "/b/c"] {
        let req = hyper::Request::get(path)
            .header("host", SERVER)
            .body(Empty::<bytes::Bytes>::new())
            .unwrap();
        let resp = timeout(LIMIT, tx.send_request(req)).await.unwrap().unwrap();
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, format!("you asked for {path}").as_bytes());
    }
}

#[tokio::test]
async fn axum_router_serves_over_synq() {
    use axum::{routing::get, Router};
    let (server, client) = pair(&[]);
    let listener = TcpListener::bind(&server, addr(80), 16).unwrap();
    let app = Router::new().route("/hello", get(|| async { "hello from axum" }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut conn = TcpStream::connect(&client, addr(80)).await.unwrap();
    conn.write_all(b"GET /hello HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut resp = Vec::new();
    timeout(LIMIT, conn.read_to_end(&mut resp))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&resp);
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(text.ends_with("hello from axum"), "{text}");
}

#[tokio::test]
async fn shutdown_stops_the_driver_and_wakes_waiters() {
    let (server, client) = pair(&[]);
    let listener = TcpListener::bind(&server, addr(80), 4).unwrap();
    let waiter = tokio::spawn(async move { listener.accept().await.map(drop) });
    tokio::time::sleep(Duration::from_millis(20)).await;
    server.shutdown();
    let e = timeout(LIMIT, waiter).await.unwrap().unwrap().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotConnected, "{e}");
    assert!(server.error().is_some());
    drop(client);
}

#[tokio::test]
async fn the_model_decides_the_backlog_clamp() {
    let (server, _client) = pair(&[("net.core.somaxconn", "64")]);
    // Linux: a negative backlog means somaxconn.
    let l = TcpListener::bind(&server, addr(80), -1).unwrap();
    assert_eq!(l.info().unwrap().send_q, 64);
    // 4.4BSD: a negative backlog means 0.
    server.set_model(synq_core::Model::Bsd);
    let b = TcpListener::bind(&server, addr(81), -1).unwrap();
    assert_eq!(b.info().unwrap().send_q, 0);
    server.set_sysctl("synq.listen_model", "linux").unwrap();
    let e = server.set_sysctl("synq.listen_model", "nope").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
}

#[tokio::test]
async fn a_dead_driver_fails_waiting_sockets() {
    let (server, client) = pair(&[]);
    let listener = TcpListener::bind(&server, addr(80), 4).unwrap();
    // A tap that panics takes the driver task down with it on the next packet it sees.
    server.set_tap(Box::new(|_, _| panic!("tap panics")));
    let waiter = tokio::spawn(async move { listener.accept().await.map(drop) });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let _ = timeout(
        Duration::from_millis(200),
        TcpStream::connect(&client, addr(80)),
    )
    .await;
    let e = timeout(LIMIT, waiter).await.unwrap().unwrap().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Other, "{e}");
    assert!(e.to_string().contains("driver task ended"), "{e}");
}

/// Shards of one host as `synq serve --threads` runs them: engines made with
/// `synq_core::Stack::new_shard` from one seed and one epoch, each driven on a thread and
/// runtime of its own over its own link, each with a listener on the same address; under
/// `tcp_syncookies=2` each serves its client, and the group's cookie stamp is shared.
#[test]
fn shards_on_threads_of_their_own_serve_and_share_the_cookie_stamp() {
    let epoch = std::time::Instant::now();
    let (stamp_tx, stamp_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let go_rx = std::sync::Arc::new(std::sync::Mutex::new(go_rx));
    let threads: Vec<_> = (0..2u32)
        .map(|i| {
            let stamp_tx = stamp_tx.clone();
            let go_rx = go_rx.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let (a, b) = pipe(1024);
                    let mut config = synq_core::Config::default();
                    config.set("net.ipv4.tcp_syncookies", "2").unwrap();
                    let engine = synq_core::Stack::new_shard(config, 5, i);
                    let server = Stack::from_engine(a, engine, epoch).unwrap();
                    let client = Stack::with_seed(b, synq_core::Config::default(), 9).unwrap();
                    server.add_address(SERVER.parse().unwrap());
                    client.add_address(CLIENT.parse().unwrap());
                    let listener = TcpListener::bind(&server, addr(7), 16).unwrap();
                    let l = listener.handle();
                    if i == 0 {
                        // Only shard 0 meets a client (and sends a cookie) before the share.
                        let c = TcpStream::connect(&client, addr(7));
                        let (c, s) = tokio::join!(c, listener.accept());
                        drop((c.unwrap(), s.unwrap()));
                    }
                    stamp_tx.send((i, server.clone(), l)).unwrap();
                    let _ = go_rx.lock().unwrap().recv();
                    server.with(|s| s.cookie_stamp(l))
                })
            })
        })
        .collect();
    let mut shards: Vec<_> = (0..2).map(|_| stamp_rx.recv().unwrap()).collect();
    shards.sort_by_key(|s| s.0);
    let newest = shards
        .iter()
        .filter_map(|(_, s, l)| s.with(|e| e.cookie_stamp(*l)))
        .max();
    assert!(newest.is_some(), "shard 0 sent a cookie");
    assert_eq!(shards[1].1.with(|e| e.cookie_stamp(shards[1].2)), None);
    for (_, s, l) in &shards {
        s.with_mut(|e, _| e.share_cookie_stamp(*l, newest.unwrap()));
    }
    for _ in 0..2 {
        go_tx.send(()).unwrap();
    }
    for t in threads {
        assert_eq!(t.join().unwrap(), newest);
    }
}
