//! Everything synq prints goes through here. Standard output through [`print()`], which takes
//! a reader that went away (`synq sysctl | head -1`) as success, never as a panic; standard
//! error through [`warn`] and [`error`], which never fail.

use crate::error::{Error, Result};
use std::io::{self, Write};

/// Write a command's output to stdout, buffered. A closed pipe (EPIPE) ends the output
/// quietly and counts as success, as it does for `cat` and `ls`; any other write error is a
/// failed run.
pub(crate) fn print(f: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> Result {
    let mut out = io::BufWriter::new(io::stdout().lock());
    match f(&mut out).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::run(format!("stdout: {e}"))),
    }
}

/// One JSON value on one line of stdout.
pub(crate) fn json(v: &serde_json::Value) -> Result {
    print(|w| writeln!(w, "{v}"))
}

/// Counters as one JSON object, name to value, in the order given.
pub(crate) fn counters_json<'a>(c: impl IntoIterator<Item = (&'a str, u64)>) -> serde_json::Value {
    c.into_iter()
        .map(|(k, v)| (k.to_string(), v.into()))
        .collect::<serde_json::Map<String, serde_json::Value>>()
        .into()
}

/// A `#title` line, then `name value` for each non-zero counter, as nstat prints them.
pub(crate) fn nonzero_counters<'a>(
    w: &mut dyn Write,
    title: &str,
    c: impl IntoIterator<Item = (&'a str, u64)>,
) -> io::Result<()> {
    writeln!(w, "#{title}")?;
    for (k, v) in c {
        if v != 0 {
            writeln!(w, "{k:<32} {v}")?;
        }
    }
    Ok(())
}

/// `synq: warning: MSG` on stderr.
pub(crate) fn warn(msg: &str) {
    stderr(&format!("synq: warning: {msg}\n"));
}

/// `synq: error: MSG` on stderr.
pub(crate) fn error(msg: &str) {
    stderr(&format!("synq: error: {msg}\n"));
}

/// Text on stderr; a stderr nobody reads is no reason to fail (or to panic, as `eprintln!`
/// would).
pub(crate) fn stderr(text: &str) {
    let _ = io::stderr().lock().write_all(text.as_bytes());
}
