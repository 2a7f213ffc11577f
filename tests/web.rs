//! The web view against a real etcd (and, for running stacks, the real Docker engine), seen
//! through a real headless Chromium where what matters is what a person sees: the map, live
//! updates without a reload, a lost stream, an invalid stack's problems, the preview form;
//! and its JSON API, compared with what the CLI prints.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use berth::spec::Phase;
use berth::store::{keys, Reflector};
use common::browser::{exchange, first_event, request, request_with, Browser};
use common::*;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const T: Duration = Duration::from_secs(60);

/// Serve the web view over `cache` on `port` (0: any); (its port, what stops it).
async fn serve(cache: &Reflector, port: u16) -> (u16, CancellationToken) {
    let cancel = CancellationToken::new();
    let routes = berth::web::routes(
        cache.clone(),
        berth::web::WebConfig {
            max_unavailable_fraction: 0.5,
        },
        cancel.clone(),
    );
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let bound = berth::serve::spawn_with(addr, vec![], routes, cancel.clone())
        .await
        .expect("serve the web view");
    (bound.port(), cancel)
}

/// A service that sleeps until stopped.
fn sleeper(name: &str) -> Value {
    json!({"name": name, "image": "berth-test/busybox:latest",
           "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"]})
}

/// Is the live stream's state line showing `state` (`live`, `down`)?
fn conn_is(state: &str) -> String {
    format!(
        "const c = document.getElementById('conn'); return !!c && c.dataset.state === '{state}';"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_map_shows_running_stacks_live_by_keyboard_on_a_phone_and_says_when_the_stream_drops() {
    let c = Cluster::start("web-map").await;
    let host = c.host_id.clone();
    let (port, web) = serve(&c.controller_cache, 0).await;
    let db_port = free_port();
    let mut db = sleeper("db");
    db["ports"] = json!([{"containerPort": 5432, "hostPort": db_port, "protocol": "tcp"}]);
    let mut api = sleeper("api");
    api["requirements"] = json!(["db"]);
    api["replicas"] = json!(2);
    let shop = json!({"itemListElement": [db, api]}).to_string();
    let rev = c.put_stack("web-shop", &shop).await;
    c.wait_status("web-shop", T, |s| {
        s.phase == Phase::Running && s.observed_revision == rev
    })
    .await;

    let b = Browser::start(1280, 1000).await;
    b.goto(&format!("http://127.0.0.1:{port}/")).await;
    b.wait_for("the stream is live", T, &conn_is("live")).await;
    // The host's card: its state, and each service with its state, port and connection.
    let svc = |stack: &str, name: &str| format!("svc-{host}-{stack}-{name}");
    let service_reads = |id: String, words: Vec<String>| {
        format!(
            "const a = document.getElementById({id:?}); if (!a) return false; \
             const t = a.closest('li').innerText; return {words:?}.every(w => t.includes(w));"
        )
    };
    b.wait_for(
        "the host's card says Ready",
        T,
        &format!("const h = document.getElementById('host-{host}'); return !!h && h.innerText.includes('Ready');"),
    )
    .await;
    b.wait_for(
        "db runs on the host, with its published port",
        T,
        &service_reads(
            svc("web-shop", "db"),
            vec![
                "web-shop/db".into(),
                "running".into(),
                format!("{db_port}->5432"),
            ],
        ),
    )
    .await;
    b.wait_for(
        "api runs on the host and connects to db",
        T,
        &service_reads(
            svc("web-shop", "api.1"),
            vec![
                "web-shop/api.1".into(),
                "running".into(),
                format!("db=127.0.0.1:{db_port}"),
            ],
        ),
    )
    .await;

    // A stack put while the page is open appears without a reload. (How fast is for a
    // benchmark to say, not a test: the wait below is only a bound.)
    b.eval("window.berthNotReloaded = true; return true;").await;
    let late = json!({"itemListElement": [sleeper("worker")]}).to_string();
    let rev = c.put_stack("web-late", &late).await;
    b.wait_for(
        "the new stack shows, in the same page",
        Duration::from_secs(10),
        "return !!document.querySelector('a[href=\"stack?id=web-late\"]') \
         && window.berthNotReloaded === true;",
    )
    .await;
    c.wait_status("web-late", T, |s| {
        s.phase == Phase::Running && s.observed_revision == rev
    })
    .await;
    b.wait_for(
        "the new stack's service runs on the map, in the same page",
        T,
        &format!(
            "{} ",
            service_reads(svc("web-late", "worker"), vec!["running".into()]).replace(
                "return {",
                "if (window.berthNotReloaded !== true) return false; return {"
            )
        ),
    )
    .await;
    b.wait_for(
        "every service reads running",
        T,
        "return [...document.querySelectorAll('.service')].every(li => li.innerText.includes('running'));",
    )
    .await;
    let png = b.screenshot().await;
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    // Kept with the test's files; `BERTH_UPDATE_DOCS=1` also refreshes the README's
    // picture, so an ordinary run leaves the work tree as it was.
    std::fs::write(concat!(env!("CARGO_TARGET_TMPDIR"), "/web-map.png"), &png)
        .expect("save the screenshot");
    if std::env::var("BERTH_UPDATE_DOCS").is_ok_and(|v| v == "1") {
        std::fs::write(
            concat!(env!("CARGO_MANIFEST_DIR"), "/docs/web-map.png"),
            &png,
        )
        .expect("save docs/web-map.png");
    }
    // The map works with a keyboard: Tab reaches a service, Enter opens its stack.
    b.eval("document.activeElement.blur(); return true;").await;
    let target = svc("web-shop", "db");
    let mut reached = false;
    for _ in 0..80 {
        b.press("\u{E004}").await;
        if b.eval("return document.activeElement.id;").await == Value::String(target.clone()) {
            reached = true;
            break;
        }
    }
    assert!(reached, "Tab never reached {target}");
    b.press("\u{E007}").await;
    b.wait_for(
        "Enter opened the stack's page",
        T,
        "return location.search === '?id=web-shop' \
         && document.querySelector('h1').innerText === 'Stack web-shop';",
    )
    .await;
    // On a phone the page does not scroll sideways (wide tables scroll in their box).
    b.resize(390, 844).await;
    for page in [
        "",
        "stacks",
        "stack?id=web-shop",
        "hosts",
        "events",
        "preview",
    ] {
        b.goto(&format!("http://127.0.0.1:{port}/{page}")).await;
        b.wait_for(
            &format!("/{page} fits a phone's width"),
            T,
            "return document.readyState === 'complete' \
             && document.documentElement.scrollWidth <= window.innerWidth;",
        )
        .await;
    }
    b.resize(1280, 900).await;
    // The stream drops: the page says so; it comes back by itself and catches up.
    b.goto(&format!("http://127.0.0.1:{port}/")).await;
    b.wait_for("the stream is live", T, &conn_is("live")).await;
    b.eval("window.berthNotReloaded = true; return true;").await;
    web.cancel();
    b.wait_for("the page says the stream dropped", T, &conn_is("down"))
        .await;
    let text = b
        .eval("return document.getElementById('conn').innerText;")
        .await;
    assert!(
        text.as_str().unwrap_or_default().contains("Disconnected"),
        "{text}"
    );
    c.put_stack(
        "web-while-down",
        &json!({"itemListElement": [sleeper("worker")]}).to_string(),
    )
    .await;
    let (again, _web) = serve(&c.controller_cache, port).await;
    assert_eq!(again, port);
    b.wait_for(
        "the page reconnected and shows what changed meanwhile",
        T,
        &format!(
            "{} && !!document.querySelector('a[href=\"stack?id=web-while-down\"]') \
             && window.berthNotReloaded === true;",
            conn_is("live").trim_end_matches(';')
        ),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_stacks_page_lists_every_problem_with_its_json_path() {
    let e = Etcd::start().await;
    let stop = CancellationToken::new();
    let _guard = stop.clone().drop_guard();
    let controller = spawn_controller(&e.store, "web-invalid", &stop);
    let (port, _web) = serve(&controller.cache, 0).await;
    let bad = json!({"itemListElement": [
        {"name": "web", "ports": [{"containerPort": 70000}]},
        {"name": "Bad_Name", "image": "x"},
        {"name": "db", "image": "x", "requirements": ["nowhere"]}
    ]})
    .to_string();
    let expected: Vec<String> = berth::spec::parse_stack(bad.as_bytes())
        .expect_err("invalid")
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(expected.len() >= 3, "{expected:?}");

    // Opened before the stack exists: it appears, with its problems, without a reload.
    let b = Browser::start(1280, 900).await;
    b.goto(&format!("http://127.0.0.1:{port}/stack?id=web-bad"))
        .await;
    b.wait_for("the stream is live", T, &conn_is("live")).await;
    assert!(b.text().await.contains("There is no stack web-bad"));
    e.store
        .put(&keys::stack("web-bad"), bad.into_bytes())
        .await
        .unwrap();
    let listed = format!(
        "return JSON.stringify([...document.querySelectorAll('.problems li')].map(li => li.innerText)) === {:?};",
        serde_json::to_string(&expected).unwrap()
    );
    b.wait_for("every problem, in order", T, &listed).await;
    let paths = b
        .eval("return [...document.querySelectorAll('.problems li code.path')].map(c => c.innerText);")
        .await;
    let want: Vec<&str> = expected
        .iter()
        .map(|p| p.split_once(": ").expect("path: message").0)
        .collect();
    assert_eq!(paths, json!(want));
    assert!(
        want.contains(&"itemListElement[0].ports[0].containerPort"),
        "{want:?}"
    );
    assert!(
        b.text().await.contains("Invalid"),
        "the phase reads Invalid"
    );
}

/// A bare cache of `store` (no controller writes anything) with host `id` registered.
async fn cache_with_host(
    store: &berth::store::Store,
    id: &str,
    stop: &CancellationToken,
) -> Reflector {
    store
        .put(
            &keys::host(id),
            json!({"id": id, "address": "10.9.0.1", "cpus": 4.0, "memoryMb": 8192})
                .to_string()
                .into_bytes(),
        )
        .await
        .unwrap();
    let cache = Reflector::spawn(store.clone(), String::new(), stop.clone());
    cache.wait_synced().await;
    cache
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_preview_shows_placement_or_every_problem_and_writes_nothing() {
    let e = Etcd::start().await;
    let stop = CancellationToken::new();
    let _guard = stop.clone().drop_guard();
    let cache = cache_with_host(&e.store, "web-pv-h1", &stop).await;
    let (port, _web) = serve(&cache, 0).await;
    let valid = json!({"itemListElement": [
        {"name": "db", "image": "x"},
        {"name": "api", "image": "x", "replicas": 2, "requirements": ["db"]}
    ]})
    .to_string();
    let invalid = json!({"itemListElement": [
        {"name": "db"},
        {"name": "api", "image": "x", "replicas": -1}
    ]})
    .to_string();
    let problems: Vec<String> = berth::spec::parse_stack(invalid.as_bytes())
        .expect_err("invalid")
        .iter()
        .map(ToString::to_string)
        .collect();
    let (_, revision_before) = e.store.list("").await.unwrap();

    let b = Browser::start(1280, 900).await;
    let submit = |spec: String| {
        let b = &b;
        async move {
            b.goto(&format!("http://127.0.0.1:{port}/preview")).await;
            let id = b.find("#id").await;
            b.type_into(&id, "web-pv").await;
            let text = b.find("#spec").await;
            b.type_into(&text, &spec).await;
            let go = b.find("#submit").await;
            b.click(&go).await;
        }
    };
    submit(valid.clone()).await;
    b.wait_for(
        "every slot placed on the one host",
        T,
        "const rows = [...document.querySelectorAll('table.placement tbody tr')].map(r => r.innerText); \
         return rows.length === 3 && rows.every(r => r.includes('web-pv-h1'));",
    )
    .await;
    let rows = b
        .eval("return [...document.querySelectorAll('table.placement tbody tr')].map(r => r.cells[0].innerText + '.' + r.cells[1].innerText);")
        .await;
    assert_eq!(rows, json!(["api.1", "api.2", "db.1"]));
    assert!(b.text().await.contains("Nothing was written."));

    // The invalid file is uploaded rather than pasted: the page reads it into the form
    // and takes the stack id from its name.
    let dir = tempfile::tempdir().unwrap();
    let upload = dir.path().join("web-pv-upload.json");
    std::fs::write(&upload, &invalid).unwrap();
    b.goto(&format!("http://127.0.0.1:{port}/preview")).await;
    let file = b.find("#file").await;
    b.type_into(&file, upload.to_str().unwrap()).await;
    b.wait_for(
        "the file is read into the form",
        T,
        &format!(
            "return document.getElementById('spec').value === {:?} \
             && document.getElementById('id').value === 'web-pv-upload';",
            invalid
        ),
    )
    .await;
    let go = b.find("#submit").await;
    b.click(&go).await;
    let listed = format!(
        "return JSON.stringify([...document.querySelectorAll('#result .problems li')].map(li => li.innerText)) === {:?};",
        serde_json::to_string(&problems).unwrap()
    );
    b.wait_for("every problem of the invalid file", T, &listed)
        .await;

    // The same through the API, and the same placement as `berth apply --dry-run`.
    let (status, body) = request(port, "POST", "/api/v1/preview?id=web-pv", &valid)
        .await
        .expect("preview API");
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let hosts: Vec<&str> = v["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["host"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, ["web-pv-h1"; 3], "{body}");
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &valid).unwrap();
    let cli = run_ok(
        std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["apply", "--dry-run", "--id", "web-pv", "-f"])
            .arg(file.path())
            .env("BERTH_ETCD_ENDPOINTS", &e.etcd.client_url),
    );
    for slot in v["slots"].as_array().unwrap() {
        let line = format!(
            "{}  {}  {}",
            slot["service"].as_str().unwrap(),
            slot["replica"],
            slot["host"].as_str().unwrap()
        );
        let squeezed: Vec<String> = cli
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join("  "))
            .collect();
        assert!(squeezed.contains(&line), "{line} in:\n{cli}");
    }
    let (status, body) = request(port, "POST", "/api/v1/preview?id=web-pv", &invalid)
        .await
        .expect("preview API");
    assert_eq!(status, 422, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let got: Vec<String> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}: {}",
                p["path"].as_str().unwrap(),
                p["message"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(got, problems);

    let (_, revision_after) = e.store.list("").await.unwrap();
    assert_eq!(revision_before, revision_after, "the preview wrote to etcd");
    assert!(e.store.get(&keys::stack("web-pv")).await.unwrap().is_none());
}

impl Etcd {
    async fn put_json(&self, key: String, value: Value) {
        self.store
            .put(&key, value.to_string().into_bytes())
            .await
            .expect("put");
    }

    /// `berth ARGS -o json` against this etcd, parsed.
    fn berth_json(&self, args: &[&str]) -> Value {
        let out = run_ok(
            std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
                .args(args)
                .args(["-o", "json"])
                .env("BERTH_ETCD_ENDPOINTS", &self.etcd.client_url),
        );
        serde_json::from_str(&out).expect("CLI JSON")
    }
}

/// GET `path` as JSON: (status, value).
async fn get_json(port: u16, path: &str) -> (u16, Value) {
    let (status, body) = request(port, "GET", path, "").await.expect("answer");
    (
        status,
        serde_json::from_str(&body).unwrap_or_else(|_| panic!("{path}: not JSON: {body}")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_api_answers_what_the_cli_prints() {
    let e = Etcd::start().await;
    e.put_json(
        keys::stack("web-api"),
        json!({"itemListElement": [{"name": "web", "image": "x"}]}),
    )
    .await;
    e.put_json(
        keys::status("web-api"),
        json!({"stack": "web-api", "observedRevision": 2, "phase": "Running",
               "message": "1/1 containers running", "conditions": [],
               "services": {"web": {"host": "web-api-h1", "state": "running",
                                    "health": "none", "restarts": 0}}}),
    )
    .await;
    e.put_json(
        keys::host("web-api-h1"),
        json!({"id": "web-api-h1", "address": "10.1.0.1", "cpus": 4.0, "memoryMb": 8192}),
    )
    .await;
    e.put_json(
        keys::assignment("web-api-h1", "web-api"),
        json!({"stack": "web-api", "specRevision": 2, "desiredState": "running",
               "network": {"name": "berth-web-api", "driver": "bridge"},
               "slots": [{"service": "web", "replica": 1, "order": 0,
                          "container": {"image": "x", "env": {}, "ports": [], "cpus": 0.5}}]}),
    )
    .await;
    for (n, reason) in ["Placed", "Created"].iter().enumerate() {
        e.put_json(
            format!("{}{n:024}-0", keys::events_of("controller", "web-api")),
            json!({"time": format!("2026-12-03T10:00:0{n}.000Z"), "stack": "web-api",
                   "component": "controller", "reason": reason, "message": "m"}),
        )
        .await;
    }
    let stop = CancellationToken::new();
    let _guard = stop.clone().drop_guard();
    let cache = Reflector::spawn(e.store.clone(), String::new(), stop.clone());
    cache.wait_synced().await;
    let (port, _web) = serve(&cache, 0).await;

    let cases: [(&str, &[&str]); 5] = [
        ("/api/v1/stacks", &["status"]),
        ("/api/v1/stacks/web-api", &["status", "web-api"]),
        ("/api/v1/hosts", &["hosts"]),
        ("/api/v1/events", &["events"]),
        ("/api/v1/events?stack=web-api", &["events", "web-api"]),
    ];
    for (path, cli) in cases {
        let (status, api) = get_json(port, path).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(api, e.berth_json(cli), "{path} against berth {cli:?}");
        assert_ne!(api, json!([]), "{path} is not empty");
    }
    let (status, _) = get_json(port, "/api/v1/stacks/web-nothing").await;
    assert_eq!(status, 404);

    // A change shows in the API from the cache, with no restart.
    e.put_json(
        keys::host("web-api-h2"),
        json!({"id": "web-api-h2", "address": "10.1.0.2"}),
    )
    .await;
    eventually("the API lists the new host", T, || async {
        let (_, hosts) = get_json(port, "/api/v1/hosts").await;
        (hosts.as_array()?.len() == 2).then_some(())
    })
    .await;
    assert_eq!(
        get_json(port, "/api/v1/hosts").await.1,
        e.berth_json(&["hosts"])
    );

    // The page's stream: an event stream a proxy must not buffer, opening with the page.
    let (head, events) = first_event(port, "/live?page=hosts").await;
    let head = head.to_ascii_lowercase();
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    assert!(head.contains("x-accel-buffering: no"), "{head}");
    assert!(events.contains("web-api-h2"), "{events}");

    // Pages: only relative URLs (so a proxy's path prefix works), and a policy that lets
    // nothing load from elsewhere.
    for page in [
        "/",
        "/stacks",
        "/stack?id=web-api",
        "/hosts",
        "/events",
        "/preview",
    ] {
        let (status, head, body) = exchange(port, "GET", page, "text/plain", "")
            .await
            .expect("page");
        assert_eq!(status, 200, "{page}");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-security-policy: default-src 'none'"),
            "{page}: {head}"
        );
        for attr in ["href=\"", "src=\"", "action=\"", "data-live=\""] {
            for url in body.split(attr).skip(1) {
                assert!(
                    !url.starts_with('/') && !url.contains("//"),
                    "{page}: {attr}{}",
                    &url[..url.len().min(40)]
                );
            }
        }
    }
    for asset in ["/assets/berth.js", "/assets/berth.css"] {
        let (status, _) = request(port, "GET", asset, "").await.unwrap();
        assert_eq!(status, 200, "{asset}");
    }
    // Read-only: nothing to write with.
    let (status, _) = request_with(
        port,
        "PUT",
        "/api/v1/stacks/web-api",
        "application/json",
        "{}",
    )
    .await
    .unwrap();
    assert_eq!(status, 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_page_and_no_api_answer_shows_a_secret_or_an_environment_value() {
    let c = Cluster::start("web-secret").await;
    const SECRET: &str = "SECRET-MARKER-web-91c2";
    const PLAIN: &str = "PLAIN-MARKER-web-5d7e";
    c.store
        .put(&keys::secret("web-secret-pw"), SECRET.as_bytes().to_vec())
        .await
        .unwrap();
    let db_port = free_port();
    let mut db = sleeper("db");
    db["ports"] = json!([{"containerPort": 5432, "hostPort": db_port, "protocol": "tcp"}]);
    db["environment"] = json!({"POSTGRES_PASSWORD": "{{secret:web-secret-pw}}", "MODE": PLAIN});
    let mut app = sleeper("app");
    app["requirements"] = json!(["db"]);
    app["environment"] = json!({
        "DB_URL": "postgres://app:{{secret:web-secret-pw}}@db/x",
        "API_TOKEN": PLAIN,
        "NOTE": PLAIN
    });
    let spec = json!({"itemListElement": [db, app]}).to_string();
    let rev = c.put_stack("web-secret", &spec).await;
    c.wait_status("web-secret", T, |s| {
        s.phase == Phase::Running && s.observed_revision == rev
    })
    .await;
    // The markers are really there: in the containers' environment.
    let ids = containers_of(&c.host_id, "web-secret");
    let env: String = ids
        .iter()
        .map(|id| inspect(id, "{{json .Config.Env}}"))
        .collect();
    assert!(env.contains(SECRET) && env.contains(PLAIN), "{env}");

    let (port, _web) = serve(&c.controller_cache, 0).await;
    eventually("the view has the stack's events", T, || async {
        let (_, body) = request(port, "GET", "/api/v1/events?stack=web-secret", "").await?;
        body.contains("Created").then_some(())
    })
    .await;
    let mut answers = Vec::new();
    for path in [
        "/",
        "/stacks",
        "/stack?id=web-secret",
        "/hosts",
        "/events",
        "/preview",
        "/api/v1/stacks",
        "/api/v1/stacks/web-secret",
        "/api/v1/hosts",
        "/api/v1/events",
    ] {
        let (status, body) = request(port, "GET", path, "").await.expect("answer");
        assert_eq!(status, 200, "{path}");
        answers.push((path.to_owned(), body));
    }
    let (status, body) = request(port, "POST", "/api/v1/preview?id=web-secret", &spec)
        .await
        .expect("preview");
    assert_eq!(status, 200, "{body}");
    answers.push(("/api/v1/preview".to_owned(), body));
    // The streams carry the same parts as the pages, but check them too.
    for page in ["map", "stacks", "hosts", "events", "stack&id=web-secret"] {
        let path = format!("/live?page={page}");
        let (_, events) = first_event(port, &path).await;
        answers.push((path, events));
    }
    // The map did render the app's connection to db, only without its password.
    let map = &answers[0].1;
    assert!(map.contains("web-secret/app"), "{map}");
    for (path, body) in &answers {
        assert!(!body.contains(SECRET), "{path} shows the secret:\n{body}");
        assert!(!body.contains(PLAIN), "{path} shows an env value:\n{body}");
        assert!(!body.contains("web-secret-pw}}@"), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn berth_controller_serves_the_view_beside_its_metrics_and_berth_up_prints_its_url() {
    let e = Etcd::start().await;
    e.put_json(
        keys::host("web-cli-h1"),
        json!({"id": "web-cli-h1", "address": "10.2.0.1"}),
    )
    .await;
    // Two controllers: one leads, the other waits; both serve the view.
    let mut controllers = Vec::new();
    for id in ["web-cli-1", "web-cli-2"] {
        let port = free_port();
        let proc = Proc(
            std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
                .args(["controller", "--controller-id", id])
                .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
                .env("BERTH_ETCD_ENDPOINTS", &e.etcd.client_url)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
        controllers.push((port, proc));
    }
    for (port, _) in &controllers {
        let port = *port;
        eventually("the controller serves the map", T, || async {
            let (status, body) = request(port, "GET", "/", "").await?;
            (status == 200 && body.contains("id=\"host-web-cli-h1\"")).then_some(())
        })
        .await;
        for path in ["/healthz", "/api/v1/hosts"] {
            let (status, _) = request(port, "GET", path, "").await.unwrap();
            assert_eq!(status, 200, "{path}");
        }
    }
    eventually("one of them leads", T, || async {
        let mut sum = 0.0;
        for (port, _) in &controllers {
            sum += metric_sum(
                &request(*port, "GET", "/metrics", "").await?.1,
                "berth_leader",
            );
        }
        (sum == 1.0).then_some(())
    })
    .await;

    // `berth up` says where the view is, and it is there.
    let up_port = free_port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["up", "--etcd-endpoints", &e.etcd.client_url])
        .args(["--host-id", "it-web-up", "--controller-id", "web-up"])
        .args(["--metrics-addr", &format!("127.0.0.1:{up_port}")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _up = Proc(child);
    let line = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find(|l| l.starts_with("Web view"))
    })
    .await
    .unwrap()
    .expect("berth up prints the web view's URL");
    let url = format!("http://127.0.0.1:{up_port}/");
    assert!(line.ends_with(&url), "{line}");
    let (status, body) = request(up_port, "GET", "/", "").await.expect("the view");
    assert_eq!(status, 200);
    assert!(body.contains("Deployment map"), "{body}");
    remove_containers_of("it-web-up");
}
