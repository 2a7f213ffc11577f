//! The rollout tables: both systems side by side, where their time goes, and the
//! targets.

use std::collections::BTreeMap;

use crate::measure::{Kind, Measured, System};
use crate::support::stats;
use crate::support::summary::{fmt3, Summary};
use crate::workload::{Rules, PARALLELISM, REPLICAS};

/// Berth / Swarm at most this, on both updates.
const TARGET_RATIO: f64 = 1.0;

/// Every measurement of the run, by system and kind of update, in round order.
#[derive(Default)]
pub(crate) struct Results(pub(crate) BTreeMap<(System, Kind), Vec<Measured>>);

impl Results {
    fn of(&self, s: System, k: Kind) -> &[Measured] {
        self.0.get(&(s, k)).map_or(&[], Vec::as_slice)
    }

    fn col(&self, s: System, k: Kind, f: impl Fn(&Measured) -> f64) -> (f64, f64, f64) {
        stats(&self.of(s, k).iter().map(f).collect::<Vec<_>>())
    }

    /// Every value `f` gives across the runs (per-slot figures pooled).
    fn pooled(&self, s: System, k: Kind, f: impl Fn(&Measured) -> &[f64]) -> (f64, f64, f64) {
        stats(
            &self
                .of(s, k)
                .iter()
                .flat_map(|m| f(m).iter().copied())
                .collect::<Vec<_>>(),
        )
    }

    fn most_unavailable(&self, s: System, k: Kind) -> usize {
        self.of(s, k)
            .iter()
            .map(|m| m.followed.max_unavailable)
            .max()
            .unwrap_or(0)
    }

    /// Berth / Swarm within each round, as the rounds interleave the two.
    fn ratios(&self, k: Kind) -> (f64, f64, f64) {
        let b = self.of(System::Berth, k);
        let s = self.of(System::Swarm, k);
        stats(
            &b.iter()
                .zip(s)
                .map(|(b, s)| b.followed.secs / s.followed.secs)
                .collect::<Vec<_>>(),
        )
    }
}

/// One line per measurement, as it is taken.
pub(crate) fn report_one(round: usize, s: System, k: Kind, m: &Measured) {
    let back = match k {
        Kind::Good => String::new(),
        Kind::Bad => format!("; said it rolls back at {:.2} s", m.rollback_secs),
    };
    println!(
        "round {round}: {} {} update: {:.2} s (every slot in `docker ps` at {:.2} s, the system said done at {:.2} s{back}), at most {} unavailable ({} samples); its own record {:.2} s; the write {:.3} s",
        s.name(),
        match k {
            Kind::Good => "good",
            Kind::Bad => "bad",
        },
        m.followed.secs,
        m.followed.docker_secs,
        m.followed.said_secs,
        m.followed.max_unavailable,
        m.followed.samples,
        m.own_secs,
        m.write_secs
    );
}

pub(crate) fn report(r: &Results, rules: Rules, rounds: usize) {
    use Kind::{Bad, Good};
    use System::{Berth, Swarm};
    println!(
        "\n### Rollout: {REPLICAS} replicas, parallelism {PARALLELISM}, monitor {} s, start-first (seconds; median (min-max) over {rounds} rounds)\n",
        rules.monitor_secs
    );
    println!("| update | Berth | Swarm | Berth / Swarm (per round) | most unavailable at once: Berth / Swarm |");
    println!("|---|---|---|---|---|");
    for (k, what) in [
        (
            Good,
            "good (an env change) -> every replica on it, healthy, rollout done",
        ),
        (
            Bad,
            "bad (exits at once) -> every replica back on the old version, rolled back",
        ),
    ] {
        println!(
            "| {what} | {} | {} | {} | {} / {} |",
            fmt3(r.col(Berth, k, |m| m.followed.secs)),
            fmt3(r.col(Swarm, k, |m| m.followed.secs)),
            fmt3(r.ratios(k)),
            r.most_unavailable(Berth, k),
            r.most_unavailable(Swarm, k),
        );
    }

    println!("\n### Where the time goes (seconds; median (min-max))\n");
    println!("| | Berth good | Swarm good | Berth bad | Swarm bad |");
    println!("|---|---|---|---|---|");
    let row = |what: &str, f: &dyn Fn(System, Kind) -> String| {
        println!(
            "| {what} | {} | {} | {} | {} |",
            f(Berth, Good),
            f(Swarm, Good),
            f(Berth, Bad),
            f(Swarm, Bad)
        );
    };
    row(
        "the write (an etcd put; `docker service update --detach`, a process)",
        &|s, k| format!("{:.3}", r.col(s, k, |m| m.write_secs).0),
    );
    row(
        "the write -> every slot on the version it ends on, in `docker ps` (whatever the system says)",
        &|s, k| fmt3(r.col(s, k, |m| m.followed.docker_secs)),
    );
    row(
        "the write -> the system says its rollout is over (whatever `docker ps` shows)",
        &|s, k| fmt3(r.col(s, k, |m| m.followed.said_secs)),
    );
    row(
        "the write -> the system says it rolls back (seen by the same sampling)",
        &|s, k| match k {
            Good => "-".to_owned(),
            Bad => fmt3(r.col(s, k, |m| m.rollback_secs)),
        },
    );
    row(
        "start to end of the rollout, by the system's own record",
        &|s, k| fmt3(r.col(s, k, |m| m.own_secs)),
    );
    row(
        "a replaced slot: handed its container (Berth) or its task created (Swarm) -> running and healthy",
        &|s, k| match k {
            Good => fmt3(r.pooled(s, k, |m| &m.slot_ready)),
            Bad => "-".to_owned(),
        },
    );
    row(
        "a batch's last slot ready -> the next batch handed its containers",
        &|s, k| {
            match (s, k) {
            (Berth, Good) => fmt3(r.pooled(s, k, |m| &m.batch_gap)),
            (Swarm, Good) => "no batches: each of the `parallelism` workers takes the next slot once its own is running".to_owned(),
            _ => "-".to_owned(),
        }
        },
    );
    row("samples of `docker ps` per update (median)", &|s, k| {
        format!("{:.0}", r.col(s, k, |m| m.followed.samples as f64).0)
    });

    let mut sum = Summary::default();
    for (k, what) in [
        (Good, "good update"),
        (Bad, "bad update, back on the old version"),
    ] {
        let ratio = r.ratios(k).0;
        sum.add(
            &format!("{what}: Berth / Swarm (median of the rounds' ratios)"),
            format!("{ratio:.2}x"),
            &format!("<= {TARGET_RATIO:.1}x"),
            ratio <= TARGET_RATIO,
        );
    }
    let most = r
        .most_unavailable(Berth, Good)
        .max(r.most_unavailable(Berth, Bad));
    sum.add(
        "Berth: most replicas unavailable at once, any update",
        format!(
            "{most} (Swarm: {})",
            r.most_unavailable(Swarm, Good)
                .max(r.most_unavailable(Swarm, Bad))
        ),
        &format!("<= {PARALLELISM} (parallelism)"),
        most <= PARALLELISM,
    );
    sum.print();
}
