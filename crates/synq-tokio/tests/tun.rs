//! synq-tokio on a real TUN device, with the kernel's own programs as peers, each test in a
//! namespace of its own. They need root, /dev/net/tun and `ip`, and print SKIP otherwise.

use std::io::Write;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;
use synq_tokio::synq_tun::{link_exists, netns_exists, unsupported, Netns, Tun};
use synq_tokio::{Stack, TcpListener, TcpStream};

/// Shown by a plain `cargo test` (libtest captures `println!`, not the stderr handle).
fn skip(test: &str, why: &str) -> bool {
    let _ = writeln!(std::io::stderr(), "SKIP {test}: {why}");
    true
}

fn cannot(test: &str, tools: &[&str]) -> bool {
    if let Some(why) = unsupported() {
        return skip(test, &why);
    }
    for t in tools {
        let found = std::process::Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .stdout(Stdio::null())
            .status();
        if !found.is_ok_and(|s| s.success()) {
            return skip(test, &format!("{t} not found"));
        }
    }
    false
}

/// A namespace with a TUN device in it: the kernel side is `10.N.0.1/24`, the returned
/// stack answers as `10.N.0.2`.
fn setup(tag: &str, net: u8) -> (Netns, Stack) {
    setup_with(tag, net, false)
}

/// As [`setup`], with segmentation offload on the device if `offload`.
fn setup_with(tag: &str, net: u8, offload: bool) -> (Netns, Stack) {
    let ns = Netns::create(&format!("sqt{tag}")).unwrap();
    // Unique in the root namespace, where the device is born before it moves.
    let name = format!("sqt{}{net}", std::process::id() % 10_000);
    let tun = if offload {
        Tun::create_offload(&name, 1500)
    } else {
        Tun::create(&name, 1500)
    }
    .unwrap();
    tun.move_into(&ns, format!("10.{net}.0.1").parse().unwrap(), 24)
        .unwrap();
    let stack = Stack::new(tun, synq_core::Config::default()).unwrap();
    stack.add_address(format!("10.{net}.0.2").parse().unwrap());
    (ns, stack)
}

#[tokio::test]
async fn axum_app_on_synq_answers_curl() {
    if cannot("axum_app_on_synq_answers_curl", &["curl"]) {
        return;
    }
    use axum::{routing::get, Router};
    let (ns, stack) = setup("axum", 81);
    let listener = TcpListener::bind(&stack, "10.81.0.2:80".parse().unwrap(), 64).unwrap();
    let app = Router::new().route(
        "/hi/{name}",
        get(|p: axum::extract::Path<String>| async move { format!("hello {}", p.0) }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let out = tokio::task::spawn_blocking(move || {
        let out = ns
            .command("curl")
            .args(["-sS", "--max-time", "20", "http://10.81.0.2/hi/kernel"])
            .output()
            .unwrap();
        drop(ns);
        out
    })
    .await
    .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello kernel",
        "curl stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c = stack.with(|s| s.counters().clone());
    assert!(c.passive_opens >= 1, "{c:?}");
}

#[tokio::test]
async fn hyper_client_on_synq_fetches_from_a_kernel_server() {
    if cannot(
        "hyper_client_on_synq_fetches_from_a_kernel_server",
        &["python3"],
    ) {
        return;
    }
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::TokioIo;
    let (ns, stack) = setup("hyper", 82);
    let dir = std::env::temp_dir().join(format!("{}-www", ns.name()));
    std::fs::create_dir_all(&dir).unwrap();
    let page: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
    std::fs::write(dir.join("blob"), &page).unwrap();
    let mut server = ns
        .command("python3")
        .args([
            "-m",
            "http.server",
            "--bind",
            "10.82.0.1",
            "8080",
            "--directory",
        ])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let target: SocketAddr = "10.82.0.1:8080".parse().unwrap();
    let mut conn = None;
    // python binds after a moment: a refused connect is retried, at most 100 times.
    for _ in 0..100 {
        match TcpStream::connect(&stack, target).await {
            Ok(c) => {
                conn = Some(c);
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("connect: {e}"),
        }
    }
    let conn = conn.expect("the kernel server never listened");
    let (mut tx, connection) = hyper::client::conn::http1::handshake(TokioIo::new(conn))
        .await
        .unwrap();
    tokio::spawn(connection);
    let req = hyper::Request::get("/blob")
        .header("host", "10.82.0.1")
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(30), tx.send_request(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = tokio::time::timeout(Duration::from_secs(30), resp.into_body().collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(body == page, "got {} bytes, not the file", body.len());
}

#[test]
fn a_panic_leaves_no_device_or_namespace() {
    if cannot("a_panic_leaves_no_device_or_namespace", &[]) {
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut names = None;
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(async {
            let (ns, stack) = setup("panic", 83);
            let _l = TcpListener::bind(&stack, "10.83.0.2:80".parse().unwrap(), 8).unwrap();
            names = Some(ns.name().to_string());
            assert!(netns_exists(ns.name()));
            panic!("the application panics with the stack and namespace live");
        })
    }));
    assert!(r.is_err());
    drop(rt);
    let ns = names.unwrap();
    assert!(!netns_exists(&ns), "namespace {ns} left behind");
    let dev = format!("sqt{}83", std::process::id() % 10_000);
    assert!(!link_exists(&dev), "device {dev} left behind");
}

#[tokio::test]
async fn offload_device_carries_64k_segments_both_ways_intact() {
    if cannot(
        "offload_device_carries_64k_segments_both_ways_intact",
        &["python3"],
    ) {
        return;
    }
    let ns = Netns::create("sqtoff").unwrap();
    let name = format!("sqt{}84", std::process::id() % 10_000);
    let tun = Tun::create_offload(&name, 1500).unwrap();
    tun.move_into(&ns, "10.84.0.1".parse().unwrap(), 24)
        .unwrap();
    let stack = Stack::new(tun, synq_core::Config::default()).unwrap();
    stack.add_address("10.84.0.2".parse().unwrap());
    let biggest = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let b = biggest.clone();
    stack.set_tap(Box::new(move |dir, p| {
        if dir == synq_tokio::Direction::In {
            b.fetch_max(p.len(), std::sync::atomic::Ordering::Relaxed);
        }
    }));
    let listener = TcpListener::bind(&stack, "10.84.0.2:7".parse().unwrap(), 8).unwrap();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = conn.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    // The kernel's client sends 8 MB and reads the echo back; it checks every byte.
    let script = r#"
import os, socket, threading
data = os.urandom(8 << 20)
s = socket.create_connection(("10.84.0.2", 7), timeout=30)
def send():
    s.sendall(data); s.shutdown(socket.SHUT_WR)
t = threading.Thread(target=send); t.start()
got = bytearray()
while True:
    b = s.recv(1 << 20)
    if not b: break
    got += b
t.join()
print("intact" if bytes(got) == data else "differs %d" % len(got))
"#;
    let out = tokio::task::spawn_blocking(move || {
        let out = ns.command("python3").args(["-c", script]).output().unwrap();
        drop(ns);
        out
    })
    .await
    .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "intact",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c = stack.with(|s| s.counters().clone());
    assert_eq!((c.in_csum_errors, c.ip_in_hdr_errors), (0, 0), "{c:?}");
    let big = biggest.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        big > 1500,
        "no segment above the MTU arrived (largest {big}): no offload"
    );
}

/// `examples/echo --serve` ends on SIGTERM as on Ctrl-C, and its namespace (with the TUN
/// device in it) goes with it.
#[test]
fn the_echo_example_cleans_up_on_sigterm() {
    let test = "the_echo_example_cleans_up_on_sigterm";
    if cannot(test, &["ip", "kill"]) {
        return;
    }
    // Examples build beside the test binaries' `deps` directory.
    let exe = std::env::current_exe().expect("test binary");
    let echo = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join("examples").join("echo"))
        .filter(|p| p.is_file());
    let Some(echo) = echo else {
        skip(test, "the echo example is not built");
        return;
    };
    let mut child = std::process::Command::new(&echo)
        .arg("--serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("echo example");
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
    // "serving; try: ip netns exec NAME bash -c '...'"
    let name = line
        .split_whitespace()
        .nth(5)
        .unwrap_or_default()
        .to_string();
    let up = !name.is_empty() && netns_exists(&name);
    let term = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let mut status = None;
    for _ in 0..200 {
        if let Ok(Some(s)) = child.try_wait() {
            status = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert!(up, "no namespace named in {line:?}");
    assert!(term.is_ok_and(|s| s.success()), "kill -TERM");
    assert!(
        status.is_some_and(|s| s.success()),
        "exit on SIGTERM: {status:?}"
    );
    assert!(!netns_exists(&name), "namespace {name} left behind");
}
