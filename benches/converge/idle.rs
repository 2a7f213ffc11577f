//! What an idle agent and controller cost with 200 containers: CPU, memory, etcd writes
//! and Docker calls, and what one look at the containers costs (section 5).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bollard::Docker;
use futures::StreamExt;

use crate::load;
use crate::report::{Summary, TARGET_IDLE_CPU, TARGET_IDLE_RSS_MB};
use crate::support::{err, stats, Cluster, Metrics, Res, Usage, Writes, HOST_ID};
use crate::workload::{run_id, stack_json};

struct Side {
    cpu_secs: f64,
    hwm_mb: f64,
    rss_mb: f64,
    etcd_writes: f64,
    docker_calls: BTreeMap<String, f64>,
}

pub(crate) struct Idle {
    containers: usize,
    converge_secs: f64,
    teardown_secs: f64,
    adopted_without_actions: bool,
    secs: f64,
    agent: Side,
    controller: Side,
    etcd_revisions: i64,
    writes: Writes,
    /// Mean seconds of the agent's passes in the idle window, and how many there were.
    agent_pass: (f64, f64),
    listing: Listing,
}

/// What it costs to look at the managed containers the way the agent did before it
/// remembered its inspects (one list, then an inspect of each, 8 at a time) against the
/// list alone (an idle pass now).
struct Listing {
    containers: usize,
    list_and_inspect: f64,
    list_only: f64,
}

async fn listing_cost(d: &Docker) -> Res<Listing> {
    use bollard::query_parameters::ListContainersOptionsBuilder;
    let filters: HashMap<String, Vec<String>> =
        HashMap::from([("label".to_owned(), vec![format!("berth.host={}", HOST_ID)])]);
    let opts = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    let (mut both, mut only, mut containers) = (Vec::new(), Vec::new(), 0);
    for _ in 0..5 {
        let t = Instant::now();
        let list = d.list_containers(Some(opts.clone())).await.map_err(err)?;
        only.push(t.elapsed().as_secs_f64());
        containers = list.len();
        let t = Instant::now();
        let list = d.list_containers(Some(opts.clone())).await.map_err(err)?;
        let inspected: Vec<_> = futures::stream::iter(list.into_iter().filter_map(|c| c.id))
            .map(|id| async move { d.inspect_container(&id, None).await })
            .buffer_unordered(8)
            .collect()
            .await;
        both.push(t.elapsed().as_secs_f64());
        inspected
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
    }
    Ok(Listing {
        containers,
        list_and_inspect: stats(&both).0,
        list_only: stats(&only).0,
    })
}

fn side(u0: Usage, u1: Usage, m0: &Metrics, m1: &Metrics) -> Side {
    Side {
        cpu_secs: u1.cpu_secs - u0.cpu_secs,
        hwm_mb: u1.hwm_kb as f64 / 1024.0,
        rss_mb: u1.rss_kb as f64 / 1024.0,
        etcd_writes: m1.etcd_writes() - m0.etcd_writes(),
        docker_calls: load::delta(
            m1.by("berth_docker_requests_total", "op"),
            m0.by("berth_docker_requests_total", "op"),
        ),
    }
}

pub(crate) async fn idle(
    c: &mut Cluster,
    d: &Docker,
    stacks: usize,
    per_stack: usize,
    secs: u64,
) -> Res<Idle> {
    let ids: Vec<String> = (1..=stacks)
        .map(|s| format!("bench-idle-{s}-{}", run_id()))
        .collect();
    let t0 = Instant::now();
    let mut revs = Vec::new();
    for id in &ids {
        let json = stack_json(per_stack, None, &BTreeMap::new());
        revs.push(c.etcd.put(&format!("stacks/{id}"), json).await?);
    }
    for (id, rev) in ids.iter().zip(&revs) {
        c.etcd
            .wait_running(id, *rev, Duration::from_secs(600))
            .await?;
    }
    let converge_secs = t0.elapsed().as_secs_f64();

    // Fresh processes: their peak memory is that of adopting and watching these
    // containers, not of the convergence runs before.
    c.restart(1).await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let m = c.agent.scrape().await;
        let passes = load::passes(&m, "agent");
        if passes >= 1.0
            && ids
                .iter()
                .all(|id| c.etcd.status(id).is_some_and(|s| s.1 == "Running"))
        {
            break;
        }
        if Instant::now() > deadline {
            return Err("the restarted agent did not settle".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    let acted = c
        .agent
        .scrape()
        .await
        .sum("berth_container_actions_total", |l| {
            l.get("action").map(String::as_str) != Some("adopt")
        });

    let (a0, c0) = (c.agent.usage(), c.controller.usage());
    let (am0, cm0) = (c.agent.scrape().await, c.controller.scrape().await);
    let rev0 = c.etcd.revision().await?;
    let t = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let measured = t.elapsed().as_secs_f64();
    let (a1, c1) = (c.agent.usage(), c.controller.usage());
    let (am1, cm1) = (c.agent.scrape().await, c.controller.scrape().await);
    let rev1 = c.etcd.revision().await?;
    let writes = c.etcd.replay(rev0, rev1).await?;
    let passes = |m: &Metrics| {
        m.histogram("berth_reconcile_duration_seconds", "component")
            .remove("agent")
            .unwrap_or_default()
    };
    let (p0, p1) = (passes(&am0), passes(&am1));
    let listing = listing_cost(d).await?;

    let t0 = Instant::now();
    for id in &ids {
        c.etcd.delete(&format!("stacks/{id}")).await?;
    }
    for id in &ids {
        c.etcd.wait_gone(id, Duration::from_secs(600)).await?;
    }
    Ok(Idle {
        containers: stacks * per_stack,
        converge_secs,
        teardown_secs: t0.elapsed().as_secs_f64(),
        adopted_without_actions: acted == 0.0,
        secs: measured,
        agent: side(a0, a1, &am0, &am1),
        controller: side(c0, c1, &cm0, &cm1),
        etcd_revisions: rev1 - rev0,
        writes,
        agent_pass: ((p1.0 - p0.0) / (p1.1 - p0.1), p1.1 - p0.1),
        listing,
    })
}

pub(crate) fn report_idle(i: &Idle, sum: &mut Summary) {
    println!(
        "\n### Idle cost: {} containers (4 stacks), {:.0} s idle\n",
        i.containers, i.secs
    );
    println!(
        "Converging the {} containers took {:.1} s and removing them {:.1} s. The agent and controller were restarted before measuring (their peak memory is that of adopting and watching these containers); the restarted agent {}\n",
        i.containers,
        i.converge_secs,
        i.teardown_secs,
        if i.adopted_without_actions {
            "adopted every container without touching it."
        } else {
            "**acted on containers while adopting**."
        }
    );
    let min = i.secs / 60.0;
    println!("| process | CPU s | % of a core | peak RSS (VmHWM) MB | RSS now MB | etcd writes/min | Docker calls/min |");
    println!("|---|---|---|---|---|---|---|");
    for (name, s) in [("agent", &i.agent), ("controller", &i.controller)] {
        let calls: Vec<String> = s
            .docker_calls
            .iter()
            .map(|(op, c)| format!("{op} {:.0}", c / min))
            .collect();
        println!(
            "| {name} | {:.2} | {:.2} | {:.1} | {:.1} | {:.1} | {:.0}{} |",
            s.cpu_secs,
            100.0 * s.cpu_secs / i.secs,
            s.hwm_mb,
            s.rss_mb,
            s.etcd_writes / min,
            s.docker_calls.values().fold(0.0, |a, b| a + b) / min,
            if calls.is_empty() {
                String::new()
            } else {
                format!(" ({})", calls.join(", "))
            }
        );
    }
    println!(
        "\nThe agent ran {:.0} passes in the window (its resync), {:.0} ms each on average. Looking at its {} containers by a list and an inspect of each (8 at a time, what every pass did before the agent remembered its inspects) takes {:.0} ms; the list alone, which is what an idle pass now makes, {:.0} ms (medians of 5).",
        i.agent_pass.1,
        1000.0 * i.agent_pass.0,
        i.listing.containers,
        1000.0 * i.listing.list_and_inspect,
        1000.0 * i.listing.list_only,
    );
    let kinds: Vec<String> = i
        .writes
        .0
        .iter()
        .map(|(k, (n, _))| format!("{k} {n}"))
        .collect();
    println!(
        "\netcd's revision advanced by {} during the idle window (every writer; lease keep-alives do not advance it){}.",
        i.etcd_revisions,
        if kinds.is_empty() {
            String::new()
        } else {
            format!(": {}", kinds.join(", "))
        }
    );
    let cpu = 100.0 * i.agent.cpu_secs / i.secs;
    sum.add(
        &format!("idle agent ({} containers): CPU", i.containers),
        format!("{cpu:.2} % of a core"),
        &format!("< {TARGET_IDLE_CPU} %"),
        cpu < TARGET_IDLE_CPU,
    );
    sum.add(
        "idle agent: peak RSS",
        format!("{:.1} MB", i.agent.hwm_mb),
        &format!("< {TARGET_IDLE_RSS_MB} MB"),
        i.agent.hwm_mb < TARGET_IDLE_RSS_MB,
    );
    sum.add(
        "idle agent + controller: etcd writes beyond keep-alives",
        format!(
            "{:.0} + {:.0} ({} revisions)",
            i.agent.etcd_writes, i.controller.etcd_writes, i.etcd_revisions
        ),
        "0",
        i.agent.etcd_writes == 0.0 && i.controller.etcd_writes == 0.0 && i.etcd_revisions == 0,
    );
}
