//! What a script runs against: a synq stack in virtual time ([`crate::sim::SimHost`]) or,
//! in principle, any other TCP implementation behind the same calls.

use crate::ast::Syscall;
use crate::run::Step;
use std::collections::VecDeque;
use synq_core::Instant;

/// A call's result: a value or an errno name; `None` means it would block.
pub(crate) type Res = Option<Result<i64, &'static str>>;

/// A TCP implementation under test, seen from the script's side of the wire.
pub(crate) trait Host {
    /// The script's clock.
    fn now(&self) -> Instant;
    /// How long a `*` line waits for its packet at most: in virtual time an idle wait
    /// costs nothing, against a kernel it is real time.
    fn any_wait(&self) -> synq_core::Duration;
    /// Let time pass toward `limit` (or a blocked call's `wake`), stopping when something
    /// may have happened; `false` when nothing can happen by then.
    fn step(&mut self, limit: Instant, wake: Option<Instant>) -> bool;
    /// Bring the clock to `t` once nothing is due before it.
    fn settle(&mut self, t: Instant);
    /// Move the packets sent since the last call into `out` (with the time each was sent),
    /// keeping at most `max` queued.
    fn take_sent(&mut self, out: &mut VecDeque<(Instant, Vec<u8>)>, max: usize);
    /// Deliver a packet from the script.
    fn inject(&mut self, bytes: &[u8]);
    /// Try a system call now; `progress` carries a blocking write's bytes across retries,
    /// `wake` a poll() timeout.
    fn call(
        &mut self,
        line: usize,
        call: &Syscall,
        progress: &mut i64,
        wake: Option<Instant>,
    ) -> Step<Res>;
    /// (our port, peer port) of a connecting or connected script fd.
    fn conn_ports(&self, fd: i64) -> Option<(u16, u16)>;
    /// The port of the listener the script set up, if any.
    fn listening_port(&self) -> Option<u16>;
    /// TCP_INFO of the current socket, and the constants asserts compare it with.
    fn tcp_info(&mut self) -> Vec<(&'static str, i64)>;
    /// Run a backtick command: (standard output, exit status).
    fn command(&mut self, line: usize, cmd: &str) -> Step<(String, i32)>;
}
