//! The parser on packetdrill's dialect: every construct the spec lists, and errors with
//! their line numbers.

use synq_pktdrill::ast::{flag, Dir, EventKind, Expr, Packet, Syscall, TcpOpt, Time};
use synq_pktdrill::parse;

fn packet(src: &str) -> Packet {
    let s = parse(&format!("0 {src}\n"), &[]).unwrap_or_else(|e| panic!("{src}: {e}"));
    match &s.events[0].kind {
        EventKind::Packet(p) => p.clone(),
        k => panic!("{src}: {k:?}"),
    }
}

fn syscall(src: &str) -> Syscall {
    let s = parse(&format!("0 {src}\n"), &[]).unwrap_or_else(|e| panic!("{src}: {e}"));
    match &s.events[0].kind {
        EventKind::Syscall(c) => c.clone(),
        k => panic!("{src}: {k:?}"),
    }
}

fn error(src: &str) -> (usize, String) {
    let e = parse(src, &[]).expect_err(src);
    (e.line, e.msg)
}

#[test]
fn every_flag_spelling() {
    use flag::*;
    for (text, bits) in [
        ("S", SYN),
        ("S.", SYN | ACK),
        (".", ACK),
        ("P.", PSH | ACK),
        ("F.", FIN | ACK),
        ("FP.", FIN | PSH | ACK),
        ("R", RST),
        ("R.", RST | ACK),
        ("SR", SYN | RST),
        ("SF", SYN | FIN),
        ("-", 0),
        ("SEW", SYN | ECE | CWR),
        ("U.", URG | ACK),
        ("A.", AE | ACK),
    ] {
        assert_eq!(packet(&format!("> {text} 0:0(0)")).flags, bits, "{text}");
    }
    assert!(parse("0 > X 0:0(0)\n", &[]).is_err());
}

#[test]
fn sequence_ack_window_and_urgent() {
    let p = packet("< P. 1:1001(1000) ack 5 win 257 urg 3");
    assert_eq!(
        (p.dir, p.seq, p.len, p.ack, p.win, p.urg),
        (Dir::In, 1, 1000, Some(5), Some(257), Some(3))
    );
    // `ack N` without the ACK flag sets only the number.
    let p = packet("< S 0:0(0) ack 7 win 100");
    assert_eq!((p.flags, p.ack), (flag::SYN, Some(7)));
    // Payload on SYN and FIN.
    assert_eq!(packet("> SF 0:10(10)").len, 10);
    // Sequence numbers wrap.
    assert_eq!(packet("> . 4294967295:9(10)").len, 10);
    assert!(error("0 > . 1:5(10)\n").1.contains("end must equal"));
}

#[test]
fn options_in_wire_order() {
    let p = packet("> S. 0:0(0) ack 1 <mss 1460,sackOK,TS val 1 ecr 2,nop,wscale 7>");
    assert_eq!(
        p.options,
        Some(vec![
            TcpOpt::Mss(1460),
            TcpOpt::SackOk,
            TcpOpt::Ts(1, 2),
            TcpOpt::Nop,
            TcpOpt::Wscale(7)
        ])
    );
    let p = packet("> . 1:1(0) ack 1 <nop,nop,sack 1:2 3:4,eol,eol>");
    assert_eq!(
        p.options,
        Some(vec![
            TcpOpt::Nop,
            TcpOpt::Nop,
            TcpOpt::Sack(vec![(1, 2), (3, 4)]),
            TcpOpt::Eol,
            TcpOpt::Eol
        ])
    );
    assert_eq!(packet("> S. 0:0(0) ack 1 <...>").options, None);
    assert_eq!(packet("> . 1:1(0) ack 1").options, Some(vec![]));
    let p = packet("< S 0:0(0) win 1 <FO 0123abcd,FOEXP>");
    assert_eq!(
        p.options,
        Some(vec![
            TcpOpt::FastOpen(vec![0x01, 0x23, 0xab, 0xcd]),
            TcpOpt::FastOpenExp(vec![])
        ])
    );
    assert!(error("0 < S 0:0(0) win 1 <...>\n").1.contains("outbound"));
    assert!(error("0 > S 0:0(0) <md5 abc>\n")
        .1
        .contains("not supported"));
}

#[test]
fn ip_details_and_ports() {
    let p = packet("< [ect0] (tos 0x10) 1234>8080 S 0:0(0) win 1");
    assert_eq!(p.ip.ecn, Some(2));
    assert_eq!(p.ip.tos, Some(0x10));
    assert_eq!(p.ports, Some((1234, 8080)));
    assert_eq!(packet("> [ce] . 1:1(0) ack 1").ip.ecn, Some(3));
}

#[test]
fn every_time_form() {
    let s = parse(
        "0 `true`\n+.1 `true`\n0.250 `true`\n* > . 1:1(0)\n+1~+2 > . 1:1(0)\n3~4 > . 1:1(0)\n\
         +0...0.200 accept(3, ..., ...) = 4\n5...5.5 read(4, ..., 10) = 10\n",
        &[],
    )
    .expect("parses");
    let times: Vec<Time> = s.events.iter().map(|e| e.time).collect();
    assert_eq!(
        times,
        vec![
            Time::At { rel: false, us: 0 },
            Time::At {
                rel: true,
                us: 100_000
            },
            Time::At {
                rel: false,
                us: 250_000
            },
            Time::Any,
            Time::Range {
                rel: true,
                from: 1_000_000,
                to: 2_000_000
            },
            Time::Range {
                rel: false,
                from: 3_000_000,
                to: 4_000_000
            },
            Time::Blocking {
                rel: true,
                start: 0,
                end: 200_000
            },
            Time::Blocking {
                rel: false,
                start: 5_000_000,
                end: 5_500_000
            },
        ]
    );
    assert!(error("0 `true`\n* < . 1:1(0) win 1\n")
        .1
        .contains("outbound"));
    assert!(error("0 `true`\n+0...1 > . 1:1(0)\n")
        .1
        .contains("system calls"));
    assert!(error("0 `true`\n2~1 > . 1:1(0)\n").1.contains("end before"));
}

#[test]
fn syscalls_with_every_argument_form() {
    let c = syscall("accept(3, ..., ...) = -1 EAGAIN (Resource temporarily unavailable)");
    assert_eq!(
        (c.name.as_str(), c.result, c.errno.as_deref()),
        ("accept", -1, Some("EAGAIN"))
    );
    let c = syscall("setsockopt(3, SOL_SOCKET, SO_LINGER, {onoff=1, linger=0}, 8) = 0");
    assert_eq!(
        c.args[3],
        Expr::Struct(vec![
            ("onoff".into(), Expr::Int(1)),
            ("linger".into(), Expr::Int(0))
        ])
    );
    let c = syscall("fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0");
    assert_eq!(
        c.args[2],
        Expr::Or(vec![
            Expr::Word("O_RDWR".into()),
            Expr::Word("O_NONBLOCK".into())
        ])
    );
    let c = syscall("poll([{fd=3, events=POLLIN, revents=0}], 1, -1) = 0");
    assert_eq!(c.args[2], Expr::Int(-1));
    let c = syscall("getsockopt(3, SOL_TCP, TCP_MAXSEG, [1460], [4]) = 0");
    assert_eq!(c.args[3], Expr::List(vec![Expr::Int(1460)]));
    let c = syscall(
        "connect(3, {sa_family=AF_INET, sin_port=htons(8080), sin_addr=inet_addr(\"192.0.2.1\")}, 16) = 0",
    );
    assert!(matches!(&c.args[1], Expr::Struct(f) if f.len() == 3));
    let c = syscall("setsockopt(3, SOL_TCP, TCP_CONGESTION, \"reno\", 4) = 0");
    assert_eq!(c.args[3], Expr::Str("reno".into()));
    // Hostile nesting is refused, not a stack overflow.
    let deep = format!("0 f({}1{}) = 0\n", "[".repeat(10_000), "]".repeat(10_000));
    assert!(error(&deep).1.contains("nested"));
}

#[test]
fn layout_options_commands_and_code() {
    let s = parse(
        "// header\n--tolerance_usecs=10000\n--ip_version=ipv6\n/* a\n block */\n\
         `init.sh`\n0 %{\nassert tcpi_state == 1\n}%\n+1 `ss -tn`\n`cleanup`\n",
        &[],
    )
    .expect("parses");
    assert_eq!(
        s.options[0],
        (2, "tolerance_usecs".into(), Some("10000".into()))
    );
    assert_eq!(s.init, Some((6, "init.sh".into())));
    assert_eq!(s.cleanup, Some((11, "cleanup".into())));
    assert_eq!(s.events[0].line, 7);
    assert!(matches!(&s.events[0].kind, EventKind::Code(c) if c.contains("assert")));
    assert_eq!(s.events[1].line, 10);
    assert!(error("0 `a`\n`b`\n+0 `c`\n").1.contains("needs a time"));
}

#[test]
fn defines_replace_bare_words() {
    let defs = [
        ("N".to_string(), "5".to_string()),
        ("TEXT".to_string(), "\"x\"".to_string()),
    ];
    let s = parse("0 listen(3, N) = 0\n+0 f(TEXT) = 0\n", &defs).expect("parses");
    match (&s.events[0].kind, &s.events[1].kind) {
        (EventKind::Syscall(a), EventKind::Syscall(b)) => {
            assert_eq!(a.args[1], Expr::Int(5));
            assert_eq!(b.args[0], Expr::Str("x".into()));
        }
        k => panic!("{k:?}"),
    }
}

#[test]
fn errors_name_their_line() {
    assert_eq!(error("0 `a`\n\n+0 < S 0:0(0)\n").0, 3);
    assert!(error("0 `a`\n+0 < S 0:0(0)\n").1.contains("win"));
    assert_eq!(error("0 `a`\n/* never closed\n").0, 2);
    assert_eq!(error("0 `a`\n+0 < Q 0:0(0) win 1\n").0, 2);
    assert!(error("0 udp(1) = 0\n").1.contains("TCP only"));
    assert!(error("0 `a`\n+x `b`\n").1.contains("expected a time"));
    // Garbage never panics.
    for junk in [
        "\u{0}\u{1}",
        "0 > S. 0:0(0) <",
        "%{",
        "`",
        "\"",
        "0 f(",
        "+",
        "0 < S 0:",
        "0x",
    ] {
        let _ = parse(junk, &[]);
    }
}
