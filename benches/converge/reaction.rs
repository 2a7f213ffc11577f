//! How fast Berth reacts to a killed container and to a spec change, against Docker's
//! own restart and replace of a twin container (section 3).

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use bollard::query_parameters::KillContainerOptionsBuilder;
use bollard::Docker;

use crate::raw::{raw_create_start, raw_network, raw_remove_network, raw_stop_remove};
use crate::report::{fmt3, Summary, TARGET_REACTION};
use crate::support::{docker_cli, err, nanos, stats, Cluster, DockerEvent, Events, Res};
use crate::workload::{run_id, stack_json, svc, PORTS_REACT, PORT_REACT_RAW};

pub(crate) struct Reaction {
    kill_berth: Vec<f64>,
    kill_docker: Vec<f64>,
    change_berth_docker: Vec<f64>,
    change_berth_status: Vec<f64>,
    change_docker: Vec<f64>,
}

pub(crate) async fn reaction(c: &Cluster, d: &Docker, n: usize, repeats: usize) -> Res<Reaction> {
    let id = &format!("bench-react-{}", run_id());
    let mut env: BTreeMap<usize, u32> = BTreeMap::new();
    let rev = c
        .etcd
        .put(
            &format!("stacks/{id}"),
            stack_json(n, Some(PORTS_REACT), &env),
        )
        .await?;
    c.etcd
        .wait_running(id, rev, Duration::from_secs(300))
        .await?;
    // Docker's own times, on a twin container outside Berth, in the same run.
    let raw_net = &format!("bench-raw-react-{}", run_id());
    let raw = &format!("{raw_net}.s001");
    raw_network(d, raw_net).await?;
    raw_create_start(d, raw_net, raw, "s001", Some(PORT_REACT_RAW)).await?;
    let mut out = Reaction {
        kill_berth: Vec::new(),
        kill_docker: Vec::new(),
        change_berth_docker: Vec::new(),
        change_berth_status: Vec::new(),
        change_docker: Vec::new(),
    };
    let kill = KillContainerOptionsBuilder::default()
        .signal("SIGKILL")
        .build();
    tokio::time::sleep(Duration::from_secs(2)).await;
    for i in 0..repeats.min(n / 2) {
        // A different service each time: the first restart of a slot is immediate,
        // later ones back off on purpose.
        let name = format!("{id}.{}.1", svc(i + 1));
        let mut events = Events::since(d, SystemTime::now());
        d.kill_container(&name, Some(kill.clone()))
            .await
            .map_err(err)?;
        events
            .until(Duration::from_secs(30), "killed container started", |s| {
                let died = s.iter().position(|e| e.name == name && e.action == "die");
                died.is_some_and(|p| s[p..].iter().any(|e| e.name == name && e.action == "start"))
            })
            .await?;
        let died = events
            .seen
            .iter()
            .find(|e| e.name == name && e.action == "die")
            .map(|e| e.nanos)
            .unwrap_or(0);
        let started = events
            .seen
            .iter()
            .rev()
            .find(|e| e.name == name && e.action == "start")
            .map(|e| e.nanos)
            .unwrap_or(0);
        out.kill_berth.push((started - died) as f64 / 1e9);

        d.kill_container(raw, Some(kill.clone()))
            .await
            .map_err(err)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while docker_cli(&["inspect", "-f", "{{.State.Running}}", raw]) != "false" {
            if Instant::now() > deadline {
                return Err("raw container did not die".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let t = Instant::now();
        d.start_container(raw, None).await.map_err(err)?;
        out.kill_docker.push(t.elapsed().as_secs_f64());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    for i in 0..repeats.min(n / 2) {
        let k = n - i;
        let name = format!("{id}.{}.1", svc(k));
        let old = docker_cli(&["inspect", "-f", "{{.Id}}", &name]);
        env.insert(k, i as u32 + 1);
        let json = stack_json(n, Some(PORTS_REACT), &env);
        let wall = SystemTime::now();
        let mut events = Events::since(d, wall);
        let t0 = Instant::now();
        let rev = c.etcd.put(&format!("stacks/{id}"), json).await?;
        let prefix = format!("{name}.");
        let fresh = |e: &DockerEvent| {
            e.action == "start" && e.id != old && (e.name == name || e.name.starts_with(&prefix))
        };
        events
            .until(Duration::from_secs(60), "replacement started", |s| {
                s.iter().any(fresh)
            })
            .await?;
        let started = events
            .seen
            .iter()
            .find(|e| fresh(e))
            .map(|e| e.nanos)
            .unwrap_or(0);
        out.change_berth_docker
            .push((started - nanos(wall)) as f64 / 1e9);
        let running = c
            .etcd
            .wait_running(id, rev, Duration::from_secs(60))
            .await?;
        out.change_berth_status.push((running - t0).as_secs_f64());

        // Docker's own replace of a container that shares its host port: stop first.
        let t = Instant::now();
        raw_stop_remove(d, raw).await?;
        raw_create_start(d, raw_net, raw, "s001", Some(PORT_REACT_RAW)).await?;
        out.change_docker.push(t.elapsed().as_secs_f64());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    raw_stop_remove(d, raw).await?;
    raw_remove_network(d, raw_net).await;
    c.etcd.delete(&format!("stacks/{id}")).await?;
    c.etcd.wait_gone(id, Duration::from_secs(120)).await?;
    Ok(out)
}

pub(crate) fn report_reaction(r: &Reaction, sum: &mut Summary) {
    println!(
        "\n### Reaction (seconds; median (min-max) over {} repeats)\n",
        r.kill_berth.len()
    );
    let kb = stats(&r.kill_berth);
    let kd = stats(&r.kill_docker);
    let cb = stats(&r.change_berth_docker);
    let cs = stats(&r.change_berth_status);
    let cd = stats(&r.change_docker);
    println!("| event | Berth | Docker's own | Berth beyond Docker |");
    println!("|---|---|---|---|");
    println!(
        "| container killed (SIGKILL) -> running again (Docker `die` to `start`) | {} | {} (start) | {:.3} |",
        fmt3(kb),
        fmt3(kd),
        kb.0 - kd.0
    );
    println!(
        "| spec change (one service's env) -> replacement started (put to Docker `start`) | {} | {} (stop+remove+create+start) | {:.3} |",
        fmt3(cb),
        fmt3(cd),
        cb.0 - cd.0
    );
    println!(
        "| spec change -> status Running at the new revision | {} | {} | {:.3} |",
        fmt3(cs),
        fmt3(cd),
        cs.0 - cd.0
    );
    sum.add(
        "reaction: killed -> running, beyond Docker's start",
        format!("{:.3} s", kb.0 - kd.0),
        &format!("< {TARGET_REACTION} s"),
        kb.0 - kd.0 < TARGET_REACTION,
    );
    sum.add(
        "reaction: spec change -> replaced, beyond Docker's own",
        format!("{:.3} s", cb.0 - cd.0),
        &format!("< {TARGET_REACTION} s"),
        cb.0 - cd.0 < TARGET_REACTION,
    );
}
