//! Property tests cross-checking synq-wire against etherparse.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{
    IpNumber, NetHeaders, PacketBuilder, PacketHeaders, PayloadSlice, TcpHeader, TcpOptionElement,
    TransportHeader,
};
use proptest::prelude::*;
use synq_wire::{
    emit_packet, packet_len, parse_packet, ChecksumMode, Error, IpRepr, ParsedPacket, SackBlocks,
    SeqNumber, TcpFlags, TcpOptions, TcpRepr, Timestamps,
};

/// Owned TCP fields; `TcpRepr` borrows its payload from here.
#[derive(Clone, Debug)]
struct Seg {
    src_port: u16,
    dst_port: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    urgent: u16,
    options: TcpOptions,
    payload: Vec<u8>,
}

impl Seg {
    fn repr(&self) -> TcpRepr<'_> {
        TcpRepr {
            src_port: self.src_port,
            dst_port: self.dst_port,
            seq: SeqNumber(self.seq),
            ack: SeqNumber(self.ack),
            flags: TcpFlags(self.flags),
            window: self.window,
            urgent: self.urgent,
            options: self.options,
            payload: &self.payload,
        }
    }
}

fn ip_strategy() -> impl Strategy<Value = IpRepr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<[u8; 4]>(), any::<u8>()).prop_map(|(s, d, h)| IpRepr {
            src: IpAddr::V4(Ipv4Addr::from(s)),
            dst: IpAddr::V4(Ipv4Addr::from(d)),
            hop_limit: h,
        }),
        (any::<[u8; 16]>(), any::<[u8; 16]>(), any::<u8>()).prop_map(|(s, d, h)| IpRepr {
            src: IpAddr::V6(Ipv6Addr::from(s)),
            dst: IpAddr::V6(Ipv6Addr::from(d)),
            hop_limit: h,
        }),
    ]
}

fn options_strategy() -> impl Strategy<Value = TcpOptions> {
    (
        proptest::option::of(any::<u16>()),
        proptest::option::of(0u8..=14),
        any::<bool>(),
        proptest::collection::vec((any::<u32>(), any::<u32>()), 0..=4),
        proptest::option::of((any::<u32>(), any::<u32>())),
    )
        .prop_map(|(mss, ws, sp, blocks, ts)| {
            let mut sack_blocks = SackBlocks::new();
            for (l, r) in blocks {
                sack_blocks.push(SeqNumber(l), SeqNumber(r));
            }
            TcpOptions {
                mss,
                window_scale: ws,
                sack_permitted: sp,
                sack_blocks,
                timestamps: ts.map(|(tsval, tsecr)| Timestamps { tsval, tsecr }),
                bsd_layout: false,
            }
        })
}

fn seg_strategy() -> impl Strategy<Value = Seg> {
    (
        (any::<u16>(), any::<u16>(), any::<u32>(), any::<u32>()),
        (any::<u8>(), any::<u16>(), any::<u16>()),
        options_strategy(),
        proptest::collection::vec(any::<u8>(), 0..=200),
    )
        .prop_map(
            |((src_port, dst_port, seq, ack), (flags, window, urgent), options, payload)| Seg {
                src_port,
                dst_port,
                seq,
                ack,
                flags,
                window,
                urgent,
                options,
                payload,
            },
        )
}

/// Options as emitted: SACK blocks that do not fit in 40 bytes are dropped.
fn fitted(o: &TcpOptions) -> TcpOptions {
    let mut fixed = 0;
    if o.mss.is_some() {
        fixed += 4;
    }
    if o.timestamps.is_some() {
        fixed += 12;
    } else if o.sack_permitted {
        fixed += 4;
    }
    if o.window_scale.is_some() {
        fixed += 4;
    }
    let room = (40 - fixed - 4) / 8;
    let mut out = *o;
    out.sack_blocks = SackBlocks::new();
    for &(l, r) in o.sack_blocks.as_slice().iter().take(room) {
        out.sack_blocks.push(l, r);
    }
    out
}

/// Rebuilds synq options from etherparse's option elements.
fn options_from_etherparse(th: &TcpHeader) -> TcpOptions {
    let mut o = TcpOptions::default();
    for e in th.options_iterator() {
        match e.expect("etherparse rejected an option synq emitted") {
            TcpOptionElement::Noop => {}
            TcpOptionElement::MaximumSegmentSize(v) => o.mss = Some(v),
            TcpOptionElement::WindowScale(v) => o.window_scale = Some(v),
            TcpOptionElement::SelectiveAcknowledgementPermitted => o.sack_permitted = true,
            TcpOptionElement::SelectiveAcknowledgement(first, rest) => {
                o.sack_blocks.clear();
                for (l, r) in std::iter::once(first).chain(rest.into_iter().flatten()) {
                    o.sack_blocks.push(SeqNumber(l), SeqNumber(r));
                }
            }
            TcpOptionElement::Timestamp(tsval, tsecr) => {
                o.timestamps = Some(Timestamps { tsval, tsecr })
            }
        }
    }
    o
}

fn emit_vec(ip: &IpRepr, tcp: &TcpRepr<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; packet_len(ip, tcp)];
    let n = emit_packet(ip, tcp, &mut buf).unwrap();
    assert_eq!(n, buf.len());
    buf
}

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(512)
}

proptest! {
    #![proptest_config(config())]

    /// synq emits, etherparse parses and agrees; synq parses back the same repr.
    #[test]
    fn synq_emit_etherparse_parse(ip in ip_strategy(), seg in seg_strategy()) {
        let tcp = seg.repr();
        let bytes = emit_vec(&ip, &tcp);
        let headers = PacketHeaders::from_ip_slice(&bytes).unwrap();

        let Some(TransportHeader::Tcp(th)) = headers.transport.clone() else {
            panic!("not TCP: {:?}", headers.transport);
        };
        let PayloadSlice::Tcp(payload) = headers.payload else {
            panic!("payload not TCP");
        };
        prop_assert_eq!(payload, &seg.payload[..]);

        let expected_ck = match (&headers.net, ip.src, ip.dst) {
            (Some(NetHeaders::Ipv4(h, _)), IpAddr::V4(s), IpAddr::V4(d)) => {
                prop_assert_eq!(h.source, s.octets());
                prop_assert_eq!(h.destination, d.octets());
                prop_assert_eq!(h.time_to_live, ip.hop_limit);
                prop_assert_eq!(h.protocol, IpNumber::TCP);
                prop_assert_eq!(usize::from(h.total_len), bytes.len());
                prop_assert_eq!(h.identification, 0);
                prop_assert!(h.dont_fragment);
                prop_assert!(!h.more_fragments);
                prop_assert_eq!(h.fragment_offset.value(), 0);
                prop_assert_eq!(h.dscp.value(), 0);
                prop_assert_eq!(h.ecn.value(), 0);
                prop_assert_eq!(h.header_len(), 20);
                prop_assert_eq!(h.header_checksum, h.calc_header_checksum());
                th.calc_checksum_ipv4(h, payload).unwrap()
            }
            (Some(NetHeaders::Ipv6(h, _)), IpAddr::V6(s), IpAddr::V6(d)) => {
                prop_assert_eq!(h.source, s.octets());
                prop_assert_eq!(h.destination, d.octets());
                prop_assert_eq!(h.hop_limit, ip.hop_limit);
                prop_assert_eq!(h.next_header, IpNumber::TCP);
                prop_assert_eq!(usize::from(h.payload_length), bytes.len() - 40);
                prop_assert_eq!(h.traffic_class, 0);
                prop_assert_eq!(h.flow_label.value(), 0);
                th.calc_checksum_ipv6(h, payload).unwrap()
            }
            (net, _, _) => panic!("unexpected net headers {net:?}"),
        };

        prop_assert_eq!(th.source_port, seg.src_port);
        prop_assert_eq!(th.destination_port, seg.dst_port);
        prop_assert_eq!(th.sequence_number, seg.seq);
        prop_assert_eq!(th.acknowledgment_number, seg.ack);
        prop_assert!(!th.ns);
        let f = TcpFlags(seg.flags);
        prop_assert_eq!(
            (th.fin, th.syn, th.rst, th.psh, th.ack, th.urg, th.ece, th.cwr),
            (f.fin(), f.syn(), f.rst(), f.psh(), f.ack(), f.urg(), f.ece(), f.cwr())
        );
        prop_assert_eq!(th.window_size, seg.window);
        prop_assert_eq!(th.urgent_pointer, seg.urgent);
        prop_assert_eq!(th.checksum, expected_ck);
        prop_assert_eq!(th.header_len(), tcp.header_len());
        prop_assert_eq!(th.options.len(), seg.options.len());
        prop_assert_eq!(options_from_etherparse(&th), fitted(&seg.options));

        let parsed = parse_packet(&bytes, ChecksumMode::Verify).unwrap();
        let mut expect = tcp;
        expect.options = fitted(&seg.options);
        prop_assert_eq!(parsed, ParsedPacket { ip, tcp: expect });
    }

    /// etherparse builds, synq parses and agrees.
    #[test]
    fn etherparse_build_synq_parse(
        v6 in any::<bool>(),
        addrs in (any::<[u8; 16]>(), any::<[u8; 16]>()),
        hop in any::<u8>(),
        ports in (any::<u16>(), any::<u16>()),
        seq in any::<u32>(),
        window in any::<u16>(),
        ack in proptest::option::of(any::<u32>()),
        urg in proptest::option::of(any::<u16>()),
        bits in (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
        mss in proptest::option::of(any::<u16>()),
        ws in proptest::option::of(any::<u8>()),
        sack_perm in any::<bool>(),
        sack in proptest::collection::vec((any::<u32>(), any::<u32>()), 0..=2),
        ts in proptest::option::of((any::<u32>(), any::<u32>())),
        nops in 0usize..=2,
        order in Just((0..5).collect::<Vec<usize>>()).prop_shuffle(),
        payload in proptest::collection::vec(any::<u8>(), 0..=200),
    ) {
        let (s, d) = addrs;
        let mut s4 = [0u8; 4];
        s4.copy_from_slice(&s[..4]);
        let mut d4 = [0u8; 4];
        d4.copy_from_slice(&d[..4]);
        let builder = if v6 {
            PacketBuilder::ipv6(s, d, hop)
        } else {
            PacketBuilder::ipv4(s4, d4, hop)
        };
        let mut b = builder.tcp(ports.0, ports.1, seq, window);
        let (fin, syn, rst, psh, ece, cwr) = bits;
        let mut flags = TcpFlags::default();
        if fin { b = b.fin(); flags |= TcpFlags::FIN; }
        if syn { b = b.syn(); flags |= TcpFlags::SYN; }
        if rst { b = b.rst(); flags |= TcpFlags::RST; }
        if psh { b = b.psh(); flags |= TcpFlags::PSH; }
        if ece { b = b.ece(); flags |= TcpFlags::ECE; }
        if cwr { b = b.cwr(); flags |= TcpFlags::CWR; }
        if let Some(a) = ack { b = b.ack(a); flags |= TcpFlags::ACK; }
        if let Some(u) = urg { b = b.urg(u); flags |= TcpFlags::URG; }

        // Options in random order, with optional leading NOPs.
        let mut elems = vec![TcpOptionElement::Noop; nops];
        let mut expect = TcpOptions::default();
        for i in order {
            match i {
                0 => if let Some(m) = mss {
                    elems.push(TcpOptionElement::MaximumSegmentSize(m));
                    expect.mss = Some(m);
                },
                1 => if let Some(w) = ws {
                    elems.push(TcpOptionElement::WindowScale(w));
                    expect.window_scale = Some(w.min(14));
                },
                2 => if sack_perm {
                    elems.push(TcpOptionElement::SelectiveAcknowledgementPermitted);
                    expect.sack_permitted = true;
                },
                3 => if !sack.is_empty() {
                    let mut rest = [None; 3];
                    for (slot, blk) in rest.iter_mut().zip(&sack[1..]) {
                        *slot = Some(*blk);
                    }
                    elems.push(TcpOptionElement::SelectiveAcknowledgement(sack[0], rest));
                    for &(l, r) in &sack {
                        expect.sack_blocks.push(SeqNumber(l), SeqNumber(r));
                    }
                },
                _ => if let Some((v, e)) = ts {
                    elems.push(TcpOptionElement::Timestamp(v, e));
                    expect.timestamps = Some(Timestamps { tsval: v, tsecr: e });
                },
            }
        }
        let b = b.options(&elems).unwrap();
        let mut bytes = Vec::with_capacity(b.size(payload.len()));
        b.write(&mut bytes, &payload).unwrap();

        let parsed = parse_packet(&bytes, ChecksumMode::Verify).unwrap();
        let ip = if v6 {
            IpRepr { src: IpAddr::V6(s.into()), dst: IpAddr::V6(d.into()), hop_limit: hop }
        } else {
            IpRepr { src: IpAddr::V4(s4.into()), dst: IpAddr::V4(d4.into()), hop_limit: hop }
        };
        let tcp = TcpRepr {
            src_port: ports.0,
            dst_port: ports.1,
            seq: SeqNumber(seq),
            ack: SeqNumber(ack.unwrap_or(0)),
            flags,
            window,
            urgent: urg.unwrap_or(0),
            options: expect,
            payload: &payload,
        };
        prop_assert_eq!(parsed, ParsedPacket { ip, tcp });
    }

    /// Arbitrary bytes never panic.
    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..=300),
        version in prop_oneof![Just(None), Just(Some(4u8)), Just(Some(6u8))],
    ) {
        let mut bytes = bytes;
        if let (Some(v), Some(first)) = (version, bytes.first_mut()) {
            // Steer half the inputs past the version check.
            *first = (v << 4) | (*first & 0x0f);
        }
        let _ = parse_packet(&bytes, ChecksumMode::Verify);
        let _ = parse_packet(&bytes, ChecksumMode::Ignore);
        let _ = synq_wire::peek_src(&bytes);
        let _ = synq_wire::peek_dst(&bytes);
        let _ = TcpOptions::parse(&bytes);
    }

    /// Mutated and truncated valid packets never panic; a single flipped
    /// byte in the TCP part is always caught.
    #[test]
    fn mutated_packets(
        ip in ip_strategy(),
        seg in seg_strategy(),
        flips in proptest::collection::vec((any::<usize>(), 1u8..=255), 1..=4),
        cut in any::<usize>(),
    ) {
        let tcp = seg.repr();
        let good = emit_vec(&ip, &tcp);
        prop_assert!(parse_packet(&good, ChecksumMode::Verify).is_ok());

        let ip_len = good.len() - tcp.buffer_len();
        let (at, x) = flips[0];
        let at = ip_len + at % tcp.buffer_len();
        let mut one = good.clone();
        one[at] ^= x;
        match parse_packet(&one, ChecksumMode::Verify) {
            Err(Error::BadChecksum) => {}
            // The data offset byte is checked before the checksum: below 5 is a bad
            // offset, beyond the segment a header cut short.
            Err(Error::BadDataOffset | Error::Truncated) => prop_assert_eq!(at, ip_len + 12),
            other => panic!("flip at {at} gave {other:?}"),
        }
        let _ = parse_packet(&one, ChecksumMode::Ignore);

        let mut many = good.clone();
        for &(i, x) in &flips {
            let i = i % many.len();
            many[i] ^= x;
        }
        let _ = parse_packet(&many, ChecksumMode::Verify);
        let _ = parse_packet(&many, ChecksumMode::Ignore);
        let cut = cut % (good.len() + 1);
        let _ = parse_packet(&many[..cut], ChecksumMode::Ignore);
        let r = parse_packet(&good[..cut], ChecksumMode::Verify);
        if cut < good.len() {
            prop_assert!(r.is_err());
        }
    }
}
