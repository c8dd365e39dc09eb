//! Counters under the names `nstat -az` prints (`Ip*`, `Tcp*`, `TcpExt*`), plus a few
//! `Synq*` ones for events Linux has no counter for.

macro_rules! counters {
    ($(#[$sm:meta])* $ty:ident; $($(#[$m:meta])* $field:ident => $name:literal,)*) => {
        $(#[$sm])*
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        #[non_exhaustive]
        pub struct $ty {
            $($(#[$m])* #[doc = concat!("`", $name, "`")] pub $field: u64,)*
        }
        impl $ty {
            /// (name, value) for every counter, zeros included, in a fixed order.
            pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
                [$(($name, self.$field),)*].into_iter()
            }
            /// Value by name.
            pub fn get(&self, name: &str) -> Option<u64> {
                match name { $($name => Some(self.$field),)* _ => None }
            }
        }
        /// Adds every counter of another stack (shards of one host, see [`crate::Shards`]):
        /// the sum is what one stack doing all their work would have counted.
        impl core::ops::AddAssign<&$ty> for $ty {
            fn add_assign(&mut self, other: &Self) {
                $(self.$field = self.$field.wrapping_add(other.$field);)*
            }
        }
    };
}

counters! {
    /// Stack-wide event counters. Field docs give the nstat name.
    Counters;
    ip_in_receives => "IpInReceives",
    ip_in_hdr_errors => "IpInHdrErrors",
    ip_in_truncated => "IpInTruncatedPkts",
    ip_in_addr_errors => "IpInAddrErrors",
    ip_in_unknown_protos => "IpInUnknownProtos",
    ip_reasm_fails => "IpReasmFails",
    ip_out_requests => "IpOutRequests",
    active_opens => "TcpActiveOpens",
    passive_opens => "TcpPassiveOpens",
    attempt_fails => "TcpAttemptFails",
    estab_resets => "TcpEstabResets",
    curr_estab => "TcpCurrEstab",
    in_segs => "TcpInSegs",
    out_segs => "TcpOutSegs",
    retrans_segs => "TcpRetransSegs",
    in_errs => "TcpInErrs",
    out_rsts => "TcpOutRsts",
    in_csum_errors => "TcpInCsumErrors",
    listen_overflows => "TcpExtListenOverflows",
    listen_drops => "TcpExtListenDrops",
    req_q_full_drop => "TcpExtTCPReqQFullDrop",
    req_q_full_do_cookies => "TcpExtTCPReqQFullDoCookies",
    syncookies_sent => "TcpExtSyncookiesSent",
    syncookies_recv => "TcpExtSyncookiesRecv",
    syncookies_failed => "TcpExtSyncookiesFailed",
    syn_retrans => "TcpExtTCPSynRetrans",
    timeouts => "TcpExtTCPTimeouts",
    embryonic_rsts => "TcpExtEmbryonicRsts",
    defer_accept_drop => "TcpExtTCPDeferAcceptDrop",
    ack_skipped_syn_recv => "TcpExtTCPACKSkippedSynRecv",
    ack_skipped_challenge => "TcpExtTCPACKSkippedChallenge",
    challenge_ack => "TcpExtTCPChallengeACK",
    syn_challenge => "TcpExtTCPSYNChallenge",
    paws_estab => "TcpExtPAWSEstab",
    fast_retrans => "TcpExtTCPFastRetrans",
    win_probes => "TcpExtTCPWinProbe",
    abort_on_close => "TcpExtTCPAbortOnClose",
    abort_on_data => "TcpExtTCPAbortOnData",
    abort_on_timeout => "TcpExtTCPAbortOnTimeout",
    ofo_queue => "TcpExtTCPOFOQueue",
    ofo_drop => "TcpExtTCPOFODrop",
    zero_window_drop => "TcpExtTCPZeroWindowDrop",
    delayed_acks => "TcpExtDelayedACKs",
    pure_acks => "TcpExtTCPPureAcks",
    tw => "TcpExtTW",
    tw_syn_reopen => "SynqTimeWaitSynReopen",
    tw_overflow => "TcpExtTCPTimeWaitOverflow",
    orphan_overflow => "SynqOrphanOverflow",
    in_bad_data_offset => "SynqInBadDataOffset",
    /// TCP header shorter than 20 bytes or than its data offset (Linux drops it uncounted).
    in_truncated_segs => "SynqInTruncatedSegs",
    in_not_for_us => "SynqInNoSocket",
    conn_table_full => "SynqConnTableFull",
    tx_queue_drops => "SynqTxQueueDrops",
    synacks_sent => "SynqSynAcksSent",
    metrics_full => "SynqMetricsFull",
    /// Recoveries entered on SACK information (RFC 6675 / RACK).
    sack_recovery => "TcpExtTCPSackRecovery",
    /// Tail loss probes sent (RFC 8985 TLP).
    tlp => "TcpExtTCPLossProbes",
    /// Losses repaired by a tail loss probe.
    tlp_recovery => "TcpExtTCPLossProbeRecovery",
    /// Retransmissions found lost again.
    lost_retransmit => "TcpExtTCPLostRetransmit",
    /// ACKs with a duplicate SACK block (RFC 2883).
    dsack_recv => "TcpExtTCPDSACKRecv",
    /// Duplicate SACK blocks sent for data below RCV.NXT.
    dsack_old_sent => "TcpExtTCPDSACKOldSent",
    /// Reordering seen in SACK or ACK information.
    sack_reorder => "TcpExtTCPSACKReorder",
    /// Retransmissions after an RTO (in the loss state).
    slow_start_retrans => "TcpExtTCPSlowStartRetrans",
    /// Recoveries undone because every retransmission came back as a DSACK.
    dsack_undo => "TcpExtTCPDSACKUndo",
    /// Recoveries undone at their end by timestamps (Eifel, RFC 3522).
    full_undo => "TcpExtTCPFullUndo",
    /// RTO recoveries undone by timestamps.
    loss_undo => "TcpExtTCPLossUndo",
    /// RTOs found spurious.
    spurious_rtos => "TcpExtTCPSpuriousRTOs",
    /// Keepalive probes sent.
    keepalive => "TcpExtTCPKeepAlive",
    /// Connections ended by unanswered keepalive probes.
    keepalive_timeouts => "SynqKeepAliveTimeouts",
    /// Challenge ACKs not sent because the host-wide budget (`tcp_challenge_ack_limit`) was
    /// spent for this second (Linux counts none).
    challenge_ack_limited => "SynqChallengeACKLimited",
}

counters! {
    /// The FreeBSD model's syncache counters, under their `struct tcpstat` names (what
    /// `netstat -s -p tcp` prints as "syncache entries added", "retransmitted", ...). The
    /// nstat counters above count the same events where Linux has a name for them.
    FreeBsdCounters;
    /// Entries added to the syncache ("syncache entries added").
    sc_added => "tcps_sc_added",
    /// SYN-ACKs resent by the bucket timer ("retransmitted").
    sc_retransmitted => "tcps_sc_retransmitted",
    /// Duplicate SYNs for an entry ("dupsyn").
    sc_dupsyn => "tcps_sc_dupsyn",
    /// Entries dropped because a SYN-ACK could not be sent ("dropped").
    sc_dropped => "tcps_sc_dropped",
    /// Handshakes completed from the syncache or a cookie ("completed").
    sc_completed => "tcps_sc_completed",
    /// Bucket limit reached (once per pause with cookies on) ("bucket overflow").
    sc_bucketoverflow => "tcps_sc_bucketoverflow",
    /// Entries reset by a valid RST ("reset").
    sc_reset => "tcps_sc_reset",
    /// Entries that ran out of SYN-ACK retransmissions ("stale").
    sc_stale => "tcps_sc_stale",
    /// Completed handshakes whose socket could not be made: the listen queue's 3/2 limit
    /// ("aborted").
    sc_aborted => "tcps_sc_aborted",
    /// The total cache limit reached ("zone failures").
    sc_zonefail => "tcps_sc_zonefail",
    /// SYN-ACKs whose ISS is a cookie ("cookies sent").
    sc_sendcookie => "tcps_sc_sendcookie",
    /// Final ACKs accepted by their cookie ("cookies received").
    sc_recvcookie => "tcps_sc_recvcookie",
    /// Connections refused by the listen queue ("listen queue overflows").
    listendrop => "tcps_listendrop",
    /// RSTs ignored or answered with a challenge ACK ("ignored RSTs in the windows").
    badrst => "tcps_badrst",
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_listed() {
        let c = Counters {
            listen_drops: 3,
            ..Counters::default()
        };
        let mut names: Vec<_> = c.iter().map(|(n, _)| n).collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n);
        assert_eq!(c.get("TcpExtListenDrops"), Some(3));
        assert_eq!(c.get("TcpPassiveOpens"), Some(0));
        assert_eq!(c.get("Nope"), None);
    }

    #[test]
    fn add_assign_sums_every_counter() {
        let a = Counters {
            listen_drops: 3,
            passive_opens: 1,
            ..Counters::default()
        };
        let mut sum = a.clone();
        sum += &Counters {
            passive_opens: 4,
            challenge_ack_limited: 2,
            ..Counters::default()
        };
        assert_eq!(sum.get("TcpExtListenDrops"), Some(3));
        assert_eq!(sum.get("TcpPassiveOpens"), Some(5));
        assert_eq!(sum.get("SynqChallengeACKLimited"), Some(2));
        assert_eq!(sum.iter().map(|(_, v)| v).sum::<u64>(), 10);
    }
}
