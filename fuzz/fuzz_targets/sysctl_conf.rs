//! `Config::apply_conf` and `Config::set_assignment` on arbitrary text: errors, never
//! panics. Whatever it accepts reads back (`get`) as a value `set` takes again, unchanged,
//! and a pair of stacks with that configuration connects, moves data and closes without
//! panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use synq_core::{Config, Duration};
use synq_fuzz::{check_accepted, Bounds, Fixture};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut config = Config::default();
    let _ = config.set_assignment(&text);
    let mut config = Config::default();
    if config.apply_conf(&text).is_err() {
        return;
    }
    for name in Config::names() {
        let shown = config.get(name).expect("a listed name reads");
        let mut again = config.clone();
        again
            .set(name, &shown)
            .unwrap_or_else(|e| panic!("{name} = {shown:?} read back but refused: {e}"));
        assert_eq!(again, config, "{name} = {shown:?} does not round-trip");
    }
    exercise(config);
});

/// The fixture's handshakes and transfers, then a close, with `config` on the server.
fn exercise(config: Config) {
    let mut f = Fixture::with_config(config);
    let mut bounds = Bounds::default();
    bounds.check(&f.server);
    for l in f.listeners {
        while let Ok((h, _)) = f.server.accept(f.now, l) {
            check_accepted(&f.server, h);
            f.accepted.push(h);
        }
    }
    for &c in &f.clients.clone() {
        let _ = f.client.send(f.now, c, &[7u8; 3000]);
        let _ = f.client.close(f.now, c);
    }
    let mut buf = [0u8; 4096];
    for &s in &f.accepted.clone() {
        let _ = f.server.recv(f.now, s, &mut buf);
    }
    f.settle(f.now + Duration::from_secs(2));
    for &s in &f.accepted.clone() {
        while matches!(f.server.recv(f.now, s, &mut buf), Ok(n) if n > 0) {}
        let _ = f.server.close(f.now, s);
    }
    f.settle(f.now + Duration::from_secs(200));
    bounds.check(&f.server);
}
