//! # synq-lossy: an impaired link for the kernel, and loss recovery compared with synq's
//!
//! [`LossyLink`] joins two fresh network namespaces through a TUN device in each; a thread of
//! this process, which stays in the root namespace and owns both descriptors, carries every
//! IPv4 packet across and, per packet and per direction, drops it, holds it back so later
//! ones overtake it, or delivers it twice, from a seeded generator ([`Impairment`],
//! [`Roller`]). This kernel has no `sch_netem`; this is the substitute. Namespace A holds
//! [`A_ADDR`], B holds [`B_ADDR`].
//!
//! The benchmark `cargo bench -p synq-lossy --bench kernel_lossy` (root) sends the same
//! bytes through the kernel over such a link ([`kernel::transfer`]: python3 peers, CUBIC,
//! SACK, RACK) and through `synq sim transfer` at the RTT the link shows
//! ([`kernel::measure_rtt`], [`synq::transfer`]), and prints times, ratios and counters
//! side by side ([`report`]); `docs/loss-recovery.md` has the figures.
//!
//! ```no_run
//! use std::time::Duration;
//! use synq_lossy::{kernel, Impairment, LossyLink};
//!
//! let imp = Impairment { loss: 0.02, reorder: 0.02, duplicate: 0.01,
//!                        reorder_delay: Duration::from_micros(100), seed: 1 };
//! let link = LossyLink::create("sqdoc", imp, Duration::from_secs(60))?;
//! let run = kernel::transfer(&link, 200_000, 1, Duration::from_secs(30))?;
//! println!("{:?} s, {:?}", run.secs, link.stop()?);
//! # Ok::<(), std::io::Error>(())
//! ```

pub mod forward;
pub mod impair;
pub mod kernel;
pub mod report;
pub mod synq;

pub use forward::{DirStats, LossyLink, Stats, A_ADDR, B_ADDR};
pub use impair::{Fate, Impairment, Roller};
