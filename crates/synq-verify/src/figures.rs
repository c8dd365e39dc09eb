//! What is compared: the figures both sides report for one point.

use synq_sim::scenario::{BacklogReport, LISTEN_COUNTERS};

/// The figures before the counters: `ss -lnt` for the listener, the clients' states, what
/// accept() returned after the report, and the SYN-ACKs sent.
pub const STATE_FIGURES: [&str; 8] = [
    "recv_q",
    "send_q",
    "syn_recv",
    "established",
    "syn_sent",
    "failed",
    "accepted_after",
    "synacks_sent",
];

/// Every compared figure, in order: [`STATE_FIGURES`] then [`LISTEN_COUNTERS`].
pub fn names() -> impl Iterator<Item = &'static str> {
    STATE_FIGURES.iter().chain(LISTEN_COUNTERS.iter()).copied()
}

/// One side's figures for one point, in the order of [`names`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Figures(Vec<(&'static str, u64)>);

impl Figures {
    /// Figures by name; a name `value` does not know is 0.
    pub fn from_fn(value: impl Fn(&str) -> Option<u64>) -> Self {
        Self(names().map(|n| (n, value(n).unwrap_or(0))).collect())
    }

    /// The simulator's report.
    pub fn from_report(r: &BacklogReport) -> Self {
        let (l, c) = (r.listener, r.clients);
        Self::from_fn(|name| {
            Some(match name {
                "recv_q" => l.recv_q.into(),
                "send_q" => l.send_q.into(),
                "syn_recv" => l.syn_recv.into(),
                "established" => c.established.into(),
                "syn_sent" => c.syn_sent.into(),
                "failed" => c.failed.into(),
                "accepted_after" => r.accepted_after.into(),
                "synacks_sent" => r.synacks_sent,
                counter => r.counter(counter),
            })
        })
    }

    /// What `backlog.py` prints: `listener`, `clients`, `accepted_after`, `synacks_sent`
    /// and `counters`. Every figure must be there as a non-negative integer.
    pub fn from_kernel_json(v: &serde_json::Value) -> Result<Self, String> {
        let field = |name: &str| match name {
            "recv_q" | "send_q" | "syn_recv" => &v["listener"][name],
            "established" | "syn_sent" | "failed" => &v["clients"][name],
            "accepted_after" | "synacks_sent" => &v[name],
            counter => &v["counters"][counter],
        };
        if let Some(bad) = names().find(|n| field(n).as_u64().is_none()) {
            return Err(format!("kernel output lacks {bad}: {v}"));
        }
        Ok(Self::from_fn(|n| field(n).as_u64()))
    }

    /// The figure named `name` (0 for an unknown name).
    pub fn get(&self, name: &str) -> u64 {
        self.0
            .iter()
            .find(|(k, _)| *k == name)
            .map_or(0, |&(_, v)| v)
    }

    /// (name, value) in the order of [`names`].
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.0.iter().copied()
    }

    /// One JSON object, name to value.
    pub fn to_json(&self) -> serde_json::Value {
        self.iter()
            .map(|(k, v)| (k.to_string(), v.into()))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }
}

/// A figure on which the two sides disagree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Difference {
    /// Which figure.
    pub name: &'static str,
    /// The kernel's value.
    pub kernel: u64,
    /// The simulator's.
    pub synq: u64,
}

/// Every figure on which `kernel` and `synq` differ, in order.
pub fn differences(kernel: &Figures, synq: &Figures) -> Vec<Difference> {
    kernel
        .iter()
        .zip(synq.iter())
        .filter(|(k, s)| k.1 != s.1)
        .map(|(k, s)| Difference {
            name: k.0,
            kernel: k.1,
            synq: s.1,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_json_round_trips_and_missing_figures_are_errors() {
        let v = serde_json::json!({
            "listener": {"recv_q": 3, "send_q": 2, "syn_recv": 0},
            "clients": {"established": 3, "syn_sent": 5, "failed": 0},
            "accepted_after": 0,
            "synacks_sent": 3,
            "counters": LISTEN_COUNTERS.iter().map(|&c| (c.to_string(), 1.into()))
                .collect::<serde_json::Map<_, _>>(),
        });
        let f = Figures::from_kernel_json(&v).unwrap();
        assert_eq!(f.get("recv_q"), 3);
        assert_eq!(f.get("TcpExtListenDrops"), 1);
        assert_eq!(f.iter().count(), 8 + LISTEN_COUNTERS.len());
        let mut other = v.clone();
        other["listener"]["recv_q"] = 4.into();
        let d = differences(&f, &Figures::from_kernel_json(&other).unwrap());
        assert_eq!(
            d,
            [Difference {
                name: "recv_q",
                kernel: 3,
                synq: 4
            }]
        );
        let mut bad = v;
        bad["counters"]
            .as_object_mut()
            .unwrap()
            .remove("TcpExtListenDrops");
        let e = Figures::from_kernel_json(&bad).unwrap_err();
        assert!(e.contains("TcpExtListenDrops"), "{e}");
    }
}
