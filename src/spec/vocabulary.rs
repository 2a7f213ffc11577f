//! The closed vocabularies of a stack document: the typed enums for the string fields
//! `stack.rs` keeps as strings, and the spellings each field accepts. Pure.

use std::fmt;

use serde::{Deserialize, Serialize};

pub const PROTOCOLS: &[&str] = &["tcp", "udp"];
pub const MOUNT_TYPES: &[&str] = &["volume", "bind", "tmpfs"];
pub const ENDPOINT_TYPES: &[&str] = &["host-port"];

/// The message for a `value` that is not one of the `valid` spellings of a `noun`.
pub(super) fn not_one_of(value: &str, noun: &str, valid: &[&str]) -> String {
    format!("{value:?} is not a {noun} ({})", valid.join(", "))
}

/// The typed view of a string field that `stack.rs` keeps as a plain string. The document
/// spelling is written once per variant, so serde, `as_str` and `parse` cannot disagree.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $noun:literal {
            $($(#[$variant_meta:meta])* $variant:ident = $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$variant_meta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// The variant spelled exactly `s` in a stack document.
            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s)
            }

            /// The problem with `value`, if it is not one of the spellings.
            pub(super) fn complaint(value: &str) -> Option<String> {
                if Self::parse(value).is_some() {
                    return None;
                }
                let valid: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                Some(not_one_of(value, $noun, &valid))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum! {
    /// How the scheduler picks a host for each service (`deployment.placementStrategy`).
    #[derive(Default)]
    PlacementStrategy, "placement strategy" {
        /// Every service names its host in `targetHost`.
        Manual = "manual",
        #[default]
        Auto = "auto",
        Spread = "spread",
        Datacenter = "datacenter",
    }
}

string_enum! {
    /// Whether a stack runs on one host or across many (`deployment.mode`).
    #[derive(Default)]
    DeploymentMode, "deployment mode" {
        #[default]
        SingleHost = "single-host",
        MultiHost = "multi-host",
    }
}

string_enum! {
    /// Whether the stack's containers should exist and run (`desiredState`).
    #[derive(Default)]
    DesiredState, "desired state" {
        #[default]
        Running = "running",
        Stopped = "stopped",
    }
}

string_enum! {
    /// How a service's health is probed (`healthCheck.type`).
    HealthCheckKind, "health check type" {
        Http = "http",
        Tcp = "tcp",
        Command = "command",
    }
}

string_enum! {
    /// When the agent pulls a service's image (`pullPolicy`), with compose's names.
    #[derive(Default)]
    PullPolicy, "pull policy" {
        /// Only when the host does not have it.
        #[default]
        Missing = "missing",
        /// Before every create or replace, so a tag that moved brings its new bits at the
        /// next rollout.
        Always = "always",
        /// Never: an image the host lacks is a failure.
        Never = "never",
    }
}

impl PullPolicy {
    /// `missing`, the default, is left out of assignments so they read (and hash) as before.
    pub fn is_missing(&self) -> bool {
        *self == PullPolicy::Missing
    }
}

string_enum! {
    /// Which container of a slot runs first during a replacement (`update.order`).
    UpdateOrder, "update order" {
        /// The new container starts beside the old one, which goes once the new one is
        /// ready. Falls back to stop-first where the two would share a host port or a
        /// data mount.
        StartFirst = "start-first",
        /// The old container stops before the new one is created.
        StopFirst = "stop-first",
    }
}

string_enum! {
    /// What a rollout does once too many replaced slots failed (`update.failureAction`).
    #[derive(Default)]
    FailureAction, "failure action" {
        #[default]
        Rollback = "rollback",
        Pause = "pause",
        Continue = "continue",
    }
}

string_enum! {
    /// When the agent starts a service's exited container again (`restartPolicy`).
    #[derive(Default)]
    RestartPolicy, "restart policy" {
        /// Whatever its exit code: a service that should always run.
        #[default]
        Always = "always",
        /// Only after a non-zero exit; an exit of 0 means it is done (a job).
        OnFailure = "on-failure",
        /// Never: it runs once, and its exit code says whether it succeeded.
        Never = "never",
    }
}

impl RestartPolicy {
    /// Whether a container that exited with `exit_code` is started again. An exit code
    /// Docker could not tell counts as a failure.
    pub fn restarts_after(self, exit_code: Option<i64>) -> bool {
        match self {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => exit_code != Some(0),
            RestartPolicy::Never => false,
        }
    }

    /// `always`, the default, is left out of assignments so they read (and hash) as before.
    pub fn is_always(&self) -> bool {
        *self == RestartPolicy::Always
    }
}

string_enum! {
    /// What a dependent waits for before it starts (`softwareRequirements[].condition`),
    /// as compose's `depends_on.condition`.
    DependencyCondition, "dependency condition" {
        /// Nothing beyond the start order (compose's `service_started`).
        Started = "started",
        /// Every replica running and healthy (`waitForHealthy: true`).
        Healthy = "healthy",
        /// Every replica exited 0 and done (compose's `service_completed_successfully`).
        Completed = "completed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::HealthCheck;

    #[test]
    fn enum_spellings_agree_with_serde() {
        fn check<T: Serialize + Copy>(all: &[T], as_str: fn(T) -> &'static str) {
            for &v in all {
                assert_eq!(serde_json::to_value(v).unwrap(), as_str(v));
            }
        }
        check(PlacementStrategy::ALL, PlacementStrategy::as_str);
        check(DeploymentMode::ALL, DeploymentMode::as_str);
        check(DesiredState::ALL, DesiredState::as_str);
        check(HealthCheckKind::ALL, HealthCheckKind::as_str);
        check(UpdateOrder::ALL, UpdateOrder::as_str);
        check(FailureAction::ALL, FailureAction::as_str);
        check(RestartPolicy::ALL, RestartPolicy::as_str);
        check(PullPolicy::ALL, PullPolicy::as_str);
        check(DependencyCondition::ALL, DependencyCondition::as_str);
        let check = HealthCheck {
            type_: "tcp".into(),
            ..HealthCheck::default()
        };
        assert_eq!(check.kind(), Some(HealthCheckKind::Tcp));
    }

    #[test]
    fn restart_policies_restart_what_they_say() {
        // (policy, exit code, restarted?)
        let cases = [
            (RestartPolicy::Always, Some(0), true),
            (RestartPolicy::Always, Some(1), true),
            (RestartPolicy::OnFailure, Some(0), false),
            (RestartPolicy::OnFailure, Some(3), true),
            (RestartPolicy::OnFailure, None, true),
            (RestartPolicy::Never, Some(0), false),
            (RestartPolicy::Never, Some(3), false),
        ];
        for (policy, code, restarted) in cases {
            assert_eq!(policy.restarts_after(code), restarted, "{policy} {code:?}");
        }
    }
}
