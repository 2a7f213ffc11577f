//! `http` and `tcp` checks run inside the container, through the engine's exec, for a
//! reconciler that cannot reach the container's address (the controller driving an
//! agentless host): the command to run, and how its result reads. Pure.
//!
//! The command needs only a POSIX `sh` for `tcp` (it looks for a listening socket on the
//! port in `/proc/net/tcp` and `tcp6`, with shell builtins), and `curl` or `wget` for
//! `http`. Images without them are told apart from failing services: the probe then says
//! it cannot run, and nothing counts against the container.

use std::time::Duration;

use crate::spec::{HealthCheck, HealthCheckKind};

/// What the command printed when the image has no HTTP client.
const NO_CLIENT: &str = "berth-probe: no curl or wget";

/// How a command run inside the container ended, as the engine told it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecResult {
    /// `None` when it did not finish in time.
    pub exit_code: Option<i64>,
    /// The tail of its output.
    pub output: String,
}

/// What a probe inside the container learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inside {
    /// The check ran: whether the service answered as the check asks.
    Answered(bool),
    /// The image lacks what the check needs (`sh`, or `curl`/`wget` for `http`).
    CannotRun(String),
}

/// The `sh -c` command that performs `check` on `port` from inside the container, each
/// attempt bounded by `timeout`.
pub fn command(check: &HealthCheck, port: u16, timeout: Duration) -> Vec<String> {
    let secs = timeout.as_secs_f64().ceil().max(1.0) as u64;
    let script = match check.kind() {
        Some(HealthCheckKind::Http) => {
            let path = check.path.as_deref().unwrap_or("/");
            let path = if path.starts_with('/') {
                path.to_owned()
            } else {
                format!("/{path}")
            };
            let url = quote(&format!("http://127.0.0.1:{port}{path}"));
            // curl bounds itself; busybox wget's own -T is unreliable (it crashes in some
            // builds), so wget runs under `timeout` when there is one.
            format!(
                "u={url}; \
                 if command -v curl >/dev/null 2>&1; then exec curl -fsS -m {secs} -o /dev/null \"$u\"; fi; \
                 if command -v wget >/dev/null 2>&1; then \
                 if command -v timeout >/dev/null 2>&1; then exec timeout {secs} wget -q -O /dev/null \"$u\"; fi; \
                 exec wget -q -T {secs} -O /dev/null \"$u\"; fi; \
                 echo '{NO_CLIENT}'; exit 3"
            )
        }
        // A listener on the port, whatever address it is bound to: what a connection
        // would find. Shell builtins only, so any image with a shell can run it.
        _ => format!(
            "for f in /proc/net/tcp /proc/net/tcp6; do \
             [ -r \"$f\" ] || continue; \
             while read -r _ l _ s _; do case \"$l $s\" in *':{port:04X} 0A') exit 0;; esac; done < \"$f\"; \
             done; exit 1"
        ),
    };
    vec!["sh".into(), "-c".into(), script]
}

/// How the command's result reads. A command the engine could not start (exit 126 or
/// 127: no `sh`) or that found no HTTP client could not run; any other exit is the
/// check's answer, 0 meaning healthy.
pub fn judge(r: &ExecResult) -> Inside {
    if r.output.contains(NO_CLIENT) {
        return Inside::CannotRun("the image has neither curl nor wget".into());
    }
    match r.exit_code {
        Some(0) => Inside::Answered(true),
        Some(126 | 127) => Inside::CannotRun(format!(
            "the image cannot run sh ({})",
            r.output.lines().last().unwrap_or("").trim()
        )),
        Some(_) => Inside::Answered(false),
        // Timed out: the service did not answer within the check's timeout.
        None => Inside::Answered(false),
    }
}

/// `s` as one single-quoted shell word.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn check(kind: &str, path: Option<&str>) -> HealthCheck {
        HealthCheck {
            type_: kind.into(),
            path: path.map(str::to_owned),
            ..Default::default()
        }
    }

    /// Run the command as the container would, with this machine's `sh`.
    fn run(argv: &[String]) -> ExecResult {
        let out = Command::new(&argv[0]).args(&argv[1..]).output().unwrap();
        ExecResult {
            exit_code: out.status.code().map(i64::from),
            output: String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        }
    }

    #[test]
    fn the_tcp_command_finds_a_listener_on_the_port_and_nothing_on_a_closed_one() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = l.local_addr().unwrap().port();
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let t = Duration::from_secs(1);
        let c = check("tcp", None);
        assert_eq!(judge(&run(&command(&c, open, t))), Inside::Answered(true));
        assert_eq!(
            judge(&run(&command(&c, closed, t))),
            Inside::Answered(false)
        );
    }

    #[tokio::test]
    async fn the_http_command_asks_for_the_path_and_reads_the_status() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let ok = String::from_utf8_lossy(&buf[..n]).starts_with("GET /ok's ");
                let status = if ok { "200 OK" } else { "503 Unavailable" };
                let _ = s
                    .write_all(format!("HTTP/1.0 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        let t = Duration::from_secs(2);
        let ok = command(&check("http", Some("/ok's")), port, t);
        let bad = command(&check("http", Some("/down")), port, t);
        let (ok, bad) = tokio::task::spawn_blocking(move || (run(&ok), run(&bad)))
            .await
            .unwrap();
        assert_eq!(judge(&ok), Inside::Answered(true), "{ok:?}");
        assert_eq!(judge(&bad), Inside::Answered(false), "{bad:?}");
    }

    #[test]
    fn an_image_without_the_tools_is_not_a_failing_service() {
        // PATH without curl or wget: the command says so instead of failing.
        let argv = command(&check("http", Some("/")), 9, Duration::from_secs(1));
        let out = Command::new("/bin/sh")
            .args(&argv[1..])
            .env("PATH", "/nonexistent")
            .output()
            .unwrap();
        let r = ExecResult {
            exit_code: out.status.code().map(i64::from),
            output: String::from_utf8_lossy(&out.stdout).into_owned(),
        };
        assert!(matches!(judge(&r), Inside::CannotRun(_)), "{r:?}");
        // No sh: Docker's exec ends with 126 or 127.
        let no_sh = ExecResult {
            exit_code: Some(127),
            output: "OCI runtime exec failed: exec: \"sh\": executable file not found in $PATH"
                .into(),
        };
        assert!(matches!(judge(&no_sh), Inside::CannotRun(m) if m.contains("sh")));
        let timed_out = ExecResult {
            exit_code: None,
            output: String::new(),
        };
        assert_eq!(judge(&timed_out), Inside::Answered(false));
    }
}
