//! `--pcap FILE` for the simulator: the server's packets as a capture file (raw IP,
//! timestamps in virtual time from zero) that Wireshark and tshark open.

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

/// A capture on its way to a file.
pub(crate) struct PcapOut {
    path: PathBuf,
    file: File,
    capture: Capture,
}

impl PcapOut {
    /// Create `path` now, so a path that cannot be written fails before the run (exit 2).
    pub(crate) fn create(path: &Path, addr: IpAddr) -> Result<Self> {
        let file = File::create(path)
            .map_err(|e| Error::usage(format!("--pcap {}: {e}", path.display())))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            capture: Capture::new(addr, LIMIT),
        })
    }

    /// The tap to give the scenario.
    pub(crate) fn tap(&self) -> Tap {
        self.capture.tap()
    }

    /// Write what the run captured.
    pub(crate) fn finish(self) -> Result {
        let fail =
            |e: &dyn std::fmt::Display| Error::run(format!("--pcap {}: {e}", self.path.display()));
        let header = PcapHeader {
            datalink: pcap_file::DataLink::RAW,
            ..PcapHeader::default()
        };
        let mut w =
            PcapWriter::with_header(BufWriter::new(&self.file), header).map_err(|e| fail(&e))?;
        for (t, p) in self.capture.take() {
            let ts = std::time::Duration::from_micros(t.total_micros());
            w.write_packet(&PcapPacket::new(ts, p.len() as u32, &p))
                .map_err(|e| fail(&e))?;
        }
        w.into_writer().flush().map_err(|e| fail(&e))?;
        let missed = self.capture.missed();
        if missed > 0 {
            output::warn(&format!(
                "--pcap {}: kept the first {LIMIT} packets, left out {missed}",
                self.path.display()
            ));
        }
        Ok(())
    }
}

/// Start a capture of `addr` if `--pcap` was given.
pub(crate) fn start(path: Option<&Path>, addr: IpAddr) -> Result<Option<PcapOut>> {
    path.map(|p| PcapOut::create(p, addr)).transpose()
}
