//! What a script says, as the parser reads it.

/// A whole script.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Script {
    /// `--name[=value]` lines, in order, with their line numbers.
    pub options: Vec<(usize, String, Option<String>)>,
    /// The untimed command before the first event.
    pub init: Option<(usize, String)>,
    /// The timed events.
    pub events: Vec<Event>,
    /// The untimed command after the last event (runs even after a failure).
    pub cleanup: Option<(usize, String)>,
}

/// One timed line.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// 1-based line number.
    pub line: usize,
    /// When.
    pub time: Time,
    /// What.
    pub kind: EventKind,
}

/// A time specification, in microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Time {
    /// `*`: any time (outbound packets only).
    Any,
    /// `T` or `+T`.
    At {
        /// `+T`: relative to the previous event.
        rel: bool,
        /// The offset.
        us: i64,
    },
    /// `T1~T2` or `+T1~+T2`: an acceptance window (outbound packets only).
    Range {
        /// Relative.
        rel: bool,
        /// Earliest.
        from: i64,
        /// Latest.
        to: i64,
    },
    /// `T...E`: a blocking call started at T that returns at E (on T's base).
    Blocking {
        /// Relative.
        rel: bool,
        /// When it starts.
        start: i64,
        /// When it returns.
        end: i64,
    },
}

/// What an event does.
#[derive(Clone, Debug, PartialEq)]
pub enum EventKind {
    /// `<` or `>` a TCP segment.
    Packet(Packet),
    /// A system call and its expected result.
    Syscall(Syscall),
    /// `%{ ... }%`.
    Code(String),
    /// `` `...` ``.
    Command(String),
}

/// Packet direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// `<`: injected into the stack.
    In,
    /// `>`: expected from the stack.
    Out,
}

/// TCP flag bits as the script letters name them (`AE` is bit 8, beyond the flags byte).
pub mod flag {
    /// `F`.
    pub const FIN: u16 = 0x01;
    /// `S`.
    pub const SYN: u16 = 0x02;
    /// `R`.
    pub const RST: u16 = 0x04;
    /// `P`.
    pub const PSH: u16 = 0x08;
    /// `.`.
    pub const ACK: u16 = 0x10;
    /// `U`.
    pub const URG: u16 = 0x20;
    /// `E`.
    pub const ECE: u16 = 0x40;
    /// `W`.
    pub const CWR: u16 = 0x80;
    /// `A`.
    pub const AE: u16 = 0x100;
}

/// One packet line.
#[derive(Clone, Debug, PartialEq)]
pub struct Packet {
    /// `<` or `>`.
    pub dir: Dir,
    /// `sport>dport` (the multi-flow extension): the sender's port, then the receiver's.
    pub ports: Option<(u16, u16)>,
    /// `(tos 0x..)`, `[ect0]`, `(ttl N)`, ...
    pub ip: IpInfo,
    /// Flag bits (see [`flag`]).
    pub flags: u16,
    /// First sequence number.
    pub seq: u32,
    /// Payload length.
    pub len: u32,
    /// `ack N`.
    pub ack: Option<u32>,
    /// `win N`.
    pub win: Option<u32>,
    /// `urg N`.
    pub urg: Option<u32>,
    /// The options in wire order; `None` for `<...>` (not checked).
    pub options: Option<Vec<TcpOpt>>,
}

/// IP-level details a packet line may give.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IpInfo {
    /// The ECN field: `[noecn]` 0, `[ect1]` 1, `[ect0]` 2, `[ce]` 3.
    pub ecn: Option<u8>,
    /// `(tos 0x..)`.
    pub tos: Option<u8>,
    /// `(ttl N)` or `(hlim N)`.
    pub ttl: Option<u8>,
    /// `[flowlabel 0x..]`.
    pub flowlabel: Option<u32>,
}

/// One TCP option.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TcpOpt {
    /// `nop`.
    Nop,
    /// `eol`.
    Eol,
    /// `mss N`.
    Mss(u16),
    /// `wscale N`.
    Wscale(u8),
    /// `sackOK`.
    SackOk,
    /// `sack a:b c:d`.
    Sack(Vec<(u32, u32)>),
    /// `TS val V ecr E`.
    Ts(u32, u32),
    /// `FO [hex]`: fast open (kind 34).
    FastOpen(Vec<u8>),
    /// `FOEXP [hex]`: experimental fast open (kind 254, magic 0xF989).
    FastOpenExp(Vec<u8>),
}

/// A system call line.
#[derive(Clone, Debug, PartialEq)]
pub struct Syscall {
    /// Its name.
    pub name: String,
    /// Its arguments.
    pub args: Vec<Expr>,
    /// The expected return value.
    pub result: i64,
    /// The expected errno name.
    pub errno: Option<String>,
}

/// A syscall argument.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// `...`: the default.
    Ellipsis,
    /// A number.
    Int(i64),
    /// A symbolic constant.
    Word(String),
    /// `"..."`.
    Str(String),
    /// `[a, b]`: a pointer to values (an int in, an int out).
    List(Vec<Self>),
    /// `{name=value, ...}`.
    Struct(Vec<(String, Self)>),
    /// `htons(8080)`, `inet_addr("1.2.3.4")`.
    Call(String, Vec<Self>),
    /// `A|B`.
    Or(Vec<Self>),
}
