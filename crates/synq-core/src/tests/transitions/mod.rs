//! Table-driven RFC 9293 state-transition tests.
//!
//! Each row puts one side of a connection (the device under test, "DUT") into a start
//! state with the real API (a [`Pair`] handshake, `connect`/`listen`/`shutdown`/`close`,
//! plus crafted segments where a peer's exact segment is needed), cuts the link (every
//! later packet is dropped and only logged), applies one input (an application call, a
//! crafted segment or the passage of time) and checks:
//!
//! * the next state (or that the connection was released, or the listener's queues),
//! * the exact segments the DUT sent in reply (flags, sequence and acknowledgment numbers),
//! * the connection's error (what a blocked call reports),
//! * deltas of named counters (nstat names),
//! * optionally, states after further waiting (2MSL and FIN_WAIT_2 timers).
//!
//! Sequence numbers in rows are relative to a snapshot of the DUT taken just before the
//! input: `Rcv(n)` is RCV.NXT + n, `Nxt(n)` is SND.NXT + n, `Una(n)` is SND.UNA + n.
//!
//! This file is the harness (rows, start states, the runner); `rows.rs` is the table.

mod rows;

use super::util::*;
use crate::{ConnError, ConnHandle, Duration, FourTuple, ListenerHandle, Stack, State};
use core::net::SocketAddr;
use synq_wire::{SeqNumber, TcpFlags, TcpOptions};

const SYN: TcpFlags = TcpFlags::SYN;
const ACK: TcpFlags = TcpFlags::ACK;
const FIN: TcpFlags = TcpFlags::FIN;
const RST: TcpFlags = TcpFlags::RST;
const PSH: TcpFlags = TcpFlags::PSH;
const SA: TcpFlags = SYN.union(ACK);
const FA: TcpFlags = FIN.union(ACK);
const RA: TcpFlags = RST.union(ACK);
const PA: TcpFlags = PSH.union(ACK);

/// The crafted peer's initial sequence number (where the peer is crafted).
const PEER_ISS: SeqNumber = SeqNumber(0x4000_0000);

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Which end of a [`Pair::connected`] connection is under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    /// The connecting side (stack A).
    Client,
    /// The accepted side (stack B).
    Server,
}

const BOTH: &[Side] = &[Side::Client, Side::Server];
const CLIENT: &[Side] = &[Side::Client];
const SERVER: &[Side] = &[Side::Server];

/// Start states, each built from the previous ones with the real API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Start {
    /// No connection yet (the input is `Connect`).
    Closed,
    /// `connect()` sent its SYN, which was lost.
    SynSent,
    /// SYN_SENT, then a bare SYN from the peer (simultaneous open); our SYN-ACK was lost.
    SynReceived,
    Established,
    /// `shutdown()`; the FIN was lost.
    FinWait1,
    /// `shutdown()`; the real peer acknowledged the FIN.
    FinWait2,
    /// `close()`; the real peer acknowledged the FIN (an orphan with the FIN_WAIT_2 timer).
    FinWait2Orphan,
    /// The real peer shut down; its FIN was acknowledged.
    CloseWait,
    /// FIN_WAIT_1, then the peer's FIN not acknowledging ours.
    Closing,
    /// CLOSE_WAIT, then `shutdown()`; our FIN was lost.
    LastAck,
    /// FIN_WAIT_2, then the peer's FIN: TIME_WAIT entered at the row's start instant.
    TimeWait,
    /// A listener on B4:80, nothing else.
    Listen,
    /// LISTEN, then a SYN from the crafted client: one SYN-RECV request.
    SynRecvRequest,
    /// No socket at all on B4:80.
    NoSocket,
}

/// Sequence number of a crafted segment.
#[derive(Clone, Copy, Debug)]
enum Seq {
    /// RCV.NXT of the DUT + n.
    Rcv(i32),
    /// The crafted peer's ISS + n.
    Peer(i32),
}

/// Acknowledgment number of a crafted segment.
#[derive(Clone, Copy, Debug)]
enum Ack {
    /// SND.NXT of the DUT + n.
    Nxt(i32),
    /// A fixed value.
    Raw(u32),
}

/// Zero acknowledgment field (for segments without ACK).
const NO_ACK: Ack = Ack::Raw(0);

/// One input to the DUT.
#[derive(Clone, Copy, Debug)]
enum In {
    Connect,
    Close,
    Shutdown,
    Abort,
    /// `send()` these bytes.
    Send(&'static [u8]),
    /// A crafted segment from the peer.
    Seg(TcpFlags, Seq, Ack, &'static [u8]),
    /// Let virtual time pass (timers fire, the link stays cut).
    Wait(Duration),
}

/// Expected value of a sequence or acknowledgment field of a reply.
#[derive(Clone, Copy, Debug)]
enum Exp {
    /// SND.UNA of the snapshot + n.
    Una(i32),
    /// SND.NXT of the snapshot + n.
    Nxt(i32),
    /// RCV.NXT of the snapshot + n.
    Rcv(i32),
    /// The last crafted segment's acknowledgment number.
    InAck,
    /// The last crafted segment's SEQ + SEG.LEN.
    InEnd,
    Zero,
    /// A fresh ISN nobody can predict (a listener's SYN-ACK to a new SYN).
    NewIsn,
}

/// One expected segment from the DUT.
#[derive(Clone, Copy, Debug)]
struct Out {
    flags: TcpFlags,
    seq: Exp,
    ack: Exp,
    /// Payload length.
    len: usize,
}

const fn out(flags: TcpFlags, seq: Exp, ack: Exp) -> Out {
    Out {
        flags,
        seq,
        ack,
        len: 0,
    }
}

/// The usual reply to an unacceptable or FIN-bearing segment: `<SEQ=SND.NXT><ACK=RCV.NXT+n>`.
const fn ack_out(rcv: i32) -> Out {
    out(ACK, Exp::Nxt(0), Exp::Rcv(rcv))
}

/// `<SEQ=SEG.ACK><CTL=RST>`.
const RST_FOR_ACK: Out = out(RST, Exp::InAck, Exp::Zero);
/// `<SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>`.
const RST_FOR_NO_ACK: Out = out(RA, Exp::Zero, Exp::InEnd);

/// Expected state after the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    /// The connection exists in this state.
    Conn(State),
    /// The connection is gone (closed and released: the handle is stale).
    Released,
    /// Listener queues: half-open requests, and the state of the one accepted child (or
    /// `None`: the accept queue is empty).
    Listener { syn_recv: u32, child: Option<State> },
    /// The stack holds no connection at all.
    NoConnections,
}

/// A later check: wait, then expect a state and error.
#[derive(Clone, Copy, Debug)]
struct Then {
    wait: Duration,
    want: Want,
    error: Option<ConnError>,
}

struct Row<'a> {
    name: &'static str,
    start: Start,
    sides: &'a [Side],
    input: &'a [In],
    want: Want,
    /// Every segment the DUT sends during the input, in order.
    replies: &'a [Out],
    /// The connection's error after the input.
    error: Option<ConnError>,
    /// (nstat name, expected change).
    counters: &'a [(&'static str, i64)],
    after: &'a [Then],
}

const ROW: Row<'static> = Row {
    name: "",
    start: Start::Closed,
    sides: CLIENT,
    input: &[],
    want: Want::Released,
    replies: &[],
    error: None,
    counters: &[],
    after: &[],
};

/// What the DUT's TCB looked like just before the input.
#[derive(Clone, Copy, Debug, Default)]
struct View {
    snd_una: SeqNumber,
    snd_nxt: SeqNumber,
    rcv_nxt: SeqNumber,
}

/// A pair with the DUT marked.
struct Bench {
    p: Pair,
    on_b: bool,
    conn: Option<ConnHandle>,
    /// The real peer's connection, when there is one.
    peer_h: Option<ConnHandle>,
    listener: Option<ListenerHandle>,
    /// The DUT's side of the 4-tuple (local = DUT).
    tuple: FourTuple,
    view: View,
    /// Last crafted segment: (seq, ack, seg_len).
    last_in: Option<(SeqNumber, SeqNumber, u32)>,
    tag: String,
}

fn client_addr() -> SocketAddr {
    SocketAddr::new(A4, 40000)
}

fn server_addr() -> SocketAddr {
    SocketAddr::new(B4, 80)
}

impl Bench {
    fn fresh(on_b: bool, tag: String) -> Self {
        let (local, remote) = if on_b {
            (server_addr(), client_addr())
        } else {
            (client_addr(), server_addr())
        };
        Self {
            p: Pair::new(),
            on_b,
            conn: None,
            peer_h: None,
            listener: None,
            tuple: FourTuple { local, remote },
            view: View::default(),
            last_in: None,
            tag,
        }
    }

    fn stack(&mut self) -> &mut Stack {
        if self.on_b {
            &mut self.p.b
        } else {
            &mut self.p.a
        }
    }

    fn peer(&mut self) -> &mut Stack {
        if self.on_b {
            &mut self.p.a
        } else {
            &mut self.p.b
        }
    }

    fn peer_conn(&self) -> ConnHandle {
        self.peer_h
            .unwrap_or_else(|| panic!("{}: no peer connection", self.tag))
    }

    fn h(&self) -> ConnHandle {
        self.conn
            .unwrap_or_else(|| panic!("{}: no connection", self.tag))
    }

    fn state(&mut self) -> Option<State> {
        let h = self.h();
        self.stack().state(h)
    }

    /// Drop every later packet (they are still logged).
    fn cut(&mut self) {
        self.p.filter = Some(Box::new(|_| false));
    }

    /// Process everything due now and collect output.
    fn settle(&mut self) {
        self.p.run_for(Duration::ZERO);
    }

    fn expect_state(&mut self, st: State, what: &str) {
        let got = self.state();
        assert_eq!(got, Some(st), "{}: setup ({what})", self.tag);
    }

    fn snapshot(&mut self) {
        if let Some(h) = self.conn {
            if let Some(i) = self.stack().info(h) {
                self.view = View {
                    snd_una: i.snd_una,
                    snd_nxt: i.snd_nxt,
                    rcv_nxt: i.rcv_nxt,
                };
            }
        }
    }

    /// Segments the DUT sent since log index `mark`.
    fn dut_segs(&self, mark: usize) -> Vec<Seg> {
        self.p.log[mark..]
            .iter()
            .filter(|s| s.a_to_b != self.on_b)
            .cloned()
            .collect()
    }

    fn inject(&mut self, flags: TcpFlags, seq: Seq, ack: Ack, payload: &[u8]) {
        let seq = match seq {
            Seq::Rcv(n) => self.view.rcv_nxt + n as u32,
            Seq::Peer(n) => PEER_ISS + n as u32,
        };
        let ack = match ack {
            Ack::Nxt(n) => self.view.snd_nxt + n as u32,
            Ack::Raw(v) => SeqNumber(v),
        };
        let len = payload.len() as u32 + u32::from(flags.syn()) + u32::from(flags.fin());
        self.last_in = Some((seq, ack, len));
        let t = self.tuple;
        let pkt = segment(
            t.remote,
            t.local,
            flags,
            seq,
            ack,
            TcpOptions::default(),
            payload,
        );
        let now = self.p.now;
        self.stack().handle_packet(now, &pkt);
        self.settle();
    }

    fn apply(&mut self, input: In) {
        let now = self.p.now;
        let tag = self.tag.clone();
        match input {
            In::Connect => {
                let t = self.tuple;
                let h = self
                    .stack()
                    .connect_from(now, t.local, t.remote)
                    .unwrap_or_else(|e| panic!("{tag}: connect: {e}"));
                self.conn = Some(h);
                // The TCB exists only now: the reply's numbers are relative to it.
                self.snapshot();
                self.settle();
            }
            In::Close => {
                let h = self.h();
                self.stack()
                    .close(now, h)
                    .unwrap_or_else(|e| panic!("{tag}: close: {e}"));
                self.settle();
            }
            In::Shutdown => {
                let h = self.h();
                self.stack()
                    .shutdown(now, h)
                    .unwrap_or_else(|e| panic!("{tag}: shutdown: {e}"));
                self.settle();
            }
            In::Abort => {
                let h = self.h();
                self.stack()
                    .abort(now, h)
                    .unwrap_or_else(|e| panic!("{tag}: abort: {e}"));
                self.settle();
            }
            In::Send(data) => {
                let h = self.h();
                let n = self
                    .stack()
                    .send(now, h, data)
                    .unwrap_or_else(|e| panic!("{tag}: send: {e}"));
                assert_eq!(n, data.len(), "{tag}: send accepted everything");
                self.settle();
            }
            In::Seg(flags, seq, ack, payload) => self.inject(flags, seq, ack, payload),
            In::Wait(d) => self.p.run_for(d),
        }
    }
}

/// Build `start` for `side`, with the link cut and the snapshot taken.
fn setup(start: Start, side: Side, tag: String) -> Bench {
    let server = side == Side::Server;
    let mut b = match start {
        Start::Closed => {
            let mut b = Bench::fresh(false, tag);
            b.cut();
            b
        }
        Start::SynSent => {
            let mut b = setup(Start::Closed, side, tag);
            b.apply(In::Connect);
            b.expect_state(State::SynSent, "connect");
            b
        }
        Start::SynReceived => {
            let mut b = setup(Start::SynSent, side, tag);
            b.inject(SYN, Seq::Peer(0), NO_ACK, &[]);
            b.expect_state(State::SynReceived, "simultaneous SYN");
            b
        }
        Start::Established => {
            let mut b = connected(server, tag);
            b.cut();
            b
        }
        Start::FinWait1 => {
            let mut b = setup(Start::Established, side, tag);
            b.apply(In::Shutdown);
            b.expect_state(State::FinWait1, "shutdown");
            b
        }
        Start::FinWait2 | Start::FinWait2Orphan => {
            let mut b = connected(server, tag);
            let h = b.h();
            let now = b.p.now;
            if start == Start::FinWait2 {
                b.stack().shutdown(now, h).unwrap();
            } else {
                b.stack().close(now, h).unwrap();
            }
            b.p.run_for(ms(100));
            b.expect_state(State::FinWait2, "FIN acknowledged by the peer");
            b.cut();
            b
        }
        Start::CloseWait => {
            let mut b = connected(server, tag);
            let peer_h = b.peer_conn();
            let now = b.p.now;
            b.peer().shutdown(now, peer_h).unwrap();
            b.p.run_for(ms(100));
            b.expect_state(State::CloseWait, "peer's FIN");
            b.cut();
            b
        }
        Start::Closing => {
            let mut b = setup(Start::FinWait1, side, tag);
            b.snapshot();
            b.inject(FA, Seq::Rcv(0), Ack::Nxt(-1), &[]);
            b.expect_state(State::Closing, "FIN not acking ours");
            b
        }
        Start::LastAck => {
            let mut b = setup(Start::CloseWait, side, tag);
            b.apply(In::Shutdown);
            b.expect_state(State::LastAck, "shutdown in CLOSE_WAIT");
            b
        }
        Start::TimeWait => {
            let mut b = setup(Start::FinWait2, side, tag);
            b.snapshot();
            b.inject(FA, Seq::Rcv(0), Ack::Nxt(0), &[]);
            b.expect_state(State::TimeWait, "FIN in FIN_WAIT_2");
            b
        }
        Start::Listen | Start::NoSocket => {
            let mut b = Bench::fresh(true, tag);
            if start == Start::Listen {
                let l = b.p.b.listen(b.p.now, server_addr(), 16).unwrap();
                b.listener = Some(l);
            }
            b.cut();
            b
        }
        Start::SynRecvRequest => {
            let mut b = setup(Start::Listen, side, tag);
            let mark = b.p.log.len();
            b.inject(SYN, Seq::Peer(0), NO_ACK, &[]);
            let sa = b.dut_segs(mark);
            assert!(
                sa.len() == 1 && sa[0].flags == SA,
                "{}: setup (SYN-ACK): {sa:?}",
                b.tag
            );
            let l = b.listener.unwrap();
            assert_eq!(
                b.p.b.listener_info(l).unwrap().syn_recv,
                1,
                "{}: setup (request)",
                b.tag
            );
            b.view = View {
                snd_una: sa[0].seq,
                snd_nxt: sa[0].seq + 1,
                rcv_nxt: PEER_ISS + 1,
            };
            return b;
        }
    };
    b.snapshot();
    b
}

/// A real handshake through a listener on B4:80; the DUT is the client or the accepted side.
fn connected(server: bool, tag: String) -> Bench {
    let mut b = Bench::fresh(server, tag);
    let l = b.p.b.listen(b.p.now, server_addr(), 16).unwrap();
    let c =
        b.p.a
            .connect_from(b.p.now, client_addr(), server_addr())
            .unwrap();
    b.p.run_for(ms(100));
    let (s, _) = b.p.b.accept(b.p.now, l).expect("handshake completed");
    b.listener = Some(l);
    b.conn = Some(if server { s } else { c });
    b.peer_h = Some(if server { c } else { s });
    b.expect_state(State::Established, "handshake");
    b
}

// ------------------------------------------------------------------ runner

fn run(rows: &[Row<'_>]) {
    for row in rows {
        assert!(!row.sides.is_empty(), "{}: no side to run", row.name);
        for &side in row.sides {
            run_row(row, side);
        }
    }
}

fn run_row(row: &Row<'_>, side: Side) {
    let tag = format!("[{} | DUT={side:?}]", row.name);
    let mut b = setup(row.start, side, tag.clone());
    let before = b.stack().counters().clone();
    let mark = b.p.log.len();
    for &i in row.input {
        b.apply(i);
    }
    // Replies: exactly these segments, in this order.
    let got = b.dut_segs(mark);
    let shown: Vec<String> = got
        .iter()
        .map(|s| format!("{:?} seq={} ack={} len={}", s.flags, s.seq, s.ack, s.len))
        .collect();
    assert_eq!(
        got.len(),
        row.replies.len(),
        "{tag}: number of segments sent; got {shown:?}, want {:?}",
        row.replies
    );
    for (k, (g, w)) in got.iter().zip(row.replies).enumerate() {
        assert_eq!(g.flags, w.flags, "{tag}: flags of reply {k}; got {shown:?}");
        assert_eq!(g.len, w.len, "{tag}: payload of reply {k}; got {shown:?}");
        for (field, value, exp) in [("seq", g.seq, w.seq), ("ack", g.ack, w.ack)] {
            if let Some(v) = eval(exp, &b) {
                assert_eq!(
                    value, v,
                    "{tag}: {field} of reply {k} should be {exp:?}; got {shown:?}"
                );
            }
        }
    }
    check_want(&mut b, row.want, row.error, &format!("{tag} after input"));
    let after = b.stack().counters().clone();
    for &(name, delta) in row.counters {
        let a = after
            .get(name)
            .unwrap_or_else(|| panic!("{tag}: unknown counter {name}"));
        let d = a as i64 - before.get(name).unwrap() as i64;
        assert_eq!(d, delta, "{tag}: change of {name}");
    }
    for (k, t) in row.after.iter().enumerate() {
        b.p.run_for(t.wait);
        check_want(&mut b, t.want, t.error, &format!("{tag} after wait {k}"));
    }
}

/// The value an expected field must have (`None`: unpredictable, not checked).
fn eval(e: Exp, b: &Bench) -> Option<SeqNumber> {
    let (in_seq, in_ack, in_len) = b.last_in.unwrap_or_default();
    let v = b.view;
    Some(match e {
        Exp::Una(n) => v.snd_una + n as u32,
        Exp::Nxt(n) => v.snd_nxt + n as u32,
        Exp::Rcv(n) => v.rcv_nxt + n as u32,
        Exp::InAck => in_ack,
        Exp::InEnd => in_seq + in_len,
        Exp::Zero => SeqNumber(0),
        Exp::NewIsn => return None,
    })
}

fn check_want(b: &mut Bench, want: Want, error: Option<ConnError>, tag: &str) {
    let tuple = b.tuple;
    match want {
        Want::Conn(st) => {
            let h = b.h();
            let info = b.stack().info(h);
            assert_eq!(info.map(|i| i.state), Some(st), "{tag}: state");
            assert_eq!(info.and_then(|i| i.error), error, "{tag}: error");
        }
        Want::Released => {
            let h = b.h();
            assert_eq!(b.stack().state(h), None, "{tag}: connection released");
            assert!(
                b.stack().connections().all(|i| i.tuple != tuple),
                "{tag}: no connection left on the 4-tuple"
            );
            assert_eq!(
                error, None,
                "{tag}: row bug: a released connection has no error"
            );
        }
        Want::NoConnections => {
            assert_eq!(b.stack().connections().count(), 0, "{tag}: no connection");
            assert_eq!(error, None, "{tag}: row bug: error without a connection");
        }
        Want::Listener { syn_recv, child } => {
            assert_eq!(error, None, "{tag}: row bug: error on a listener row");
            let l = b.listener.expect("listener row without listener");
            let now = b.p.now;
            let li = b.stack().listener_info(l).expect("listener exists");
            assert_eq!(li.syn_recv, syn_recv, "{tag}: SYN-RECV requests");
            match child {
                None => {
                    assert_eq!(li.recv_q, 0, "{tag}: accept queue empty");
                    assert_eq!(
                        b.stack().accept(now, l).unwrap_err(),
                        crate::AcceptError::WouldBlock,
                        "{tag}: accept"
                    );
                }
                Some(st) => {
                    assert_eq!(li.recv_q, 1, "{tag}: one child in the accept queue");
                    let (h, peer) = b
                        .stack()
                        .accept(now, l)
                        .unwrap_or_else(|e| panic!("{tag}: accept: {e}"));
                    assert_eq!(peer, tuple.remote, "{tag}: accepted peer");
                    assert_eq!(b.stack().state(h), Some(st), "{tag}: child state");
                    assert_eq!(b.stack().info(h).unwrap().error, None, "{tag}: child error");
                }
            }
        }
    }
}
