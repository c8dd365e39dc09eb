//! `synq sysctl`, and the sysctl and model flags of every command that runs a stack.

use crate::error::{Error, Result};
use crate::output;
use clap::Args;
use std::path::PathBuf;
use synq_core::Config;

/// The sysctl flags.
#[derive(Args, Clone, Debug)]
pub(crate) struct SysctlArgs {
    /// Set a sysctl, Linux name: --sysctl net.ipv4.tcp_syncookies=2 (repeatable).
    #[arg(long = "sysctl", value_name = "NAME=VALUE")]
    sysctl: Vec<String>,
    /// Apply a file in sysctl.conf syntax before the --sysctl flags. Names synq does not
    /// model (vm.*, kernel.*, ...) get a warning and are skipped, as `sysctl -p` skips names
    /// the kernel lacks.
    #[arg(long = "sysctl-file", value_name = "PATH")]
    sysctl_file: Option<PathBuf>,
    /// Refuse a --sysctl-file naming sysctls synq does not model (lines starting with `-`
    /// may still fail quietly, as sysctl.conf(5) says).
    #[arg(long, requires = "sysctl_file")]
    strict: bool,
    /// Start from this host's own values in /proc/sys (names it lacks keep our defaults).
    #[arg(long = "sysctl-from-host")]
    from_host: bool,
}

/// The flags every stack-running command takes: sysctls and the backlog model.
#[derive(Args, Clone, Debug)]
pub(crate) struct StackArgs {
    #[command(flatten)]
    pub(crate) sysctls: SysctlArgs,
    /// Backlog model: linux, linux-4.10, bsd, bsd-exact or freebsd.
    #[arg(long, value_name = "M")]
    pub(crate) model: Option<String>,
}

/// The configuration the flags describe: defaults, then the host's values, the file, the
/// --sysctl flags and the model, in that order.
pub(crate) fn config(args: &StackArgs) -> Result<Config> {
    let mut c = sysctl_config(&args.sysctls)?;
    if let Some(m) = &args.model {
        c.model = m
            .parse()
            .map_err(|why| Error::usage(format!("--model {m:?}: {why}")))?;
    }
    Ok(c)
}

/// The configuration of the sysctl flags alone.
pub(crate) fn sysctl_config(args: &SysctlArgs) -> Result<Config> {
    let mut c = Config::default();
    if args.from_host {
        host_sysctls(&mut c)?;
    }
    if let Some(path) = &args.sysctl_file {
        let text = crate::error::read_input(path)?;
        let unknown = c
            .apply_conf(&text)
            .map_err(|e| Error::usage(format!("{}: {e}", path.display())))?;
        for u in unknown {
            let at = format!("{}: line {}: {}", path.display(), u.line, u.name);
            if args.strict {
                return Err(Error::usage(format!(
                    "{at} is not a sysctl synq models (--strict)"
                )));
            }
            output::warn(&format!("{at} is not a sysctl synq models, ignored"));
        }
    }
    for a in &args.sysctl {
        c.set_assignment(a)
            .map_err(|e| Error::usage(format!("--sysctl {a}: {e}")))?;
    }
    Ok(c)
}

/// The sysctls the flags name, with the values they end up with, in the order of
/// [`Config::names`]: what a scenario applies on top of its own.
pub(crate) fn assignments(args: &SysctlArgs) -> Result<Vec<(String, String)>> {
    let c = sysctl_config(args)?;
    let mut named: Vec<String> = args
        .sysctl
        .iter()
        .filter_map(|a| a.split_once('=').map(|(n, _)| n.trim().replace('/', ".")))
        .collect();
    if let Some(path) = &args.sysctl_file {
        // sysctl_config read it already; a second read only collects the names.
        let text = crate::error::read_input(path).unwrap_or_default();
        for line in text.lines() {
            let line = line.trim().trim_start_matches('-');
            if let Some((n, _)) = line.split_once('=') {
                if !line.starts_with(['#', ';']) {
                    named.push(n.trim().replace('/', "."));
                }
            }
        }
    }
    Ok(Config::names()
        .filter(|n| args.from_host || named.iter().any(|m| m == n))
        .filter_map(|n| c.get(n).ok().map(|v| (n.to_string(), v)))
        .collect())
}

/// Import every sysctl we know from /proc/sys (Linux writes tabs between fields).
fn host_sysctls(c: &mut Config) -> Result {
    // Knobs that bound each other (ip_unprivileged_port_start and ip_local_port_range) can
    // refuse a legal host pair while the other still holds our default: those get a second
    // try once the rest is in.
    let mut again = Vec::new();
    for name in Config::names() {
        let path = format!("/proc/sys/{}", name.replace('.', "/"));
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let value = text.trim();
        if name == "net.ipv4.tcp_congestion_control"
            && value.parse::<synq_core::congestion::Algorithm>().is_err()
        {
            // A module the host loaded (bbr, ...) that synq does not have: keep the default.
            output::warn(&format!(
                "{path}: {value} is not a congestion control synq has (cubic, reno); keeping {}",
                c.tcp_congestion_control.name()
            ));
            continue;
        }
        if c.set(name, value).is_err() {
            again.push((name, path, value.to_string()));
        }
    }
    for (name, path, value) in again {
        c.set(name, &value)
            .map_err(|e| Error::usage(format!("{path}: {e}")))?;
    }
    Ok(())
}

/// `synq sysctl`'s own flags.
#[derive(Args, Debug)]
pub(crate) struct SysctlCmdArgs {
    #[command(flatten)]
    common: StackArgs,
    /// One JSON object, name to value (integers as numbers, the rest as /proc/sys shows
    /// them), instead of `name = value` lines.
    #[arg(long)]
    json: bool,
    /// Only these names (default: all).
    names: Vec<String>,
}

/// `synq sysctl`: print sysctls after the flags are applied.
pub(crate) fn run(a: &SysctlCmdArgs) -> Result {
    let c = config(&a.common)?;
    let names: Vec<&str> = if a.names.is_empty() {
        Config::names().collect()
    } else {
        a.names.iter().map(String::as_str).collect()
    };
    let mut rows = Vec::with_capacity(names.len());
    for n in names {
        let v = c.get(n).map_err(|e| Error::usage(e.to_string()))?;
        rows.push((n, v));
    }
    if a.json {
        let m: serde_json::Map<String, serde_json::Value> = rows
            .into_iter()
            .map(|(n, v)| {
                let v = v.parse::<i64>().map_or_else(|_| v.into(), Into::into);
                (n.to_string(), v)
            })
            .collect();
        return output::json(&m.into());
    }
    output::print(|w| {
        for (n, v) in &rows {
            writeln!(w, "{n} = {v}")?;
        }
        Ok(())
    })
}
