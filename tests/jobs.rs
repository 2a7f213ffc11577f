//! One-shot services against the real Docker engine: `restartPolicy: on-failure` and
//! `never` leave a finished container exited and kept (logs and all), the status says
//! `completed` or `failed`, a stack of jobs ends `Succeeded` (or `Failed`), a dependent with
//! `condition: completed` starts only once its dependency exited 0, and a rollout of a job
//! counts its new version completing as a success.

mod common;

use std::time::{Duration, SystemTime};

use berth::spec::{Phase, StackStatus};
use common::*;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(60);
const IMAGE: &str = "berth-test/busybox:latest";

fn stack(services: Value) -> String {
    json!({ "itemListElement": services }).to_string()
}

/// A job: `script` run once by `sh -c`, under `policy`.
fn job(name: &str, policy: &str, script: &str) -> Value {
    json!({"name": name, "image": IMAGE, "restartPolicy": policy,
           "command": ["sh", "-c", script]})
}

/// The time Docker recorded at `field` (`{{.State.StartedAt}}`...) of container `id`.
fn docker_time(id: &str, field: &str) -> SystemTime {
    let text = inspect(id, field);
    humantime::parse_rfc3339(&text).unwrap_or_else(|e| panic!("{field} {text:?}: {e}"))
}

/// Wait until this host's agent has made `passes` more passes over every container it
/// has. A canary stack whose service exits after a second under the default
/// `restartPolicy: always` is restarted by the agent, and each restart is a pass that
/// planned every container on the host: had the agent wanted to start a finished job
/// again, it would have done so in one of them (the first restart of a container is
/// immediate).
async fn wait_for_agent_passes(c: &Cluster, passes: u32) {
    let id = format!("tick-{}", c.host_id);
    let tick = json!([{"name": "tick", "image": IMAGE, "command": ["sh", "-c", "sleep 1"]}]);
    c.put_stack(&id, &stack(tick)).await;
    c.wait_status(&id, T, |s| {
        s.services.get("tick").is_some_and(|t| t.restarts >= passes)
    })
    .await;
}

/// Put `spec` as stack `id` and wait until its only service, `service`, has finished as
/// `state` with exit code `code`; then let the agent make a few passes, and check that
/// the service was left alone all along: not restarted, its container kept (exited, with
/// its logs, among them `log`) and never started again. The status after the passes.
async fn finished_and_left_alone(
    c: &Cluster,
    id: &str,
    spec: &str,
    (service, state, code, log): (&str, &str, i64, &str),
) -> StackStatus {
    let rev = c.put_stack(id, spec).await;
    let st = c
        .wait_status(id, T, |s| {
            s.observed_revision == rev && s.services.get(service).is_some_and(|m| m.state == state)
        })
        .await;
    let container = st.services[service].container_id.clone().expect("an id");
    let started = inspect(&container, "{{.State.StartedAt}}");

    wait_for_agent_passes(c, 3).await;

    let st = c.status(id).await.expect("a status");
    let s = &st.services[service];
    assert_eq!(
        (s.state.as_str(), s.exit_code, s.restarts),
        (state, Some(code), 0),
        "{st:#?}"
    );
    assert_eq!(
        containers_of(&c.host_id, id),
        std::slice::from_ref(&container),
        "the container is kept, not replaced"
    );
    assert_eq!(
        inspect(&container, "{{.State.Status}} {{.State.ExitCode}}"),
        format!("exited {code}")
    );
    assert_eq!(
        inspect(&container, "{{.State.StartedAt}}"),
        started,
        "never started again"
    );
    assert!(
        docker(&["logs", &container]).contains(log),
        "its logs stay readable"
    );
    st
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_exits_0_under_on_failure_is_completed_kept_and_never_restarted() {
    let c = Cluster::start("job-done").await;
    let spec = stack(json!([job(
        "migrate",
        "on-failure",
        "echo migrated; exit 0"
    )]));
    let done = ("migrate", "completed", 0, "migrated");
    let st = finished_and_left_alone(&c, "jobdone-it", &spec, done).await;
    assert_eq!(st.phase, Phase::Succeeded, "{st:#?}");
    assert_eq!(st.message, "1 container(s) completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_exits_3_under_never_is_failed_kept_and_never_restarted() {
    let c = Cluster::start("job-fails").await;
    let spec = stack(json!([job("seed", "never", "echo seeding; exit 3")]));
    let failed = ("seed", "failed", 3, "seeding");
    let st = finished_and_left_alone(&c, "jobfails-it", &spec, failed).await;
    assert_eq!(st.phase, Phase::Failed, "{st:#?}");
    assert!(
        st.message.contains("seed: exited with code 3"),
        "{}",
        st.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_then_app_the_app_starts_only_after_the_migration_exited_0() {
    let c = Cluster::start("job-deps").await;
    let spec = stack(json!([
        job("migrate", "on-failure", "sleep 3; echo migrated; exit 0"),
        {"name": "app", "image": IMAGE,
         "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"],
         "softwareRequirements": [{"name": "migrate", "condition": "completed"}]}
    ]));
    let rev = c.put_stack("jobdeps-it", &spec).await;
    let st = c
        .wait_status("jobdeps-it", T, |s| {
            s.services.get("app").is_some_and(|a| a.state == "waiting")
        })
        .await;
    let msg = st.services["app"].message.clone().unwrap_or_default();
    assert_eq!(msg, "Waiting for migrate (it-job-deps) to complete");

    let st = c
        .wait_status("jobdeps-it", T, |s| {
            s.phase == Phase::Running && s.observed_revision == rev
        })
        .await;
    assert_eq!(st.message, "1/2 containers running, 1 completed");
    assert_eq!(st.services["migrate"].state, "completed", "{st:#?}");
    assert_eq!(st.services["migrate"].restarts, 0, "{st:#?}");
    assert_eq!(st.services["app"].state, "running", "{st:#?}");
    let migrate = st.services["migrate"].container_id.clone().expect("an id");
    let app = st.services["app"].container_id.clone().expect("an id");
    let finished = docker_time(&migrate, "{{.State.FinishedAt}}");
    let started = docker_time(&app, "{{.State.StartedAt}}");
    assert!(
        started > finished,
        "app started at {started:?}, before migrate finished at {finished:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stack_of_only_jobs_succeeds_once_each_exited_0() {
    let c = Cluster::start("job-only").await;
    // `migrate` fails its first run and succeeds its second: on-failure restarts it once.
    // The container's own filesystem outlives a restart, so it remembers the first run.
    let spec = stack(json!([
        job("seed", "never", "echo seeded; exit 0"),
        job(
            "migrate",
            "on-failure",
            "if [ -e /ran-once ]; then echo migrated; exit 0; fi; touch /ran-once; exit 1"
        ),
    ]));
    let rev = c.put_stack("jobonly-it", &spec).await;
    let st = c
        .wait_status("jobonly-it", T, |s| {
            s.observed_revision == rev && s.phase == Phase::Succeeded
        })
        .await;
    assert_eq!(st.message, "2 container(s) completed");
    assert_eq!(st.services["seed"].state, "completed", "{st:#?}");
    assert_eq!(st.services["seed"].restarts, 0, "{st:#?}");
    assert_eq!(st.services["migrate"].state, "completed", "{st:#?}");
    assert_eq!(
        st.services["migrate"].restarts, 1,
        "restarted after its failure only: {st:#?}"
    );
    let available = st
        .conditions
        .iter()
        .find(|c| c.type_ == "Available")
        .expect("an Available condition");
    assert_eq!(available.reason, "Completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_of_a_job_is_complete_once_its_new_version_completes() {
    let c = Cluster::start("job-roll").await;
    let spec = |v: &str| {
        let mut j = job("migrate", "on-failure", "echo migrated to $VERSION; exit 0");
        j["environment"] = json!({"VERSION": v});
        // A judge that does not count completion as success fails the slot at its
        // deadline (120 s by default) and rolls back: make that quick to see.
        j["update"] = json!({"deadline": 20});
        stack(json!([j]))
    };
    let rev1 = c.put_stack("jobroll-it", &spec("1")).await;
    let st = c
        .wait_status("jobroll-it", T, |s| {
            s.observed_revision == rev1 && s.phase == Phase::Succeeded
        })
        .await;
    let old = st.services["migrate"].container_id.clone().expect("an id");

    let rev2 = c.put_stack("jobroll-it", &spec("2")).await;
    let st = c
        .wait_status("jobroll-it", T, |s| {
            s.observed_revision == rev2
                && s.rollout.as_ref().is_some_and(|r| {
                    r.to_revision == rev2 && matches!(r.state.as_str(), "Complete" | "RolledBack")
                })
        })
        .await;
    let rollout = st.rollout.as_ref().expect("a rollout");
    assert_eq!(rollout.state, "Complete", "{st:#?}");
    assert_eq!((rollout.updated, rollout.failures), (1, 0), "{st:#?}");
    let st = c
        .wait_status("jobroll-it", T, |s| s.phase == Phase::Succeeded)
        .await;
    let new = st.services["migrate"].container_id.clone().expect("an id");
    assert_ne!(new, old, "the new version ran in a new container");
    assert!(docker(&["logs", &new]).contains("migrated to 2"));
}
