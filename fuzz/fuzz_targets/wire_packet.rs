//! `synq_wire` on arbitrary bytes: `parse_packet` in both checksum modes and
//! `TcpOptions::parse` never panic, and what parses re-emits to bytes that parse back to the
//! same values (emitting again gives the same bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use synq_wire::{
    emit_packet, packet_len, parse_packet, peek_dst, peek_src, ChecksumMode, ParsedPacket,
    TcpOptions,
};

fuzz_target!(|data: &[u8]| {
    let _ = (peek_src(data), peek_dst(data));
    for mode in [ChecksumMode::Verify, ChecksumMode::Ignore] {
        if let Ok(p) = parse_packet(data, mode) {
            round_trip(&p);
        }
    }
    options_round_trip(data);
});

/// Emit `p`, parse it back with checksums verified: the same packet, except SACK blocks
/// that no longer fit beside the other options in Linux's layout (a prefix survives).
fn round_trip(p: &ParsedPacket<'_>) {
    let mut buf = vec![0u8; packet_len(&p.ip, &p.tcp)];
    let n = emit_packet(&p.ip, &p.tcp, &mut buf).expect("a parsed packet re-emits");
    assert_eq!(n, buf.len());
    let q = parse_packet(&buf, ChecksumMode::Verify).expect("emitted packet parses");
    assert_eq!(q.ip, p.ip);
    let (mut a, mut b) = (p.tcp, q.tcp);
    assert!(p
        .tcp
        .options
        .sack_blocks
        .as_slice()
        .starts_with(b.options.sack_blocks.as_slice()));
    a.options.sack_blocks.clear();
    b.options.sack_blocks.clear();
    assert_eq!(a, b);
    let mut again = vec![0u8; packet_len(&q.ip, &q.tcp)];
    emit_packet(&q.ip, &q.tcp, &mut again).expect("re-emit");
    assert_eq!(again, buf, "emit is not a fixed point");
}

fn options_round_trip(data: &[u8]) {
    let opts = TcpOptions::parse(data);
    let len = opts.len();
    assert!(len <= 40 && len.is_multiple_of(4), "options length {len}");
    let mut buf = [0u8; 40];
    assert_eq!(opts.emit(&mut buf), len);
    let back = TcpOptions::parse(&buf[..len]);
    assert!(opts
        .sack_blocks
        .as_slice()
        .starts_with(back.sack_blocks.as_slice()));
    let (mut a, mut b) = (opts, back);
    a.sack_blocks.clear();
    b.sack_blocks.clear();
    assert_eq!(a, b);
    let mut again = [0u8; 40];
    assert_eq!(back.emit(&mut again), len);
    assert_eq!(again[..len], buf[..len]);
}
