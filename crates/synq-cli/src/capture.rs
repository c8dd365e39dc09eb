//! `--pcap FILE`: capture files Wireshark and tshark open (raw IP). `synq serve` writes the
//! TUN device's packets with wall-clock times; the simulator writes the server's packets
//! with virtual times from zero.

use crate::error::{Error, Result};
use crate::output;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use synq_sim::{Capture, Tap};

/// Packets kept in memory at most (about 100 bytes each); later ones are counted and left
/// out, with a warning.
const LIMIT: usize = 2_000_000;

/// A capture file whose header is written.
pub(crate) type Writer = PcapWriter<BufWriter<File>>;

/// Create `path` and write the header: a path that cannot be written is bad input (exit 2),
/// found before the run.
pub(crate) fn writer(path: &Path) -> Result<Writer> {
    let file =
        File::create(path).map_err(|e| Error::usage(format!("--pcap {}: {e}", path.display())))?;
    let header = PcapHeader {
        datalink: pcap_file::DataLink::RAW,
        ..PcapHeader::default()
    };
    PcapWriter::with_header(BufWriter::new(file), header)
        .map_err(|e| Error::run(format!("--pcap {}: {e}", path.display())))
}

/// A simulator capture on its way to a file.
pub(crate) struct PcapOut {
    path: PathBuf,
    writer: Writer,
    capture: Capture,
}

impl PcapOut {
    /// The tap to give the scenario.
    pub(crate) fn tap(&self) -> Tap {
        self.capture.tap()
    }

    /// Write what the run captured.
    pub(crate) fn finish(mut self) -> Result {
        let path = self.path.display().to_string();
        let fail = |e: &dyn std::fmt::Display| Error::run(format!("--pcap {path}: {e}"));
        for (t, p) in self.capture.take() {
            let ts = std::time::Duration::from_micros(t.total_micros());
            self.writer
                .write_packet(&PcapPacket::new(ts, p.len() as u32, &p))
                .map_err(|e| fail(&e))?;
        }
        self.writer.into_writer().flush().map_err(|e| fail(&e))?;
        let missed = self.capture.missed();
        if missed > 0 {
            output::warn(&format!(
                "--pcap {path}: kept the first {LIMIT} packets, left out {missed}"
            ));
        }
        Ok(())
    }
}

/// Start a capture of `addr` if `--pcap` was given.
pub(crate) fn start(path: Option<&Path>, addr: IpAddr) -> Result<Option<PcapOut>> {
    path.map(|p| {
        Ok(PcapOut {
            path: p.to_path_buf(),
            writer: writer(p)?,
            capture: Capture::new(addr, LIMIT),
        })
    })
    .transpose()
}

/// Run a scenario with a capture of `addr`'s packets if `--pcap` was given, and write it.
pub(crate) fn run_captured<R, E: Into<Error>>(
    path: Option<&Path>,
    addr: IpAddr,
    run: impl FnOnce(Option<Tap>) -> std::result::Result<R, E>,
) -> Result<R> {
    let pcap = start(path, addr)?;
    let r = run(pcap.as_ref().map(PcapOut::tap)).map_err(Into::into)?;
    if let Some(c) = pcap {
        c.finish()?;
    }
    Ok(r)
}
