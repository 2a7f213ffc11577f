//! `{{secret:NAME}}` references filled in from etcd at the last moment, into a copy handed
//! to Docker: never into an assignment, a report, a log line or the spec hash.

use std::collections::BTreeMap;

use super::desired::DesiredContainer;
use crate::store::{keys, Store};

/// A copy of `d` with its secret references filled in, `None` when it has none, or why
/// it cannot be created yet (a secret missing or unreadable: retried, not permanent).
pub async fn resolve(
    store: &Store,
    d: &DesiredContainer,
) -> Result<Option<DesiredContainer>, String> {
    let names: Vec<&str> = d
        .spec()
        .env
        .values()
        .flat_map(|v| crate::spec::secret_refs(v))
        .collect();
    if names.is_empty() {
        return Ok(None);
    }
    let mut values: BTreeMap<&str, String> = BTreeMap::new();
    for n in names {
        let key = keys::secret(n);
        match store.get(&key).await {
            Ok(Some(kv)) => {
                values.insert(n, String::from_utf8_lossy(&kv.value).into_owned());
            }
            Ok(None) => {
                return Err(format!("secret {n} not found at {}{key}", store.prefix()));
            }
            Err(e) => return Err(format!("reading secret {n}: {}", crate::error_chain(&e))),
        }
    }
    let mut copy = d.clone();
    for v in copy.slot.container.env.values_mut() {
        *v = crate::spec::substitute(v, |n| values.get(n).cloned())
            .map_err(|n| format!("secret {n} not found"))?;
    }
    Ok(Some(copy))
}
