//! The agent's Docker adapter against the real engine: a pass inspects only containers
//! whose `list` entry changed, and still sees every change made behind its back; a create
//! never pulls, and the engine says which images it has. The in-process Docker call
//! counters are shared: each test counts calls the other never makes.

mod common;

use std::time::Duration;

use berth::agent::actual::RunState;
use berth::agent::runtime::{CreateRequest, Runtime, RuntimeError};
use berth::assignment::ContainerSpec;
use berth::metrics::DOCKER_REQUESTS;
use common::*;

fn inspects() -> u64 {
    calls("inspect")
}

/// Docker calls of `op` made so far by this process, answered or not.
fn calls(op: &str) -> u64 {
    ["success", "error"]
        .iter()
        .map(|result| DOCKER_REQUESTS.with_label_values(&[op, result]).get())
        .sum()
}

/// Create (not start) a managed container `name` of `image` running `true`.
async fn create(rt: &Runtime, name: &str, host: &str, image: &str) -> Result<String, RuntimeError> {
    let spec: ContainerSpec =
        serde_json::from_value(serde_json::json!({"image": image, "command": ["true"]}))
            .expect("spec");
    let labels = [
        ("berth.managed", "true"),
        ("berth.stack", "s"),
        ("berth.host", host),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    rt.create(CreateRequest {
        name,
        spec: &spec,
        labels,
        network: "bridge",
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_never_pulls_and_the_engine_says_which_images_it_has() {
    let host = format!("rt-img-{}", std::process::id());
    remove_containers_of(&host);
    let rt = Runtime::connect("unix:///var/run/docker.sock")
        .await
        .expect("docker");
    let present = rt
        .image("berth-test/busybox:latest")
        .await
        .expect("inspect")
        .expect("the test image is there");
    assert_eq!(
        present.id,
        docker(&[
            "image",
            "inspect",
            "-f",
            "{{.Id}}",
            "berth-test/busybox:latest"
        ])
        .trim()
    );
    assert_eq!(
        rt.image("berth-test/no-such-image:latest")
            .await
            .expect("inspect"),
        None
    );

    let id = create(
        &rt,
        &format!("{host}-present"),
        &host,
        "berth-test/busybox:latest",
    )
    .await
    .expect("create from a present image");
    assert!(!id.is_empty());

    // Pulling is the agent's image step's, with its policy and credentials: a create of
    // an image the engine lacks is Docker's 404, retried, and pulls nothing.
    let pulls = calls("pull");
    let err = create(
        &rt,
        &format!("{host}-missing"),
        &host,
        "berth-test/no-such-image:latest",
    )
    .await
    .expect_err("the image is not here");
    assert!(err.is_not_found() && err.is_transient(), "{err}");
    assert_eq!(calls("pull"), pulls, "no pull");
    remove_containers_of(&host);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_reinspects_only_containers_that_changed_even_behind_its_back() {
    let host = format!("rt-{}", std::process::id());
    remove_containers_of(&host);
    let rt = Runtime::connect("unix:///var/run/docker.sock")
        .await
        .expect("docker");
    let run = |name: &str| {
        docker(&[
            "run",
            "-d",
            "--name",
            name,
            "--label",
            "berth.managed=true",
            "--label",
            "berth.stack=s",
            "--label",
            &format!("berth.host={host}"),
            "berth-test/busybox:latest",
            "sh",
            "-c",
            "trap 'exit 0' TERM; sleep 100000 & wait",
        ])
    };
    let a = run(&format!("{host}-a"));
    let b = run(&format!("{host}-b"));
    assert!(!a.is_empty() && !b.is_empty(), "test containers started");

    let before = inspects();
    let first = rt.list_host(&host).await.expect("list").0;
    assert_eq!(first.len(), 2);
    assert_eq!(
        inspects() - before,
        2,
        "a first listing inspects every container"
    );

    let before = inspects();
    let second = rt.list_host(&host).await.expect("list").0;
    assert_eq!(second, first, "nothing changed, nothing differs");
    assert_eq!(inspects() - before, 0, "nothing changed: no inspect");

    // Restarted by hand, with no event pump running: only `list`'s uptime says so.
    tokio::time::sleep(Duration::from_secs(3)).await;
    docker(&["restart", "-t", "0", &a]);
    let before = inspects();
    let third = rt.list_host(&host).await.expect("list").0;
    assert_eq!(
        inspects() - before,
        1,
        "only the restarted container is inspected"
    );
    let find = |list: &[berth::agent::actual::ActualContainer], id: &str| {
        list.iter().find(|c| c.id == id).cloned().expect("listed")
    };
    assert_ne!(
        find(&third, &a).started_at,
        find(&first, &a).started_at,
        "the restart is seen"
    );
    assert_eq!(find(&third, &b), find(&first, &b));

    // Killed, then renamed, by hand.
    docker(&["kill", &b]);
    let fourth = rt.list_host(&host).await.expect("list").0;
    let killed = find(&fourth, &b);
    assert_eq!(killed.state, RunState::Exited);
    assert_eq!(killed.exit_code, Some(137));
    docker(&["rename", &format!("{host}-b"), &format!("{host}-b2")]);
    let fifth = rt.list_host(&host).await.expect("list").0;
    assert_eq!(find(&fifth, &b).name, format!("{host}-b2"));

    // Removed by hand: gone from the listing.
    docker(&["rm", "-f", &a]);
    let sixth = rt.list_host(&host).await.expect("list").0;
    assert_eq!(sixth.len(), 1);
    remove_containers_of(&host);
}
