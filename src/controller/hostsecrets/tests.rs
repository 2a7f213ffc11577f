use super::*;
use crate::assignment::{ContainerSpec, NetworkSpec, Slot};
use crate::spec::DesiredState;

/// One slot of `stack`'s `app`, with image `image`, `PW` from secret `pw` (pinned to `pin`).
fn slot(replica: u32, image: &str, pin: Option<i64>) -> Slot {
    let container = ContainerSpec {
        image: image.into(),
        env: BTreeMap::from([("PW".to_owned(), "{{secret:pw}}".to_owned())]),
        secret_revisions: pin.map(|p| ("pw".to_owned(), p)).into_iter().collect(),
        ..Default::default()
    };
    Slot::bare("app", replica, container)
}

fn assignment(stack: &str, slots: Vec<Slot>) -> Assignment {
    Assignment {
        deleted: None,
        stack: stack.into(),
        spec_revision: 5,
        desired_state: DesiredState::Running,
        network: NetworkSpec {
            name: "n".into(),
            driver: "bridge".into(),
            create: true,
        },
        volumes: vec![],
        slots,
    }
}

fn sources() -> Sources {
    Sources {
        current: BTreeMap::from([
            ("pw".to_owned(), (9, "new".to_owned())),
            ("reg-pw".to_owned(), (4, "hunter2".to_owned())),
        ]),
        past: BTreeMap::from([(("pw".to_owned(), 7), "old".to_owned())]),
        logins: BTreeMap::from([(
            "ghcr.io".to_owned(),
            RegistryLogin {
                username: "bot".into(),
                password: "{{secret:reg-pw}}".into(),
            },
        )]),
    }
}

fn secret(current: i64, versions: &[(i64, &str)]) -> Vec<u8> {
    serde_json::to_vec(&HostSecret {
        current,
        versions: versions
            .iter()
            .map(|(r, v)| (*r, (*v).to_owned()))
            .collect(),
    })
    .unwrap()
}

fn held(values: &[(&str, &[u8])]) -> BTreeMap<String, Held> {
    values
        .iter()
        .map(|(k, v)| {
            let h = Held {
                hash: hash(v),
                mod_revision: 3,
            };
            ((*k).to_owned(), h)
        })
        .collect()
}

/// (put keys, delete keys) of a plan.
fn keys_of(w: &CopyWrites) -> (Vec<&str>, Vec<&str>) {
    fn key(w: &Write) -> &str {
        match w {
            Write::Put { key, .. } | Write::Delete { key, .. } => key,
        }
    }
    (
        w.puts.iter().map(key).collect(),
        w.deletes.iter().map(key).collect(),
    )
}

#[test]
fn each_host_is_handed_exactly_the_copies_its_slots_need() {
    let one_on_a = vec![("a", assignment("s", vec![slot(1, "busybox", Some(9))]))];
    let two_pins_on_a = vec![(
        "a",
        assignment(
            "s",
            vec![slot(1, "busybox", Some(7)), slot(2, "busybox", Some(9))],
        ),
    )];
    let moved_to_b = vec![("b", assignment("s", vec![slot(1, "busybox", Some(9))]))];
    let private_image = vec![(
        "a",
        assignment("s", vec![slot(1, "ghcr.io/x/y:1", Some(9))]),
    )];
    let a_copy = secret(9, &[(9, "new")]);
    let login = serde_json::to_vec(&RegistryLogin {
        username: "bot".into(),
        password: "hunter2".into(),
    })
    .unwrap();
    // (case, assignments, agentless hosts, held copies, wanted copies, puts, deletes)
    type Case<'c> = (
        &'c str,
        &'c [(&'c str, Assignment)],
        &'c [&'c str],
        BTreeMap<String, Held>,
        Vec<(String, Vec<u8>)>,
        Vec<&'c str>,
        Vec<&'c str>,
    );
    let cases: Vec<Case> = vec![
        (
            "a new slot: its host gets the copy",
            &one_on_a,
            &[],
            held(&[]),
            vec![(keys::host_secret("a", "pw"), a_copy.clone())],
            vec!["hostsecrets/a/pw"],
            vec![],
        ),
        (
            "an unchanged copy: nothing written",
            &one_on_a,
            &[],
            held(&[("hostsecrets/a/pw", &a_copy)]),
            vec![(keys::host_secret("a", "pw"), a_copy.clone())],
            vec![],
            vec![],
        ),
        (
            "two slots pin two revisions during a rotation: one copy holds both",
            &two_pins_on_a,
            &[],
            held(&[("hostsecrets/a/pw", &a_copy)]),
            vec![(
                keys::host_secret("a", "pw"),
                secret(9, &[(7, "old"), (9, "new")]),
            )],
            vec!["hostsecrets/a/pw"],
            vec![],
        ),
        (
            "a slot that moves takes its copy away",
            &moved_to_b,
            &[],
            held(&[("hostsecrets/a/pw", &a_copy)]),
            vec![(keys::host_secret("b", "pw"), a_copy.clone())],
            vec!["hostsecrets/b/pw"],
            vec!["hostsecrets/a/pw"],
        ),
        (
            "a deleted stack's copies go",
            &[],
            &[],
            held(&[
                ("hostsecrets/a/pw", &a_copy),
                ("hostsecrets/a/registries/ghcr.io", &login),
            ]),
            vec![],
            vec![],
            vec!["hostsecrets/a/pw", "hostsecrets/a/registries/ghcr.io"],
        ),
        (
            "a registry login travels with its secret password filled in",
            &private_image,
            &[],
            held(&[("hostsecrets/a/pw", &a_copy)]),
            vec![
                (keys::host_secret("a", "pw"), a_copy.clone()),
                (keys::host_registry("a", "ghcr.io"), login.clone()),
            ],
            vec!["hostsecrets/a/registries/ghcr.io"],
            vec![],
        ),
        (
            "an agentless host gets none: the controller reads secrets itself",
            &one_on_a,
            &["a"],
            held(&[]),
            vec![],
            vec![],
            vec![],
        ),
    ];
    for (name, assignments, agentless, held, want, puts, deletes) in cases {
        let n = needs(assignments.iter().map(|(h, a)| (*h, a)), |h| {
            agentless.contains(&h)
        });
        let w = wanted(&n, &sources());
        let want: BTreeMap<String, Vec<u8>> = want.into_iter().collect();
        assert!(w == want, "{name}: wanted copies differ");
        let held = held.iter().map(|(k, h)| (k.as_str(), h)).collect();
        let p = plan(w, &held);
        assert_eq!(keys_of(&p), (puts, deletes), "{name}");
    }
}

#[test]
fn a_secret_that_is_gone_or_compacted_is_never_handed_out_from_history() {
    let pinned_old = [("a", assignment("s", vec![slot(1, "busybox", Some(5))]))];
    let n = needs(pinned_old.iter().map(|(h, a)| (*h, a)), |_| false);
    assert_eq!(
        past_needed(&n, &sources()),
        BTreeSet::from([("pw".to_owned(), 5)]),
        "an old pin is read from etcd's history"
    );
    // Revision 5 was compacted away (it is not in `past`): the current value, which the
    // agent reports as such.
    assert!(
        wanted(&n, &sources())[&keys::host_secret("a", "pw")] == secret(9, &[(9, "new")]),
        "compacted: the current value"
    );
    let mut deleted = sources();
    deleted.current.remove("pw");
    assert!(
        wanted(&n, &deleted).is_empty(),
        "a deleted secret: no copy at all"
    );
}
