//! synq-verify: synq's backlog experiments run on the host's Linux kernel and in the
//! simulator, side by side (`synq verify kernel`).
//!
//! A [`Point`] is one experiment of `synq sim overflow` (kernel clients connect 1 ms apart
//! to a listener that does not accept) or `synq sim synflood` (spoofed SYNs nobody
//! completes), with its listen() backlog, sysctls and report time. The kernel side is a
//! python3 script ([`kernel::BACKLOG_PY`], embedded) that builds anonymous network
//! namespaces, a veth pair or a TUN device, runs the experiment in real time and reads the
//! listener's queues, the clients' states, the SYN-ACKs it captured and the namespace's
//! counters; it needs root. The simulator side runs the same point with model `linux`. The
//! [`Figures`] compared are the listener's Recv-Q, Send-Q and SYN-RECV rows, the clients'
//! states, connections accept() returned after the report, SYN-ACKs sent and the listen
//! counters ([`synq_sim::scenario::LISTEN_COUNTERS`]).
//!
//! Real time is not virtual time: the kernel fires a timer up to a step of its timer wheel
//! late, the simulator on the instant. So every random point's report time stays clear of
//! the instants at which the kernel may act, and events whose order matters stay apart
//! ([`grid::fits_real_time`]); a kernel run that fell behind its own schedule is repeated.
//!
//! ```no_run
//! use synq_verify::{verify, Grid};
//!
//! let points = Grid::Quick.points(1);
//! let verdicts = verify(&points, 1, &mut |done, total| eprintln!("{done}/{total}"))?;
//! for v in &verdicts {
//!     println!("{}: {}", v.point, if v.same() { "same" } else { "DIFFERENT" });
//!     for d in v.differences() {
//!         println!("    {} kernel {} synq {}", d.name, d.kernel, d.synq);
//!     }
//! }
//! # Ok::<(), synq_verify::Error>(())
//! ```

pub mod figures;
pub mod grid;
pub mod kernel;
pub mod sim;

pub use figures::{Difference, Figures};
pub use grid::{full, quick, random, Grid, Point, Scenario};

/// Why a verification could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kernel side cannot run here (not root, no /dev/net/tun, a tool missing).
    #[error("{0}")]
    Unavailable(String),
    /// Preparing the run failed (the temporary directory for the scripts).
    #[error("{0}")]
    Setup(String),
}

/// One point's outcome on both sides.
#[derive(Clone, Debug)]
pub struct Verdict {
    /// The experiment.
    pub point: Point,
    /// The kernel's figures, or why its run failed.
    pub kernel: Result<Figures, String>,
    /// The simulator's, or why it failed.
    pub synq: Result<Figures, String>,
}

impl Verdict {
    /// Both sides ran and agree on every figure.
    pub fn same(&self) -> bool {
        self.failure().is_none() && self.differences().is_empty()
    }

    /// The figures that differ (none when a side failed).
    pub fn differences(&self) -> Vec<Difference> {
        match (&self.kernel, &self.synq) {
            (Ok(k), Ok(s)) => figures::differences(k, s),
            _ => Vec::new(),
        }
    }

    /// Why a side failed, if one did: `kernel: ...` or `synq: ...`.
    pub fn failure(&self) -> Option<String> {
        match (&self.kernel, &self.synq) {
            (Err(e), _) => Some(format!("kernel: {e}")),
            (_, Err(e)) => Some(format!("synq: {e}")),
            _ => None,
        }
    }
}

/// Run every point in the simulator (seed `seed`), then on the kernel (see
/// [`kernel::Kernel::run`]); `progress(done, total)` hears of each finished kernel run.
pub fn verify(
    points: &[Point],
    seed: u64,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<Verdict>, Error> {
    let k = kernel::Kernel::new()?;
    // The simulator first: its CPU time would only add to the kernel side's jitter.
    let synq: Vec<_> = points.iter().map(|p| sim::run(p, seed)).collect();
    let total = points.len();
    let kernel = k.run(points, &mut |done| progress(done, total));
    Ok(points
        .iter()
        .zip(kernel)
        .zip(synq)
        .map(|((p, kernel), synq)| Verdict {
            point: p.clone(),
            kernel,
            synq,
        })
        .collect())
}
