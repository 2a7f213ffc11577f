//! Swarm's side: a single-node swarm on the local engine for the length of the run (a
//! guard leaves it, however the run ends), and the same service created and updated with
//! `docker service`, followed through Docker and the service's `UpdateStatus`.
//!
//! Swarm's objects are read as plain JSON from the engine's socket rather than through
//! bollard's typed models, which are newer than this engine and strict about enums.

use std::cell::Cell;
use std::collections::HashMap;
use std::process::Command;
use std::time::{Instant, SystemTime};

use bollard::Docker;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::berth::TIMEOUT;
use crate::fleet::Fleet;
use crate::measure::{Kind, Measured};
use crate::support::{err, Res, IMAGE};
use crate::workload::{swarm_create_flags, swarm_update_flags, Rules, Version, COMMAND};

/// Marks what the bench creates in the swarm (services) and the swarm itself (a node
/// label): a swarm that carries it is a leftover of a killed run, anything else is not
/// the bench's to leave.
const MARK: &str = "bench-rollout";
/// What the bench names its services and networks in the swarm.
pub(crate) const NAME_PREFIX: &str = "bench-rollout-swarm-";
const GWBRIDGE: &str = "docker_gwbridge";

/// `docker` with `args`: its stdout, or its stderr as the error.
fn cli(args: &[&str]) -> Res<String> {
    let out = Command::new("docker").args(args).output().map_err(err)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(format!(
            "`docker {}`: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The engine in swarm mode for as long as this lives.
pub(crate) struct Swarm {
    /// `docker swarm init` created `docker_gwbridge`; leaving does not remove it.
    gwbridge_ours: bool,
}

impl Swarm {
    /// Make the local engine a single-node swarm manager, listening on loopback only.
    /// Refuses an engine that is already in a swarm the bench did not create.
    pub(crate) fn init() -> Res<Swarm> {
        let state = cli(&["info", "--format", "{{.Swarm.LocalNodeState}}"])?;
        if state != "inactive" {
            let mark = cli(&[
                "node",
                "inspect",
                "self",
                "--format",
                &format!("{{{{index .Spec.Labels \"{MARK}\"}}}}"),
            ])
            .unwrap_or_default();
            if mark != "1" {
                return Err(format!(
                    "this Docker engine is already in a swarm (node state {state:?}). The \
                     rollout benchmark runs its own single-node swarm and leaves it at the \
                     end; it will not join or leave a swarm it did not create. Run it on an \
                     engine outside any swarm."
                ));
            }
            eprintln!("swarm: leaving the swarm a killed bench run left behind");
            Swarm::remove_services();
            cli(&["swarm", "leave", "--force"])?;
        }
        let gwbridge_ours = cli(&["network", "inspect", GWBRIDGE]).is_err();
        // From here on the guard exists, so a failure below still leaves the swarm.
        let swarm = Swarm { gwbridge_ours };
        cli(&[
            "swarm",
            "init",
            "--advertise-addr",
            "127.0.0.1",
            "--listen-addr",
            "127.0.0.1:2377",
        ])?;
        let node = cli(&["info", "--format", "{{.Swarm.NodeID}}"])?;
        cli(&["node", "update", "--label-add", &format!("{MARK}=1"), &node])?;
        Ok(swarm)
    }

    fn remove_services() {
        let ids =
            cli(&["service", "ls", "-q", "--filter", &format!("label={MARK}")]).unwrap_or_default();
        for id in ids.lines().filter(|l| !l.is_empty()) {
            let _ = cli(&["service", "rm", id]);
        }
        // Let the tasks' containers go before the swarm does.
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        while Instant::now() < deadline
            && !cli(&["ps", "-q", "--filter", &format!("label={MARK}.service")])
                .unwrap_or_default()
                .is_empty()
        {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        Swarm::remove_services();
        match cli(&["swarm", "leave", "--force"]) {
            Ok(_) => eprintln!("swarm: left"),
            Err(e) => eprintln!("swarm: leaving failed, leave it by hand: {e}"),
        }
        if self.gwbridge_ours {
            let _ = cli(&["network", "rm", GWBRIDGE]);
        }
        for net in cli(&["network", "ls", "--format", "{{.Name}}"])
            .unwrap_or_default()
            .lines()
            .filter(|n| n.starts_with(NAME_PREFIX))
        {
            let _ = cli(&["network", "rm", net]);
        }
    }
}

/// GET `path` from the engine's API: the JSON body.
async fn engine(path: &str) -> Res<serde_json::Value> {
    let mut s = tokio::net::UnixStream::connect("/var/run/docker.sock")
        .await
        .map_err(err)?;
    // HTTP/1.0: the engine answers with a Content-Length and closes, no chunks.
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n").as_bytes())
        .await
        .map_err(err)?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.map_err(err)?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("GET {path}: no HTTP response"))?;
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return Err(format!("GET {path}: {}", head.lines().next().unwrap_or("")));
    }
    serde_json::from_str(body).map_err(err)
}

async fn update_status(service: &str) -> Res<serde_json::Value> {
    Ok(engine(&format!("/services/{service}")).await?["UpdateStatus"].clone())
}

fn seconds(rfc3339: &serde_json::Value) -> Option<f64> {
    let t = humantime::parse_rfc3339(rfc3339.as_str()?).ok()?;
    Some(t.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs_f64())
}

fn task_slot(labels: &HashMap<String, String>) -> Option<usize> {
    // `<service>.<slot>.<task id>`
    let name = labels.get("com.docker.swarm.task.name")?;
    name.rsplit('.').nth(1)?.parse().ok()
}

pub(crate) struct SwarmService {
    pub(crate) name: String,
    fleet: Fleet,
}

impl SwarmService {
    /// The service at `v`, on a swarm-scoped bridge network of its own (the driver
    /// Berth's stack network has), until every replica is running and healthy.
    pub(crate) async fn create(
        d: &Docker,
        name: &str,
        v: &Version,
        rules: Rules,
    ) -> Res<SwarmService> {
        cli(&[
            "network", "create", "--driver", "bridge", "--scope", "swarm", name,
        ])?;
        let mut args: Vec<String> = [
            "service",
            "create",
            "--detach",
            "--no-resolve-image",
            "--name",
            name,
            "--label",
            MARK,
            "--container-label",
            &format!("{MARK}.service"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(swarm_create_flags(name, v, rules));
        args.extend([IMAGE, "sh", "-c", COMMAND].map(String::from));
        cli(&args.iter().map(String::as_str).collect::<Vec<_>>())?;
        let s = SwarmService {
            name: name.to_owned(),
            fleet: Fleet {
                selector: format!("com.docker.swarm.service.name={name}"),
                slot_of: task_slot,
            },
        };
        s.fleet
            .follow(d, &v.name, Instant::now(), TIMEOUT, || async { Ok(true) })
            .await?;
        Ok(s)
    }

    /// `docker service update` to `to`, followed until every slot runs what it should end
    /// on: `to` when it is good, `back_to` when it is bad (rolled back).
    pub(crate) async fn roll(
        &self,
        d: &Docker,
        kind: Kind,
        to: &Version,
        back_to: &Version,
    ) -> Res<Measured> {
        let mut args: Vec<String> = ["service", "update", "--detach", "--no-resolve-image"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(swarm_update_flags(to));
        args.push(self.name.clone());
        let wall = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_err(err)?
            .as_secs_f64();
        let t0 = Instant::now();
        let out = tokio::process::Command::new("docker")
            .args(&args)
            .output()
            .await
            .map_err(err)?;
        let write_secs = t0.elapsed().as_secs_f64();
        if !out.status.success() {
            return Err(format!(
                "docker service update: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let (end_version, end_state) = match kind {
            Kind::Good => (to, "completed"),
            Kind::Bad => (back_to, "rollback_completed"),
        };
        let name = self.name.as_str();
        let rolling_back = Cell::new(f64::NAN);
        let seen = &rolling_back;
        let followed = self
            .fleet
            .follow(d, &end_version.name, t0, TIMEOUT, move || async move {
                let u = update_status(name).await?;
                // An update of this write, not the last one's outcome.
                if !seconds(&u["StartedAt"]).is_some_and(|t| t >= wall) {
                    return Ok(false);
                }
                let back = ["rollback_started", "rollback_completed"];
                if seen.get().is_nan() && back.iter().any(|s| u["State"] == *s) {
                    seen.set(t0.elapsed().as_secs_f64());
                }
                Ok(u["State"] == end_state)
            })
            .await?;
        let u = update_status(name).await?;
        let own_secs = match (seconds(&u["StartedAt"]), seconds(&u["CompletedAt"])) {
            (Some(a), Some(b)) => b - a,
            _ => f64::NAN,
        };
        let slot_ready = match kind {
            Kind::Good => self.tasks_ready(&to.name).await?,
            Kind::Bad => Vec::new(),
        };
        Ok(Measured {
            followed,
            write_secs,
            own_secs,
            rollback_secs: rolling_back.get(),
            slot_ready,
            batch_gap: Vec::new(),
        })
    }

    /// Per running task of `version`: from its creation to its reaching `running` (which,
    /// with a health check, Swarm's executor only reports once the container is healthy).
    async fn tasks_ready(&self, version: &str) -> Res<Vec<f64>> {
        // filters={"service":["<name>"]}, URL-encoded; service names need no escaping.
        let tasks = engine(&format!(
            "/tasks?filters=%7B%22service%22%3A%5B%22{}%22%5D%7D",
            self.name
        ))
        .await?;
        let mut out = Vec::new();
        for t in tasks.as_array().into_iter().flatten() {
            let label = &t["Spec"]["ContainerSpec"]["Labels"][crate::workload::VERSION_LABEL];
            if label != version || t["Status"]["State"] != "running" {
                continue;
            }
            if let (Some(created), Some(running)) =
                (seconds(&t["CreatedAt"]), seconds(&t["Status"]["Timestamp"]))
            {
                out.push(running - created);
            }
        }
        Ok(out)
    }
}
