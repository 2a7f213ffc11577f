//! The etcd key layout, in one place. Every key is relative to the configured prefix
//! (default `/berth`); [`Store`](super::Store) adds the prefix.

/// `stacks/<id>`: desired stack JSON, written by users.
pub fn stack(id: &str) -> String {
    format!("{STACKS}{id}")
}
pub const STACKS: &str = "stacks/";

/// `hosts/<id>`: host registration under the writer's lease.
pub fn host(id: &str) -> String {
    format!("{HOSTS}{id}")
}
pub const HOSTS: &str = "hosts/";

/// `assignments/<host>/<stack>`: the slots of one stack the scheduler gave one host.
/// Grouped by host first so an agent watches only its own keys.
pub fn assignment(host: &str, stack: &str) -> String {
    format!("{ASSIGNMENTS}{host}/{stack}")
}
pub fn assignments_of(host: &str) -> String {
    format!("{ASSIGNMENTS}{host}/")
}
pub const ASSIGNMENTS: &str = "assignments/";

/// `reports/<host>/<stack>/<slot>`: what a host's agent observed about one slot.
pub fn report(host: &str, stack: &str, slot: &str) -> String {
    format!("{REPORTS}{host}/{stack}/{slot}")
}
pub fn reports_of(host: &str) -> String {
    format!("{REPORTS}{host}/")
}
pub const REPORTS: &str = "reports/";

/// `rollouts/<id>`: the controller's record of a stack's rolling update, so a new leader
/// carries it on where the old one left it.
pub fn rollout(stack: &str) -> String {
    format!("{ROLLOUTS}{stack}")
}
pub const ROLLOUTS: &str = "rollouts/";

/// `pause/<id>`: an operator's hold on a stack's rollouts (`berth rollout pause`); the
/// value is ignored, and deleting the key resumes.
pub fn pause(stack: &str) -> String {
    format!("{PAUSE}{stack}")
}
pub const PAUSE: &str = "pause/";

/// `history/<id>/<revision>`: one spec revision of a stack, its images and how its
/// rollout ended, kept by the controller because etcd compaction erases etcd's own.
pub fn history(stack: &str, revision: i64) -> String {
    format!("{HISTORY}{stack}/{revision}")
}
pub fn history_of(stack: &str) -> String {
    format!("{HISTORY}{stack}/")
}
pub const HISTORY: &str = "history/";

/// `status/stacks/<id>`: stack status, written by the controller for users.
pub fn status(stack: &str) -> String {
    format!("{STATUS}{stack}")
}
pub const STATUS: &str = "status/stacks/";

/// `maintenance/<host>`: an operator's cordon or drain of a host (`berth host ...`).
pub fn maintenance(host: &str) -> String {
    format!("{MAINTENANCE}{host}")
}
pub const MAINTENANCE: &str = "maintenance/";

/// `agentless/<host>`: a Docker host the controller drives itself (`berth host add`).
pub fn agentless(host: &str) -> String {
    format!("{AGENTLESS}{host}")
}
pub const AGENTLESS: &str = "agentless/";

/// `rebalance/<stack>`: a request to place a stack afresh once (`berth rebalance --apply`).
pub fn rebalance(stack: &str) -> String {
    format!("{REBALANCE}{stack}")
}
pub const REBALANCE: &str = "rebalance/";

/// `actions/<host>/<stack>/<service>`: the record of a service's post-start actions,
/// under the host that ran them (an agent writes only below its own host).
pub fn actions(host: &str, stack: &str, service: &str) -> String {
    format!("{ACTIONS}{host}/{stack}/{service}")
}
pub const ACTIONS: &str = "actions/";

/// `events/<writer>/<stack>/<time>-<n>`: recent events of a stack as one writer (the
/// controller, or a host's agent) recorded them; an agent writes only below its host.
pub fn events_of(writer: &str, stack: &str) -> String {
    format!("{EVENTS}{writer}/{stack}/")
}
pub const EVENTS: &str = "events/";

/// `secrets/<name>`: a secret's value, for `{{secret:NAME}}` in environment values.
pub fn secret(name: &str) -> String {
    format!("{SECRETS}{name}")
}
pub const SECRETS: &str = "secrets/";

/// `registries/<registry>`: the login for an image registry, `{"username", "password"}`
/// (`berth registry login`); `<registry>` is normalized (`registry::normalize_registry`).
pub fn registry(name: &str) -> String {
    format!("{REGISTRIES}{name}")
}
pub const REGISTRIES: &str = "registries/";

/// `hostsecrets/<host>/<name>`: the copy of secret `<name>` the leader hands host
/// `<host>`'s agent while a slot placed there uses it (`hostsecret::HostSecret`), so an
/// agent reads no other host's secrets.
pub fn host_secret(host: &str, name: &str) -> String {
    format!("{HOST_SECRETS}{host}/{name}")
}
/// `hostsecrets/<host>/registries/<registry>`: the login for a registry an image placed on
/// `<host>` names, its password filled in (`registry::RegistryLogin`). Secret names have
/// no `/`, so it never clashes with a secret's copy.
pub fn host_registry(host: &str, registry: &str) -> String {
    format!("{HOST_SECRETS}{host}/{HOST_REGISTRIES}{registry}")
}
pub fn host_secrets_of(host: &str) -> String {
    format!("{HOST_SECRETS}{host}/")
}
pub const HOST_SECRETS: &str = "hostsecrets/";
/// The segment below `hostsecrets/<host>/` that holds registry logins.
pub const HOST_REGISTRIES: &str = "registries/";

/// `leader`: the election the controllers campaign in; the leader's key lives below it.
pub const LEADER: &str = "leader";

/// Split `<a>/<b>/...` below `prefix` into its parts; `None` when the key is not below it.
pub fn parts<'k>(key: &'k str, prefix: &str) -> Option<Vec<&'k str>> {
    let rest = key.strip_prefix(prefix)?;
    if rest.is_empty() {
        return None;
    }
    Some(rest.split('/').collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_parts() {
        let cases = [
            (assignment("h1", "shop"), ASSIGNMENTS, vec!["h1", "shop"]),
            (
                report("h1", "shop", "db.0"),
                REPORTS,
                vec!["h1", "shop", "db.0"],
            ),
            (stack("hello"), STACKS, vec!["hello"]),
            (history("hello", 7), HISTORY, vec!["hello", "7"]),
            (pause("hello"), PAUSE, vec!["hello"]),
            (status("hello"), STATUS, vec!["hello"]),
            (registry("ghcr.io"), REGISTRIES, vec!["ghcr.io"]),
            (host_secret("h1", "pw"), HOST_SECRETS, vec!["h1", "pw"]),
            (
                host_registry("h1", "ghcr.io"),
                HOST_SECRETS,
                vec!["h1", "registries", "ghcr.io"],
            ),
        ];
        for (key, prefix, want) in cases {
            assert_eq!(parts(&key, prefix), Some(want), "{key}");
        }
        assert_eq!(parts("stacks/", STACKS), None);
        assert_eq!(parts("hosts/x", STACKS), None);
    }
}
