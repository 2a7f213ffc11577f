use std::time::Duration;

use super::*;
use crate::assignment::{ContainerSpec, NetworkSpec};
use crate::spec::DesiredState;

const NET: &str = "n";

fn slot(service: &str, replica: u32, image: &str) -> Slot {
    let container = ContainerSpec {
        image: image.into(),
        ..Default::default()
    };
    Slot::bare(service, replica, container)
}

fn hash(image: &str) -> String {
    slot("web", 1, image).container.hash(NET)
}

/// Six replicas of `web` on three hosts (replicas 1,4 on h1; 2,5 on h2; 3,6 on h3), each
/// running `image[replica - 1]`.
fn cluster(rev: i64, images: [&str; 6]) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = BTreeMap::new();
    for (i, image) in images.iter().enumerate() {
        let replica = i as u32 + 1;
        let host = format!("h{}", (i % 3) + 1);
        out.entry(host)
            .or_insert_with(|| Assignment {
                deleted: None,
                stack: "s".into(),
                spec_revision: rev,
                desired_state: DesiredState::Running,
                network: NetworkSpec {
                    name: NET.into(),
                    driver: "bridge".into(),
                    create: true,
                },
                volumes: vec![],
                slots: vec![],
            })
            .slots
            .push(slot("web", replica, image));
    }
    out
}

fn host_of(replica: u32) -> String {
    format!("h{}", ((replica - 1) % 3) + 1)
}

fn report(replica: u32, image: &str, state: &str, health: &str) -> SlotReport {
    SlotReport {
        stack: "s".into(),
        service: "web".into(),
        replica,
        host: host_of(replica),
        spec_revision: 2,
        spec_hash: hash(image),
        container_id: Some(format!("c{replica}")),
        state: state.parse().unwrap(),
        health: health.parse().unwrap(),
        restarts: 0,
        exit_code: None,
        message: None,
        image_id: None,
        image_digest: None,
        pull: None,
        last_termination: None,
    }
}

/// Every slot running healthy on what `assigned` gives it.
fn all_available(assigned: &BTreeMap<String, Assignment>) -> Vec<SlotReport> {
    let mut out = Vec::new();
    for a in assigned.values() {
        for s in &a.slots {
            out.push(report(s.replica, &s.container.image, "running", "none"));
        }
    }
    out
}

/// The image each replica is assigned, in replica order.
fn images(assigned: &BTreeMap<String, Assignment>) -> Vec<String> {
    let mut by: BTreeMap<u32, String> = BTreeMap::new();
    for a in assigned.values() {
        for s in &a.slots {
            by.insert(s.replica, s.container.image.clone());
        }
    }
    by.into_values().collect()
}

struct Run {
    policy: UpdatePolicy,
    record: Option<Rollout>,
    /// What was written last pass: the agents run it.
    current: BTreeMap<String, Assignment>,
    revision: i64,
    events: Vec<RolloutEvent>,
    /// An operator's pause, as `pause/<stack>` says.
    paused: bool,
}

impl Run {
    fn new(policy: UpdatePolicy) -> Run {
        Run {
            policy,
            record: None,
            current: cluster(1, ["v1"; 6]),
            revision: 1,
            events: vec![],
            paused: false,
        }
    }

    /// One pass at `now` (ms) toward `images`, with `reports`; returns what is assigned.
    fn pass(&mut self, now: u64, want: [&str; 6], reports: &[SlotReport]) -> Vec<String> {
        let mut target = cluster(self.revision, want);
        let policies = BTreeMap::from([("web".to_owned(), self.policy)]);
        let refs: Vec<&SlotReport> = reports.iter().collect();
        let (record, events) = step(
            &Inputs {
                stack: "s",
                revision: self.revision,
                now_ms: now,
                previous: self.record.as_ref(),
                current: self.current.iter().map(|(h, a)| (h.as_str(), a)).collect(),
                reports: &refs,
                policies: &policies,
                paused: self.paused,
            },
            &mut target,
        );
        self.record = record;
        self.events.extend(events);
        self.current = target;
        images(&self.current)
    }

    fn state(&self) -> Option<RolloutState> {
        self.record.as_ref().map(|r| r.state)
    }
}

fn policy(parallelism: u32) -> UpdatePolicy {
    UpdatePolicy {
        parallelism,
        monitor: Duration::from_secs(5),
        ..UpdatePolicy::default()
    }
}

const V2: [&str; 6] = ["v2"; 6];

#[test]
fn a_first_deployment_is_not_throttled() {
    let mut target = cluster(1, V2);
    let policies = BTreeMap::new();
    let (record, events) = step(
        &Inputs {
            stack: "s",
            revision: 1,
            now_ms: 0,
            previous: None,
            current: BTreeMap::new(),
            reports: &[],
            policies: &policies,
            paused: false,
        },
        &mut target,
    );
    assert_eq!(record, None);
    assert!(events.is_empty());
    assert_eq!(images(&target), vec!["v2"; 6]);
}

#[test]
fn batches_of_parallelism_across_hosts_each_ready_before_the_next_and_judged_past_monitor() {
    let mut r = Run::new(policy(2));
    r.revision = 2;
    let before = all_available(&r.current.clone());
    let got = r.pass(0, V2, &before);
    assert_eq!(
        got,
        ["v2", "v2", "v1", "v1", "v1", "v1"],
        "replicas 1 and 2 first"
    );
    assert_eq!(r.state(), Some(RolloutState::Progressing));

    // Not ready yet (their reports still speak of v1): nothing more.
    assert_eq!(r.pass(500, V2, &before), got);
    // Ready at 1 s: the next batch goes at once; the first is judged on through its
    // monitor (5 s) meanwhile.
    let got = r.pass(1_000, V2, &all_available(&r.current.clone()));
    assert_eq!(got, ["v2", "v2", "v2", "v2", "v1", "v1"]);
    let got = r.pass(2_000, V2, &all_available(&r.current.clone()));
    assert_eq!(got, ["v2"; 6]);
    let ready = all_available(&r.current.clone());
    r.pass(3_000, V2, &ready);
    r.pass(7_999, V2, &ready);
    assert_eq!(
        r.state(),
        Some(RolloutState::Progressing),
        "the last batch is still within its monitor"
    );
    r.pass(8_000, V2, &ready);
    assert_eq!(r.state(), Some(RolloutState::Complete));
    assert!(r.events.contains(&RolloutEvent::Complete { to: 2 }));
    assert!(r.events.contains(&RolloutEvent::BatchReplaced {
        service: "web".into(),
        replicas: vec![1, 2]
    }));
}

#[test]
fn never_more_than_parallelism_slots_in_flight_whatever_the_reports_say() {
    for parallelism in [1u32, 2, 3] {
        let mut r = Run::new(policy(parallelism));
        r.revision = 2;
        let mut now = 0;
        let mut before = vec!["v1".to_owned(); 6];
        for _ in 0..40 {
            let ready = all_available(&r.current.clone());
            let got = r.pass(now, V2, &ready);
            let newly = got.iter().zip(&before).filter(|(a, b)| a != b).count();
            assert!(newly <= parallelism as usize, "{parallelism}: {got:?}");
            before = got;
            now += 2_500;
        }
        assert_eq!(before, vec!["v2"; 6], "{parallelism}: finishes");
    }
}

#[test]
fn parallelism_zero_replaces_every_slot_at_once() {
    let mut r = Run::new(policy(0));
    r.revision = 2;
    assert_eq!(r.pass(0, V2, &[]), vec!["v2"; 6]);
}

#[test]
fn delay_waits_after_each_batch() {
    let mut r = Run::new(UpdatePolicy {
        delay: Duration::from_secs(10),
        ..policy(3)
    });
    r.revision = 2;
    r.pass(0, V2, &[]);
    let ready = all_available(&r.current.clone());
    let done = r.pass(1_000, V2, &ready);
    assert_eq!(
        done,
        ["v2", "v2", "v2", "v1", "v1", "v1"],
        "batch ready, delay begins"
    );
    assert_eq!(r.pass(10_999, V2, &ready), done);
    assert_eq!(r.pass(11_000, V2, &ready), vec!["v2"; 6]);
}

#[test]
fn a_slot_that_fails_within_monitor_while_the_next_batch_runs_rolls_all_of_them_back() {
    let mut r = Run::new(policy(2));
    r.revision = 2;
    r.pass(0, V2, &[]);
    let got = r.pass(1_000, V2, &all_available(&r.current.clone()));
    assert_eq!(got, ["v2", "v2", "v2", "v2", "v1", "v1"]);
    // Replica 1 exits 3 s in, within its monitor.
    let mut reports = all_available(&r.current.clone());
    reports.retain(|rep| rep.replica != 1);
    reports.push(report(1, "v2", "exited", "none"));
    let got = r.pass(3_000, V2, &reports);
    assert_eq!(r.state(), Some(RolloutState::RollingBack));
    assert_eq!(
        got,
        ["v1", "v1", "v2", "v2", "v1", "v1"],
        "back a batch at a time, the broken slot first"
    );
    let got = r.pass(4_000, V2, &all_available(&r.current.clone()));
    assert_eq!(
        got,
        vec!["v1"; 6],
        "the second batch too: every handed slot goes back"
    );
    r.pass(5_000, V2, &all_available(&r.current.clone()));
    assert_eq!(
        r.state(),
        Some(RolloutState::RolledBack),
        "ready on the stable container is enough going back"
    );
}

#[test]
fn slots_already_down_go_first() {
    let mut r = Run::new(policy(2));
    r.revision = 2;
    let mut reports = all_available(&r.current.clone());
    reports.retain(|rep| rep.replica != 5);
    assert_eq!(
        r.pass(0, V2, &reports),
        ["v2", "v1", "v1", "v1", "v2", "v1"],
        "replica 5 serves nothing, so it costs no availability"
    );
}

#[test]
fn a_slot_that_misses_its_deadline_fails_and_the_rollout_rolls_back() {
    let mut r = Run::new(UpdatePolicy {
        deadline: Duration::from_secs(30),
        ..policy(2)
    });
    r.revision = 2;
    r.pass(0, V2, &[]);
    // The old containers still serve (start-first); the new ones never report ready.
    let old = all_available(&cluster(1, ["v1"; 6]));
    assert_eq!(r.pass(29_999, V2, &old)[..2], ["v2", "v2"]);
    let got = r.pass(30_000, V2, &old);
    assert_eq!(
        got,
        vec!["v1"; 6],
        "back to what ran before, in the same pass"
    );
    assert_eq!(r.state(), Some(RolloutState::RollingBack));
    assert!(r.events.iter().any(|e| matches!(
        e,
        RolloutEvent::Failed {
            action: FailureAction::Rollback,
            ..
        }
    )));
    let ready = all_available(&r.current.clone());
    r.pass(31_000, V2, &ready);
    r.pass(36_000, V2, &ready);
    assert_eq!(r.state(), Some(RolloutState::RolledBack));
    assert!(r.events.contains(&RolloutEvent::RolledBack {
        service: "web".into()
    }));
    // And it stays back while the key holds the failed spec.
    assert_eq!(r.pass(100_000, V2, &ready), vec!["v1"; 6]);
    assert_eq!(r.state(), Some(RolloutState::RolledBack));
    // What users read: no slot runs revision 2, and the two that tried it failed.
    let st = crate::controller::status::rollout_status(r.record.as_ref().unwrap());
    assert_eq!((st.updated, st.total, st.failures), (0, 6, 2), "{st:?}");
}

#[test]
fn a_replaced_slot_that_exits_fails() {
    let mut r = Run::new(policy(1));
    r.revision = 2;
    r.pass(0, V2, &[]);
    let crashed = vec![report(1, "v2", "exited", "none")];
    r.pass(1_000, V2, &crashed);
    assert_eq!(r.state(), Some(RolloutState::RollingBack));
}

/// Every slot reported on what `assigned` gives it, in `state`.
fn all_in(assigned: &BTreeMap<String, Assignment>, state: &str) -> Vec<SlotReport> {
    let mut out = all_available(assigned);
    for r in &mut out {
        r.state = state.parse().unwrap();
    }
    out
}

#[test]
fn a_one_shot_service_whose_new_version_completes_is_done_without_a_monitor() {
    let mut r = Run::new(policy(3));
    r.revision = 2;
    let first = r.pass(0, V2, &[]);
    assert_eq!(first, ["v2", "v2", "v2", "v1", "v1", "v1"]);
    // The batch ran for a moment (well inside `monitor`), then exited 0 and stays so.
    r.pass(500, V2, &all_available(&r.current.clone()));
    let got = r.pass(1_000, V2, &all_in(&r.current.clone(), "completed"));
    assert_eq!(
        got,
        vec!["v2"; 6],
        "a completed batch is done: the next one goes"
    );
    r.pass(1_500, V2, &all_in(&r.current.clone(), "completed"));
    assert_eq!(r.state(), Some(RolloutState::Complete));
    let st = crate::controller::status::rollout_status(r.record.as_ref().unwrap());
    assert_eq!((st.updated, st.total, st.failures), (6, 6, 0), "{st:?}");
}

#[test]
fn a_one_shot_service_whose_new_version_fails_under_never_fails() {
    let mut r = Run::new(policy(1));
    r.revision = 2;
    r.pass(0, V2, &[]);
    r.pass(1_000, V2, &[report(1, "v2", "failed", "none")]);
    assert_eq!(r.state(), Some(RolloutState::RollingBack));
}

#[test]
fn a_slot_that_stops_being_ready_within_monitor_fails() {
    let mut r = Run::new(policy(1));
    r.revision = 2;
    r.pass(0, V2, &[]);
    r.pass(1_000, V2, &[report(1, "v2", "running", "healthy")]);
    r.pass(2_000, V2, &[report(1, "v2", "running", "starting")]);
    assert_eq!(r.state(), Some(RolloutState::RollingBack));
}

#[test]
fn a_rollback_is_not_failed_by_a_report_on_the_container_the_slot_leaves() {
    // Replicas 1 and 2 take v2, which exits at once. Replica 1's crash is reported first;
    // replica 2's agent still reports the v1 container that serves beside its replacement.
    let mut r = Run::new(policy(2));
    r.revision = 2;
    r.pass(0, V2, &[]);
    let mut reports = all_available(&cluster(1, ["v1"; 6]));
    reports.retain(|rep| rep.replica != 1);
    reports.push(report(1, "v2", "exited", "none"));
    assert_eq!(r.pass(1_000, V2, &reports), vec!["v1"; 6]);
    assert_eq!(r.state(), Some(RolloutState::RollingBack));
    // Replica 2 is handed v1 again, and its (stale) report says v1 serves...
    r.pass(1_070, V2, &reports);
    // ...then the report its agent wrote before it saw the rollback lands: the v2
    // container exited. That is the container the slot leaves, not the one it goes back to.
    reports.retain(|rep| rep.replica != 2);
    reports.push(report(2, "v2", "exited", "none"));
    r.pass(1_200, V2, &reports);
    assert_eq!(
        r.state(),
        Some(RolloutState::RollingBack),
        "{:?}",
        r.record.as_ref().map(|x| &x.services["web"].slots)
    );
    let back = all_available(&cluster(1, ["v1"; 6]));
    r.pass(1_300, V2, &back);
    r.pass(6_300, V2, &back);
    assert_eq!(r.state(), Some(RolloutState::RolledBack));
}

#[test]
fn pause_stops_where_it_is() {
    let mut r = Run::new(UpdatePolicy {
        failure_action: FailureAction::Pause,
        ..policy(2)
    });
    r.revision = 2;
    r.pass(0, V2, &[]);
    let bad = vec![report(1, "v2", "exited", "none")];
    let got = r.pass(1_000, V2, &bad);
    assert_eq!(r.state(), Some(RolloutState::Paused));
    assert_eq!(got, ["v2", "v2", "v1", "v1", "v1", "v1"]);
    let ready = all_available(&r.current.clone());
    assert_eq!(r.pass(60_000, V2, &ready), got, "no further batch");
}

#[test]
fn continue_goes_on_past_failures() {
    let mut r = Run::new(UpdatePolicy {
        failure_action: FailureAction::Continue,
        ..policy(2)
    });
    r.revision = 2;
    r.pass(0, V2, &[]);
    let mut reports = vec![report(1, "v2", "exited", "none")];
    reports.push(report(2, "v2", "running", "none"));
    r.pass(1_000, V2, &reports);
    let got = r.pass(6_000, V2, &reports);
    assert_eq!(got, ["v2", "v2", "v2", "v2", "v1", "v1"]);
    assert_eq!(r.state(), Some(RolloutState::Progressing));
}

#[test]
fn failures_within_the_ratio_are_tolerated() {
    let mut r = Run::new(UpdatePolicy {
        max_failure_ratio: 0.2,
        ..policy(1)
    });
    r.revision = 2;
    r.pass(0, V2, &[]);
    r.pass(1_000, V2, &[report(1, "v2", "exited", "none")]);
    assert_eq!(
        r.state(),
        Some(RolloutState::Progressing),
        "1 of 6 is within 0.2"
    );
    let got = r.pass(1_001, V2, &[]);
    assert_eq!(got[..2], ["v2", "v2"], "the next batch goes");
    r.pass(2_000, V2, &[report(2, "v2", "exited", "none")]);
    assert_eq!(r.state(), Some(RolloutState::RollingBack), "2 of 6 is not");
}

#[test]
fn a_rollback_that_fails_pauses_and_is_never_rolled_back_again() {
    let mut r = Run::new(policy(1));
    r.revision = 2;
    r.pass(0, V2, &[]);
    r.pass(1_000, V2, &[report(1, "v2", "exited", "none")]);
    assert_eq!(r.state(), Some(RolloutState::RollingBack));
    r.pass(2_000, V2, &[report(1, "v1", "exited", "none")]);
    assert_eq!(r.state(), Some(RolloutState::Paused));
    assert_eq!(r.pass(60_000, V2, &[]), vec!["v1"; 6]);
    assert_eq!(r.state(), Some(RolloutState::Paused));
}

#[test]
fn a_new_revision_mid_rollout_keeps_the_last_stable_slots_to_go_back_to() {
    let mut r = Run::new(policy(1));
    r.revision = 2;
    r.pass(0, V2, &[]);
    r.revision = 3;
    let v3 = ["v3"; 6];
    let got = r.pass(1_000, v3, &[]);
    assert_eq!(got, ["v3", "v1", "v1", "v1", "v1", "v1"]);
    let record = r.record.clone().unwrap();
    assert_eq!(record.to_revision, 3);
    assert_eq!(record.from_revision, 1, "the last revision that ran whole");
    assert_eq!(
        record.services["web"].stable[&1].slot.container.image, "v1",
        "replica 1 ran v2 briefly; its stable slot is still v1"
    );
    r.pass(2_000, v3, &[report(1, "v3", "exited", "none")]);
    assert_eq!(r.pass(2_001, v3, &[]), vec!["v1"; 6]);
}

#[test]
fn a_record_of_an_earlier_revision_goes_when_the_new_one_changes_no_container() {
    let mut r = Run::new(policy(1));
    r.revision = 2;
    r.pass(0, V2, &[]);
    r.revision = 3;
    // The user put the old spec back: what runs is what is wanted.
    r.current = cluster(2, ["v1"; 6]);
    r.pass(1_000, ["v1"; 6], &[]);
    assert_eq!(r.record, None);
}

#[test]
fn the_record_survives_a_round_trip_through_json() {
    let mut r = Run::new(policy(2));
    r.revision = 2;
    r.pass(0, V2, &[]);
    let record = r.record.clone().unwrap();
    let back: Rollout = serde_json::from_slice(&serde_json::to_vec(&record).unwrap()).unwrap();
    assert_eq!(back, record);
}

#[test]
fn putting_the_failed_spec_again_starts_a_new_rollout() {
    let mut r = Run::new(policy(1));
    r.revision = 2;
    r.pass(0, V2, &[]);
    r.pass(1_000, V2, &[report(1, "v2", "exited", "none")]);
    let ready = all_available(&r.current.clone());
    r.pass(2_000, V2, &ready);
    r.pass(8_000, V2, &ready);
    assert_eq!(r.state(), Some(RolloutState::RolledBack));
    r.revision = 3;
    let got = r.pass(9_000, V2, &ready);
    assert_eq!(r.state(), Some(RolloutState::Progressing));
    assert_eq!(r.record.as_ref().map(|x| x.to_revision), Some(3));
    assert_eq!(got, ["v2", "v1", "v1", "v1", "v1", "v1"]);
}

#[test]
fn a_slot_that_moves_to_another_host_is_not_throttled() {
    // Replica 1 ran v1 on h1; the new placement puts it, on v2, on h2.
    let current = cluster(1, ["v1"; 6]);
    let mut target = cluster(2, ["v1"; 6]);
    target
        .get_mut("h1")
        .unwrap()
        .slots
        .retain(|s| s.replica != 1);
    target
        .get_mut("h2")
        .unwrap()
        .slots
        .push(slot("web", 1, "v2"));
    let policies = BTreeMap::from([("web".to_owned(), policy(1))]);
    let (record, _) = step(
        &Inputs {
            stack: "s",
            revision: 2,
            now_ms: 0,
            previous: None,
            current: current.iter().map(|(h, a)| (h.as_str(), a)).collect(),
            reports: &[],
            policies: &policies,
            paused: false,
        },
        &mut target,
    );
    assert_eq!(record, None, "nothing on the same host changed");
    let moved = target["h2"].slots.iter().find(|s| s.replica == 1).unwrap();
    assert_eq!(
        moved.container.image, "v2",
        "the moved slot gets its new container at once"
    );
}

#[test]
fn an_operator_pause_holds_the_next_batch_and_a_resume_goes_on() {
    let mut r = Run::new(policy(2));
    r.revision = 2;
    let first = r.pass(0, V2, &all_available(&r.current.clone()));
    assert_eq!(first, ["v2", "v2", "v1", "v1", "v1", "v1"]);

    // Paused with the first batch in flight: it is still judged, nothing more starts.
    r.paused = true;
    let ready = all_available(&r.current.clone());
    r.pass(1_000, V2, &ready);
    assert!(r.record.as_ref().unwrap().held);
    assert!(r.events.contains(&RolloutEvent::Held { paused: true }));
    assert_eq!(r.pass(6_000, V2, &ready), first, "no batch while paused");
    assert_eq!(r.pass(60_000, V2, &ready), first);
    let p = &r.record.as_ref().unwrap().services["web"].slots;
    assert_eq!(
        p.values()
            .filter(|s| s.outcome == Some(SlotOutcome::Done))
            .count(),
        2,
        "the batch in flight was judged while paused"
    );
    assert_eq!(r.state(), Some(RolloutState::Progressing));

    // Resumed: the next batch at once, and on to the end.
    r.paused = false;
    let got = r.pass(61_000, V2, &ready);
    assert_eq!(got, ["v2", "v2", "v2", "v2", "v1", "v1"]);
    assert!(r.events.contains(&RolloutEvent::Held { paused: false }));
    assert!(!r.record.as_ref().unwrap().held);
}

#[test]
fn a_pause_put_before_a_change_holds_its_rollout_from_the_start() {
    let mut r = Run::new(policy(1));
    r.revision = 2;
    r.paused = true;
    let got = r.pass(0, V2, &all_available(&r.current.clone()));
    assert_eq!(got, ["v1"; 6], "nothing handed out while paused");
    assert_eq!(r.state(), Some(RolloutState::Progressing));
    assert!(r.record.as_ref().unwrap().held);
    r.paused = false;
    let got = r.pass(1_000, V2, &all_available(&r.current.clone()));
    assert_eq!(got, ["v2", "v1", "v1", "v1", "v1", "v1"]);
}

#[test]
fn a_pause_with_no_rollout_under_way_holds_nothing() {
    let mut r = Run::new(policy(1));
    r.paused = true;
    let got = r.pass(0, ["v1"; 6], &all_available(&r.current.clone()));
    assert_eq!(got, ["v1"; 6]);
    assert_eq!(r.record, None);
    assert!(r.events.is_empty());
}

#[test]
fn the_dry_run_plan_lists_batches_of_parallelism_and_the_order_the_agents_will_use() {
    use crate::assignment::{MountSpec, PortBinding};
    let current = cluster(1, ["v1"; 6]);
    let now: BTreeMap<&str, &Assignment> = current.iter().map(|(h, a)| (h.as_str(), a)).collect();
    let with = |f: &dyn Fn(&mut ContainerSpec)| {
        let mut t = cluster(2, V2);
        for a in t.values_mut() {
            for s in &mut a.slots {
                f(&mut s.container);
            }
        }
        t
    };
    let port = |c: &mut ContainerSpec| {
        c.ports = vec![PortBinding {
            container_port: 80,
            host_port: Some(8080),
            protocol: "tcp".into(),
            host_ip: None,
        }]
    };
    let mount = |c: &mut ContainerSpec| {
        c.mounts = vec![MountSpec {
            kind: "volume".into(),
            source: "data".into(),
            target: "/data".into(),
            read_only: false,
        }]
    };
    let mut ported = cluster(1, ["v1"; 6]);
    for a in ported.values_mut() {
        for s in &mut a.slots {
            port(&mut s.container);
        }
    }
    let ported_now: BTreeMap<&str, &Assignment> =
        ported.iter().map(|(h, a)| (h.as_str(), a)).collect();
    let pol = |parallelism, order| {
        BTreeMap::from([(
            "web".to_owned(),
            UpdatePolicy {
                parallelism,
                order,
                ..UpdatePolicy::default()
            },
        )])
    };
    let batches = |p: &ServicePlan| -> Vec<Vec<u32>> {
        p.batches
            .iter()
            .map(|b| b.iter().map(|(r, _)| *r).collect())
            .collect()
    };
    // (name, now, target, policies, batches, order, fallback mentions)
    #[allow(clippy::type_complexity)]
    let cases: Vec<(
        &str,
        &BTreeMap<&str, &Assignment>,
        BTreeMap<String, Assignment>,
        BTreeMap<String, UpdatePolicy>,
        Vec<Vec<u32>>,
        UpdateOrder,
        Option<&str>,
    )> = vec![
        (
            "parallelism 2",
            &now,
            cluster(2, V2),
            pol(2, None),
            vec![vec![1, 2], vec![3, 4], vec![5, 6]],
            UpdateOrder::StartFirst,
            None,
        ),
        (
            "parallelism 0: all at once",
            &now,
            cluster(2, V2),
            pol(0, None),
            vec![vec![1, 2, 3, 4, 5, 6]],
            UpdateOrder::StartFirst,
            None,
        ),
        (
            "a host port both bind",
            &ported_now,
            with(&port),
            pol(4, Some(UpdateOrder::StartFirst)),
            vec![vec![1, 2, 3, 4], vec![5, 6]],
            UpdateOrder::StopFirst,
            Some("host port 8080/tcp"),
        ),
        (
            "a new host port the old one does not bind",
            &now,
            with(&port),
            pol(6, None),
            vec![vec![1, 2, 3, 4, 5, 6]],
            UpdateOrder::StartFirst,
            None,
        ),
        (
            "a data mount",
            &now,
            with(&mount),
            pol(6, None),
            vec![vec![1, 2, 3, 4, 5, 6]],
            UpdateOrder::StopFirst,
            Some("data mount /data"),
        ),
        (
            "stop-first asked: no fallback to explain",
            &now,
            with(&mount),
            pol(6, Some(UpdateOrder::StopFirst)),
            vec![vec![1, 2, 3, 4, 5, 6]],
            UpdateOrder::StopFirst,
            None,
        ),
    ];
    for (name, now, target, policies, want, order, fallback) in cases {
        let plans = plan("s", now, &target, &policies);
        assert_eq!(plans.len(), 1, "{name}");
        let p = &plans[0];
        assert_eq!(batches(p), want, "{name}");
        assert_eq!(p.order, order, "{name}");
        match (fallback, &p.fallback) {
            (None, None) => {}
            (Some(w), Some(got)) => assert!(got.contains(w), "{name}: {got}"),
            (w, got) => panic!("{name}: fallback {got:?}, want {w:?}"),
        }
    }
    assert!(
        plan("s", &now, &cluster(2, ["v1"; 6]), &pol(1, None)).is_empty(),
        "nothing changed, nothing to roll"
    );
    assert_eq!(
        plan("s", &now, &cluster(2, V2), &pol(1, None))[0].batches[0],
        vec![(1, "h1".to_owned())],
        "each slot with its host"
    );
}

/// `cluster(rev, ["v1"; 6])` with `DB_HOST=<db_host>` injected into every slot, as the
/// controller injects a dependency's address.
fn with_db_at(rev: i64, db_host: &str) -> BTreeMap<String, Assignment> {
    let mut c = cluster(rev, ["v1"; 6]);
    for a in c.values_mut() {
        for s in &mut a.slots {
            s.container.env.insert("DB_HOST".into(), db_host.into());
        }
    }
    c
}

fn db_hosts(assigned: &BTreeMap<String, Assignment>) -> Vec<String> {
    let mut by: BTreeMap<u32, String> = BTreeMap::new();
    for a in assigned.values() {
        for s in &a.slots {
            by.insert(s.replica, s.container.env["DB_HOST"].clone());
        }
    }
    by.into_values().collect()
}

#[test]
fn a_dependencys_new_address_rolls_out_by_the_same_rules_even_after_a_completed_rollout() {
    let policies = BTreeMap::from([("web".to_owned(), policy(2))]);
    let mut record: Option<Rollout> = Some(Rollout {
        to_revision: 2,
        from_revision: 1,
        state: RolloutState::Complete,
        ..Rollout::default()
    });
    for (name, previous) in [("no record", None), ("a completed record", record.take())] {
        let current = with_db_at(2, "10.0.0.1");
        let mut target = with_db_at(2, "10.0.0.2");
        let reports = all_available(&current);
        let refs: Vec<&SlotReport> = reports.iter().collect();
        let (got, events) = step(
            &Inputs {
                stack: "s",
                revision: 2,
                now_ms: 50_000,
                previous: previous.as_ref(),
                current: current.iter().map(|(h, a)| (h.as_str(), a)).collect(),
                reports: &refs,
                policies: &policies,
                paused: false,
            },
            &mut target,
        );
        let got = got.unwrap_or_else(|| panic!("{name}: no rollout"));
        assert_eq!(got.state, RolloutState::Progressing, "{name}");
        assert_eq!(
            (got.from_revision, got.to_revision, got.started_at_ms),
            (2, 2, 50_000),
            "{name}"
        );
        assert!(
            events.contains(&RolloutEvent::Started { to: 2, from: 2 }),
            "{name}: {events:?}"
        );
        assert_eq!(
            db_hosts(&target),
            ["10.0.0.2", "10.0.0.2", "10.0.0.1", "10.0.0.1", "10.0.0.1", "10.0.0.1"],
            "{name}: a batch of 2 first"
        );
    }
}

#[test]
fn a_service_rolled_back_stays_back_while_another_one_rolls_at_the_same_revision() {
    // web failed at revision 2 and went back to v1; then api's dependency moved.
    let mut r = Run::new(policy(1));
    r.revision = 2;
    r.policy.deadline = Duration::from_secs(1);
    r.pass(0, V2, &[]);
    r.pass(2_000, V2, &[]);
    let back = r.pass(3_000, V2, &all_available(&r.current.clone()));
    r.pass(9_000, V2, &all_available(&r.current.clone()));
    assert_eq!(r.state(), Some(RolloutState::RolledBack), "{back:?}");
    let mut target = cluster(2, V2);
    let mut current = r.current.clone();
    for set in [&mut target, &mut current] {
        for (i, a) in set.values_mut().enumerate() {
            a.slots.push(slot("api", i as u32 + 1, "api:1"));
        }
    }
    for a in target.values_mut() {
        for s in a.slots.iter_mut().filter(|s| s.service == "api") {
            s.container.env.insert("WEB_HOST".into(), "moved".into());
        }
    }
    let policies = BTreeMap::from([("web".to_owned(), r.policy), ("api".to_owned(), policy(1))]);
    let (got, _) = step(
        &Inputs {
            stack: "s",
            revision: 2,
            now_ms: 10_000,
            previous: r.record.as_ref(),
            current: current.iter().map(|(h, a)| (h.as_str(), a)).collect(),
            reports: &[],
            policies: &policies,
            paused: false,
        },
        &mut target,
    );
    let got = got.unwrap();
    assert_eq!(got.services["web"].state, RolloutState::RolledBack);
    assert_eq!(got.services["api"].state, RolloutState::Progressing);
    assert_eq!(got.state, RolloutState::Progressing);
    let web: Vec<&str> = target
        .values()
        .flat_map(|a| a.slots.iter())
        .filter(|s| s.service == "web")
        .map(|s| s.container.image.as_str())
        .collect();
    assert!(web.iter().all(|i| *i == "v1"), "web stays back: {web:?}");
    let moved = target
        .values()
        .flat_map(|a| a.slots.iter())
        .filter(|s| s.service == "api" && s.container.env.contains_key("WEB_HOST"))
        .count();
    assert_eq!(moved, 1, "api a slot at a time");
}

#[test]
fn a_change_a_finished_rollout_never_covered_is_rolled_out_afresh_not_at_once() {
    let mut r = Run::new(policy(1));
    r.revision = 2;
    let mut now = 0;
    while r.state() != Some(RolloutState::Complete) {
        let ready = all_available(&r.current.clone());
        r.pass(now, V2, &ready);
        now += 6_000;
    }
    // Same revision, yet the containers now differ (a Berth upgrade shapes them otherwise).
    let got = r.pass(now, ["v2b"; 6], &all_available(&r.current.clone()));
    assert_eq!(got, ["v2b", "v2", "v2", "v2", "v2", "v2"]);
    assert_eq!(r.state(), Some(RolloutState::Progressing));
    // And a finished rollout with nothing changed stays as it is.
    let mut done = Run::new(policy(0));
    done.revision = 2;
    done.pass(0, V2, &[]);
    let ready = all_available(&done.current.clone());
    done.pass(1_000, V2, &ready);
    done.pass(7_000, V2, &ready);
    assert_eq!(done.state(), Some(RolloutState::Complete));
    let record = done.record.clone();
    done.pass(8_000, V2, &ready);
    assert_eq!(done.record, record);
}
