//! A packetdrill-compatible script runner for synq: each script runs against a fresh synq
//! stack on a virtual clock, its inbound packets injected, its outbound packets compared
//! field by field, its system calls made through script fds over the stack's handles.
//!
//! The language is packetdrill's (see `spec/packetdrill.md` and `docs/conformance.md`):
//! options lines, absolute, relative, any and range times, blocking calls, packet lines with
//! every flag, sequence numbers mapped as packetdrill maps them, TCP options compared byte by
//! byte, system calls with errno names, `%{ assert ... }%` blocks over TCP_INFO, and backtick
//! commands run by a small shell of our own (`sysctl`, `ss`, `nstat`, `sockstat`, `grep`).
//! One extension: `sport>dport` before a packet's flags names its flow, so one script can
//! drive many connections.
//!
//! With [`Runner::kernel`] the same scripts run against the host's Linux kernel instead, in
//! real time, in a namespace of their own ([`kernel`]): a script Linux itself fails is then
//! caught.

mod assert;
pub mod ast;
mod host;
pub mod kernel;
mod lex;
mod parse;
mod pkt;
mod report;
mod run;
mod settings;
mod shell;
mod sim;
mod sock;

pub use parse::parse;
pub use run::Outcome;
pub use settings::{IpVersion, Settings};

use std::fmt;
use synq_core::{Config, Model};

/// A script that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {}", clip(.msg))]
pub struct ParseError {
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub msg: String,
}

/// Why a script failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The script line.
    pub line: usize,
    /// What went wrong.
    pub msg: String,
    /// What the script expected, in its own syntax.
    pub expected: Option<String>,
    /// What happened, in the script's syntax.
    pub actual: Option<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, clip(&self.msg))?;
        if let Some(e) = &self.expected {
            write!(f, "\n    expected: {e}")?;
        }
        if let Some(a) = &self.actual {
            write!(f, "\n    actual:   {a}")?;
        }
        Ok(())
    }
}

/// A message as shown, cut to a few lines' worth: it may quote a script's text, and a
/// script may hold megabytes.
fn clip(msg: &str) -> String {
    const MAX: usize = 500;
    match msg.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}... ({} bytes in all)", &msg[..i], msg.len()),
        None => msg.to_string(),
    }
}

/// How to run scripts: the stack's model and sysctls, and packetdrill options that override
/// what a script's own option lines say.
#[derive(Clone, Debug, Default)]
pub struct Runner {
    /// `--model`.
    pub model: Option<Model>,
    /// `--sysctl NAME=VALUE`, applied before the script's own commands.
    pub sysctls: Vec<(String, String)>,
    /// packetdrill options from the command line.
    pub options: Vec<(String, Option<String>)>,
    /// `-D NAME=VALUE`.
    pub defines: Vec<(String, String)>,
    /// `--kernel`: replay against the host's Linux kernel in real time (a namespace and a
    /// TUN device per script; see [`kernel::unavailable`]) instead of a synq stack.
    pub kernel: bool,
}

/// A script that could not run at all (bad options, a sysctl synq does not know).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SetupError(pub String);

impl Runner {
    /// Parse and run one script's text.
    pub fn run(&self, src: &str) -> Result<Outcome, RunError> {
        self.run_in(src, None)
    }

    /// Parse and run one script's text; its backtick commands run in `dir` (the script's
    /// directory) when given, under `--kernel`.
    pub fn run_in(&self, src: &str, dir: Option<&std::path::Path>) -> Result<Outcome, RunError> {
        let script = parse(src, &self.defines)?;
        Ok(self.run_script_in(&script, dir)?)
    }

    /// Run a parsed script.
    pub fn run_script(&self, script: &ast::Script) -> Result<Outcome, SetupError> {
        self.run_script_in(script, None)
    }

    /// Run a parsed script, its commands in `dir` when given (see [`Runner::run_in`]).
    pub fn run_script_in(
        &self,
        script: &ast::Script,
        dir: Option<&std::path::Path>,
    ) -> Result<Outcome, SetupError> {
        let mut set = Settings::default();
        for (line, k, v) in &script.options {
            set.apply(k, v.as_deref())
                .map_err(|e| SetupError(format!("line {line}: {e}")))?;
        }
        for (k, v) in &self.options {
            set.apply(k, v.as_deref()).map_err(SetupError)?;
        }
        if self.kernel {
            if self.model.is_some() {
                return Err(SetupError(
                    "--model chooses a synq model; it does not apply to --kernel".into(),
                ));
            }
            let host = kernel::KernelHost::new(set.clone(), &self.sysctls, dir)?;
            return Ok(run::Run::new(script, set, Box::new(host)).execute());
        }
        let mut config = Config::default();
        if let Some(m) = self.model {
            config.model = m;
        }
        config.mtu = set.mtu;
        for (k, v) in &self.sysctls {
            shell::set_sysctl(&mut config, k, v)
                .map_err(|e| SetupError(format!("--sysctl {k}={v}: {e}")))?;
        }
        let host = sim::SimHost::new(set.clone(), config);
        Ok(run::Run::new(script, set, Box::new(host)).execute())
    }
}

/// Check a `--sysctl NAME=VALUE` the way a run applies it (Linux and FreeBSD names).
pub fn check_sysctl(name: &str, value: &str) -> Result<(), String> {
    shell::set_sysctl(&mut Config::default(), name, value)
}

/// A script that failed to parse or to set up.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// It does not parse.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// Its options or the runner's are wrong.
    #[error(transparent)]
    Setup(#[from] SetupError),
}
