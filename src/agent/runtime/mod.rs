//! The only module that talks to Docker (through bollard). It turns the agent's domain
//! types into Docker calls and Docker's answers back into domain types, and counts every
//! call in the metrics.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{
    ContainerInspectResponse, ContainerSummaryStateEnum, NetworkCreateRequest, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, EventsOptionsBuilder,
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, RenameContainerOptionsBuilder,
    StopContainerOptionsBuilder,
};
use bollard::Docker;
use futures::{Stream, StreamExt, TryStreamExt};

mod convert;

pub use self::convert::create_body;
use self::convert::{published_ports, split_image, to_actual, to_event};
use super::actual::{ActualContainer, Ended};
use super::images::{ImageInfo, PullAuth};
use super::inspected::{Inspected, Listed};
use super::labels;
use crate::assignment::ContainerSpec;
use crate::metrics;
use crate::spec::{PullProgress, UsedPort};

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("connecting to Docker at {endpoint}")]
    Connect {
        endpoint: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("docker {op} {target}")]
    Request {
        op: &'static str,
        target: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("refusing plain TCP to Docker at {endpoint}: anyone on the network could run containers; give TLS client certificates (CA, cert, key) or allow it explicitly with --insecure-docker")]
    InsecureRefused { endpoint: String },
    /// A network or volume the spec says to use as it is (`createIfNotExists: false`).
    #[error("{kind} {name} does not exist on this host and createIfNotExists is false: create it (docker {kind} create {name}) or let Berth create it")]
    Missing { kind: &'static str, name: String },
    /// Pulling failed; [`images`](super::images) tells why from Docker's message.
    #[error("pulling {image}")]
    Pull {
        image: String,
        #[source]
        source: bollard::errors::Error,
    },
    /// A stop-first replacement found its image gone before stopping anything.
    #[error("image {image} is not on this host")]
    ImageAbsent { image: String },
}

impl RuntimeError {
    /// Permanent errors wait for a spec change; the rest are retried with backoff.
    pub fn is_transient(&self) -> bool {
        match self {
            // Retried on the image's own backoff (see `images`), not the action's.
            RuntimeError::Pull { .. } => true,
            RuntimeError::ImageAbsent { .. } => true,
            RuntimeError::Request { source, .. } => !matches!(
                source,
                bollard::errors::Error::DockerResponseServerError { status_code, .. }
                    if (400..500).contains(status_code) && *status_code != 404 && *status_code != 409
            ),
            RuntimeError::Connect { .. } => true,
            RuntimeError::InsecureRefused { .. } => false,
            // Someone may create it: retried, and reported meanwhile.
            RuntimeError::Missing { .. } => true,
        }
    }

    pub fn metric_label(&self) -> &'static str {
        match self {
            RuntimeError::Connect { .. } | RuntimeError::InsecureRefused { .. } => "docker_connect",
            RuntimeError::Request { .. } => "docker_request",
            RuntimeError::Pull { .. } | RuntimeError::ImageAbsent { .. } => "image_unavailable",
            RuntimeError::Missing { .. } => "missing_resource",
        }
    }

    /// Docker's own words, without Berth's context: what a failed pull is told apart by.
    pub fn docker_message(&self) -> String {
        use bollard::errors::Error;
        match self {
            RuntimeError::Pull { source, .. } | RuntimeError::Request { source, .. } => {
                match source {
                    Error::DockerStreamError { error } => error.clone(),
                    Error::DockerResponseServerError { message, .. } => message.clone(),
                    other => other.to_string(),
                }
            }
            other => crate::error_chain(other),
        }
    }

    /// Docker answered 404 (the container or object is gone).
    pub fn is_not_found(&self) -> bool {
        self.status_code() == Some(404)
    }

    /// Creating failed because the name belongs to another container.
    pub fn is_name_conflict(&self) -> bool {
        matches!(self, RuntimeError::Request { op: "create", .. }) && self.is_conflict()
    }

    /// Docker answered 409 (a name is taken, or the container is in the wrong state).
    pub fn is_conflict(&self) -> bool {
        self.status_code() == Some(409)
    }

    pub fn status_code(&self) -> Option<u16> {
        match self {
            RuntimeError::Request {
                source: bollard::errors::Error::DockerResponseServerError { status_code, .. },
                ..
            } => Some(*status_code),
            _ => None,
        }
    }
}

/// A managed container of one slot, as a log reader needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotContainer {
    pub slot: crate::slot::SlotId,
    pub id: String,
    /// Unix seconds: the order a slot's containers came in.
    pub created: i64,
    pub running: bool,
}

/// One chunk of a container's log, from stdout or stderr; lines start with Docker's
/// timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    pub stderr: bool,
    pub text: String,
}

/// Facts about the engine a host registration publishes.
#[derive(Debug, Clone)]
pub struct EngineFacts {
    pub cpus: f64,
    pub memory_mb: u64,
    pub version: String,
}

/// How a command run with [`Runtime::exec`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutcome {
    pub exit_code: Option<i64>,
    pub output_tail: String,
    pub timed_out: bool,
}

/// A managed container changed in a way that matters to the agent.
#[derive(Debug, Clone)]
pub struct ContainerEvent {
    pub id: String,
    pub action: String,
}

/// What to create: the slot's spec plus the identity Berth stamps on it.
pub struct CreateRequest<'a> {
    pub name: &'a str,
    pub spec: &'a ContainerSpec,
    pub labels: BTreeMap<String, String>,
    pub network: &'a str,
}

/// How to reach a Docker engine over TCP: TLS client certificates, or an explicit
/// acceptance of plain TCP.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerTls {
    pub ca: Option<std::path::PathBuf>,
    pub cert: Option<std::path::PathBuf>,
    pub key: Option<std::path::PathBuf>,
    pub insecure: bool,
}

/// A Docker engine, reached over a unix socket or TCP.
#[derive(Clone)]
pub struct Runtime {
    docker: Docker,
    endpoint: String,
    /// Last inspect of each managed container; shared by clones (the agent's pass, its
    /// executor and its event pump all hold one).
    inspected: Arc<Mutex<Inspected>>,
    /// Registry digests by image ID: an ID names fixed bits, so they are looked up once
    /// per ID (and again after a pull, which can add one).
    digests: Arc<Mutex<BTreeMap<String, Vec<String>>>>,
}

const TIMEOUT_SECS: u64 = 120;

impl Runtime {
    /// Connect and agree on an API version (the engines here speak 1.41, older than
    /// bollard's default).
    pub async fn connect(endpoint: &str) -> Result<Runtime, RuntimeError> {
        Runtime::connect_with(endpoint, &DockerTls::default()).await
    }

    /// [`connect`](Runtime::connect); TCP needs TLS client certificates unless
    /// `tls.insecure`.
    pub async fn connect_with(endpoint: &str, tls: &DockerTls) -> Result<Runtime, RuntimeError> {
        let connect_err = |source| RuntimeError::Connect {
            endpoint: endpoint.to_owned(),
            source,
        };
        let tcp = endpoint.starts_with("tcp://")
            || endpoint.starts_with("http://")
            || endpoint.starts_with("https://");
        let docker = if tcp {
            match (&tls.ca, &tls.cert, &tls.key) {
                (Some(ca), Some(cert), Some(key)) => Docker::connect_with_ssl(
                    endpoint,
                    key,
                    cert,
                    ca,
                    TIMEOUT_SECS,
                    bollard::API_DEFAULT_VERSION,
                ),
                _ if tls.insecure => {
                    Docker::connect_with_http(endpoint, TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
                }
                _ => {
                    return Err(RuntimeError::InsecureRefused {
                        endpoint: endpoint.to_owned(),
                    })
                }
            }
        } else {
            let path = endpoint.trim_start_matches("unix://");
            Docker::connect_with_unix(path, TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
        }
        .map_err(connect_err)?;
        let docker = docker.negotiate_version().await.map_err(connect_err)?;
        Ok(Runtime {
            docker,
            endpoint: endpoint.to_owned(),
            inspected: Arc::default(),
            digests: Arc::default(),
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub async fn facts(&self) -> Result<EngineFacts, RuntimeError> {
        let info = call("info", "engine", self.docker.info()).await?;
        Ok(EngineFacts {
            cpus: info.ncpu.unwrap_or(0) as f64,
            memory_mb: (info.mem_total.unwrap_or(0).max(0) as u64) / (1024 * 1024),
            version: info.server_version.unwrap_or_default(),
        })
    }

    /// What a pass needs of this engine, from one `list` of every container: the
    /// containers this host's agent manages (label `berth.host` = `host`), each inspected
    /// only when its list entry disagrees with the last inspect of it (see
    /// [`super::inspected`]), and the host ports held by running containers Berth does not
    /// manage.
    pub async fn list_host(
        &self,
        host: &str,
    ) -> Result<(Vec<ActualContainer>, Vec<UsedPort>), RuntimeError> {
        let opts = ListContainersOptionsBuilder::default().all(true).build();
        let summaries = call(
            "list",
            "containers",
            self.docker.list_containers(Some(opts)),
        )
        .await?;
        let mut listed: Vec<Listed> = Vec::new();
        let mut unmanaged = Vec::new();
        for s in summaries {
            let l = s.labels.as_ref();
            let label = |k: &str| l.and_then(|l| l.get(k)).map(String::as_str);
            if label(labels::MANAGED) != Some("true") {
                if s.state == Some(ContainerSummaryStateEnum::RUNNING) {
                    unmanaged.push(s);
                }
                continue;
            }
            // Another host's agent may share this engine (tests do): not ours.
            if label(labels::HOST) != Some(host) || label(labels::STACK).is_none() {
                continue;
            }
            let Some(id) = s.id else { continue };
            listed.push(Listed {
                id,
                name: s
                    .names
                    .unwrap_or_default()
                    .first()
                    .map(|n| n.trim_start_matches('/').to_owned())
                    .unwrap_or_default(),
                state: s.state.map(|st| st.to_string()).unwrap_or_default(),
                status: s.status.unwrap_or_default(),
            });
        }
        let ports = published_ports(unmanaged);
        let (now, wall) = (Instant::now(), SystemTime::now());
        let mut out = Vec::with_capacity(listed.len());
        let mut stale = Vec::new();
        {
            let mut cache = self.lock_inspected();
            cache.retain_listed(&listed);
            for l in listed {
                match cache.get(&l, now, wall) {
                    Some(c) => out.push(c),
                    None => stale.push(l),
                }
            }
        }
        let inspected: Vec<Option<(Listed, ContainerInspectResponse)>> =
            futures::stream::iter(stale)
                .map(|l| async move {
                    match call("inspect", &l.id, self.docker.inspect_container(&l.id, None)).await {
                        Ok(c) => Ok(Some((l, c))),
                        // Removed between list and inspect: it is simply not there.
                        Err(e) if e.is_not_found() => Ok(None),
                        Err(e) => Err(e),
                    }
                })
                .buffer_unordered(8)
                .try_collect()
                .await?;
        {
            let mut cache = self.lock_inspected();
            for (l, c) in inspected.into_iter().flatten() {
                if let Some(actual) = to_actual(c) {
                    cache.put(&l, actual.clone(), now);
                    out.push(actual);
                }
            }
        }
        {
            let cache = self.lock_inspected();
            for a in &mut out {
                a.oom_killed |= cache.oom_killed(&a.id);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok((out, ports))
    }

    fn lock_inspected(&self) -> std::sync::MutexGuard<'_, Inspected> {
        // The cache holds no invariant a panicking holder could break: use it anyway.
        self.inspected.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whatever Berth does to a container, the next pass looks at it afresh.
    fn forget_inspect(&self, id: &str) {
        self.lock_inspected().forget(id);
    }

    /// What this engine has of `image`: its ID and registry digests, or `None`.
    pub async fn image(&self, image: &str) -> Result<Option<ImageInfo>, RuntimeError> {
        match call("inspect_image", image, self.docker.inspect_image(image)).await {
            Ok(i) => Ok(Some(ImageInfo {
                id: i.id.unwrap_or_default(),
                repo_digests: i.repo_digests.unwrap_or_default(),
            })),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Pull `image` with `auth` for its registry, if any, calling `progress` as its layers
    /// come in. Docker itself pulls a layer once however many callers want it; the agent
    /// also keeps to one pull per image (see `images`).
    pub async fn pull(
        &self,
        image: &str,
        auth: Option<PullAuth>,
        mut progress: impl FnMut(PullProgress) + Send,
    ) -> Result<(), RuntimeError> {
        let (from, tag) = split_image(image);
        let opts = CreateImageOptionsBuilder::default()
            .from_image(from)
            .tag(tag)
            .build();
        let credentials = auth.map(|a| bollard::auth::DockerCredentials {
            username: Some(a.username),
            password: Some(a.password),
            serveraddress: Some(a.registry),
            ..Default::default()
        });
        let mut layers = convert::Layers::default();
        let started = Instant::now();
        let mut stream = self.docker.create_image(Some(opts), None, credentials);
        let mut result = Ok(());
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if layers.update(&info) {
                        progress(layers.progress());
                    }
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        metrics::DOCKER_REQUEST_DURATION
            .with_label_values(&["pull"])
            .observe(started.elapsed().as_secs_f64());
        metrics::DOCKER_REQUESTS
            .with_label_values(&["pull", if result.is_ok() { "success" } else { "error" }])
            .inc();
        result.map_err(|source| RuntimeError::Pull {
            image: image.to_owned(),
            source,
        })
    }

    /// Registry digests of each image ID in `ids` that has any, looked up once per ID.
    pub async fn repo_digests(&self, ids: &BTreeSet<String>) -> BTreeMap<String, Vec<String>> {
        let mut out = BTreeMap::new();
        for id in ids {
            let known = self.lock_digests().get(id).cloned();
            let digests = match known {
                Some(d) => d,
                None => match self.image(id).await {
                    Ok(Some(info)) => {
                        self.lock_digests()
                            .insert(id.clone(), info.repo_digests.clone());
                        info.repo_digests
                    }
                    // Gone or unreadable: asked again next time.
                    _ => continue,
                },
            };
            out.insert(id.clone(), digests);
        }
        out
    }

    /// A pull can give an image ID it already had a new digest.
    pub fn forget_digests(&self) {
        self.lock_digests().clear();
    }

    fn lock_digests(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<String>>> {
        // A plain cache: use it whatever a panicking holder left.
        self.digests.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Create the network unless it exists (or, when `create` is false, say it is
    /// missing). Berth labels the ones it creates, with the host whose agent created it,
    /// which removes it again (see [`Runtime::host_networks`]).
    pub async fn ensure_network(
        &self,
        name: &str,
        driver: &str,
        stack: &str,
        host: &str,
        create: bool,
    ) -> Result<(), RuntimeError> {
        if call(
            "inspect_network",
            name,
            self.docker.inspect_network(name, None),
        )
        .await
        .is_ok()
        {
            return Ok(());
        }
        if !create {
            return Err(RuntimeError::Missing {
                kind: "network",
                name: name.to_owned(),
            });
        }
        let req = NetworkCreateRequest {
            name: name.to_owned(),
            driver: Some(driver.to_owned()),
            labels: Some(HashMap::from([
                (labels::MANAGED.to_owned(), "true".to_owned()),
                (labels::STACK.to_owned(), stack.to_owned()),
                (labels::HOST.to_owned(), host.to_owned()),
            ])),
            ..Default::default()
        };
        match call("create_network", name, self.docker.create_network(req)).await {
            Ok(_) => Ok(()),
            // Created concurrently by another pass: fine.
            Err(e) if e.is_conflict() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Create the named volume unless it exists (or, when `create` is false, say it is
    /// missing).
    pub async fn ensure_volume(
        &self,
        v: &crate::assignment::VolumeSpec,
        stack: &str,
    ) -> Result<(), RuntimeError> {
        let crate::assignment::VolumeSpec {
            name,
            driver,
            remove_on_delete,
            create,
        } = v;
        if call("inspect_volume", name, self.docker.inspect_volume(name))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if !create {
            return Err(RuntimeError::Missing {
                kind: "volume",
                name: name.clone(),
            });
        }
        let mut l = HashMap::from([
            (labels::MANAGED.to_owned(), "true".to_owned()),
            (labels::STACK.to_owned(), stack.to_owned()),
        ]);
        if *remove_on_delete {
            l.insert(labels::REMOVE_ON_DELETE.to_owned(), "true".to_owned());
        }
        let req = VolumeCreateRequest {
            name: Some(name.to_owned()),
            driver: Some(driver.to_owned()),
            labels: Some(l),
            ..Default::default()
        };
        call("create_volume", name, self.docker.create_volume(req))
            .await
            .map(|_| ())
    }

    /// Berth's stack networks on this engine with the label `key` = `value`, as
    /// (name, stack).
    async fn stack_networks(
        &self,
        key: &str,
        value: &str,
    ) -> Result<Vec<(String, String)>, RuntimeError> {
        let filters: HashMap<String, Vec<String>> = HashMap::from([(
            "label".to_owned(),
            vec![
                format!("{}=true", labels::MANAGED),
                format!("{key}={value}"),
            ],
        )]);
        let opts = ListNetworksOptionsBuilder::default()
            .filters(&filters)
            .build();
        let nets = call(
            "list_networks",
            value,
            self.docker.list_networks(Some(opts)),
        )
        .await?;
        Ok(nets
            .into_iter()
            .filter_map(|n| {
                let stack = n.labels.as_ref()?.get(labels::STACK)?.clone();
                Some((n.name?, stack))
            })
            .collect())
    }

    /// The stack networks this host's agent created on this engine, as (name, stack).
    pub async fn host_networks(&self, host: &str) -> Result<Vec<(String, String)>, RuntimeError> {
        self.stack_networks(labels::HOST, host).await
    }

    /// Remove the networks Berth created for `stack` on this engine, right after its last
    /// container here went. A network still in use (another stack or host shares it) is
    /// left alone; the agent's sweep tries the ones its host created again later.
    pub async fn remove_stack_networks(&self, stack: &str) -> Result<(), RuntimeError> {
        for (name, _) in self.stack_networks(labels::STACK, stack).await? {
            match self.remove_network(&name).await {
                Ok(()) => {}
                Err(e) if e.is_conflict() || e.status_code() == Some(403) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Remove one network; already gone is success. Docker refuses (403 or 409) while
    /// containers are attached.
    pub async fn remove_network(&self, name: &str) -> Result<(), RuntimeError> {
        match call("remove_network", name, self.docker.remove_network(name)).await {
            Ok(()) => {
                tracing::info!(network = %name, "removed stack network");
                Ok(())
            }
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Remove the volumes Berth created for `stack` with `berth.remove-on-delete`; never a
    /// volume without Berth's labels. A volume still in use is left.
    pub async fn remove_stack_volumes(&self, stack: &str) -> Result<Vec<String>, RuntimeError> {
        let filters: HashMap<String, Vec<String>> = HashMap::from([(
            "label".to_owned(),
            vec![
                format!("{}=true", labels::MANAGED),
                format!("{}={stack}", labels::STACK),
                format!("{}=true", labels::REMOVE_ON_DELETE),
            ],
        )]);
        let opts = ListVolumesOptionsBuilder::default()
            .filters(&filters)
            .build();
        let listed = call("list_volumes", stack, self.docker.list_volumes(Some(opts))).await?;
        let mut removed = Vec::new();
        for v in listed.volumes.unwrap_or_default() {
            match call(
                "remove_volume",
                &v.name,
                self.docker.remove_volume(
                    &v.name,
                    None::<bollard::query_parameters::RemoveVolumeOptions>,
                ),
            )
            .await
            {
                Ok(()) => removed.push(v.name),
                Err(e) if e.is_not_found() || e.is_conflict() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(removed)
    }

    /// Create (not start) a container; returns its id. Its image must be there already
    /// (the agent's `images` step sees to it): a missing one is Docker's 404, retried.
    pub async fn create(&self, req: CreateRequest<'_>) -> Result<String, RuntimeError> {
        self.create_once(&req).await
    }

    async fn create_once(&self, req: &CreateRequest<'_>) -> Result<String, RuntimeError> {
        let body = create_body(req);
        let opts = CreateContainerOptionsBuilder::default()
            .name(req.name)
            .build();
        let resp = call(
            "create",
            req.name,
            self.docker.create_container(Some(opts), body),
        )
        .await?;
        Ok(resp.id)
    }

    pub async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        self.forget_inspect(id);
        call("start", id, self.docker.start_container(id, None)).await
    }

    /// Stop with a grace period; already stopped is success.
    pub async fn stop(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        let opts = StopContainerOptionsBuilder::default()
            .t(grace.as_secs() as i32)
            .build();
        self.forget_inspect(id);
        match call("stop", id, self.docker.stop_container(id, Some(opts))).await {
            Err(RuntimeError::Request {
                source:
                    bollard::errors::Error::DockerResponseServerError {
                        status_code: 304, ..
                    },
                ..
            }) => Ok(()),
            other => other,
        }
    }

    /// Remove a (stopped) container; already gone is success.
    pub async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let opts = RemoveContainerOptionsBuilder::default().force(true).build();
        self.forget_inspect(id);
        match call("remove", id, self.docker.remove_container(id, Some(opts))).await {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }

    /// The managed containers of `stack` on `host` (one service or replica if given): the
    /// only containers whose logs the agent API serves, found by their labels, never by a
    /// name a caller sends.
    pub async fn slot_containers(
        &self,
        host: &str,
        stack: &str,
        service: Option<&str>,
        replica: Option<u32>,
    ) -> Result<Vec<SlotContainer>, RuntimeError> {
        let mut filters = vec![
            format!("{}=true", labels::MANAGED),
            format!("{}={host}", labels::HOST),
            format!("{}={stack}", labels::STACK),
        ];
        if let Some(s) = service {
            filters.push(format!("{}={s}", labels::SERVICE));
        }
        if let Some(r) = replica {
            filters.push(format!("{}={r}", labels::REPLICA));
        }
        let opts = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&HashMap::from([("label".to_owned(), filters)]))
            .build();
        let list = call("list", stack, self.docker.list_containers(Some(opts))).await?;
        let mut out: Vec<SlotContainer> = list
            .into_iter()
            .filter_map(|c| {
                let l = c.labels.unwrap_or_default();
                Some(SlotContainer {
                    slot: crate::slot::SlotId {
                        stack: l.get(labels::STACK)?.clone(),
                        service: l.get(labels::SERVICE)?.clone(),
                        replica: l.get(labels::REPLICA)?.parse().ok()?,
                    },
                    id: c.id?,
                    created: c.created.unwrap_or(0),
                    running: c.state == Some(ContainerSummaryStateEnum::RUNNING),
                })
            })
            .collect();
        out.sort_by(|a, b| (&a.slot, a.created, &a.id).cmp(&(&b.slot, b.created, &b.id)));
        Ok(out)
    }

    /// Container `id`'s stdout and stderr with Docker's timestamps: the last `tail` lines,
    /// those since `since` (Unix seconds), and, when `follow`, on until it stops.
    pub fn logs(
        &self,
        id: &str,
        tail: Option<u64>,
        since: Option<i64>,
        follow: bool,
    ) -> impl Stream<Item = Result<LogChunk, RuntimeError>> + Send + 'static {
        let opts = bollard::query_parameters::LogsOptionsBuilder::default()
            .follow(follow)
            .stdout(true)
            .stderr(true)
            .timestamps(true)
            .since(since.map_or(0, |s| i32::try_from(s).unwrap_or(i32::MAX)))
            .tail(&tail.map_or_else(|| "all".to_owned(), |t| t.to_string()))
            .build();
        let target = id.to_owned();
        self.docker.logs(id, Some(opts)).map(move |item| {
            item.map(|out| match out {
                bollard::container::LogOutput::StdErr { message } => LogChunk {
                    stderr: true,
                    text: String::from_utf8_lossy(&message).into_owned(),
                },
                other => LogChunk {
                    stderr: false,
                    text: String::from_utf8_lossy(&other.into_bytes()).into_owned(),
                },
            })
            .map_err(|source| RuntimeError::Request {
                op: "logs",
                target: target.clone(),
                source,
            })
        })
    }

    /// Run `argv` inside a running container, up to `timeout`; the exit code (none when it
    /// timed out) and the last 2 KiB of its combined output.
    pub async fn exec(
        &self,
        container: &str,
        argv: &[String],
        workdir: Option<&str>,
        timeout: Duration,
    ) -> Result<ExecOutcome, RuntimeError> {
        let opts = CreateExecOptions {
            cmd: Some(argv.to_vec()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            working_dir: workdir.map(str::to_owned),
            ..Default::default()
        };
        let exec = call(
            "exec_create",
            container,
            self.docker.create_exec(container, opts),
        )
        .await?;
        let started = call(
            "exec_start",
            container,
            self.docker.start_exec(&exec.id, None),
        )
        .await?;
        let mut output: Vec<u8> = Vec::new();
        let collect = async {
            if let StartExecResults::Attached {
                output: mut stream, ..
            } = started
            {
                while let Some(Ok(chunk)) = stream.next().await {
                    output.extend_from_slice(chunk.as_ref());
                    // Keep only the tail: a migration can print a lot.
                    if output.len() > 16 * 1024 {
                        output.drain(..output.len() - 8 * 1024);
                    }
                }
            }
        };
        let timed_out = tokio::time::timeout(timeout, collect).await.is_err();
        let exit_code = if timed_out {
            None
        } else {
            call(
                "exec_inspect",
                container,
                self.docker.inspect_exec(&exec.id),
            )
            .await?
            .exit_code
        };
        let tail_start = output.len().saturating_sub(2048);
        Ok(ExecOutcome {
            exit_code,
            output_tail: String::from_utf8_lossy(&output[tail_start..])
                .trim()
                .to_owned(),
            timed_out,
        })
    }

    /// Stop (with the grace period) and start again. Returns how the stopped run ended,
    /// with its last `lines` lines of output, read between the stop and the start (after
    /// the start, the output and Docker's state are the new run's); `None` when Docker
    /// could not say.
    pub async fn restart(
        &self,
        id: &str,
        grace: Duration,
        lines: usize,
    ) -> Result<Option<Ended>, RuntimeError> {
        self.stop(id, grace).await?;
        let ended = match self.ended(id, lines).await {
            Ok(e) => Some(e),
            Err(e) => {
                tracing::warn!(container = %id, error = %crate::error_chain(&e), "reading how a container ended failed");
                None
            }
        };
        self.start(id).await?;
        Ok(ended)
    }

    /// How container `id`'s last run ended, with its last `lines` lines of output. A log
    /// Docker cannot read back (log driver `none`, `syslog`...) is an empty output, not a
    /// failure.
    pub async fn ended(&self, id: &str, lines: usize) -> Result<Ended, RuntimeError> {
        let c = call("inspect", id, self.docker.inspect_container(id, None)).await?;
        let state = c.state.as_ref();
        let output = match self.log_tail(id, lines).await {
            Ok(text) => text,
            Err(e) => {
                tracing::warn!(container = %id, error = %crate::error_chain(&e), "reading a container's log tail failed");
                String::new()
            }
        };
        Ok(Ended {
            exit_code: state.and_then(|s| s.exit_code),
            oom_killed: state.and_then(|s| s.oom_killed).unwrap_or(false)
                || self.lock_inspected().oom_killed(id),
            finished_at: convert::finished_at(state),
            output,
        })
    }

    /// The last `lines` lines of container `id`'s stdout and stderr, interleaved as Docker
    /// logged them.
    pub async fn log_tail(&self, id: &str, lines: usize) -> Result<String, RuntimeError> {
        /// A line can be long: only this much of the end is kept while reading.
        const KEEP: usize = 64 * 1024;
        let opts = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail(&lines.to_string())
            .build();
        let read = async {
            let mut stream = self.docker.logs(id, Some(opts));
            let mut out: Vec<u8> = Vec::new();
            while let Some(chunk) = stream.next().await {
                out.extend_from_slice(chunk?.as_ref());
                if out.len() > 2 * KEEP {
                    out.drain(..out.len() - KEEP);
                }
            }
            Ok(out)
        };
        let out = call("logs", id, read).await?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    pub async fn rename(&self, id: &str, name: &str) -> Result<(), RuntimeError> {
        let opts = RenameContainerOptionsBuilder::default().name(name).build();
        self.forget_inspect(id);
        call("rename", id, self.docker.rename_container(id, opts)).await
    }

    /// Events of managed containers on this host. The stream subscribes when first
    /// polled, so callers start polling it before they act.
    pub fn events(&self, host: &str) -> impl Stream<Item = Result<ContainerEvent, RuntimeError>> {
        let filters: HashMap<String, Vec<String>> = HashMap::from([
            ("type".to_owned(), vec!["container".to_owned()]),
            ("label".to_owned(), vec![format!("{}={host}", labels::HOST)]),
        ]);
        let opts = EventsOptionsBuilder::default().filters(&filters).build();
        // Events missed before this subscription may have changed any container.
        self.lock_inspected().clear();
        let rt = self.clone();
        self.docker.events(Some(opts)).map(move |r| {
            let ev = r.map(to_event).map_err(|source| RuntimeError::Request {
                op: "events",
                target: "stream".to_owned(),
                source,
            })?;
            // Whatever Docker says happened to a container, the next pass inspects it.
            rt.lock_inspected().event(&ev.id, &ev.action);
            Ok(ev)
        })
    }
}

/// Time and count one Docker call, and name it in the error.
async fn call<T>(
    op: &'static str,
    target: &str,
    fut: impl Future<Output = Result<T, bollard::errors::Error>>,
) -> Result<T, RuntimeError> {
    let start = Instant::now();
    let r = fut.await;
    metrics::DOCKER_REQUEST_DURATION
        .with_label_values(&[op])
        .observe(start.elapsed().as_secs_f64());
    let result = if r.is_ok() { "success" } else { "error" };
    metrics::DOCKER_REQUESTS
        .with_label_values(&[op, result])
        .inc();
    r.map_err(|source| RuntimeError::Request {
        op,
        target: target.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn plain_tcp_to_docker_is_refused_unless_explicitly_allowed() {
        let refused = Runtime::connect_with("tcp://127.0.0.1:9", &DockerTls::default()).await;
        assert!(matches!(refused, Err(RuntimeError::InsecureRefused { .. })));
        let allowed = DockerTls {
            insecure: true,
            ..DockerTls::default()
        };
        // Allowed, so it gets as far as trying (and nothing listens on port 9).
        let tried = Runtime::connect_with("tcp://127.0.0.1:9", &allowed).await;
        assert!(
            matches!(tried, Err(RuntimeError::Connect { .. })),
            "{:?}",
            tried.err()
        );
    }
}
