//! An echo server on synq, reached by the kernel's own client through a TUN device.
//!
//! `sudo cargo run -p synq-tokio --example echo` makes a network namespace, moves a TUN
//! device into it (the kernel side is 10.99.0.1/24, synq answers as 10.99.0.2), serves echo
//! on port 7, has bash inside the namespace send a line through the kernel's TCP, prints the
//! reply and cleans up. With `--serve` it keeps serving until Ctrl-C or SIGTERM (then cleans up) and prints the
//! command that reaches it.

use synq_tokio::synq_tun::{unsupported, Netns, Tun};
use synq_tokio::{Stack, TcpListener};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    if let Some(why) = unsupported() {
        eprintln!("echo example: {why}");
        std::process::exit(2);
    }
    let ns = Netns::create("synq-echo")?;
    let tun = Tun::create("synq-echo0", 1500)?;
    tun.move_into(&ns, "10.99.0.1".parse().unwrap(), 24)?;
    let stack = Stack::new(tun, synq_core::Config::default())?;
    stack.add_address("10.99.0.2".parse().unwrap());
    let listener = TcpListener::bind(&stack, "10.99.0.2:7".parse().unwrap(), 128)?;
    tokio::spawn(async move {
        while let Ok((conn, peer)) = listener.accept().await {
            println!("accepted {peer}");
            tokio::spawn(async move {
                let (mut r, mut w) = conn.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let probe = "exec 3<>/dev/tcp/10.99.0.2/7; echo hello through synq >&3; head -n1 <&3";
    if std::env::args().any(|a| a == "--serve") {
        let stopped = synq_tokio::until_stopped()?;
        println!(
            "serving; try: ip netns exec {} bash -c '{probe}'",
            ns.name()
        );
        stopped.await;
        return Ok(());
    }
    let out = tokio::task::spawn_blocking(move || {
        let out = ns.command("bash").args(["-c", probe]).output();
        drop(ns);
        out
    })
    .await
    .map_err(std::io::Error::other)??;
    print!(
        "kernel client got back: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    Ok(())
}
