//! No number panics Berth: arbitrary times and sizes in a stack (huge, negative, NaN,
//! infinite) and in host registrations (which nothing validates) go through validation,
//! placement, the assignments, the Docker create body and the probe and action timings,
//! and none of them panics or overflows, with overflow checks on (debug) as without.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;

use bollard::models::ContainerCreateBody;

use berth::agent::runtime::{create_body, CreateRequest};
use berth::health::{Pace, MIN_PROBE_TIME};
use berth::scheduler::assign::assignments_for;
use berth::scheduler::plan::{plan, HostView, Liveness, Options};
use berth::spec::{
    validate, HealthCheck, HostConstraints, HostRegistration, PotentialAction, Resources, Seconds,
    Service, Stack, UpdateConfig,
};

/// Any `f64`, with the values that break naive conversions made likely.
fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(f64::MAX),
        Just(f64::MIN_POSITIVE),
        Just(1e20),
        Just(1e300),
        Just(-1.0),
        Just(0.0),
        Just(86_400.0),
        Just(86_400.5),
        Just(604_800.0),
        Just(604_800.5),
        Just(4096.0),
        Just(4096.5),
        0.0..100.0f64,
        0.0..1e6f64,
    ]
}

fn maybe_number() -> impl Strategy<Value = Option<f64>> {
    prop::option::of(number())
}

/// Any `u64`, with the edges made likely.
fn size() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        Just(u64::MAX),
        Just(u64::MAX / 2),
        Just(1 << 44),
        Just(64 << 20),
        Just((64 << 20) + 1),
        Just(0),
        0..100_000u64,
        0..(1u64 << 30),
    ]
}

prop_compose! {
    fn service(i: usize)(
        check in (maybe_number(), maybe_number(), maybe_number(), any::<Option<u32>>()),
        action_timeout in maybe_number(),
        update in (maybe_number(), maybe_number(), maybe_number(), maybe_number(), any::<Option<i64>>()),
        cpus in maybe_number(),
        memory in prop::option::of(size()),
        min_cpu in maybe_number(),
        min_memory in prop::option::of(size()),
        // Not u32::MAX: placing a stack that validation rejects for it would place
        // billions of slots; `validate` caps replicas, and is tested for it.
        replicas in prop_oneof![Just(None), (0..4u32).prop_map(Some)],
        command_check in any::<bool>(),
    ) -> Service {
        let (interval, timeout, start_period, retries) = check;
        let (delay, monitor, deadline, max_failure_ratio, parallelism) = update;
        Service {
            name: format!("s{i}"),
            image: "berth-test/busybox:latest".into(),
            health_check: Some(HealthCheck {
                type_: if command_check { "command" } else { "tcp" }.into(),
                command: Some(berth::spec::Command::Line("true".into())),
                port: Some(80),
                interval,
                timeout,
                retries,
                start_period,
                ..Default::default()
            }),
            potential_action: vec![PotentialAction {
                name: "migrate".into(),
                command: Some(berth::spec::Command::Line("true".into())),
                timeout: action_timeout,
                ..Default::default()
            }],
            update: Some(UpdateConfig {
                parallelism,
                delay,
                monitor,
                deadline,
                max_failure_ratio,
                ..Default::default()
            }),
            resources: Some(Resources { cpus, memory_mb: memory }),
            host_constraints: Some(HostConstraints {
                min_cpu,
                min_memory,
                ..Default::default()
            }),
            replicas,
            ..Default::default()
        }
    }
}

prop_compose! {
    fn stack()(
        services in (service(0), service(1)),
        single in any::<bool>(),
        top in (maybe_number(), maybe_number(), prop::option::of(size())),
    ) -> Stack {
        let (delay, min_cpu, min_memory) = top;
        let mode = if single { "single-host" } else { "multi-host" };
        Stack {
            item_list_element: vec![services.0, services.1],
            deployment: Some(berth::spec::Deployment {
                mode: Some(mode.into()),
                host_constraints: vec![HostConstraints { min_cpu, min_memory, ..Default::default() }],
                update: Some(UpdateConfig { delay, ..Default::default() }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

prop_compose! {
    fn host(i: usize)(cpus in number(), memory_mb in size()) -> HostRegistration {
        HostRegistration {
            id: format!("h{i}"),
            address: format!("10.0.0.{i}"),
            cpus,
            memory_mb,
            ..Default::default()
        }
    }
}

/// Everything a stack's numbers become, valid or not, checked for sense where an answer
/// that does not panic could still be nonsense to Docker or the agent: validated, its
/// rollout and probe times read, placed on `regs` (twice: fresh, then sticky), assigned,
/// and each slot's Docker create body, which is returned.
fn drive(stack: &Stack, regs: &[HostRegistration]) -> Vec<ContainerCreateBody> {
    validate(stack);
    for svc in &stack.item_list_element {
        let policy = stack.update_policy(svc);
        for d in [policy.delay, policy.monitor, policy.deadline] {
            assert!(d <= Duration::from_secs(7 * 86_400), "{d:?}");
        }
        if let Some(check) = &svc.health_check {
            let pace = Pace::of(check);
            for d in [pace.interval, pace.timeout] {
                assert!(
                    d >= MIN_PROBE_TIME && d <= Duration::from_secs(86_400),
                    "{d:?}"
                );
            }
            assert!(pace.start_period <= Duration::from_secs(86_400));
        }
        for a in &svc.potential_action {
            assert!(Seconds::ACTION_TIMEOUT.duration(a.timeout) <= Duration::from_secs(86_400));
        }
    }
    let views: Vec<HostView> = regs
        .iter()
        .map(|reg| HostView {
            reg,
            liveness: Liveness::Ready,
            cordoned: false,
            draining: false,
            removing: false,
        })
        .collect();
    let opts = Options {
        max_unavailable_fraction: 0.5,
        ..Options::default()
    };
    let placement = plan(&[("s", stack)], &views, &BTreeMap::new(), &opts);
    // Once more on its own placement: the sticky pass books the same numbers.
    plan(&[("s", stack)], &views, &placement.hosts, &opts);
    let by_id: BTreeMap<String, HostRegistration> =
        regs.iter().map(|r| (r.id.clone(), r.clone())).collect();
    let assignments = assignments_for("s", stack, 1, &placement.hosts, &by_id, &BTreeMap::new());
    let mut bodies = Vec::new();
    for slot in assignments.values().flat_map(|a| &a.slots) {
        let body = create_body(&CreateRequest {
            name: "s.web.1",
            spec: &slot.container,
            labels: BTreeMap::new(),
            network: "berth-s",
        });
        let host = body.host_config.clone().unwrap_or_default();
        assert!(host.memory.unwrap_or(0) >= 0, "{:?}", host.memory);
        assert!(host.nano_cpus.unwrap_or(0) >= 0, "{:?}", host.nano_cpus);
        if let Some(h) = &body.healthcheck {
            for nanos in [h.interval, h.timeout, h.start_period] {
                assert!(nanos.unwrap_or(0) >= 0, "{nanos:?}");
            }
        }
        bodies.push(body);
    }
    bodies
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn no_number_in_a_stack_or_a_host_registration_panics(
        stack in stack(),
        regs in (host(0), host(1), host(2)),
    ) {
        let regs = [regs.0, regs.1, regs.2];
        drive(&stack, &regs);
    }

    #[test]
    fn a_number_validates_exactly_within_its_bound_and_then_arrives_as_written(
        field in prop::sample::select(Field::ALL.to_vec()),
        x in number(),
        mb in size(),
    ) {
        check_one(field, x, mb);
    }
}

/// Each time and size a stack sets, one at a time.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Field {
    Interval,
    Timeout,
    StartPeriod,
    ActionTimeout,
    Delay,
    Monitor,
    Deadline,
    Cpus,
    MinCpu,
    MemoryMb,
    MinMemory,
}

impl Field {
    const ALL: [Field; 11] = [
        Field::Interval,
        Field::Timeout,
        Field::StartPeriod,
        Field::ActionTimeout,
        Field::Delay,
        Field::Monitor,
        Field::Deadline,
        Field::Cpus,
        Field::MinCpu,
        Field::MemoryMb,
        Field::MinMemory,
    ];
}

/// A valid one-service stack with `field` set to `x` (a time or CPUs) or `mb` (memory);
/// it validates exactly when the number is within the bound the README states, and then
/// the agent and Docker get the number as written.
fn check_one(field: Field, x: f64, mb: u64) {
    const DAY: f64 = 86_400.0;
    const WEEK: f64 = 7.0 * DAY;
    let mut svc = Service {
        name: "web".into(),
        image: "i".into(),
        health_check: Some(HealthCheck {
            type_: "command".into(),
            command: Some(berth::spec::Command::Line("true".into())),
            ..Default::default()
        }),
        potential_action: vec![PotentialAction {
            name: "m".into(),
            command: Some(berth::spec::Command::Line("true".into())),
            ..Default::default()
        }],
        update: Some(UpdateConfig::default()),
        resources: Some(Resources::default()),
        host_constraints: Some(HostConstraints::default()),
        ..Default::default()
    };
    let check = svc.health_check.as_mut().unwrap();
    let update = svc.update.as_mut().unwrap();
    let resources = svc.resources.as_mut().unwrap();
    let constraints = svc.host_constraints.as_mut().unwrap();
    let within = match field {
        Field::Interval => {
            check.interval = Some(x);
            x > 0.0 && x <= DAY
        }
        Field::Timeout => {
            check.timeout = Some(x);
            x > 0.0 && x <= DAY
        }
        Field::StartPeriod => {
            check.start_period = Some(x);
            (0.0..=DAY).contains(&x)
        }
        Field::ActionTimeout => {
            svc.potential_action[0].timeout = Some(x);
            x > 0.0 && x <= DAY
        }
        Field::Delay => {
            update.delay = Some(x);
            (0.0..=WEEK).contains(&x)
        }
        Field::Monitor => {
            update.monitor = Some(x);
            (0.0..=WEEK).contains(&x)
        }
        Field::Deadline => {
            update.deadline = Some(x);
            (0.0..=WEEK).contains(&x)
        }
        Field::Cpus => {
            resources.cpus = Some(x);
            (0.0..=4096.0).contains(&x)
        }
        Field::MinCpu => {
            constraints.min_cpu = Some(x);
            (0.0..=4096.0).contains(&x)
        }
        Field::MemoryMb => {
            resources.memory_mb = Some(mb);
            mb <= 64 << 20
        }
        Field::MinMemory => {
            constraints.min_memory = Some(mb);
            mb <= 64 << 20
        }
    };
    let stack = Stack {
        item_list_element: vec![svc],
        ..Default::default()
    };
    let problems = validate(&stack);
    assert_eq!(
        problems.is_empty(),
        within,
        "{field:?} = {x} / {mb}: {problems:?}"
    );
    let roomy = [HostRegistration {
        id: "h".into(),
        address: "10.0.0.1".into(),
        cpus: 4096.0,
        memory_mb: 64 << 20,
        ..Default::default()
    }];
    let bodies = drive(&stack, &roomy);
    if !within {
        return;
    }

    let [body] = bodies.as_slice() else {
        panic!("{field:?} = {x} / {mb}: placed {} times", bodies.len());
    };
    let host = body.host_config.clone().unwrap_or_default();
    let docker_check = body.healthcheck.clone().unwrap_or_default();
    let svc = &stack.item_list_element[0];
    let pace = Pace::of(svc.health_check.as_ref().unwrap());
    let policy = stack.update_policy(svc);
    let secs = |d: Duration| Duration::from_secs_f64(x) == d;
    let nanos = (x * 1e9) as i64;
    let arrived = match field {
        Field::Interval => {
            pace.interval == Duration::from_secs_f64(x).max(MIN_PROBE_TIME)
                && docker_check.interval == Some(nanos)
        }
        Field::Timeout => {
            pace.timeout == Duration::from_secs_f64(x).max(MIN_PROBE_TIME)
                && docker_check.timeout == Some(nanos)
        }
        Field::StartPeriod => secs(pace.start_period) && docker_check.start_period == Some(nanos),
        Field::ActionTimeout => secs(Seconds::ACTION_TIMEOUT.duration(Some(x))),
        Field::Delay => secs(policy.delay),
        Field::Monitor => secs(policy.monitor),
        Field::Deadline => secs(policy.deadline),
        Field::Cpus => host.nano_cpus == (x > 0.0).then_some(nanos),
        Field::MinCpu => true,
        Field::MemoryMb => host.memory == Some((mb << 20) as i64),
        Field::MinMemory => true,
    };
    assert!(
        arrived,
        "{field:?} = {x} / {mb}: {host:?} {docker_check:?} {pace:?} {policy:?}"
    );
}

#[test]
fn the_values_of_the_audit_do_not_panic() {
    let svc = Service {
        name: "web".into(),
        image: "i".into(),
        health_check: Some(HealthCheck {
            type_: "command".into(),
            command: Some(berth::spec::Command::Line("true".into())),
            interval: Some(1e20),
            timeout: Some(1e20),
            start_period: Some(1e20),
            ..Default::default()
        }),
        potential_action: vec![PotentialAction {
            name: "m".into(),
            command: Some(berth::spec::Command::Line("true".into())),
            timeout: Some(1e20),
            ..Default::default()
        }],
        resources: Some(Resources {
            cpus: Some(1e20),
            memory_mb: Some(u64::MAX),
        }),
        ..Default::default()
    };
    let stack = Stack {
        item_list_element: vec![svc],
        ..Default::default()
    };
    let regs = [
        HostRegistration {
            id: "big".into(),
            address: "10.0.0.1".into(),
            cpus: 1e300,
            memory_mb: u64::MAX,
            ..Default::default()
        },
        HostRegistration {
            id: "odd".into(),
            address: "10.0.0.2".into(),
            cpus: f64::NAN,
            memory_mb: u64::MAX,
            ..Default::default()
        },
    ];
    drive(&stack, &regs);
}
