#!/bin/sh
# The settings packetdrill's own suite starts from (google/packetdrill
# gtests/net/common/defaults.sh), for the knobs a listener test depends on. `synq pktdrill`
# applies the same list itself; on a real kernel this file runs (inside the namespace the
# replay creates). Knobs a kernel lacks are skipped.
set_sysctl() { sysctl -q -w "$1=$2" 2>/dev/null || true; }
ip tcp_metrics flush all >/dev/null 2>&1 || true
set_sysctl net.ipv4.tcp_rmem "4096 540000 15728640"
set_sysctl net.ipv4.tcp_wmem "4096 262144 4194304"
set_sysctl net.ipv4.tcp_timestamps 1
set_sysctl net.ipv4.tcp_syn_retries 5
set_sysctl net.ipv4.tcp_synack_retries 5
set_sysctl net.ipv4.tcp_frto 2
set_sysctl net.ipv4.tcp_sack 1
set_sysctl net.ipv4.tcp_dsack 1
set_sysctl net.ipv4.tcp_fack 0
set_sysctl net.ipv4.tcp_reordering 3
set_sysctl net.ipv4.tcp_congestion_control cubic
set_sysctl net.ipv4.tcp_slow_start_after_idle 0
set_sysctl net.ipv4.tcp_early_retrans 4
set_sysctl net.ipv4.tcp_recovery 1
set_sysctl net.ipv4.tcp_tso_win_divisor 3
set_sysctl net.ipv4.tcp_ecn 0
set_sysctl net.ipv4.tcp_pacing_ss_ratio 200
set_sysctl net.ipv4.tcp_pacing_ca_ratio 120
set_sysctl net.ipv4.tcp_notsent_lowat 4294967295
set_sysctl net.ipv4.tcp_fastopen 0x3
set_sysctl net.ipv4.tcp_syncookies 1
exit 0
