//! Docker's types to Berth's and back, pure: the create body a container spec becomes,
//! the actual container an inspect describes, the ports a listing shows. Kept apart from
//! the calls in [`runtime`](super) so each can be read and tested alone.

use std::collections::{BTreeMap, HashMap};

use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerState, ContainerStateStatusEnum,
    ContainerSummary, CreateImageInfo, EndpointSettings, EventMessage, HealthConfig,
    HealthStatusEnum, HostConfig, Mount, MountType, NetworkingConfig,
    PortBinding as DockerPortBinding, PortSummaryTypeEnum, RestartPolicy, RestartPolicyNameEnum,
};

use super::{ContainerEvent, CreateRequest};
use crate::agent::actual::{ActualContainer, RunState};
use crate::agent::labels;
use crate::assignment::MountSpec;
use crate::health::Health;
use crate::slot::SlotId;
use crate::spec::{PullProgress, UsedPort};

pub(super) fn to_event(e: EventMessage) -> ContainerEvent {
    ContainerEvent {
        id: e.actor.and_then(|a| a.id).unwrap_or_default(),
        action: e.action.unwrap_or_default(),
    }
}

/// The host ports `containers` publish, sorted, each once.
pub(super) fn published_ports(
    containers: impl IntoIterator<Item = ContainerSummary>,
) -> Vec<UsedPort> {
    let mut ports: Vec<UsedPort> = containers
        .into_iter()
        .flat_map(|c| c.ports.unwrap_or_default())
        .filter_map(|p| {
            let protocol = match p.typ {
                Some(PortSummaryTypeEnum::UDP) => "udp",
                Some(PortSummaryTypeEnum::SCTP) => "sctp",
                _ => "tcp",
            };
            Some(UsedPort {
                port: p.public_port?,
                protocol: protocol.to_owned(),
            })
        })
        .collect();
    ports.sort();
    ports.dedup();
    ports
}

/// `repo[:tag]` with a registry port not mistaken for a tag; digests pass through whole.
pub(super) fn split_image(image: &str) -> (&str, &str) {
    if image.contains('@') {
        return (image, "");
    }
    match image.rfind(':') {
        Some(i) if !image[i..].contains('/') => (&image[..i], &image[i + 1..]),
        _ => (image, "latest"),
    }
}

/// A pull's layers as Docker's progress stream tells of them, summed into one
/// [`PullProgress`]. A layer counts from the moment Docker gives its size; one that
/// "Already exists" is not fetched and does not count.
#[derive(Debug, Default)]
pub(super) struct Layers {
    /// (bytes done, bytes in all) by layer ID.
    by_id: BTreeMap<String, (u64, u64)>,
}

impl Layers {
    /// Fold in one message; whether the sum changed.
    pub(super) fn update(&mut self, info: &CreateImageInfo) -> bool {
        let (Some(id), Some(status)) = (&info.id, &info.status) else {
            return false;
        };
        let before = self.by_id.get(id).copied();
        let detail = info.progress_detail.as_ref();
        let bytes = |v: Option<i64>| v.and_then(|n| u64::try_from(n).ok());
        match status.as_str() {
            "Downloading" => {
                let total = bytes(detail.and_then(|d| d.total)).unwrap_or(0);
                let done = bytes(detail.and_then(|d| d.current)).unwrap_or(0);
                if total > 0 {
                    self.by_id.insert(id.clone(), (done.min(total), total));
                }
            }
            // Every byte is in; what follows (extracting) is local work.
            "Verifying Checksum" | "Download complete" | "Extracting" | "Pull complete" => {
                if let Some((_, total)) = before {
                    self.by_id.insert(id.clone(), (total, total));
                }
            }
            _ => {}
        }
        self.by_id.get(id).copied() != before
    }

    pub(super) fn progress(&self) -> PullProgress {
        let (done, total) = self.by_id.values().fold((0u64, 0u64), |(d, t), (ld, lt)| {
            (d.saturating_add(*ld), t.saturating_add(*lt))
        });
        PullProgress {
            bytes_done: done,
            bytes_total: total,
        }
    }
}

/// Seconds as Docker's nanoseconds. A float-to-integer `as` saturates: NaN and negative
/// times are 0 (Docker's default), and a huge one the longest Docker can hold.
pub(super) fn secs_to_nanos(s: f64) -> i64 {
    (s.max(0.0) * 1e9) as i64
}

/// CPUs as Docker's nanoCPUs; a count that is no positive number means no limit.
fn nano_cpus(cpus: f64) -> Option<i64> {
    (cpus.is_finite() && cpus > 0.0).then_some((cpus * 1e9) as i64)
}

/// Megabytes as Docker's bytes, at most `i64::MAX` (far beyond any machine).
fn memory_bytes(mb: u64) -> i64 {
    i64::try_from(mb.saturating_mul(1024 * 1024)).unwrap_or(i64::MAX)
}

pub fn create_body(req: &CreateRequest<'_>) -> ContainerCreateBody {
    let spec = req.spec;
    let mut exposed = Vec::new();
    let mut bindings: HashMap<String, Option<Vec<DockerPortBinding>>> = HashMap::new();
    for p in &spec.ports {
        let key = format!("{}/{}", p.container_port, p.protocol);
        exposed.push(key.clone());
        if let Some(host_port) = p.host_port {
            bindings
                .entry(key)
                .or_insert_with(|| Some(Vec::new()))
                .get_or_insert_with(Vec::new)
                .push(DockerPortBinding {
                    host_ip: p.host_ip.clone(),
                    host_port: Some(host_port.to_string()),
                });
        }
    }
    let mounts: Vec<Mount> = spec.mounts.iter().map(to_mount).collect();
    let healthcheck = spec.healthcheck.as_ref().map(|h| {
        let mut test = vec!["CMD".to_owned()];
        test.extend(h.command.iter().cloned());
        HealthConfig {
            test: Some(test),
            interval: Some(secs_to_nanos(h.interval_secs)),
            timeout: Some(secs_to_nanos(h.timeout_secs)),
            retries: Some(h.retries as i64),
            start_period: Some(secs_to_nanos(h.start_period_secs)),
            start_interval: None,
        }
    });
    let endpoint = EndpointSettings {
        aliases: Some(spec.aliases.clone()),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: spec.command.clone(),
        entrypoint: spec.entrypoint.clone(),
        user: spec.user.clone(),
        working_dir: spec.working_dir.clone(),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(req.labels.clone().into_iter().collect()),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        healthcheck,
        host_config: Some(HostConfig {
            port_bindings: (!bindings.is_empty()).then_some(bindings),
            mounts: (!mounts.is_empty()).then_some(mounts),
            network_mode: Some(req.network.to_owned()),
            // The agent owns restarts (with backoff and status); Docker restarting on its
            // own would race it.
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::NO),
                maximum_retry_count: None,
            }),
            nano_cpus: spec.cpus.and_then(nano_cpus),
            memory: spec.memory_mb.map(memory_bytes),
            cap_drop: (!spec.cap_drop.is_empty()).then(|| spec.cap_drop.clone()),
            ..Default::default()
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(req.network.to_owned(), endpoint)])),
        }),
        ..Default::default()
    }
}

pub(super) fn to_mount(m: &MountSpec) -> Mount {
    let typ = match m.kind.as_str() {
        "bind" => MountType::BIND,
        "tmpfs" => MountType::TMPFS,
        _ => MountType::VOLUME,
    };
    Mount {
        target: Some(m.target.clone()),
        source: (typ != MountType::TMPFS).then(|| m.source.clone()),
        typ: Some(typ),
        read_only: Some(m.read_only),
        ..Default::default()
    }
}

/// Docker's `State.FinishedAt`, unless it is Go's zero time (the container never ended).
pub(super) fn finished_at(state: Option<&ContainerState>) -> Option<String> {
    state
        .and_then(|s| s.finished_at.clone())
        .filter(|t| !t.is_empty() && !t.starts_with("0001-"))
}

pub(super) fn to_actual(c: ContainerInspectResponse) -> Option<ActualContainer> {
    let labels = c.config.as_ref()?.labels.clone().unwrap_or_default();
    let state = c.state.as_ref();
    let run_state = match state.and_then(|s| s.status) {
        Some(ContainerStateStatusEnum::RUNNING) => RunState::Running,
        Some(ContainerStateStatusEnum::CREATED) => RunState::Created,
        Some(ContainerStateStatusEnum::PAUSED) => RunState::Paused,
        Some(ContainerStateStatusEnum::RESTARTING) => RunState::Restarting,
        Some(ContainerStateStatusEnum::REMOVING) => RunState::Removing,
        Some(ContainerStateStatusEnum::DEAD) => RunState::Dead,
        _ => RunState::Exited,
    };
    let docker_health = state
        .and_then(|s| s.health.as_ref())
        .and_then(|h| h.status)
        .and_then(|s| match s {
            HealthStatusEnum::HEALTHY => Some(Health::Healthy),
            HealthStatusEnum::UNHEALTHY => Some(Health::Unhealthy),
            HealthStatusEnum::STARTING => Some(Health::Starting),
            _ => None,
        });
    let stack = labels.get(labels::STACK)?.clone();
    let mut host_ports: Vec<(u16, String)> = c
        .host_config
        .as_ref()
        .and_then(|h| h.port_bindings.as_ref())
        .map(|bindings| {
            bindings
                .iter()
                .flat_map(|(key, b)| {
                    let proto = key.split('/').nth(1).unwrap_or("tcp").to_owned();
                    b.iter()
                        .flatten()
                        .filter_map(|pb| pb.host_port.as_ref()?.parse::<u16>().ok())
                        .map(move |p| (p, proto.clone()))
                        .collect::<Vec<_>>()
                })
                .collect()
        })
        .unwrap_or_default();
    host_ports.sort();
    let ip = c
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref())
        .and_then(|nets| {
            nets.values()
                .filter_map(|e| e.ip_address.clone())
                .find(|ip| !ip.is_empty())
        });
    Some(ActualContainer {
        id: c.id.clone()?,
        name: c
            .name
            .clone()
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_owned(),
        slot: SlotId {
            stack,
            service: labels.get(labels::SERVICE).cloned().unwrap_or_default(),
            replica: labels
                .get(labels::REPLICA)
                .and_then(|r| r.parse().ok())
                .unwrap_or(0),
        },
        spec_hash: labels.get(labels::SPEC_HASH).cloned().unwrap_or_default(),
        image_id: c.image.clone().filter(|i| !i.is_empty()),
        state: run_state,
        exit_code: state.and_then(|s| s.exit_code),
        health: docker_health,
        docker_health,
        ip,
        started_at: state.and_then(|s| s.started_at.clone()),
        finished_at: finished_at(state),
        oom_killed: state.and_then(|s| s.oom_killed).unwrap_or(false),
        host_ports,
        order: labels
            .get(labels::ORDER)
            .and_then(|o| o.parse().ok())
            .unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assignment::{ContainerSpec, DockerHealthcheck};

    #[test]
    fn entrypoint_user_workdir_capabilities_and_host_address_reach_docker() {
        let spec = ContainerSpec {
            image: "i".into(),
            entrypoint: Some(vec!["/bin/sh".into(), "-c".into()]),
            command: Some(vec!["echo hi".into()]),
            user: Some("1000:1000".into()),
            working_dir: Some("/srv".into()),
            cap_drop: vec!["NET_RAW".into()],
            ports: vec![crate::assignment::PortBinding {
                container_port: 80,
                host_port: Some(8080),
                protocol: "tcp".into(),
                host_ip: Some("127.0.0.1".into()),
            }],
            ..Default::default()
        };
        let body = create_body(&CreateRequest {
            name: "s.web.1",
            spec: &spec,
            labels: Default::default(),
            network: "n",
        });
        assert_eq!(body.entrypoint, Some(vec!["/bin/sh".into(), "-c".into()]));
        assert_eq!(body.cmd, Some(vec!["echo hi".into()]));
        assert_eq!(body.user.as_deref(), Some("1000:1000"));
        assert_eq!(body.working_dir.as_deref(), Some("/srv"));
        let host = body.host_config.unwrap_or_default();
        assert_eq!(host.cap_drop, Some(vec!["NET_RAW".into()]));
        let bindings = host.port_bindings.unwrap_or_default();
        let binding = &bindings["80/tcp"].as_ref().unwrap()[0];
        assert_eq!(binding.host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(binding.host_port.as_deref(), Some("8080"));

        // Unset, they leave Docker's defaults (the image's) alone.
        let plain = create_body(&CreateRequest {
            name: "s.web.1",
            spec: &ContainerSpec::default(),
            labels: Default::default(),
            network: "n",
        });
        assert_eq!(
            (plain.entrypoint, plain.user, plain.working_dir),
            (None, None, None)
        );
        assert_eq!(plain.host_config.unwrap_or_default().cap_drop, None);
    }

    #[test]
    fn limits_and_check_times_never_overflow_or_go_negative() {
        let body = |cpus, memory_mb, secs| {
            let spec = ContainerSpec {
                image: "i".into(),
                cpus,
                memory_mb,
                healthcheck: Some(DockerHealthcheck {
                    command: vec!["true".into()],
                    interval_secs: secs,
                    timeout_secs: secs,
                    retries: u32::MAX,
                    start_period_secs: secs,
                }),
                ..Default::default()
            };
            let body = create_body(&CreateRequest {
                name: "s.web.1",
                spec: &spec,
                labels: Default::default(),
                network: "n",
            });
            let host = body.host_config.unwrap_or_default();
            let check = body.healthcheck.unwrap_or_default();
            (host.nano_cpus, host.memory, check.interval)
        };
        let mib = 1024 * 1024;
        // (name, cpus, memoryMb, check seconds, expected (nano_cpus, memory bytes, interval ns))
        let cases = [
            (
                "ordinary",
                Some(0.5),
                Some(512),
                2.0,
                (Some(500_000_000), Some(512 * mib), Some(2_000_000_000)),
            ),
            ("none", None, None, 0.0, (None, None, Some(0))),
            (
                "huge: the largest Docker takes",
                Some(1e300),
                Some(u64::MAX),
                1e20,
                (Some(i64::MAX), Some(i64::MAX), Some(i64::MAX)),
            ),
            (
                "just past i64 bytes",
                Some(f64::MAX),
                Some(u64::MAX >> 20),
                f64::MAX,
                (Some(i64::MAX), Some(i64::MAX), Some(i64::MAX)),
            ),
            (
                "not a number: no limit",
                Some(f64::NAN),
                Some(0),
                f64::NAN,
                (None, Some(0), Some(0)),
            ),
            (
                "negative: no limit",
                Some(-1.0),
                Some(1),
                -1.0,
                (None, Some(mib), Some(0)),
            ),
            (
                "infinite: no limit",
                Some(f64::INFINITY),
                None,
                f64::INFINITY,
                (None, None, Some(i64::MAX)),
            ),
        ];
        for (name, cpus, memory_mb, secs, want) in cases {
            assert_eq!(body(cpus, memory_mb, secs), want, "{name}");
        }
    }

    #[test]
    fn image_references_split_into_repo_and_tag() {
        let cases = [
            ("busybox", ("busybox", "latest")),
            (
                "berth-test/busybox:latest",
                ("berth-test/busybox", "latest"),
            ),
            ("postgres:17", ("postgres", "17")),
            ("reg:5000/app", ("reg:5000/app", "latest")),
            ("reg:5000/app:v2", ("reg:5000/app", "v2")),
        ];
        for (image, want) in cases {
            assert_eq!(split_image(image), want, "{image}");
        }
    }

    #[test]
    fn a_pulls_layers_sum_into_one_progress() {
        use bollard::models::ProgressDetail;
        let msg = |id: &str, status: &str, cur: Option<i64>, total: Option<i64>| CreateImageInfo {
            id: Some(id.into()),
            status: Some(status.into()),
            progress_detail: Some(ProgressDetail {
                current: cur,
                total,
            }),
            error_detail: None,
        };
        let mut l = Layers::default();
        let cases: Vec<(CreateImageInfo, bool, (u64, u64))> = vec![
            (msg("a", "Pulling fs layer", None, None), false, (0, 0)),
            (msg("b", "Already exists", None, None), false, (0, 0)),
            (
                msg("a", "Downloading", Some(100), Some(1000)),
                true,
                (100, 1000),
            ),
            (
                msg("c", "Downloading", Some(50), Some(500)),
                true,
                (150, 1500),
            ),
            (
                msg("a", "Downloading", Some(100), Some(1000)),
                false,
                (150, 1500),
            ),
            (
                msg("a", "Download complete", None, None),
                true,
                (1050, 1500),
            ),
            // Extraction's own byte counts are not download progress.
            (
                msg("a", "Extracting", Some(10), Some(9999)),
                false,
                (1050, 1500),
            ),
            (msg("c", "Pull complete", None, None), true, (1500, 1500)),
            // A layer Docker never sized does not count.
            (msg("d", "Pull complete", None, None), false, (1500, 1500)),
            (
                msg("e", "Downloading", Some(-1), Some(-5)),
                false,
                (1500, 1500),
            ),
        ];
        for (i, (m, changed, (done, total))) in cases.into_iter().enumerate() {
            assert_eq!(l.update(&m), changed, "message {i}");
            assert_eq!(
                l.progress(),
                PullProgress {
                    bytes_done: done,
                    bytes_total: total
                },
                "message {i}"
            );
        }
    }
}
