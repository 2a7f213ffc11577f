//! docker-compose running the same services: `up -d` and `down`, killed when it hangs.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use bollard::Docker;

use crate::support::{docker_cli, err, Events, Res, IMAGE, SERVE};
use crate::workload::{round_id, svc, PORTS_COMPOSE};

pub(crate) fn compose_available() -> bool {
    std::process::Command::new("docker-compose")
        .arg("version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub(crate) fn compose_version() -> String {
    std::process::Command::new("docker-compose")
        .args(["version", "--short"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// The same services as [`stack_json`], as a compose file (JSON is YAML).
pub(crate) fn write_compose(dir: &Path, n: usize) -> Res<std::path::PathBuf> {
    let services: serde_json::Map<String, serde_json::Value> = (1..=n)
        .map(|i| {
            (
                svc(i),
                serde_json::json!({
                    "image": IMAGE,
                    "command": ["sh", "-c", SERVE],
                    "ports": [format!("{}:8080", PORTS_COMPOSE + i as u16)],
                }),
            )
        })
        .collect();
    let path = dir.join(format!("compose-{n}.yml"));
    let doc = serde_json::json!({"version": "2.4", "services": services});
    std::fs::write(&path, doc.to_string()).map_err(err)?;
    Ok(path)
}

/// How long docker-compose may go without Docker doing anything for its project before
/// it counts as hung: docker-compose 1.29 sometimes deadlocks while creating many services
/// at once (see docs/benchmarks.md).
const COMPOSE_STALL: Duration = Duration::from_secs(20);

/// The compose project of `n` services in this round. Unique per round: a compose killed
/// mid-create, or Docker's stale-endpoint refusal, can leave a network Docker refuses to
/// remove until the engine restarts, and the next round must not trip over it.
fn compose_project(n: usize) -> String {
    format!("berthbench{n}x{}", round_id())
}

/// What a killed docker-compose may leave behind: containers it was still creating when
/// `down` listed the project, and so the network.
pub(crate) fn compose_cleanup(n: usize) {
    let label = format!("label=com.docker.compose.project={}", compose_project(n));
    for id in docker_cli(&["ps", "-aq", "--filter", &label]).lines() {
        docker_cli(&["rm", "-f", id]);
    }
    docker_cli(&["network", "rm", &format!("{}_default", compose_project(n))]);
}

/// Run `docker-compose <args>` for the `n`-service project; its time, or `None` when it
/// hung (it is then killed).
pub(crate) async fn compose(d: &Docker, file: &Path, n: usize, args: &[&str]) -> Res<Option<f64>> {
    let project = compose_project(n);
    let log = file.with_extension(format!("{}.log", args[0]));
    let mut events = Events::since(d, SystemTime::now());
    let t0 = Instant::now();
    let mut child = tokio::process::Command::new("docker-compose")
        .arg("-p")
        .arg(&project)
        .arg("-f")
        .arg(file)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).map_err(err)?)
        .kill_on_drop(true)
        .spawn()
        .map_err(err)?;
    let mut progress = (0, Instant::now());
    loop {
        tokio::select! {
            status = child.wait() => {
                let took = t0.elapsed().as_secs_f64();
                if !status.map_err(err)?.success() {
                    let out = std::fs::read_to_string(&log).unwrap_or_default();
                    let label = format!("label=com.docker.compose.project={project}");
                    // Docker's stale-endpoint refusal (docs/benchmarks.md) hits compose's
                    // network too: every container is gone, so the teardown is timed
                    // and the network left (the next round's project has another name).
                    if args[0] == "down"
                        && out.contains("has active endpoints")
                        && docker_cli(&["ps", "-aq", "--filter", &label]).is_empty()
                    {
                        eprintln!("  docker-compose down of {n} services: Docker refused to remove the project network (stale endpoint); containers all removed, time kept");
                        return Ok(Some(took));
                    }
                    return Err(format!("docker-compose {args:?} failed: {out}"));
                }
                return Ok(Some(took));
            }
            _ = tokio::time::sleep(Duration::from_millis(250)) => {
                events.drain();
                let ours = events.seen.iter().filter(|e| e.name.starts_with(&project)).count();
                if ours > progress.0 {
                    progress = (ours, Instant::now());
                }
                if progress.1.elapsed() > COMPOSE_STALL {
                    let _ = child.kill().await;
                    eprintln!(
                        "  docker-compose {args:?} of {n} services hung: no Docker event for {}s after {ours} events; killed",
                        COMPOSE_STALL.as_secs()
                    );
                    return Ok(None);
                }
            }
        }
    }
}
