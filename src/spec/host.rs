//! A host's registration: the value an agent (or an operator) keeps at `/berth/hosts/<id>`
//! under an etcd lease, so the key vanishes when its writer dies.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::names::HOST_ID_PATTERN;

/// A host Berth may place containers on: the value of `/berth/hosts/<id>`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostRegistration {
    /// The host id; the same as the key's last segment.
    #[schemars(pattern(HOST_ID_PATTERN))]
    pub id: String,
    /// The address other hosts use to reach ports this host publishes.
    pub address: String,
    /// Datacenter, for `datacenter` placement and `preferredDatacenter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacenter: Option<String>,
    /// Labels matched by `hostConstraints.requiredLabels`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// CPUs the host has.
    #[serde(default)]
    pub cpus: f64,
    /// Memory the host has, in megabytes.
    #[serde(default)]
    pub memory_mb: u64,
    /// Version of the agent that wrote this registration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_version: Option<String>,
    /// Version of the host's Docker engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_version: Option<String>,
    /// Host ports already published by containers Berth does not manage; the scheduler
    /// places nothing that needs them here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub used_ports: Vec<UsedPort>,
    /// Set while the host cannot run containers (its Docker engine does not answer); the
    /// scheduler places nothing new here meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub degraded: Option<String>,
    /// Host paths under which bind mounts are allowed here (the agent's
    /// `--allow-bind-prefix`); none by default, so no bind mount is allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_bind_prefixes: Vec<String>,
    /// Where its agent serves its containers' logs (`host:port`, see `berth logs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_address: Option<String>,
    /// That API wants mutual TLS.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub api_tls: bool,
}

/// Is a bind mount of `source` allowed under `prefixes`? Whole path components only:
/// `/srv` allows `/srv/data` but not `/srvx`, and `..` never escapes.
pub fn bind_allowed(source: &str, prefixes: &[String]) -> bool {
    if !source.starts_with('/') || source.split('/').any(|c| c == "..") {
        return false;
    }
    prefixes.iter().any(|p| {
        let p = p.trim_end_matches('/');
        p.is_empty() || source == p || source.starts_with(&format!("{p}/"))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn bind_prefixes_match_whole_path_components() {
        let allow = vec!["/srv/berth".to_owned(), "/data/".to_owned()];
        let cases = [
            ("/srv/berth/db", true),
            ("/srv/berth", true),
            ("/data/x", true),
            ("/srv/berthx", false),
            ("/etc", false),
            ("/srv/berth/../../etc", false),
            ("relative/path", false),
        ];
        for (src, want) in cases {
            assert_eq!(super::bind_allowed(src, &allow), want, "{src}");
        }
        assert!(
            !super::bind_allowed("/srv/berth/db", &[]),
            "nothing allowed by default"
        );
    }
}

/// A host port in use, as `port` and `protocol` (`tcp` or `udp`).
#[derive(
    Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub struct UsedPort {
    pub port: u16,
    pub protocol: String,
}
