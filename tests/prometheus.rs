//! A real Prometheus scrapes a running controller and agent: the metrics endpoint speaks
//! a format Prometheus accepts, and the series move when a stack converges.

mod common;

use std::process::Stdio;
use std::time::Duration;

use berth::spec::Phase;
use common::*;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

const T: Duration = Duration::from_secs(60);

/// A loopback port nothing listens on right now.
/// Percent-encode a PromQL query for a URL's query string.
fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The instant vector `query` evaluates to, as (labels, value); `None` while Prometheus
/// does not answer.
async fn query(port: u16, q: &str) -> Option<Vec<(Value, f64)>> {
    let body = http_get(port, &format!("/api/v1/query?query={}", encode(q))).await?;
    let v: Value = serde_json::from_str(&body).ok()?;
    if v["status"] != "success" {
        return None;
    }
    let result = v["data"]["result"].as_array()?;
    Some(
        result
            .iter()
            .filter_map(|s| {
                let value = s["value"][1].as_str()?.parse().ok()?;
                Some((s["metric"].clone(), value))
            })
            .collect(),
    )
}

/// Sum of the series `q` selects; 0 when there are none yet.
async fn sum(port: u16, q: &str) -> Option<f64> {
    Some(query(port, q).await?.iter().map(|(_, v)| v).sum())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_controller_and_agent_and_sees_containers_created() {
    match std::process::Command::new("prometheus")
        .arg("--version")
        .output()
    {
        Ok(out) if out.status.success() => {}
        other => panic!(
            "the prometheus binary is missing or broken ({other:?}); run `make test`, which \
             installs it (Debian package prometheus)"
        ),
    }
    berth::metrics::init();
    let c = Cluster::start("prom").await;

    // In-process, the controller and the agent share one registry; each gets its own
    // endpoint anyway, as separate processes would, and its own scrape job.
    let serving = CancellationToken::new();
    let _stop_serving = serving.clone().drop_guard();
    let mut targets = Vec::new();
    for _ in ["controller", "agent"] {
        let addr = berth::serve::spawn("127.0.0.1:0".parse().unwrap(), vec![], serving.clone())
            .await
            .expect("serve metrics");
        targets.push(addr);
    }

    let dir = tempfile::tempdir().expect("tempdir");
    // Line by line: YAML indentation matters, and `\` continuations would eat it.
    let config = [
        "global:".to_owned(),
        "  scrape_interval: 1s".to_owned(),
        "  scrape_timeout: 1s".to_owned(),
        "scrape_configs:".to_owned(),
        "  - job_name: controller".to_owned(),
        format!("    static_configs: [{{targets: ['{}']}}]", targets[0]),
        "  - job_name: agent".to_owned(),
        format!("    static_configs: [{{targets: ['{}']}}]", targets[1]),
    ]
    .join("\n");
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, config).expect("write prometheus.yml");
    let log_path = dir.path().join("prometheus.log");
    let log = std::fs::File::create(&log_path).expect("create prometheus.log");
    let port = free_port();
    let mut prometheus = tokio::process::Command::new("prometheus")
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("start prometheus");
    let log_tail = || std::fs::read_to_string(&log_path).unwrap_or_default();

    // Both targets scraped successfully at least once.
    let deadline = std::time::Instant::now() + T;
    loop {
        // A bad config or a taken port ends Prometheus: say why instead of waiting.
        let exited = !matches!(prometheus.try_wait(), Ok(None));
        if exited || std::time::Instant::now() > deadline {
            panic!("targets never came up; prometheus log:\n{}", log_tail());
        }
        if let Some(series) = query(port, "up").await {
            if series.len() == 2 && series.iter().all(|(_, v)| *v == 1.0) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let reconciles = eventually("berth_reconcile_total scraped", T, || async {
        let s = query(port, "berth_reconcile_total").await?;
        (!s.is_empty()).then_some(s)
    })
    .await;
    assert!(
        reconciles
            .iter()
            .any(|(m, _)| m["job"] == "controller" && m["component"].is_string()),
        "{reconciles:?}"
    );
    let creates = r#"berth_container_actions_total{job="agent",action="create"}"#;
    let before = sum(port, creates).await.expect("query creates");

    let rev = c.put_stack("prom-it", &web_stack(18300, "prom")).await;
    c.wait_status("prom-it", T, |s| {
        s.phase == Phase::Running && s.observed_revision == rev
    })
    .await;

    let after = eventually("a create is scraped", T, || async {
        let now = sum(port, creates).await?;
        (now > before).then_some(now)
    })
    .await;
    assert!(after >= before + 1.0, "creates {before} -> {after}");
    let actions = query(port, "berth_container_actions_total")
        .await
        .expect("query actions");
    assert!(
        !actions.is_empty(),
        "berth_container_actions_total series exist"
    );
    eventually("a healthy probe is scraped", T, || async {
        let n = sum(port, r#"berth_health_checks_total{result="healthy"}"#).await?;
        (n > 0.0).then_some(())
    })
    .await;
    let histogram = query(port, "berth_convergence_seconds_count")
        .await
        .expect("query convergence");
    assert!(
        !histogram.is_empty(),
        "the convergence histogram is exported"
    );

    drop(prometheus);
}
