//! `synq pktdrill`: packetdrill scripts against a synq stack in virtual time, or with
//! `--kernel` against the host's Linux kernel in real time.

use crate::error::{Error, Result};
use crate::output;
use clap::Args;
use serde_json::json;
use synq_pktdrill::{Runner, Settings};

#[derive(Args, Debug)]
#[command(
    disable_help_flag = false,
    after_help = "Options: --model M, --kernel (replay against the host's Linux kernel: needs \
                  root, /dev/net/tun, ip and python3), --sysctl NAME=VALUE (repeatable), \
                  -D NAME=VALUE, --json, -v/--verbose (every packet in and out with its time), \
                  and packetdrill's own --name=value options (--ip_version, --mtu, \
                  --tolerance_usecs, --local_ip, --remote_ip, --bind_port, ...), which override \
                  a script's option lines. Exit 0 if every script passes, 1 if one fails, 2 on \
                  bad input."
)]
pub(crate) struct PktdrillArgs {
    /// Options and scripts, in any order (SCRIPT.pkt...).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        num_args = 1..,
        required = true,
        value_name = "ARGS"
    )]
    args: Vec<String>,
}

struct Parsed {
    runner: Runner,
    json: bool,
    verbose: bool,
    scripts: Vec<String>,
}

fn parse_args(args: &[String]) -> Result<Parsed> {
    let mut runner = Runner::default();
    let mut json = false;
    let mut verbose = false;
    let mut scripts = Vec::new();
    let mut it = args.iter();
    let value = |flag: &str,
                 inline: Option<&str>,
                 it: &mut std::slice::Iter<'_, String>|
     -> Result<String> {
        inline
            .map(str::to_string)
            .or_else(|| it.next().cloned())
            .ok_or_else(|| Error::usage(format!("{flag} needs a value")))
    };
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if a.starts_with('-') => (f, Some(v)),
            _ => (a.as_str(), None),
        };
        match flag {
            "--model" => {
                let v = value(flag, inline, &mut it)?;
                if runner.model.is_some() {
                    return Err(Error::usage(format!(
                        "--model {v}: a model was given already"
                    )));
                }
                runner.model = Some(
                    v.parse()
                        .map_err(|e| Error::usage(format!("--model {v}: {e}")))?,
                );
            }
            "--sysctl" => {
                let v = value(flag, inline, &mut it)?;
                let (k, val) = v
                    .split_once('=')
                    .ok_or_else(|| Error::usage(format!("--sysctl {v}: expected NAME=VALUE")))?;
                runner.sysctls.push((k.to_string(), val.to_string()));
            }
            "-D" | "--define" => {
                let v = value(flag, inline, &mut it)?;
                let (k, val) = v
                    .split_once('=')
                    .ok_or_else(|| Error::usage(format!("-D {v}: expected NAME=VALUE")))?;
                runner.defines.push((k.to_string(), val.to_string()));
            }
            f if f.starts_with("-D") && f.len() > 2 => {
                let v = format!(
                    "{}{}",
                    &f[2..],
                    inline.map(|v| format!("={v}")).unwrap_or_default()
                );
                let (k, val) = v
                    .split_once('=')
                    .ok_or_else(|| Error::usage(format!("-D{v}: expected NAME=VALUE")))?;
                runner.defines.push((k.to_string(), val.to_string()));
            }
            "--json" => json = true,
            "--kernel" if inline.is_none() => runner.kernel = true,
            "-v" | "--verbose" => verbose = true,
            f if f.starts_with("--") => {
                let name = &f[2..];
                // `--mtu 1520` as well as `--mtu=1520`, as getopt takes them: an option
                // that cannot stand alone takes the next argument.
                let mut value = inline.map(str::to_string);
                if value.is_none() && Settings::default().apply(name, None).is_err() {
                    value = it.next().cloned();
                }
                // Checked now, so a typo is a usage error rather than a failure per script.
                Settings::default()
                    .apply(name, value.as_deref())
                    .map_err(Error::usage)?;
                runner.options.push((name.to_string(), value));
            }
            f if f.starts_with('-') && f.len() > 1 => {
                return Err(Error::usage(format!("unknown option {f}")));
            }
            _ => scripts.push(a.clone()),
        }
    }
    // Checked once every option is read: under --kernel the kernel judges them.
    if !runner.kernel {
        for (k, val) in &runner.sysctls {
            synq_pktdrill::check_sysctl(k, val)
                .map_err(|e| Error::usage(format!("--sysctl {k}={val}: {e}")))?;
        }
    }
    if runner.kernel && runner.model.is_some() {
        return Err(Error::usage(
            "--model chooses a synq model; it cannot be combined with --kernel",
        ));
    }
    if scripts.is_empty() {
        return Err(Error::usage(
            "no script given (synq pktdrill [OPTIONS] SCRIPT.pkt...)",
        ));
    }
    Ok(Parsed {
        runner,
        json,
        verbose,
        scripts,
    })
}

pub(crate) fn run(a: &PktdrillArgs) -> Result {
    // Options pass through to this parser, so clap never sees a `--help` after a script.
    if a.args.iter().any(|x| x == "--help" || x == "-h") {
        let mut cmd = <crate::Cli as clap::CommandFactory>::command();
        cmd.build();
        if let Some(sub) = cmd.find_subcommand_mut("pktdrill") {
            let help = sub.render_long_help().to_string();
            return output::print(|w| w.write_all(help.as_bytes()));
        }
    }
    let p = parse_args(&a.args)?;
    if p.runner.kernel {
        if let Some(why) = synq_pktdrill::kernel::unavailable() {
            return Err(Error::usage(format!("--kernel cannot run here: {why}")));
        }
    }
    let mut sources = Vec::new();
    for path in &p.scripts {
        let text = crate::error::read_input(std::path::Path::new(path))?;
        sources.push((path.clone(), text));
    }
    let mut failed = 0;
    let mut results = Vec::new();
    let mut text = String::new();
    for (path, src) in &sources {
        let dir = std::path::Path::new(path).parent();
        let (ok, line, detail) = match p.runner.run_in(src, dir) {
            Ok(o) => {
                if p.verbose {
                    for l in &o.trace {
                        text.push_str(&format!("  {l}\n"));
                    }
                }
                for w in &o.warnings {
                    text.push_str(&format!("WARN {path}: {w}\n"));
                }
                match &o.failure {
                    None => {
                        let clock = if p.runner.kernel { "real" } else { "virtual" };
                        text.push_str(&format!(
                            "PASS {path} ({} events, {:.3} s {clock})\n",
                            o.events, o.virtual_secs
                        ));
                        (
                            true,
                            None,
                            json!({"events": o.events, "virtual_secs": o.virtual_secs}),
                        )
                    }
                    Some(f) => {
                        text.push_str(&format!("FAIL {path}:{f}\n"));
                        for l in o.output.lines() {
                            text.push_str(&format!("    | {l}\n"));
                        }
                        (
                            false,
                            Some(f.line),
                            json!({"message": f.msg, "expected": f.expected, "actual": f.actual}),
                        )
                    }
                }
            }
            Err(e) => {
                text.push_str(&format!("FAIL {path}: {e}\n"));
                // A parse error has its line, as a failed step has.
                let line = match &e {
                    synq_pktdrill::RunError::Parse(p) => Some(p.line),
                    synq_pktdrill::RunError::Setup(_) => None,
                };
                (false, line, json!({"message": e.to_string()}))
            }
        };
        if !ok {
            failed += 1;
        }
        results.push(json!({"script": path, "pass": ok, "line": line, "detail": detail}));
    }
    let total = sources.len();
    if p.json {
        output::json(&json!({"passed": total - failed, "failed": failed, "scripts": results}))?;
    } else {
        text.push_str(&format!("{} passed, {failed} failed\n", total - failed));
        output::print(|w| w.write_all(text.as_bytes()))?;
    }
    if failed > 0 {
        return Err(Error::run(format!("{failed} of {total} scripts failed")));
    }
    Ok(())
}
