//! Raw Docker, through bollard, at Berth's concurrency: every container of a wave at once.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, NetworkCreateRequest, NetworkingConfig,
    PortBinding, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use bollard::Docker;
use futures::future::join_all;
use futures::StreamExt;

use crate::events::{count, first_event};
use crate::support::{err, nanos, Events, Res, IMAGE, SERVE};
use crate::workload::{round_id, svc, PORTS_RAW};

/// Stop grace Berth gives a container (agent::execute::STOP_GRACE); the raw baseline
/// uses the same.
const STOP_GRACE_SECS: i32 = 10;

fn raw_body(network: &str, service: &str, port: Option<u16>) -> ContainerCreateBody {
    let bindings = port.map(|p| {
        HashMap::from([(
            "8080/tcp".to_owned(),
            Some(vec![PortBinding {
                host_ip: None,
                host_port: Some(p.to_string()),
            }]),
        )])
    });
    ContainerCreateBody {
        image: Some(IMAGE.to_owned()),
        cmd: Some(vec!["sh".into(), "-c".into(), SERVE.into()]),
        env: Some(Vec::new()),
        labels: Some(HashMap::from([(
            "berth-bench".to_owned(),
            "raw".to_owned(),
        )])),
        exposed_ports: Some(vec!["8080/tcp".to_owned()]),
        host_config: Some(HostConfig {
            port_bindings: bindings,
            network_mode: Some(network.to_owned()),
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::NO),
                maximum_retry_count: None,
            }),
            ..Default::default()
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                network.to_owned(),
                EndpointSettings {
                    aliases: Some(vec![service.to_owned()]),
                    ..Default::default()
                },
            )])),
        }),
        ..Default::default()
    }
}

pub(crate) async fn raw_network(d: &Docker, name: &str) -> Res<()> {
    d.create_network(NetworkCreateRequest {
        name: name.to_owned(),
        driver: Some("bridge".to_owned()),
        labels: Some(HashMap::from([(
            "berth-bench".to_owned(),
            "raw".to_owned(),
        )])),
        ..Default::default()
    })
    .await
    .map_err(err)?;
    Ok(())
}

pub(crate) async fn raw_create_start(
    d: &Docker,
    network: &str,
    name: &str,
    service: &str,
    port: Option<u16>,
) -> Res<()> {
    let opts = CreateContainerOptionsBuilder::default().name(name).build();
    let id = d
        .create_container(Some(opts), raw_body(network, service, port))
        .await
        .map_err(err)?
        .id;
    d.start_container(&id, None).await.map_err(err)
}

pub(crate) async fn raw_stop_remove(d: &Docker, name: &str) -> Res<()> {
    let stop = StopContainerOptionsBuilder::default()
        .t(STOP_GRACE_SECS)
        .build();
    d.stop_container(name, Some(stop)).await.map_err(err)?;
    let rm = RemoveContainerOptionsBuilder::default().force(true).build();
    d.remove_container(name, Some(rm)).await.map_err(err)
}

/// Remove a network of raw Docker's; failing only says so: Docker on this machine
/// sometimes keeps a phantom endpoint (docs/benchmarks.md).
pub(crate) async fn raw_remove_network(d: &Docker, name: &str) {
    if let Err(e) = d.remove_network(name).await {
        eprintln!("  raw Docker could not remove network {name}: {e}");
    }
}

/// Create and start `n` containers, at most `limit` at a time (`n`: all at once, as
/// Berth does within one start-order level).
pub(crate) async fn raw_up(d: &Docker, n: usize, limit: usize) -> Res<f64> {
    let net = format!("bench-raw-n{n}-{}", round_id());
    let t0 = Instant::now();
    raw_network(d, &net).await?;
    let results: Vec<Res<()>> = futures::stream::iter(1..=n)
        .map(|i| {
            let net = net.clone();
            async move {
                let name = format!("{net}.{}", svc(i));
                raw_create_start(d, &net, &name, &svc(i), Some(PORTS_RAW + i as u16)).await
            }
        })
        .buffer_unordered(limit.max(1))
        .collect()
        .await;
    results.into_iter().collect::<Res<Vec<()>>>()?;
    Ok(t0.elapsed().as_secs_f64())
}

/// Stop and remove the `n` containers of `raw_up`, all at once, then their network; the
/// seconds it took, and from its first call to Docker's first event (a `kill`), which is
/// Docker's own share of Berth's "delete to first event".
pub(crate) async fn raw_down(d: &Docker, n: usize) -> Res<(f64, f64)> {
    let net = format!("bench-raw-n{n}-{}", round_id());
    let wall = SystemTime::now();
    let mut events = Events::since(d, wall);
    let t0 = Instant::now();
    let results = join_all((1..=n).map(|i| {
        let name = format!("{net}.{}", svc(i));
        async move { raw_stop_remove(d, &name).await }
    }))
    .await;
    results.into_iter().collect::<Res<Vec<()>>>()?;
    raw_remove_network(d, &net).await;
    let total = t0.elapsed().as_secs_f64();
    events
        .until(
            Duration::from_secs(10),
            "raw Docker's destroy events",
            |s| count(s, &net, "destroy").0 >= n,
        )
        .await?;
    let first = (first_event(&events.seen, &net) - nanos(wall)) as f64 / 1e9;
    Ok((total, first))
}
