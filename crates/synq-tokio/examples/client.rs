//! synq as a client: hyper, over a synq `TcpStream`, fetches a page from a kernel HTTP
//! server (python3 -m http.server) running inside a network namespace.
//!
//! `sudo cargo run -p synq-tokio --example client` (needs root, python3 and /dev/net/tun).

use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use synq_tokio::synq_tun::{unsupported, Netns, Tun};
use synq_tokio::{Stack, TcpStream};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Some(why) = unsupported() {
        eprintln!("client example: {why}");
        std::process::exit(2);
    }
    let ns = Netns::create("synq-client")?;
    let tun = Tun::create("synq-cli0", 1500)?;
    tun.move_into(&ns, "10.97.0.1".parse()?, 24)?;
    let dir = std::env::temp_dir().join(format!("synq-client-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("index.html"), "hello from the kernel's TCP\n")?;
    let mut server = ns
        .command("python3")
        .args([
            "-m",
            "http.server",
            "--bind",
            "10.97.0.1",
            "8080",
            "--directory",
        ])
        .arg(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let stack = Stack::new(tun, synq_core::Config::default())?;
    stack.add_address("10.97.0.2".parse()?);
    // The server takes a moment to bind: retry a refused connect a few times.
    let mut conn = None;
    for _ in 0..50 {
        match TcpStream::connect(&stack, "10.97.0.1:8080".parse()?).await {
            Ok(c) => {
                conn = Some(c);
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let conn = conn.ok_or("the kernel server never listened")?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(conn)).await?;
    tokio::spawn(connection);
    let req = hyper::Request::get("/index.html")
        .header("host", "10.97.0.1")
        .body(Empty::<bytes::Bytes>::new())?;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    println!("{status}: {}", String::from_utf8_lossy(&body).trim_end());
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
    drop(ns);
    Ok(())
}
