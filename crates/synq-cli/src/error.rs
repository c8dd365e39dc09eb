//! The one error type of the command line: bad input (exit status 2) or a run that
//! failed (exit status 1), as spec/cli.md sets out.

use std::process::ExitCode;
use synq_sim::SimError;

/// Why a command failed. The message is one line, printed after `synq: error: `.
#[derive(Debug)]
pub(crate) enum Error {
    /// Bad input or missing privileges: exit status 2.
    Usage(String),
    /// The run started and failed (a transfer not intact, a server gone): exit status 1.
    Run(String),
}

/// A command's result.
pub(crate) type Result<T = (), E = Error> = std::result::Result<T, E>;

impl Error {
    /// Bad input.
    pub(crate) fn usage(msg: impl Into<String>) -> Self {
        Self::Usage(msg.into())
    }

    /// A failed run.
    pub(crate) fn run(msg: impl Into<String>) -> Self {
        Self::Run(msg.into())
    }

    /// The line to print (without the `synq: error: ` prefix).
    pub(crate) fn message(&self) -> &str {
        match self {
            Self::Usage(m) | Self::Run(m) => m,
        }
    }

    /// The process exit status.
    pub(crate) fn exit_code(&self) -> ExitCode {
        match self {
            Self::Usage(_) => ExitCode::from(2),
            Self::Run(_) => ExitCode::from(1),
        }
    }
}

/// The simulator fails only on inputs the command line has already checked, or by running
/// out of steps: either way the run failed.
impl From<SimError> for Error {
    fn from(e: SimError) -> Self {
        Self::Run(e.to_string())
    }
}

/// A scenario that does not parse or check is bad input; one the simulator gives up on is
/// a failed run.
impl From<synq_sim::scenario::ScenarioError> for Error {
    fn from(e: synq_sim::scenario::ScenarioError) -> Self {
        match e {
            synq_sim::scenario::ScenarioError::Sim(e) => e.into(),
            other => Self::Usage(other.to_string()),
        }
    }
}

/// The most a text input (a sysctl.conf file, a scenario, a packetdrill script) may hold:
/// far more than any real one, and a bound on what `/dev/zero` or a wrong path can cost.
pub(crate) const MAX_INPUT_BYTES: u64 = 16 << 20;

/// Read a text input whole, refusing one over [`MAX_INPUT_BYTES`]; errors are bad input.
pub(crate) fn read_input(path: &std::path::Path) -> Result<String> {
    use std::io::Read;
    let shown = path.display();
    let f =
        std::fs::File::open(path).map_err(|e| Error::usage(format!("cannot read {shown}: {e}")))?;
    let mut bytes = Vec::new();
    f.take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::usage(format!("cannot read {shown}: {e}")))?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(Error::usage(format!(
            "{shown}: more than {} MiB; not a file this reads",
            MAX_INPUT_BYTES >> 20
        )));
    }
    String::from_utf8(bytes).map_err(|e| Error::usage(format!("{shown}: not UTF-8 text ({e})")))
}
