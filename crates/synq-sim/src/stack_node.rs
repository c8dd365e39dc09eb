//! The real stack as a simulator host.

use crate::{Instant, Node};
use synq_core::Stack;

impl Node for Stack {
    fn handle_packet(&mut self, now: Instant, packet: &[u8]) {
        Self::handle_packet(self, now, packet);
    }
    fn handle_timeout(&mut self, now: Instant) {
        Self::handle_timeout(self, now);
    }
    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> bool {
        Self::poll_transmit(self, now, buf).is_some()
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Self::poll_timeout(self)
    }
}
