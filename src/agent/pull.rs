//! The pass's image step, around [`images`](super::images)' pure decisions: it looks up
//! what the engine has, finds the credentials for a registry (etcd's first: the host's
//! copy at `hostsecrets/<host>/registries/<registry>`, or for an agentless host
//! `registries/<registry>`; then the host's Docker config file), starts pulls in the
//! background and says which creates and replaces may go now.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Instant;

use super::desired::DesiredContainer;
use super::images::{self, Admission, ImageState, LoginSource, PullAuth, PullFailure};
use super::plan::Action;
use super::reconciler::Reconciler;
use super::report::SlotError;
use super::secrets::SecretSource;
use crate::registry::{registry_of, DockerConfigAuths, RegistryLogin};
use crate::requeue::Requeue;
use crate::spec::{PullPolicy, PullProgress};
use crate::store::{keys, Store};

/// What the image step let through, and what it holds back.
pub(super) struct Admitted {
    pub actions: Vec<Action>,
    /// Containers waiting for their image's pull, with how far it has got.
    pub pulling: BTreeMap<String, PullProgress>,
    /// Containers that cannot go, and why (reported, not kept as action errors: the gate
    /// would hold a permanent one until the spec changes, but a pull is tried again).
    pub errors: BTreeMap<String, SlotError>,
    pub requeue: Requeue,
}

/// The credentials for `image`'s registry and where they came from: etcd's wins over the
/// Docker config file. A host's copy has its password filled in already; an original's
/// `{{secret:NAME}}` password is filled in from `secrets/NAME`.
pub(super) async fn login_for(
    store: &Store,
    source: SecretSource,
    host: &str,
    docker_config: Option<&Path>,
    image: &str,
) -> Result<(Option<PullAuth>, LoginSource), String> {
    let registry = registry_of(image);
    let key = match source {
        SecretSource::HostCopies => keys::host_registry(host, &registry),
        SecretSource::Originals => keys::registry(&registry),
    };
    let shown_key = format!("{}{key}", store.prefix());
    // Messages name the login the user wrote, whichever copy of it was read.
    let login_key = format!("{}{}", store.prefix(), keys::registry(&registry));
    let stored = store
        .get(&key)
        .await
        .map_err(|e| format!("reading {shown_key}: {}", crate::error_chain(&e)))?;
    if let Some(kv) = stored {
        let login: RegistryLogin = serde_json::from_slice(&kv.value).map_err(|e| {
            format!("{shown_key} is not a login ({{\"username\": ..., \"password\": ...}}): {e}")
        })?;
        let password = match source {
            SecretSource::HostCopies => login.password,
            SecretSource::Originals => fill_secrets(store, &login.password).await?,
        };
        let auth = PullAuth {
            registry,
            username: login.username,
            password,
        };
        return Ok((Some(auth), LoginSource::Etcd(login_key)));
    }
    if let Some(path) = docker_config {
        match DockerConfigAuths::load(path) {
            Ok(auths) => {
                if let Some(login) = auths.get(&registry) {
                    let auth = PullAuth {
                        registry,
                        username: login.username.clone(),
                        password: login.password.clone(),
                    };
                    return Ok((Some(auth), LoginSource::DockerConfig(path.to_owned())));
                }
            }
            // The file is the host's own business: a broken one is as good as none,
            // and said so.
            Err(e) => {
                tracing::warn!(error = %e, "the Docker config file is unreadable; pulling without its credentials")
            }
        }
    }
    Ok((
        None,
        LoginSource::None {
            key: login_key,
            file: docker_config.map(Path::to_owned),
        },
    ))
}

/// `value` with its `{{secret:NAME}}` references filled in from etcd.
async fn fill_secrets(store: &Store, value: &str) -> Result<String, String> {
    let mut found = BTreeMap::new();
    for name in crate::spec::secret_refs(value) {
        let kv = store
            .get(&keys::secret(name))
            .await
            .map_err(|e| format!("reading secret {name}: {}", crate::error_chain(&e)))?
            .ok_or_else(|| format!("secret {name} (a registry password) not found"))?;
        found.insert(
            name.to_owned(),
            String::from_utf8_lossy(&kv.value).into_owned(),
        );
    }
    crate::spec::substitute(value, |n| found.get(n).cloned())
        .map_err(|name| format!("secret {name} (a registry password) not found"))
}

impl Reconciler {
    /// Lets through the creates and replaces whose image is ready, starts the pulls the
    /// others need, and says how soon to look again: every second while a pull runs (its
    /// progress is reported that often), else when the first backoff runs out.
    pub(super) async fn admit_images(
        &mut self,
        actions: Vec<Action>,
        by_name: &BTreeMap<String, &DesiredContainer>,
        now: Instant,
    ) -> Admitted {
        let ended = self.pulls.collect();
        if !ended.is_empty() {
            // An image pulled just now may carry a digest its ID did not have.
            self.rt.forget_digests();
        }
        for (image, failure) in ended {
            self.pull_event(&image, failure.as_ref(), by_name);
        }
        let mut out = Admitted {
            actions: Vec::new(),
            pulling: BTreeMap::new(),
            errors: BTreeMap::new(),
            requeue: Requeue::AtResync,
        };
        let mut present: BTreeMap<String, Result<bool, String>> = BTreeMap::new();
        let mut logins: BTreeMap<String, Option<u64>> = BTreeMap::new();
        for a in actions {
            let (Action::Create { name } | Action::Replace { name, .. }) = &a else {
                out.actions.push(a);
                continue;
            };
            let Some(d) = by_name.get(name) else {
                out.actions.push(a);
                continue;
            };
            let image = d.spec().image.clone();
            let policy = d.slot.pull_policy;
            if !present.contains_key(&image) {
                let has = self
                    .rt
                    .image(&image)
                    .await
                    .map(|i| i.is_some())
                    .map_err(|e| crate::error_chain(&e));
                present.insert(image.clone(), has);
            }
            let has = match &present[&image] {
                Ok(has) => *has,
                Err(e) => {
                    out.errors.insert(
                        name.clone(),
                        SlotError {
                            message: format!("looking for image {image}: {e}"),
                            permanent: false,
                        },
                    );
                    continue;
                }
            };
            // Only a failure that credentials could cure looks them up again.
            let unauthorized = self.pulls.record(&image).is_some_and(|r| {
                r.failure
                    .as_ref()
                    .is_some_and(|f| f.kind == images::PullFailureKind::Unauthorized)
            });
            if unauthorized && !logins.contains_key(&image) {
                let now_login = login_for(
                    &self.store,
                    self.secret_source,
                    &self.host,
                    self.docker_config.as_deref(),
                    &image,
                )
                .await
                .ok()
                .and_then(|(auth, _)| auth.as_ref().map(images::fingerprint));
                logins.insert(image.clone(), now_login);
            }
            let wanted_since = self.pulls.wanted_since(name, &d.spec_hash, now);
            let state = ImageState {
                policy,
                present: has,
                pulling: self.pulls.progress(&image),
                last: self.pulls.record(&image),
                wanted_since,
                login_now: logins.get(&image).copied().flatten(),
                now,
            };
            match images::admit(&image, &self.host, &state) {
                Admission::Go => {
                    self.pulls.served(name);
                    out.actions.push(a);
                }
                Admission::Pulling(p) => {
                    out.pulling.insert(name.clone(), p);
                }
                Admission::Pull => match self.start_pull(&image).await {
                    Ok(()) => {
                        let p = self.pulls.progress(&image).unwrap_or_default();
                        out.pulling.insert(name.clone(), p);
                    }
                    Err(message) => {
                        out.errors.insert(
                            name.clone(),
                            SlotError {
                                message,
                                permanent: false,
                            },
                        );
                    }
                },
                Admission::Hold(e) => {
                    out.errors.insert(name.clone(), e);
                }
            }
            if policy != PullPolicy::Never {
                if let Some(at) = self.pulls.record(&image).and_then(|r| r.retry_at()) {
                    if at > now {
                        out.requeue = out.requeue.min(Requeue::After(at - now));
                    }
                }
            }
        }
        if self.pulls.any_running() {
            out.requeue = out
                .requeue
                .min(Requeue::After(std::time::Duration::from_secs(1)));
        }
        let images: BTreeSet<String> = by_name.values().map(|d| d.spec().image.clone()).collect();
        self.pulls
            .retain(|n| by_name.contains_key(n), |i| images.contains(i));
        out
    }

    /// Start pulling `image` in the background unless it already is; the pass is woken
    /// when it ends. Fails only when its credentials cannot be read.
    async fn start_pull(&mut self, image: &str) -> Result<(), String> {
        if self.pulls.progress(image).is_some() {
            return Ok(());
        }
        let (auth, source) = login_for(
            &self.store,
            self.secret_source,
            &self.host,
            self.docker_config.as_deref(),
            image,
        )
        .await?;
        if !self.pulls.begin(image) {
            return Ok(());
        }
        let reporter = self.pulls.reporter(image);
        let rt = self.rt.clone();
        let wake = self.wake.clone();
        let host = self.host.clone();
        let image = image.to_owned();
        tracing::info!(image = %image, registry = %registry_of(&image), credentials = ?source_kind(&source), "pulling image");
        tokio::spawn(async move {
            let login = auth.as_ref().map(images::fingerprint);
            let result = rt.pull(&image, auth, |p| reporter.progress(p)).await;
            let failure = result.err().map(|e| {
                let said = e.docker_message();
                PullFailure::new(&image, &registry_of(&image), &host, &source, &said, login)
            });
            reporter.done(failure);
            wake.notify_one();
        });
        Ok(())
    }

    /// One event per finished pull: `Pulled`, or `PullFailed` once per distinct failure.
    fn pull_event(
        &mut self,
        image: &str,
        failure: Option<&PullFailure>,
        by_name: &BTreeMap<String, &DesiredContainer>,
    ) {
        let users: BTreeSet<(&str, &str)> = by_name
            .values()
            .filter(|d| d.spec().image == image)
            .map(|d| (d.id.stack.as_str(), d.id.service.as_str()))
            .collect();
        let (reason, message) = match failure {
            None => {
                tracing::info!(image, "pulled image");
                ("Pulled", format!("pulled {image} on {}", self.host))
            }
            Some(f) => {
                tracing::warn!(image, error = %f.message, "pulling image failed");
                if self.pull_failures.get(image) == Some(&f.message) {
                    return;
                }
                self.pull_failures
                    .insert(image.to_owned(), f.message.clone());
                ("PullFailed", f.message.clone())
            }
        };
        if failure.is_none() {
            self.pull_failures.remove(image);
        }
        for (stack, service) in users {
            self.events
                .record(stack, Some(service), reason, message.clone());
        }
    }
}

/// Where credentials came from, for a log line: never the credentials.
fn source_kind(s: &LoginSource) -> &'static str {
    match s {
        LoginSource::Etcd(_) => "etcd",
        LoginSource::DockerConfig(_) => "docker-config",
        LoginSource::None { .. } => "none",
    }
}
