//! An axum app served by synq over a TUN device; curl, inside the namespace, fetches it.
//!
//! `sudo cargo run -p synq-tokio --features axum --example axum_hello` (add `--serve` to
//! keep serving until Ctrl-C or SIGTERM, then clean up). The Router is ordinary axum; only the listener is synq's.

use axum::{routing::get, Router};
use synq_tokio::synq_tun::{unsupported, Netns, Tun};
use synq_tokio::{Stack, TcpListener};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    if let Some(why) = unsupported() {
        eprintln!("axum example: {why}");
        std::process::exit(2);
    }
    let ns = Netns::create("synq-axum")?;
    let tun = Tun::create("synq-axum0", 1500)?;
    tun.move_into(&ns, "10.98.0.1".parse().unwrap(), 24)?;
    let stack = Stack::new(tun, synq_core::Config::default())?;
    stack.add_address("10.98.0.2".parse().unwrap());
    let listener = TcpListener::bind(&stack, "10.98.0.2:80".parse().unwrap(), 128)?;
    let app = Router::new().route("/", get(|| async { "hello from axum on synq\n" }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    if std::env::args().any(|a| a == "--serve") {
        let stopped = synq_tokio::until_stopped()?;
        println!(
            "serving; try: ip netns exec {} curl http://10.98.0.2/",
            ns.name()
        );
        stopped.await;
        return Ok(());
    }
    let out = tokio::task::spawn_blocking(move || {
        let out = ns
            .command("curl")
            .args(["-sS", "--max-time", "10", "http://10.98.0.2/"])
            .output();
        drop(ns);
        out
    })
    .await
    .map_err(std::io::Error::other)??;
    print!("curl: {}", String::from_utf8_lossy(&out.stdout));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    Ok(())
}
