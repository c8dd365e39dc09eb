//! Helpers the command-line tests share: run the `synq` binary, read its JSON, read back
//! a capture it wrote. (Each test file uses a subset.)
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// Exit status, stdout and stderr of `synq ARGS`.
pub(crate) fn synq(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_synq"))
        .args(args)
        .output()
        .expect("runs");
    text(out)
}

/// A finished process as (status, stdout, stderr).
pub(crate) fn text(out: Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The one JSON object `synq ARGS` prints; it must exit 0.
pub(crate) fn json(args: &[&str]) -> serde_json::Value {
    let (code, out, err) = synq(args);
    assert_eq!(code, 0, "{args:?}: {err}");
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The packets of a raw-IP capture file: (timestamp in µs, bytes).
pub(crate) fn read_pcap(path: &Path) -> Vec<(u128, Vec<u8>)> {
    let f = std::fs::File::open(path).unwrap();
    let mut r = pcap_file::pcap::PcapReader::new(f).unwrap();
    assert_eq!(r.header().datalink, pcap_file::DataLink::RAW);
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        let p = p.unwrap();
        out.push((p.timestamp.as_micros(), p.data.into_owned()));
    }
    out
}
