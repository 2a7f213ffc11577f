//! How a changed service is rolled out: the [`UpdatePolicy`] that results from the `update`
//! block a stack sets for all its services (`deployment.update`) and a service overrides
//! field by field, once the defaults are filled in, and the checks of those blocks. Pure.

use std::time::Duration;

use super::bounds::Seconds;
use super::stack::{Service, Stack, UpdateConfig};
use super::vocabulary::{FailureAction, UpdateOrder};

/// A service's rollout rules, defaults filled in: its own `update`, else the stack's,
/// else the default, field by field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UpdatePolicy {
    /// Slots replaced at once, across all hosts; 0 = all at once.
    pub parallelism: u32,
    /// `None`: start-first where the containers can coexist, else stop-first.
    pub order: Option<UpdateOrder>,
    pub delay: Duration,
    pub monitor: Duration,
    pub deadline: Duration,
    pub failure_action: FailureAction,
    pub max_failure_ratio: f64,
}

impl Default for UpdatePolicy {
    fn default() -> UpdatePolicy {
        UpdatePolicy {
            parallelism: 1,
            order: None,
            delay: Seconds::UPDATE_DELAY.duration(None),
            monitor: Seconds::UPDATE_MONITOR.duration(None),
            deadline: Seconds::UPDATE_DEADLINE.duration(None),
            failure_action: FailureAction::Rollback,
            max_failure_ratio: 0.0,
        }
    }
}

impl Stack {
    /// The rollout rules of `service`. Values that do not validate fall back to the
    /// default; `validate` reports them.
    pub fn update_policy(&self, service: &Service) -> UpdatePolicy {
        let stack = self.deployment.as_ref().and_then(|d| d.update.as_ref());
        let own = service.update.as_ref();
        // The service's value, else the stack's.
        fn pick<T>(
            own: Option<&UpdateConfig>,
            stack: Option<&UpdateConfig>,
            field: impl Fn(&UpdateConfig) -> Option<T>,
        ) -> Option<T> {
            own.and_then(&field).or_else(|| stack.and_then(&field))
        }
        let d = UpdatePolicy::default();
        UpdatePolicy {
            parallelism: pick(own, stack, |u| u.parallelism)
                .and_then(|p| u32::try_from(p).ok())
                .unwrap_or(d.parallelism),
            order: pick(own, stack, |u| u.order.clone()).and_then(|o| UpdateOrder::parse(&o)),
            delay: Seconds::UPDATE_DELAY.duration(pick(own, stack, |u| u.delay)),
            monitor: Seconds::UPDATE_MONITOR.duration(pick(own, stack, |u| u.monitor)),
            deadline: Seconds::UPDATE_DEADLINE.duration(pick(own, stack, |u| u.deadline)),
            failure_action: pick(own, stack, |u| u.failure_action.clone())
                .and_then(|f| FailureAction::parse(&f))
                .unwrap_or(d.failure_action),
            max_failure_ratio: pick(own, stack, |u| u.max_failure_ratio)
                .filter(|r| (0.0..=1.0).contains(r))
                .unwrap_or(d.max_failure_ratio),
        }
    }
}

/// Every problem with an `update` block at `at`, as (path, message).
pub(super) fn problems(at: &str, u: &UpdateConfig) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(p) = u.parallelism {
        if !(0..=i64::from(super::MAX_REPLICAS)).contains(&p) {
            out.push((
                format!("{at}.parallelism"),
                format!(
                    "{p} is not a number of slots from 0 (all at once) to {}",
                    super::MAX_REPLICAS
                ),
            ));
        }
    }
    if let Some(o) = &u.order {
        if let Some(m) = UpdateOrder::complaint(o) {
            out.push((format!("{at}.order"), m));
        }
    }
    for (field, bound, v) in [
        ("delay", Seconds::UPDATE_DELAY, u.delay),
        ("monitor", Seconds::UPDATE_MONITOR, u.monitor),
        ("deadline", Seconds::UPDATE_DEADLINE, u.deadline),
    ] {
        if let Some(m) = v.and_then(|s| bound.complaint(s)) {
            out.push((format!("{at}.{field}"), m));
        }
    }
    if let Some(f) = &u.failure_action {
        if let Some(m) = FailureAction::complaint(f) {
            out.push((format!("{at}.failureAction"), m));
        }
    }
    if let Some(r) = u.max_failure_ratio.filter(|r| !(0.0..=1.0).contains(r)) {
        out.push((
            format!("{at}.maxFailureRatio"),
            format!("{r} is not a fraction from 0 to 1"),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{parse_stack, validate};

    fn stack(json: &str) -> Stack {
        parse_stack(json.as_bytes()).expect("valid")
    }

    #[test]
    fn a_service_overrides_the_stacks_update_field_by_field() {
        let s = stack(
            r#"{"deployment": {"update": {"parallelism": 2, "monitor": 10, "failureAction": "pause"}},
                "itemListElement": [
                  {"name": "web", "image": "i", "update": {"parallelism": 0, "order": "stop-first"}},
                  {"name": "db", "image": "i"}]}"#,
        );
        let web = s.update_policy(&s.item_list_element[0]);
        assert_eq!(web.parallelism, 0, "the service's own");
        assert_eq!(web.order, Some(UpdateOrder::StopFirst));
        assert_eq!(web.monitor, Duration::from_secs(10), "the stack's");
        assert_eq!(web.failure_action, FailureAction::Pause);
        assert_eq!(web.deadline, Duration::from_secs(120), "the default");
        let db = s.update_policy(&s.item_list_element[1]);
        assert_eq!(db.parallelism, 2);
        assert_eq!(db.order, None, "automatic");
    }

    #[test]
    fn no_update_block_means_the_defaults() {
        let s = stack(r#"{"itemListElement": [{"name": "web", "image": "i"}]}"#);
        assert_eq!(
            s.update_policy(&s.item_list_element[0]),
            UpdatePolicy::default()
        );
    }

    #[test]
    fn a_time_beyond_its_bound_is_the_default_and_never_panics() {
        let s: Stack = serde_json::from_str(
            r#"{"itemListElement": [
                  {"name": "web", "image": "i", "update": {"delay": 1e20, "monitor": 1e300, "deadline": 604801}}]}"#,
        )
        .unwrap();
        let p = s.update_policy(&s.item_list_element[0]);
        let d = UpdatePolicy::default();
        assert_eq!(
            (p.delay, p.monitor, p.deadline),
            (d.delay, d.monitor, d.deadline)
        );
        let mut odd = s.item_list_element[0].clone();
        odd.update = Some(UpdateConfig {
            delay: Some(f64::NAN),
            monitor: Some(f64::INFINITY),
            deadline: Some(604800.0),
            ..UpdateConfig::default()
        });
        let p = s.update_policy(&odd);
        assert_eq!(
            (p.delay, p.monitor, p.deadline),
            (d.delay, d.monitor, Duration::from_secs(604800))
        );
    }

    #[test]
    fn every_bad_update_value_is_reported_with_its_path() {
        let s: Stack = serde_json::from_str(
            r#"{"deployment": {"update": {"parallelism": -1, "order": "sideways", "delay": -2}},
                "itemListElement": [
                  {"name": "web", "image": "i",
                   "update": {"monitor": -1, "deadline": -5, "failureAction": "panic", "maxFailureRatio": 1.5}}]}"#,
        )
        .unwrap();
        let got: Vec<String> = validate(&s).iter().map(|p| p.to_string()).collect();
        for path in [
            "deployment.update.parallelism",
            "deployment.update.order",
            "deployment.update.delay",
            "itemListElement[0].update.monitor",
            "itemListElement[0].update.deadline",
            "itemListElement[0].update.failureAction",
            "itemListElement[0].update.maxFailureRatio",
        ] {
            assert!(
                got.iter().any(|p| p.starts_with(&format!("{path}:"))),
                "{path} not reported: {got:#?}"
            );
        }
        assert_eq!(got.len(), 7, "{got:#?}");
    }
}
