//! A read-only cross-check of the stack's bookkeeping, for property tests and fuzzing.
//!
//! Every queue, map and gauge the stack keeps has a second description somewhere else (a
//! connection's `unaccepted` flag and the accept queues, `armed` and the timer set, the
//! TIME_WAIT gauge and the connections in TIME_WAIT). [`Stack::audit`] walks both and says
//! where they disagree; it changes nothing.

use super::{Owner, Stack};
use crate::conn::State;
use crate::slab::Key;
use crate::Instant;
use std::collections::{BTreeMap, BTreeSet};

impl Stack {
    /// Check that the stack's internal records agree with each other: no connection in two
    /// accept queues (or twice in one), every queued connection synchronized and unaccepted,
    /// the 4-tuple map, timer set, transmit list and event queue (its count of entries left by
    /// freed connections included) matching the connections' own flags, the
    /// per-listener SYN-queue counts matching the request table (whose timer tree must be
    /// exact, with timers on live requests only), and the gauges
    /// (`TcpCurrEstab`, TIME_WAIT and orphan counts) matching the connections they count.
    /// Returns the first disagreement found. Meant for tests and fuzzing; it costs a walk
    /// over every record.
    pub fn audit(&self) -> Result<(), String> {
        let mut queued: BTreeMap<Key, Key> = BTreeMap::new();
        let table = &self.listen;
        for (lkey, l) in table.listeners.iter() {
            if table.by_addr.get(&l.local) != Some(&lkey) {
                return Err(format!("listener {} missing from the address map", l.local));
            }
            for &key in l.accept.iter() {
                if let Some(other) = queued.insert(key, lkey) {
                    return Err(format!(
                        "connection {key:?} queued twice (listeners {other:?} and {lkey:?})"
                    ));
                }
                let Some(slot) = self.conns.get(key) else {
                    return Err(format!("accept queue of {} holds a freed key", l.local));
                };
                if !slot.unaccepted {
                    return Err(format!("{key:?} queued for accept but has a handle"));
                }
                if matches!(
                    slot.conn.state,
                    State::Listen | State::SynSent | State::SynReceived
                ) {
                    return Err(format!(
                        "{key:?} queued for accept in {:?}",
                        slot.conn.state
                    ));
                }
            }
            let held = table.requests.of_listener(lkey).count();
            let counted = table.requests.counts(lkey).len;
            if held != counted as usize {
                return Err(format!(
                    "listener {}: SYN queue says {counted} requests, the table holds {held}",
                    l.local
                ));
            }
        }
        if table.by_addr.len() != table.listeners.len() {
            return Err("listener address map and listener table differ in size".into());
        }
        let (mut estab, mut tw, mut orphans) = (0u64, 0u32, 0u32);
        let entries: BTreeSet<(Instant, Key)> = self.timers.entries().collect();
        let mut armed = 0usize;
        for (key, slot) in self.conns.iter() {
            if slot.unaccepted && !queued.contains_key(&key) {
                return Err(format!("{key:?} unaccepted but in no accept queue"));
            }
            if slot.hashed != (self.by_tuple.get(&self.conns, &slot.conn.tuple) == Some(key)) {
                return Err(format!(
                    "{key:?}: hashed flag disagrees with the 4-tuple map"
                ));
            }
            if slot.hashed && slot.tuple_hash != self.by_tuple.hash(&slot.conn.tuple) as u32 {
                return Err(format!("{key:?}: kept tuple hash is stale"));
            }
            if let Some(t) = slot.armed {
                armed += 1;
                if !entries.contains(&(t, key)) {
                    return Err(format!("{key:?} armed at {t} but not in the timer set"));
                }
            }
            if slot.in_tx != self.tx_ready.contains(&key) {
                return Err(format!("{key:?}: in_tx disagrees with the transmit list"));
            }
            if slot.in_events != self.events.contains(&Owner::Conn(key)) {
                return Err(format!("{key:?}: in_events disagrees with the event queue"));
            }
            if slot.in_tw != (slot.conn.state == State::TimeWait) {
                return Err(format!(
                    "{key:?}: in TIME_WAIT count {} but state {:?}",
                    slot.in_tw, slot.conn.state
                ));
            }
            estab += u64::from(slot.conn.counted_estab);
            tw += u32::from(slot.in_tw);
            orphans += u32::from(slot.conn.orphan);
        }
        // Stale entries are allowed (removal is lazy), but not at the top, and bounded.
        if let Some((t, key)) = self.timers.top() {
            if self.conns.get(key).map(|s| s.armed) != Some(Some(t)) {
                return Err(format!(
                    "the timer set's earliest entry {key:?} at {t} is stale"
                ));
            }
        }
        if armed != self.timers.live() {
            return Err(format!(
                "{armed} connections armed, the timer set counts {}",
                self.timers.live()
            ));
        }
        let n = self.timers.entries().count();
        if n > self.timers.max_entries() {
            return Err(format!(
                "timer set holds {n} entries for {armed} armed connections"
            ));
        }
        let stale = self
            .events
            .iter()
            .filter(|o| matches!(o, Owner::Conn(k) if self.conns.get(*k).is_none()))
            .count();
        if stale != self.stale_events {
            return Err(format!(
                "event queue holds {stale} entries of freed connections, {} counted",
                self.stale_events
            ));
        }
        table.requests.check_index(&self.addrs)?;
        table
            .requests
            .check_listeners(|l| table.listeners.contains(l))?;
        table.requests.check_timers()?;
        if self.by_tuple.len() != self.conns.iter().filter(|(_, s)| s.hashed).count() {
            return Err("4-tuple map holds entries of no hashed connection".into());
        }
        self.by_tuple.check(&self.conns)?;
        if estab != self.counters.curr_estab {
            return Err(format!(
                "TcpCurrEstab {} but {estab} connections counted",
                self.counters.curr_estab
            ));
        }
        if tw != self.time_wait {
            return Err(format!(
                "TIME_WAIT gauge {} but {tw} connections",
                self.time_wait
            ));
        }
        if orphans != self.orphans {
            return Err(format!(
                "orphan gauge {} but {orphans} orphans",
                self.orphans
            ));
        }
        Ok(())
    }
}
