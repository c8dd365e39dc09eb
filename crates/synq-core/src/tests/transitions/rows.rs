//! The rows: one test per start state, each a table of inputs and what must follow.

use super::*;

const TW: Duration = crate::conn::TIME_WAIT_LEN;

#[test]
fn active_open() {
    run(&[
        Row {
            name: "CLOSED connect => SYN_SENT, SYN",
            start: Start::Closed,
            input: &[In::Connect],
            want: Want::Conn(State::SynSent),
            replies: &[out(SYN, Exp::Una(0), Exp::Zero)],
            counters: &[("TcpActiveOpens", 1), ("TcpOutSegs", 1)],
            ..ROW
        },
        Row {
            name: "SYN_SENT + SYN-ACK => ESTABLISHED, ACK",
            start: Start::SynSent,
            input: &[In::Seg(SA, Seq::Peer(0), Ack::Nxt(0), &[])],
            want: Want::Conn(State::Established),
            replies: &[out(ACK, Exp::Nxt(0), Exp::InEnd)],
            counters: &[
                ("TcpCurrEstab", 1),
                ("TcpAttemptFails", 0),
                ("TcpOutSegs", 1),
            ],
            ..ROW
        },
        Row {
            name: "SYN_SENT + bare SYN => SYN_RECEIVED, SYN-ACK (simultaneous open)",
            start: Start::SynSent,
            input: &[In::Seg(SYN, Seq::Peer(0), NO_ACK, &[])],
            want: Want::Conn(State::SynReceived),
            replies: &[out(SA, Exp::Una(0), Exp::InEnd)],
            counters: &[("TcpCurrEstab", 0), ("TcpOutRsts", 0)],
            ..ROW
        },
        Row {
            name: "SYN_SENT + RST with acceptable ACK => CLOSED, ECONNREFUSED",
            start: Start::SynSent,
            input: &[In::Seg(RA, Seq::Peer(0), Ack::Nxt(0), &[])],
            want: Want::Conn(State::Closed),
            error: Some(ConnError::Refused),
            counters: &[("TcpAttemptFails", 1), ("TcpOutRsts", 0)],
            ..ROW
        },
        Row {
            name: "SYN_SENT + RST without ACK => ignored",
            start: Start::SynSent,
            input: &[In::Seg(RST, Seq::Peer(0), NO_ACK, &[])],
            want: Want::Conn(State::SynSent),
            counters: &[("TcpAttemptFails", 0)],
            ..ROW
        },
        Row {
            name: "SYN_SENT + RST with unacceptable ACK => ignored",
            start: Start::SynSent,
            input: &[In::Seg(RA, Seq::Peer(0), Ack::Nxt(1000), &[])],
            want: Want::Conn(State::SynSent),
            counters: &[("TcpAttemptFails", 0)],
            ..ROW
        },
        Row {
            name: "SYN_SENT + ACK acking unsent data => RST, state kept",
            start: Start::SynSent,
            input: &[In::Seg(ACK, Seq::Peer(0), Ack::Nxt(1000), &[])],
            want: Want::Conn(State::SynSent),
            replies: &[RST_FOR_ACK],
            counters: &[("TcpOutRsts", 1)],
            ..ROW
        },
        Row {
            name: "SYN_SENT + SYN-ACK acking only ISS => RST, state kept",
            start: Start::SynSent,
            input: &[In::Seg(SA, Seq::Peer(0), Ack::Nxt(-1), &[])],
            want: Want::Conn(State::SynSent),
            replies: &[RST_FOR_ACK],
            counters: &[("TcpOutRsts", 1), ("TcpCurrEstab", 0)],
            ..ROW
        },
        Row {
            name: "SYN_SENT + acceptable ACK without SYN => dropped",
            start: Start::SynSent,
            input: &[In::Seg(ACK, Seq::Peer(0), Ack::Nxt(0), &[])],
            want: Want::Conn(State::SynSent),
            ..ROW
        },
        Row {
            // tcp_syn_retries 6, tcp_syn_linear_timeouts 4: SYNs at 1,2,3,4,5,7 s; gives up at 11 s.
            // Linux 6.18 defaults: SYNs at 0..5, 7, 11, 19, 35, 67 s; gives up at the 131 s
            // timer (time-based rule, measured; see synq-sim tests/kernel_syn.rs).
            name: "SYN_SENT retries exhausted => CLOSED, ETIMEDOUT",
            start: Start::SynSent,
            input: &[In::Wait(ms(130_999))],
            want: Want::Conn(State::SynSent),
            replies: &[out(SYN, Exp::Una(0), Exp::Zero); 10],
            counters: &[
                ("TcpExtTCPSynRetrans", 10),
                ("TcpExtTCPTimeouts", 10),
                ("TcpAttemptFails", 0),
            ],
            after: &[Then {
                wait: ms(1),
                want: Want::Conn(State::Closed),
                error: Some(ConnError::TimedOut),
            }],
            ..ROW
        },
        Row {
            name: "SYN_SENT close => CLOSED (released), nothing sent",
            start: Start::SynSent,
            input: &[In::Close],
            want: Want::Released,
            ..ROW
        },
        Row {
            name: "SYN_SENT abort => CLOSED (released), no RST",
            start: Start::SynSent,
            input: &[In::Abort],
            want: Want::Released,
            counters: &[("TcpOutRsts", 0)],
            ..ROW
        },
    ]);
}

#[test]
fn simultaneous_open_syn_received() {
    run(&[
        Row {
            name: "SYN_RECEIVED + ACK of our SYN => ESTABLISHED",
            start: Start::SynReceived,
            input: &[In::Seg(ACK, Seq::Rcv(0), Ack::Nxt(0), &[])],
            want: Want::Conn(State::Established),
            counters: &[("TcpCurrEstab", 1)],
            ..ROW
        },
        Row {
            name: "SYN_RECEIVED + RST exact => CLOSED, ECONNREFUSED",
            start: Start::SynReceived,
            input: &[In::Seg(RST, Seq::Rcv(0), NO_ACK, &[])],
            want: Want::Conn(State::Closed),
            error: Some(ConnError::Refused),
            counters: &[("TcpAttemptFails", 1), ("TcpEstabResets", 0)],
            ..ROW
        },
        Row {
            name: "SYN_RECEIVED + RST in window => challenge ACK, stays",
            start: Start::SynReceived,
            input: &[In::Seg(RST, Seq::Rcv(100), NO_ACK, &[])],
            want: Want::Conn(State::SynReceived),
            replies: &[ack_out(0)],
            counters: &[("TcpExtTCPChallengeACK", 1), ("TcpOutSegs", 1)],
            ..ROW
        },
        Row {
            name: "SYN_RECEIVED + ACK acking unsent data => RST, stays",
            start: Start::SynReceived,
            input: &[In::Seg(ACK, Seq::Rcv(0), Ack::Nxt(1000), &[])],
            want: Want::Conn(State::SynReceived),
            replies: &[RST_FOR_ACK],
            counters: &[("TcpOutRsts", 1)],
            ..ROW
        },
        Row {
            // Left of the window: RFC 5961 §4 (and Linux tcp_validate_incoming) challenge it.
            name: "SYN_RECEIVED + retransmitted SYN => challenge ACK, stays",
            start: Start::SynReceived,
            input: &[In::Seg(SYN, Seq::Peer(0), NO_ACK, &[])],
            want: Want::Conn(State::SynReceived),
            replies: &[ack_out(0)],
            counters: &[("TcpExtTCPSYNChallenge", 1), ("TcpExtTCPChallengeACK", 1)],
            ..ROW
        },
        Row {
            name: "SYN_RECEIVED close => FIN_WAIT_1, FIN",
            start: Start::SynReceived,
            input: &[In::Close],
            want: Want::Conn(State::FinWait1),
            replies: &[out(FA, Exp::Nxt(0), Exp::Rcv(0))],
            ..ROW
        },
    ]);
}

#[test]
fn established() {
    run(&[
        Row {
            name: "ESTABLISHED close => FIN_WAIT_1, FIN",
            start: Start::Established,
            sides: BOTH,
            input: &[In::Close],
            want: Want::Conn(State::FinWait1),
            replies: &[out(FA, Exp::Nxt(0), Exp::Rcv(0))],
            counters: &[("TcpCurrEstab", -1), ("TcpOutSegs", 1)],
            ..ROW
        },
        Row {
            name: "ESTABLISHED shutdown => FIN_WAIT_1, FIN",
            start: Start::Established,
            sides: BOTH,
            input: &[In::Shutdown],
            want: Want::Conn(State::FinWait1),
            replies: &[out(FA, Exp::Nxt(0), Exp::Rcv(0))],
            counters: &[("TcpCurrEstab", -1)],
            ..ROW
        },
        Row {
            name: "ESTABLISHED abort => CLOSED (released), RST",
            start: Start::Established,
            sides: BOTH,
            input: &[In::Abort],
            want: Want::Released,
            replies: &[out(RA, Exp::Nxt(0), Exp::Rcv(0))],
            // Linux tcp_set_state: ESTABLISHED -> CLOSE counts TcpEstabResets (RFC 1213).
            counters: &[
                ("TcpOutRsts", 1),
                ("TcpCurrEstab", -1),
                ("TcpEstabResets", 1),
            ],
            ..ROW
        },
        Row {
            name: "ESTABLISHED close with unread data => CLOSED (released), RST",
            start: Start::Established,
            sides: BOTH,
            input: &[In::Seg(PA, Seq::Rcv(0), Ack::Nxt(0), b"unread"), In::Close],
            want: Want::Released,
            // The first data of a connection is acknowledged at once (quick-ACK mode).
            replies: &[
                out(ACK, Exp::Nxt(0), Exp::Rcv(6)),
                out(RA, Exp::Nxt(0), Exp::Rcv(6)),
            ],
            counters: &[
                ("TcpExtTCPAbortOnClose", 1),
                ("TcpOutRsts", 1),
                ("TcpCurrEstab", -1),
                ("TcpEstabResets", 1),
            ],
            ..ROW
        },
        Row {
            // tcp_retries2 = 15: the 16th RTO expiry gives up (~925 s with the 200 ms floor).
            name: "ESTABLISHED retransmissions exhausted => CLOSED, ETIMEDOUT",
            start: Start::Established,
            sides: BOTH,
            input: &[In::Send(b"x"), In::Wait(secs(2000))],
            want: Want::Conn(State::Closed),
            error: Some(ConnError::TimedOut),
            replies: &[Out {
                len: 1,
                ..out(PA, Exp::Nxt(0), Exp::Rcv(0))
            }; 16],
            counters: &[
                ("TcpExtTCPAbortOnTimeout", 1),
                // Linux counts every expiry, the final one too (tcp_retransmit_timer).
                ("TcpExtTCPTimeouts", 16),
                ("TcpRetransSegs", 15),
                ("TcpCurrEstab", -1),
                ("TcpEstabResets", 1),
            ],
            ..ROW
        },
        // Linux tcp_fin enters ping-pong mode: the FIN's ACK waits for the delayed-ACK
        // timer (40 ms) once data has been received, and leaves at once before any (its
        // `ato` is still 0), as the 6.18 kernel shows in the packetdrill replay.
        Row {
            name: "ESTABLISHED + FIN before any data => CLOSE_WAIT, ACK at once",
            start: Start::Established,
            sides: BOTH,
            input: &[In::Seg(FA, Seq::Rcv(0), Ack::Nxt(0), &[])],
            want: Want::Conn(State::CloseWait),
            replies: &[ack_out(1)],
            counters: &[("TcpCurrEstab", 0)],
            ..ROW
        },
        Row {
            name: "ESTABLISHED + data, FIN => CLOSE_WAIT, the FIN's ACK not yet at 39 ms",
            start: Start::Established,
            sides: BOTH,
            input: &[
                In::Seg(PA, Seq::Rcv(0), Ack::Nxt(0), b"x"),
                In::Seg(FA, Seq::Rcv(1), Ack::Nxt(0), &[]),
                In::Wait(ms(39)),
            ],
            want: Want::Conn(State::CloseWait),
            replies: &[ack_out(1)],
            counters: &[("TcpCurrEstab", 0)],
            ..ROW
        },
        Row {
            name: "ESTABLISHED + data, FIN => CLOSE_WAIT, the FIN's ACK at 40 ms",
            start: Start::Established,
            sides: BOTH,
            input: &[
                In::Seg(PA, Seq::Rcv(0), Ack::Nxt(0), b"x"),
                In::Seg(FA, Seq::Rcv(1), Ack::Nxt(0), &[]),
                In::Wait(ms(41)),
            ],
            want: Want::Conn(State::CloseWait),
            replies: &[ack_out(1), ack_out(2)],
            counters: &[("TcpCurrEstab", 0)],
            ..ROW
        },
        Row {
            name: "ESTABLISHED + RST exact => CLOSED, ECONNRESET",
            start: Start::Established,
            sides: BOTH,
            input: &[In::Seg(RST, Seq::Rcv(0), NO_ACK, &[])],
            want: Want::Conn(State::Closed),
            error: Some(ConnError::Reset),
            counters: &[
                ("TcpEstabResets", 1),
                ("TcpCurrEstab", -1),
                ("TcpExtTCPChallengeACK", 0),
            ],
            ..ROW
        },
        Row {
            name: "ESTABLISHED + RST|ACK exact => CLOSED, ECONNRESET",
            start: Start::Established,
            sides: BOTH,
            input: &[In::Seg(RA, Seq::Rcv(0), Ack::Nxt(0), &[])],
            want: Want::Conn(State::Closed),
            error: Some(ConnError::Reset),
            counters: &[("TcpEstabResets", 1)],
            ..ROW
        },
        Row {
            name: "ESTABLISHED + RST in window => challenge ACK, stays",
            start: Start::Established,
            sides: BOTH,
            input: &[In::Seg(RST, Seq::Rcv(100), NO_ACK, &[])],
            want: Want::Conn(State::Established),
            replies: &[ack_out(0)],
            counters: &[("TcpExtTCPChallengeACK", 1), ("TcpEstabResets", 0)],
            ..ROW
        },
        Row {
            name: "ESTABLISHED + RST right of window => ignored",
            start: Start::Established,
            sides: BOTH,
            input: &[In::Seg(RST, Seq::Rcv(10_000_000), NO_ACK, &[])],
            want: Want::Conn(State::Established),
            counters: &[("TcpExtTCPChallengeACK", 0)],
            ..ROW
        },
        Row {
            name: "ESTABLISHED + RST left of window => ignored",
            start: Start::Established,
            sides: BOTH,
            input: &[In::Seg(RST, Seq::Rcv(-1), NO_ACK, &[])],
            want: Want::Conn(State::Established),
            counters: &[("TcpExtTCPChallengeACK", 0)],
            ..ROW
        },
        Row {
            name: "ESTABLISHED + SYN in window => challenge ACK, stays",
            start: Start::Established,
            sides: BOTH,
            input: &[In::Seg(SYN, Seq::Rcv(5), NO_ACK, &[])],
            want: Want::Conn(State::Established),
            replies: &[ack_out(0)],
            counters: &[("TcpExtTCPSYNChallenge", 1), ("TcpExtTCPChallengeACK", 1)],
            ..ROW
        },
        Row {
            name: "ESTABLISHED + SYN left of window => challenge ACK, stays",
            start: Start::Established,
            sides: BOTH,
            input: &[In::Seg(SYN, Seq::Rcv(-1000), NO_ACK, &[])],
            want: Want::Conn(State::Established),
            replies: &[ack_out(0)],
            counters: &[("TcpExtTCPSYNChallenge", 1), ("TcpExtTCPChallengeACK", 1)],
            ..ROW
        },
        Row {
            name: "ESTABLISHED + ACK of unsent data => ACK, segment dropped",
            start: Start::Established,
            sides: BOTH,
            input: &[In::Seg(PA, Seq::Rcv(0), Ack::Nxt(1000), b"data")],
            want: Want::Conn(State::Established),
            replies: &[ack_out(0)],
            ..ROW
        },
        Row {
            // The first data of a connection: quick-ACK mode answers at once (the delayed
            // ACK after quick ACKs run out is in tests/data.rs).
            name: "ESTABLISHED + first in-order data => stays, ACK at once",
            start: Start::Established,
            sides: BOTH,
            input: &[In::Seg(PA, Seq::Rcv(0), Ack::Nxt(0), b"hello")],
            want: Want::Conn(State::Established),
            replies: &[ack_out(5)],
            counters: &[("TcpExtDelayedACKs", 0)],
            ..ROW
        },
        Row {
            name: "ESTABLISHED + old data left of window => duplicate ACK",
            start: Start::Established,
            sides: BOTH,
            input: &[In::Seg(PA, Seq::Rcv(-100), Ack::Nxt(0), b"old")],
            want: Want::Conn(State::Established),
            replies: &[ack_out(0)],
            ..ROW
        },
        Row {
            name: "ESTABLISHED + data without ACK bit => dropped",
            start: Start::Established,
            sides: BOTH,
            input: &[In::Seg(PSH, Seq::Rcv(0), NO_ACK, b"x")],
            want: Want::Conn(State::Established),
            ..ROW
        },
    ]);
}

#[test]
fn active_close() {
    run(&[
        Row {
            name: "FIN_WAIT_1 + ACK of FIN => FIN_WAIT_2",
            start: Start::FinWait1,
            sides: BOTH,
            input: &[In::Seg(ACK, Seq::Rcv(0), Ack::Nxt(0), &[])],
            want: Want::Conn(State::FinWait2),
            ..ROW
        },
        Row {
            name: "FIN_WAIT_1 + ACK not covering FIN => stays",
            start: Start::FinWait1,
            sides: BOTH,
            input: &[In::Seg(ACK, Seq::Rcv(0), Ack::Nxt(-1), &[])],
            want: Want::Conn(State::FinWait1),
            ..ROW
        },
        Row {
            name: "FIN_WAIT_1 + FIN not acking ours => CLOSING, ACK",
            start: Start::FinWait1,
            sides: BOTH,
            input: &[In::Seg(FA, Seq::Rcv(0), Ack::Nxt(-1), &[])],
            want: Want::Conn(State::Closing),
            replies: &[ack_out(1)],
            ..ROW
        },
        Row {
            name: "FIN_WAIT_1 + FIN acking ours => TIME_WAIT, ACK",
            start: Start::FinWait1,
            sides: BOTH,
            input: &[In::Seg(FA, Seq::Rcv(0), Ack::Nxt(0), &[])],
            want: Want::Conn(State::TimeWait),
            replies: &[ack_out(1)],
            ..ROW
        },
        Row {
            name: "FIN_WAIT_1 + RST exact => CLOSED, ECONNRESET",
            start: Start::FinWait1,
            sides: BOTH,
            input: &[In::Seg(RST, Seq::Rcv(0), NO_ACK, &[])],
            want: Want::Conn(State::Closed),
            error: Some(ConnError::Reset),
            counters: &[("TcpEstabResets", 0)],
            ..ROW
        },
        Row {
            name: "FIN_WAIT_2 + FIN => TIME_WAIT, ACK",
            start: Start::FinWait2,
            sides: BOTH,
            input: &[In::Seg(FA, Seq::Rcv(0), Ack::Nxt(0), &[])],
            want: Want::Conn(State::TimeWait),
            replies: &[ack_out(1)],
            ..ROW
        },
        Row {
            name: "FIN_WAIT_2 + data => received, stays",
            start: Start::FinWait2,
            sides: BOTH,
            input: &[
                In::Seg(PA, Seq::Rcv(0), Ack::Nxt(0), b"late"),
                In::Wait(ms(40)),
            ],
            want: Want::Conn(State::FinWait2),
            replies: &[ack_out(4)],
            ..ROW
        },
        Row {
            name: "FIN_WAIT_2 + RST exact => CLOSED, ECONNRESET",
            start: Start::FinWait2,
            sides: BOTH,
            input: &[In::Seg(RST, Seq::Rcv(0), NO_ACK, &[])],
            want: Want::Conn(State::Closed),
            error: Some(ConnError::Reset),
            ..ROW
        },
        Row {
            name: "FIN_WAIT_2 + RST in window => challenge ACK, stays",
            start: Start::FinWait2,
            sides: BOTH,
            input: &[In::Seg(RST, Seq::Rcv(7), NO_ACK, &[])],
            want: Want::Conn(State::FinWait2),
            replies: &[ack_out(0)],
            counters: &[("TcpExtTCPChallengeACK", 1)],
            ..ROW
        },
        Row {
            // The FIN was acked ~20 ms into the 100 ms setup: tcp_fin_timeout (60 s) from then.
            name: "FIN_WAIT_2 (orphan) tcp_fin_timeout => CLOSED (released)",
            start: Start::FinWait2Orphan,
            sides: BOTH,
            input: &[In::Wait(secs(59))],
            want: Want::Conn(State::FinWait2),
            after: &[Then {
                wait: secs(1),
                want: Want::Released,
                error: None,
            }],
            ..ROW
        },
        Row {
            name: "CLOSING + ACK of FIN => TIME_WAIT",
            start: Start::Closing,
            sides: BOTH,
            input: &[In::Seg(ACK, Seq::Rcv(0), Ack::Nxt(0), &[])],
            want: Want::Conn(State::TimeWait),
            ..ROW
        },
        Row {
            name: "CLOSING + RST exact => CLOSED",
            start: Start::Closing,
            sides: BOTH,
            input: &[In::Seg(RST, Seq::Rcv(0), NO_ACK, &[])],
            want: Want::Conn(State::Closed),
            ..ROW
        },
    ]);
}

#[test]
fn passive_close() {
    run(&[
        Row {
            name: "CLOSE_WAIT close => LAST_ACK, FIN",
            start: Start::CloseWait,
            sides: BOTH,
            input: &[In::Close],
            want: Want::Conn(State::LastAck),
            replies: &[out(FA, Exp::Nxt(0), Exp::Rcv(0))],
            counters: &[("TcpCurrEstab", -1)],
            ..ROW
        },
        Row {
            name: "CLOSE_WAIT shutdown => LAST_ACK, FIN",
            start: Start::CloseWait,
            sides: BOTH,
            input: &[In::Shutdown],
            want: Want::Conn(State::LastAck),
            replies: &[out(FA, Exp::Nxt(0), Exp::Rcv(0))],
            ..ROW
        },
        Row {
            name: "CLOSE_WAIT close, then ACK of FIN => CLOSED (released)",
            start: Start::CloseWait,
            sides: BOTH,
            input: &[In::Close, In::Seg(ACK, Seq::Rcv(0), Ack::Nxt(1), &[])],
            want: Want::Released,
            replies: &[out(FA, Exp::Nxt(0), Exp::Rcv(0))],
            ..ROW
        },
        Row {
            // Linux tcp_reset reports EPIPE in CLOSE_WAIT.
            name: "CLOSE_WAIT + RST exact => CLOSED, EPIPE",
            start: Start::CloseWait,
            sides: BOTH,
            input: &[In::Seg(RST, Seq::Rcv(0), NO_ACK, &[])],
            want: Want::Conn(State::Closed),
            error: Some(ConnError::BrokenPipe),
            counters: &[("TcpEstabResets", 1), ("TcpCurrEstab", -1)],
            ..ROW
        },
        Row {
            name: "CLOSE_WAIT + retransmitted FIN => ACK, stays",
            start: Start::CloseWait,
            sides: BOTH,
            input: &[In::Seg(FA, Seq::Rcv(-1), Ack::Nxt(0), &[])],
            want: Want::Conn(State::CloseWait),
            replies: &[ack_out(0)],
            ..ROW
        },
        Row {
            name: "LAST_ACK + ACK of FIN => CLOSED",
            start: Start::LastAck,
            sides: BOTH,
            input: &[In::Seg(ACK, Seq::Rcv(0), Ack::Nxt(0), &[])],
            want: Want::Conn(State::Closed),
            ..ROW
        },
        Row {
            name: "LAST_ACK + ACK not covering FIN => stays",
            start: Start::LastAck,
            sides: BOTH,
            input: &[In::Seg(ACK, Seq::Rcv(0), Ack::Nxt(-1), &[])],
            want: Want::Conn(State::LastAck),
            ..ROW
        },
        Row {
            name: "LAST_ACK + RST exact => CLOSED",
            start: Start::LastAck,
            sides: BOTH,
            input: &[In::Seg(RST, Seq::Rcv(0), NO_ACK, &[])],
            want: Want::Conn(State::Closed),
            ..ROW
        },
    ]);
}

#[test]
fn time_wait() {
    run(&[
        Row {
            name: "TIME_WAIT at 2MSL - 1 ms => still TIME_WAIT",
            start: Start::TimeWait,
            sides: BOTH,
            input: &[In::Wait(TW - ms(1))],
            want: Want::Conn(State::TimeWait),
            counters: &[("TcpExtTW", 0)],
            ..ROW
        },
        Row {
            name: "TIME_WAIT at 2MSL (60 s) => CLOSED",
            start: Start::TimeWait,
            sides: BOTH,
            input: &[In::Wait(secs(60))],
            want: Want::Conn(State::Closed),
            counters: &[("TcpExtTW", 1)],
            ..ROW
        },
        Row {
            name: "TIME_WAIT + RST exact => CLOSED",
            start: Start::TimeWait,
            sides: BOTH,
            input: &[In::Seg(RST, Seq::Rcv(0), NO_ACK, &[])],
            want: Want::Conn(State::Closed),
            ..ROW
        },
        Row {
            // RFC 9293 §3.10.7.4 checks the sequence number first; Linux kills TIME_WAIT only
            // for an RST at exactly RCV.NXT (tcp_timewait_state_process).
            name: "TIME_WAIT + RST out of window => ignored",
            start: Start::TimeWait,
            sides: BOTH,
            input: &[In::Seg(RST, Seq::Rcv(10_000_000), NO_ACK, &[])],
            want: Want::Conn(State::TimeWait),
            ..ROW
        },
        Row {
            name: "TIME_WAIT + retransmitted FIN => ACK, 2MSL restarts",
            start: Start::TimeWait,
            sides: BOTH,
            input: &[
                In::Wait(secs(30)),
                In::Seg(FA, Seq::Rcv(-1), Ack::Nxt(0), &[]),
            ],
            want: Want::Conn(State::TimeWait),
            replies: &[ack_out(0)],
            after: &[
                Then {
                    wait: TW - ms(1),
                    want: Want::Conn(State::TimeWait),
                    error: None,
                },
                Then {
                    wait: ms(1),
                    want: Want::Conn(State::Closed),
                    error: None,
                },
            ],
            ..ROW
        },
        Row {
            name: "TIME_WAIT + duplicate bare ACK => nothing",
            start: Start::TimeWait,
            sides: BOTH,
            input: &[In::Seg(ACK, Seq::Rcv(0), Ack::Nxt(0), &[])],
            want: Want::Conn(State::TimeWait),
            ..ROW
        },
        Row {
            // The server's listener is still open: the new SYN gets a SYN-ACK (RFC 1122
            // 4.2.2.13, Linux TCP_TW_SYN).
            name: "TIME_WAIT + new SYN above RCV.NXT, listener open => CLOSED, SYN-ACK",
            start: Start::TimeWait,
            sides: SERVER,
            input: &[In::Seg(SYN, Seq::Rcv(100_000), NO_ACK, &[])],
            want: Want::Conn(State::Closed),
            replies: &[out(SA, Exp::NewIsn, Exp::InEnd)],
            counters: &[("SynqTimeWaitSynReopen", 1), ("TcpExtTW", 0)],
            ..ROW
        },
        Row {
            // No listener on the client's port: Linux keeps TIME_WAIT and re-ACKs
            // (tcp_v4_rcv, TCP_TW_SYN falling through to TCP_TW_ACK).
            name: "TIME_WAIT + new SYN above RCV.NXT, no listener => ACK, stays",
            start: Start::TimeWait,
            sides: CLIENT,
            input: &[In::Seg(SYN, Seq::Rcv(100_000), NO_ACK, &[])],
            want: Want::Conn(State::TimeWait),
            replies: &[ack_out(0)],
            counters: &[("SynqTimeWaitSynReopen", 0)],
            ..ROW
        },
    ]);
}

#[test]
fn listener() {
    let request = |syn_recv| Want::Listener {
        syn_recv,
        child: None,
    };
    run(&[
        Row {
            name: "LISTEN + SYN => SYN-ACK, one SYN-RECV request",
            start: Start::Listen,
            sides: SERVER,
            input: &[In::Seg(SYN, Seq::Peer(0), NO_ACK, &[])],
            want: request(1),
            replies: &[out(SA, Exp::NewIsn, Exp::InEnd)],
            counters: &[("TcpPassiveOpens", 0), ("TcpOutSegs", 1)],
            ..ROW
        },
        Row {
            name: "LISTEN + bare ACK => RST",
            start: Start::Listen,
            sides: SERVER,
            input: &[In::Seg(ACK, Seq::Peer(0), Ack::Raw(12_345), &[])],
            want: request(0),
            replies: &[RST_FOR_ACK],
            counters: &[("TcpOutRsts", 1)],
            ..ROW
        },
        Row {
            name: "LISTEN + RST => nothing",
            start: Start::Listen,
            sides: SERVER,
            input: &[In::Seg(RST, Seq::Peer(0), NO_ACK, &[])],
            want: request(0),
            counters: &[("TcpOutRsts", 0)],
            ..ROW
        },
        Row {
            name: "LISTEN + RST|ACK => nothing",
            start: Start::Listen,
            sides: SERVER,
            input: &[In::Seg(RA, Seq::Peer(0), Ack::Raw(12_345), &[])],
            want: request(0),
            ..ROW
        },
        Row {
            name: "LISTEN + bare FIN => dropped",
            start: Start::Listen,
            sides: SERVER,
            input: &[In::Seg(FIN, Seq::Peer(0), NO_ACK, &[])],
            want: request(0),
            ..ROW
        },
        Row {
            name: "LISTEN + SYN|FIN => dropped",
            start: Start::Listen,
            sides: SERVER,
            input: &[In::Seg(SYN.union(FIN), Seq::Peer(0), NO_ACK, &[])],
            want: request(0),
            ..ROW
        },
        Row {
            name: "SYN-RECV request + ACK => ESTABLISHED child in accept queue",
            start: Start::SynRecvRequest,
            sides: SERVER,
            input: &[In::Seg(ACK, Seq::Rcv(0), Ack::Nxt(0), &[])],
            want: Want::Listener {
                syn_recv: 0,
                child: Some(State::Established),
            },
            counters: &[("TcpPassiveOpens", 1), ("TcpCurrEstab", 1)],
            ..ROW
        },
        Row {
            name: "SYN-RECV request + ACK with FIN => CLOSE_WAIT child, ACK",
            start: Start::SynRecvRequest,
            sides: SERVER,
            input: &[In::Seg(FA, Seq::Rcv(0), Ack::Nxt(0), &[])],
            want: Want::Listener {
                syn_recv: 0,
                child: Some(State::CloseWait),
            },
            replies: &[ack_out(1)],
            counters: &[("TcpPassiveOpens", 1)],
            ..ROW
        },
        Row {
            name: "SYN-RECV request + ACK with wrong ack => RST, request kept",
            start: Start::SynRecvRequest,
            sides: SERVER,
            input: &[In::Seg(ACK, Seq::Rcv(0), Ack::Nxt(100), &[])],
            want: request(1),
            replies: &[RST_FOR_ACK],
            counters: &[("TcpOutRsts", 1), ("TcpPassiveOpens", 0)],
            ..ROW
        },
        Row {
            name: "SYN-RECV request + RST exact => request removed",
            start: Start::SynRecvRequest,
            sides: SERVER,
            input: &[In::Seg(RST, Seq::Rcv(0), NO_ACK, &[])],
            want: request(0),
            counters: &[("TcpExtEmbryonicRsts", 1), ("TcpAttemptFails", 1)],
            ..ROW
        },
        Row {
            name: "SYN-RECV request + RST in window => request removed",
            start: Start::SynRecvRequest,
            sides: SERVER,
            input: &[In::Seg(RST, Seq::Rcv(100), NO_ACK, &[])],
            want: request(0),
            counters: &[
                ("TcpExtEmbryonicRsts", 1),
                ("TcpAttemptFails", 1),
                ("TcpOutRsts", 0),
            ],
            ..ROW
        },
        Row {
            name: "SYN-RECV request + RST out of window => ignored",
            start: Start::SynRecvRequest,
            sides: SERVER,
            input: &[In::Seg(RST, Seq::Rcv(10_000_000), NO_ACK, &[])],
            want: request(1),
            counters: &[("TcpExtEmbryonicRsts", 0), ("TcpAttemptFails", 0)],
            ..ROW
        },
        Row {
            name: "SYN-RECV request + retransmitted SYN => SYN-ACK again",
            start: Start::SynRecvRequest,
            sides: SERVER,
            input: &[In::Seg(SYN, Seq::Peer(0), NO_ACK, &[])],
            want: request(1),
            replies: &[out(SA, Exp::Una(0), Exp::InEnd)],
            ..ROW
        },
        Row {
            name: "SYN-RECV request + SYN in window => RST, request removed",
            start: Start::SynRecvRequest,
            sides: SERVER,
            input: &[In::Seg(SYN, Seq::Rcv(5), NO_ACK, &[])],
            want: request(0),
            replies: &[RST_FOR_NO_ACK],
            counters: &[("TcpExtEmbryonicRsts", 1), ("TcpOutRsts", 1)],
            ..ROW
        },
        Row {
            name: "SYN-RECV request + data out of window => ACK, request kept",
            start: Start::SynRecvRequest,
            sides: SERVER,
            input: &[In::Seg(PA, Seq::Rcv(10_000_000), Ack::Nxt(0), b"x")],
            want: request(1),
            replies: &[ack_out(0)],
            ..ROW
        },
    ]);
}

#[test]
fn no_socket() {
    run(&[
        Row {
            name: "CLOSED (no socket) + SYN => RST|ACK",
            start: Start::NoSocket,
            sides: SERVER,
            input: &[In::Seg(SYN, Seq::Peer(0), NO_ACK, &[])],
            want: Want::NoConnections,
            replies: &[RST_FOR_NO_ACK],
            counters: &[("SynqInNoSocket", 1), ("TcpOutRsts", 1)],
            ..ROW
        },
        Row {
            name: "CLOSED (no socket) + ACK => RST",
            start: Start::NoSocket,
            sides: SERVER,
            input: &[In::Seg(ACK, Seq::Peer(0), Ack::Raw(777), &[])],
            want: Want::NoConnections,
            replies: &[RST_FOR_ACK],
            ..ROW
        },
        Row {
            name: "CLOSED (no socket) + RST => nothing",
            start: Start::NoSocket,
            sides: SERVER,
            input: &[In::Seg(RST, Seq::Peer(0), NO_ACK, &[])],
            want: Want::NoConnections,
            counters: &[("TcpOutRsts", 0)],
            ..ROW
        },
    ]);
}
