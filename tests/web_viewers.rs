//! The web view's cost does not grow with its viewers: many open pages share one render
//! per change. Its own test binary, so the process-wide render counter counts only this
//! test's view.

mod common;

use std::time::Duration;

use berth::store::{keys, Reflector};
use common::browser::first_event;
use common::Etcd;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

const VIEWERS: usize = 40;

/// Read the stream `s` until its text so far contains `needle`.
async fn read_until(s: &mut tokio::net::TcpStream, seen: &mut String, needle: &str) {
    let mut buf = [0u8; 16384];
    while !seen.contains(needle) {
        let n = s.read(&mut buf).await.expect("read");
        assert!(n > 0, "the stream ended: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_open_pages_share_one_render_per_change() {
    let e = Etcd::start().await;
    let stop = CancellationToken::new();
    let _guard = stop.clone().drop_guard();
    let cache = Reflector::spawn(e.store.clone(), String::new(), stop.clone());
    cache.wait_synced().await;
    let routes = berth::web::routes(
        cache,
        berth::web::WebConfig {
            max_unavailable_fraction: 0.5,
        },
        stop.clone(),
    );
    let port = berth::serve::spawn_with("127.0.0.1:0".parse().unwrap(), vec![], routes, stop)
        .await
        .expect("serve")
        .port();
    // Every viewer has its first page before the change.
    let _ = first_event(port, "/live?page=hosts").await;
    let mut viewers = Vec::new();
    for _ in 0..VIEWERS {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        s.write_all(b"GET /live?page=hosts HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut seen = String::new();
        read_until(&mut s, &mut seen, "No hosts").await;
        viewers.push((s, seen));
    }
    let before = berth::metrics::WEB_RENDERS.get();
    e.store
        .put(
            &keys::host("web-fan-h1"),
            json!({"id": "web-fan-h1", "address": "10.3.0.1"})
                .to_string()
                .into_bytes(),
        )
        .await
        .unwrap();
    for (s, seen) in &mut viewers {
        tokio::time::timeout(Duration::from_secs(30), read_until(s, seen, "web-fan-h1"))
            .await
            .expect("every viewer sees the new host");
    }
    let renders = berth::metrics::WEB_RENDERS.get() - before;
    assert!(
        (1..=2).contains(&renders),
        "{renders} renders for one change seen by {VIEWERS} viewers"
    );
}
