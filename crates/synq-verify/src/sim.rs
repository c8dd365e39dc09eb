//! The simulator's side: `synq sim overflow` / `synflood` with model `linux`.

use crate::figures::Figures;
use crate::grid::{Point, Scenario, CLIENT_GAP_MS};
use synq_core::{Config, Duration, Model};
use synq_sim::scenario::{overflow, synflood, BacklogParams, OverflowParams, SynfloodParams};

/// Run `p` in the simulator (model `linux`, seed `seed`): its figures, or why it could not
/// run.
pub fn run(p: &Point, seed: u64) -> Result<Figures, String> {
    p.check()?;
    let mut config = Config::default();
    for (k, v) in &p.sysctls {
        config
            .set(k, &v.to_string())
            .map_err(|e| format!("{k}={v}: {e}"))?;
    }
    config.model = Model::Linux;
    let common = |backlog| BacklogParams {
        backlog,
        duration: Duration::from_millis(p.duration_ms.into()),
        config: config.clone(),
        seed,
        ..BacklogParams::default()
    };
    let r = match p.scenario {
        Scenario::Overflow {
            backlog,
            clients,
            accept_after,
        } => overflow(&OverflowParams {
            common: common(backlog),
            clients,
            gap: Duration::from_millis(CLIENT_GAP_MS.into()),
            accept_after,
        }),
        Scenario::Synflood {
            backlog,
            syns,
            rate,
        } => synflood(&SynfloodParams {
            common: common(backlog),
            syns,
            rate,
        }),
    }
    .map_err(|e| format!("simulator: {e}"))?;
    Ok(Figures::from_report(&r))
}
