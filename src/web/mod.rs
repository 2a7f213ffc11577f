//! The live web view every controller serves at `/` beside `/metrics`: the deployment
//! map, stacks, hosts and events as pages kept current over Server-Sent Events, the same
//! data as JSON under `/api/v1/`, and a preview form that runs the planner of
//! `berth apply --dry-run`. Read-only: it reads the controller's list-then-watch cache
//! and writes nothing to etcd.
//!
//! Each change of the cache renders a [`Snapshot`] once (at most every
//! [`RENDER_SPACING`]); each stream only picks its page out of it, so a change costs the
//! same whatever the number of viewers, and nobody's page polls etcd.

pub mod html;
pub mod snapshot;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use self::html::Page;
use self::html::{PreviewInput, PreviewOutcome};
pub use self::snapshot::Snapshot;
use crate::controller::decide::dry_run;
use crate::controller::world::World;
use crate::spec::Problem;
use crate::store::Reflector;
use crate::view::PreviewView;

/// The least time between two renders: a burst of changes (a rollout writes many
/// reports) costs a few renders, and a change still shows within a second.
pub const RENDER_SPACING: Duration = Duration::from_millis(150);

const CSS: &str = include_str!("assets/berth.css");
const JS: &str = include_str!("assets/berth.js");

/// Only this origin's own script, style, stream and form: nothing is fetched from
/// elsewhere, and an injected script could not run or send anything away.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; \
                   frame-ancestors 'none'";

#[derive(Debug, Clone, Copy)]
pub struct WebConfig {
    /// The storm guard the preview assumes, as the controller's.
    pub max_unavailable_fraction: f64,
}

#[derive(Clone)]
struct Web {
    cache: Reflector,
    snapshots: watch::Receiver<Arc<Snapshot>>,
    demand: Arc<Demand>,
    cfg: WebConfig,
}

/// Who wants renders: open live pages, and requests waiting for a fresh snapshot. With
/// neither, a change renders nothing, so a controller nobody looks at spends nothing on
/// its view (the scale bench found rendering every change costing more than the passes).
#[derive(Default)]
struct Demand {
    viewers: std::sync::atomic::AtomicUsize,
    wake: tokio::sync::Notify,
}

/// One open live page, counted while its stream lives.
struct Viewer(Arc<Demand>);

impl Viewer {
    fn new(demand: &Arc<Demand>) -> Viewer {
        demand
            .viewers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        demand.wake.notify_one();
        Viewer(demand.clone())
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        self.0
            .viewers
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The view's routes over `cache` (the controller's), rendering until `cancel`; the
/// streams end then too, so a graceful shutdown does not wait for open pages.
pub fn routes(cache: Reflector, cfg: WebConfig, cancel: CancellationToken) -> Router {
    let demand = Arc::new(Demand::default());
    let snapshots = publish(cache.clone(), demand.clone(), cancel);
    let web = Web {
        cache,
        snapshots,
        demand,
        cfg,
    };
    Router::new()
        .route("/", get(|s| page(s, Page::Map)))
        .route("/stacks", get(|s| page(s, Page::Stacks)))
        .route("/stack", get(stack_page))
        .route("/hosts", get(|s| page(s, Page::Hosts)))
        .route("/events", get(|s| page(s, Page::Events)))
        .route("/preview", get(preview_form).post(preview_submit))
        .route("/live", get(live))
        .route(
            "/assets/berth.css",
            get(|| async { asset(CSS, "text/css") }),
        )
        .route(
            "/assets/berth.js",
            get(|| async { asset(JS, "text/javascript") }),
        )
        .route("/api/v1/stacks", get(api_stacks))
        .route("/api/v1/stacks/{id}", get(api_stack))
        .route("/api/v1/hosts", get(api_hosts))
        .route("/api/v1/events", get(api_events))
        .route("/api/v1/preview", axum::routing::post(api_preview))
        .with_state(web)
}

/// Render a snapshot after the cache changed (event records included) while someone
/// wants it ([`Demand`]): an open live page, or a request for the current snapshot.
/// At most one render per [`RENDER_SPACING`], shared by every viewer. Until `cancel`.
fn publish(
    cache: Reflector,
    demand: Arc<Demand>,
    cancel: CancellationToken,
) -> watch::Receiver<Arc<Snapshot>> {
    let (tx, rx) = watch::channel(Arc::new(Snapshot::default()));
    tokio::spawn(async move {
        let mut changes = cache.subscribe_all();
        let (mut dirty, mut asked) = (true, false);
        loop {
            let watched = demand.viewers.load(std::sync::atomic::Ordering::Relaxed) > 0;
            // A request asks for what the cache holds now, changed or not; open pages get
            // each change.
            if (dirty && watched) || asked {
                // Marked seen before reading: a change after this read wakes the next round.
                changes.borrow_and_update();
                let previous = tx.borrow().clone();
                let next = cache
                    .read(|c| {
                        let world = World::decode_for_view(c);
                        let events = crate::events::decode(c.entries.values(), None);
                        Snapshot::build(&world, events, c.revision, Some(&previous))
                    })
                    .await;
                if let Some(next) = next {
                    crate::metrics::WEB_RENDERS.inc();
                    tx.send_replace(Arc::new(next));
                    (dirty, asked) = (false, false);
                }
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(RENDER_SPACING) => {}
                }
                continue;
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                changed = changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    dirty = true;
                }
                _ = demand.wake.notified() => asked = true,
            }
        }
    });
    rx
}

fn html_response(body: String) -> Response {
    let mut r = (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response();
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    r
}

fn json_response(status: StatusCode, value: &impl serde::Serialize) -> Response {
    match serde_json::to_string_pretty(value) {
        Ok(text) => (
            status,
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            text + "\n",
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn page(State(web): State<Web>, page: Page) -> Response {
    let snap = current(&web).await;
    html_response(html::shell(&page, &snap.fragment(&page)))
}

#[derive(Deserialize)]
struct StackQuery {
    id: String,
}

async fn stack_page(state: State<Web>, Query(q): Query<StackQuery>) -> Response {
    page(state, Page::Stack(q.id)).await
}

#[derive(Deserialize)]
struct LiveQuery {
    page: String,
    id: Option<String>,
}

/// One page's stream: its current part at once (so a reconnect catches up), then the
/// part again whenever a render changed it. Event ids are the cache's revision.
async fn live(State(web): State<Web>, Query(q): Query<LiveQuery>) -> Response {
    let Some(page) = Page::of_query(&q.page, q.id.as_deref()) else {
        return (StatusCode::NOT_FOUND, "no such live page\n").into_response();
    };
    let mut rx = web.snapshots.clone();
    rx.mark_changed();
    let viewer = Viewer::new(&web.demand);
    let stream = futures::stream::unfold(
        (rx, page, None::<Arc<str>>, viewer),
        |(mut rx, page, last, viewer)| async move {
            loop {
                rx.changed().await.ok()?;
                let snap = rx.borrow_and_update().clone();
                let part = snap.fragment(&page);
                if last
                    .as_ref()
                    .is_some_and(|l| Arc::ptr_eq(l, &part) || **l == *part)
                {
                    continue;
                }
                let event = SseEvent::default()
                    .event("page")
                    .id(snap.revision.unwrap_or(0).to_string())
                    .data(&*part);
                return Some((Ok::<_, Infallible>(event), (rx, page, Some(part), viewer)));
            }
        },
    );
    let mut r = Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response();
    // A proxy that buffers (nginx does by default) would hold the stream back.
    r.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    r
}

async fn preview_form() -> Response {
    html_response(html::shell(
        &Page::Preview,
        &html::preview(&PreviewInput::default(), None),
    ))
}

#[derive(Deserialize)]
struct PreviewFormData {
    id: String,
    spec: String,
}

async fn preview_submit(State(web): State<Web>, Form(f): Form<PreviewFormData>) -> Response {
    let input = PreviewInput {
        id: f.id.trim().to_owned(),
        spec: f.spec,
    };
    let body = match preview(&web, &input.id, input.spec.as_bytes()).await {
        Some(Ok(v)) => html::preview(&input, Some(&PreviewOutcome::Placed(v))),
        Some(Err(problems)) => html::preview(
            &input,
            Some(&PreviewOutcome::Invalid(
                problems.iter().map(ToString::to_string).collect(),
            )),
        ),
        None => html::preview(
            &input,
            Some(&PreviewOutcome::Invalid(vec![NOT_SYNCED.to_owned()])),
        ),
    };
    html_response(html::shell(&Page::Preview, &body))
}

const NOT_SYNCED: &str = "the controller has not read the cluster from etcd yet";

/// The stack JSON a preview's input stands for: a compose file (told by its content) is
/// converted as `berth convert` does, in [`compose::Isolated`] surroundings, so nothing of
/// the controller's machine (its variables, its files) goes into it; what cannot be
/// converted comes back as problems with their compose paths.
fn stack_json(id: &str, input: &[u8]) -> Result<Vec<u8>, Vec<Problem>> {
    if crate::compose::detect(input) != crate::compose::Format::Compose {
        return Ok(input.to_vec());
    }
    let text = String::from_utf8_lossy(input);
    let options = crate::compose::Options {
        id: Some(id.to_owned()),
        ..Default::default()
    };
    match crate::compose::convert(
        &text,
        std::path::Path::new("/"),
        &options,
        &crate::compose::Isolated,
    ) {
        Ok(converted) => Ok(converted.to_json().into_bytes()),
        Err(crate::compose::Failure::NotConverted(report)) => Err(report.errors),
        Err(crate::compose::Failure::Unreadable(message)) => Err(vec![Problem::new("", message)]),
    }
}

/// Every problem of `spec` as stack `id`, or where its slots would go, against the
/// cluster as the cache holds it; `None` before the first list. Works on a copy of the
/// cache: writes nothing.
async fn preview(web: &Web, id: &str, spec: &[u8]) -> Option<Result<PreviewView, Vec<Problem>>> {
    let fraction = web.cfg.max_unavailable_fraction;
    let raw = match stack_json(id, spec) {
        Ok(raw) => raw,
        Err(problems) => return Some(Err(problems)),
    };
    web.cache
        .read(|c| {
            let mut world = World::decode_for_view(c);
            dry_run(&mut world, id, raw, fraction).map(|p| crate::view::preview_view(id, &p))
        })
        .await
}

/// The current snapshot. Once the cache has listed, the first render follows at once:
/// wait for it rather than answer "not read yet" for a cache that has been read.
async fn current(web: &Web) -> Arc<Snapshot> {
    if web.cache.synced() {
        // Ask for a render of what the cache holds now, and wait for it.
        let now = web.cache.read(|c| c.revision).await;
        web.demand.wake.notify_one();
        let mut rx = web.snapshots.clone();
        // An error means the view is stopping: answer with what there is.
        let _ = rx
            .wait_for(|s| s.revision.is_some_and(|r| now.is_none_or(|n| r >= n)))
            .await;
    }
    let snap = web.snapshots.borrow().clone();
    snap
}

/// The snapshot, once the first list completed.
async fn synced(web: &Web) -> Option<Arc<Snapshot>> {
    let snap = current(web).await;
    snap.revision.map(|_| snap)
}

/// 503: what the API answers before the first list.
fn not_synced() -> Response {
    json_response(
        StatusCode::SERVICE_UNAVAILABLE,
        &serde_json::json!({ "error": NOT_SYNCED }),
    )
}

async fn api_stacks(State(web): State<Web>) -> Response {
    match synced(&web).await {
        Some(s) => json_response(StatusCode::OK, &s.statuses),
        None => not_synced(),
    }
}

async fn api_stack(State(web): State<Web>, Path(id): Path<String>) -> Response {
    let Some(s) = synced(&web).await else {
        return not_synced();
    };
    match s.status(&id) {
        Some(st) => json_response(StatusCode::OK, st),
        None => json_response(
            StatusCode::NOT_FOUND,
            &serde_json::json!({"error": format!("stack {id} has no status")}),
        ),
    }
}

async fn api_hosts(State(web): State<Web>) -> Response {
    match synced(&web).await {
        Some(s) => json_response(StatusCode::OK, &s.hosts),
        None => not_synced(),
    }
}

#[derive(Deserialize)]
struct EventsQuery {
    stack: Option<String>,
}

async fn api_events(State(web): State<Web>, Query(q): Query<EventsQuery>) -> Response {
    match synced(&web).await {
        Some(s) => json_response(StatusCode::OK, &s.events_of(q.stack.as_deref())),
        None => not_synced(),
    }
}

#[derive(Deserialize)]
struct PreviewQuery {
    id: String,
}

/// `POST /api/v1/preview?id=ID` with the stack JSON as the body: 200 with the placement,
/// or 422 with every problem (`{"problems": [{"path", "message"}]}`).
async fn api_preview(
    State(web): State<Web>,
    Query(q): Query<PreviewQuery>,
    body: Bytes,
) -> Response {
    let outcome = preview(&web, &q.id, &body).await;
    match outcome {
        None => not_synced(),
        Some(Ok(view)) => json_response(StatusCode::OK, &view),
        Some(Err(problems)) => json_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            &serde_json::json!({ "problems": problems }),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_previewed_compose_file_is_converted_with_nothing_of_the_controllers_machine() {
        // A stack passes as it is.
        let stack = br#"{"itemListElement":[{"name":"web","image":"i"}]}"#;
        assert_eq!(stack_json("s", stack).unwrap(), stack.to_vec());

        // A compose file becomes a stack; a variable takes its default even where the
        // controller's process has it set (PATH always is).
        let compose =
            b"services:\n  web:\n    image: i\n    environment:\n      P: ${PATH:-unset}\n";
        let json = stack_json("s", compose).expect("converted");
        let stack: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(stack["itemListElement"][0]["name"], "web");
        assert_eq!(stack["itemListElement"][0]["environment"]["P"], "unset");

        // (case, compose file, the problem's path)
        let cases: [(&str, &[u8], &str); 3] = [
            (
                "a build without an image",
                b"services:\n  b:\n    build: .\n",
                "services.b.build",
            ),
            (
                "an env_file: no file of the controller is read",
                b"services:\n  web:\n    image: i\n    env_file: /etc/hostname\n",
                "services.web.env_file",
            ),
            ("services not a mapping", b"services: [a]\n", ""),
        ];
        for (name, text, path) in cases {
            let problems = stack_json("s", text).expect_err(name);
            assert!(
                problems.iter().any(|p| p.path.starts_with(path)),
                "{name}: {problems:?}"
            );
        }
    }
}
