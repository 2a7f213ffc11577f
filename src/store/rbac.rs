//! etcd roles and users for least privilege (`berth etcd-rbac setup`): operators manage
//! stacks and read results (and write, but cannot read back, secrets and registry
//! logins), each agent writes only its own host's keys and reads its own assignments and
//! the copies of secrets and registry logins the leader hands its host (never `secrets/`
//! or `registries/`), the controller has the prefix. The plan is pure; [`apply`] writes it.

use etcd_client::{Permission, PermissionType};

use super::{keys, Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    ReadWrite,
}

/// One permission: `key` exactly, or every key below it when `prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub access: Access,
    pub key: String,
    pub prefix: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub name: String,
    pub grants: Vec<Grant>,
}

fn g(access: Access, key: impl Into<String>, prefix: bool) -> Grant {
    Grant {
        access,
        key: key.into(),
        prefix,
    }
}

pub const CONTROLLER: &str = "berth-controller";
pub const OPERATOR: &str = "berth-operator";

/// The role (and user) name of host `host`'s agent.
pub fn agent_role(host: &str) -> String {
    format!("berth-agent-{host}")
}

/// Every role, for the given hosts; keys relative to the store prefix.
pub fn plan(hosts: &[String]) -> Vec<Role> {
    use Access::*;
    let mut roles = vec![
        Role {
            name: CONTROLLER.into(),
            grants: vec![g(ReadWrite, "", true)],
        },
        Role {
            name: OPERATOR.into(),
            grants: vec![
                g(ReadWrite, keys::STACKS, true),
                g(ReadWrite, keys::MAINTENANCE, true),
                g(ReadWrite, keys::REBALANCE, true),
                g(ReadWrite, keys::AGENTLESS, true),
                g(ReadWrite, keys::PAUSE, true),
                // Operators put secrets but cannot read them back.
                g(Write, keys::SECRETS, true),
                // Registry logins likewise (`berth registry login`, `logout`).
                g(Write, keys::REGISTRIES, true),
                g(Read, keys::STATUS, true),
                g(Read, keys::EVENTS, true),
                g(Read, keys::HOSTS, true),
                g(Read, keys::ASSIGNMENTS, true),
                g(Read, keys::REPORTS, true),
                g(Read, keys::ACTIONS, true),
                g(Read, keys::HISTORY, true),
                g(Read, keys::ROLLOUTS, true),
            ],
        },
    ];
    for h in hosts {
        roles.push(Role {
            name: agent_role(h),
            grants: vec![
                g(ReadWrite, keys::host(h), false),
                g(ReadWrite, keys::reports_of(h), true),
                g(ReadWrite, format!("{}{h}/", keys::EVENTS), true),
                g(ReadWrite, format!("{}{h}/", keys::ACTIONS), true),
                g(Read, keys::assignments_of(h), true),
                // The secrets and registry logins its slots use, copied there by the
                // leader: no other host's.
                g(Read, keys::host_secrets_of(h), true),
            ],
        });
    }
    roles
}

/// Create the roles, the users (`(user, password, role)`) and the `root` user, then turn
/// authentication on. Things that already exist are left as they are.
pub async fn apply(
    store: &Store,
    roles: &[Role],
    users: &[(String, String, String)],
    root_password: &str,
) -> Result<(), StoreError> {
    let mut c = store.client();
    let exists = |e: &etcd_client::Error| e.to_string().contains("already exists");
    for r in roles {
        if let Err(e) = c.role_add(r.name.clone()).await {
            if !exists(&e) {
                return Err(StoreError::request("role add", r.name.clone())(e));
            }
        }
        for grant in &r.grants {
            let kind = match grant.access {
                Access::Read => PermissionType::Read,
                Access::Write => PermissionType::Write,
                Access::ReadWrite => PermissionType::Readwrite,
            };
            let mut perm = Permission::new(kind, format!("{}{}", store.prefix(), grant.key));
            if grant.prefix {
                perm = perm.with_prefix();
            }
            c.role_grant_permission(r.name.clone(), perm)
                .await
                .map_err(StoreError::request("role grant", r.name.clone()))?;
        }
    }
    let mut all = users.to_vec();
    all.push(("root".into(), root_password.into(), "root".into()));
    for (user, password, role) in &all {
        if let Err(e) = c.user_add(user.clone(), password.clone(), None).await {
            if !exists(&e) {
                return Err(StoreError::request("user add", user.clone())(e));
            }
        }
        c.user_grant_role(user.clone(), role.clone())
            .await
            .map_err(StoreError::request("user grant", user.clone()))?;
    }
    c.auth_enable()
        .await
        .map_err(StoreError::request("auth enable", String::new()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_agent_writes_only_below_its_own_host() {
        let roles = plan(&["h1".into(), "h2".into()]);
        let h1 = roles.iter().find(|r| r.name == "berth-agent-h1").unwrap();
        for grant in h1.grants.iter().filter(|g| g.access != Access::Read) {
            assert!(grant.key.contains("h1"), "agent h1 may write {grant:?}");
            assert!(!grant.key.contains("h2"));
        }
        let op = roles.iter().find(|r| r.name == OPERATOR).unwrap();
        for write_only in [keys::SECRETS, keys::REGISTRIES] {
            let grant = op.grants.iter().find(|g| g.key == write_only).unwrap();
            assert_eq!(
                grant.access,
                Access::Write,
                "operators cannot read {write_only} back"
            );
        }
        for original in [keys::SECRETS, keys::REGISTRIES] {
            assert!(
                !h1.grants.iter().any(|g| original.starts_with(&g.key)),
                "agents never read {original}"
            );
        }
        let read = h1
            .grants
            .iter()
            .find(|g| g.key.starts_with(keys::HOST_SECRETS))
            .unwrap();
        assert_eq!(
            (read.access, read.key.as_str(), read.prefix),
            (Access::Read, "hostsecrets/h1/", true),
            "an agent reads its own host's copies only"
        );
        assert!(
            !op.grants
                .iter()
                .any(|g| keys::HOST_SECRETS.starts_with(&g.key)),
            "operators never read hosts' copies"
        );
    }
}
