//! A real headless Chromium, driven through chromedriver's WebDriver HTTP protocol (a few
//! JSON requests over plain HTTP/1.1): for tests of what a person sees in the web view.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{eventually, free_port, Proc};

/// The key WebDriver names an element by in its answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    port: u16,
    session: String,
    _driver: Proc,
}

/// One HTTP/1.1 request to 127.0.0.1:`port`, the connection closed after it: (status,
/// body).
pub async fn request(port: u16, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    request_with(port, method, path, "application/json", body).await
}

/// [`request`] with a content type.
pub async fn request_with(
    port: u16,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> Option<(u16, String)> {
    let (status, _, body) = exchange(port, method, path, content_type, body).await?;
    Some((status, body))
}

/// [`request`], with the response's header block too: (status, headers, body).
pub async fn exchange(
    port: u16,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> Option<(u16, String, String)> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.ok()?;
    // Read to the end of the response, not of the connection: chromedriver keeps it open.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    let read = async {
        loop {
            if let Some(done) = complete(&buf) {
                return Some(done);
            }
            let n = s.read(&mut chunk).await.ok()?;
            if n == 0 {
                return complete(&buf).or(Some(buf.len()));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    let end = tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .ok()??;
    let text = String::from_utf8_lossy(&buf[..end]).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    Some((status, head.to_owned(), body))
}

/// Where the response in `buf` ends, once it is all there (by its Content-Length, or the
/// last chunk).
fn complete(buf: &[u8]) -> Option<usize> {
    let text = String::from_utf8_lossy(buf);
    let head_end = text.find("\r\n\r\n")? + 4;
    let head = text[..head_end].to_ascii_lowercase();
    if let Some(len) = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        return (buf.len() >= head_end + len).then_some(head_end + len);
    }
    if head.contains("transfer-encoding: chunked") {
        return text[head_end..]
            .find("\r\n0\r\n\r\n")
            .map(|i| head_end + i + 7)
            .or_else(|| {
                text[head_end..]
                    .starts_with("0\r\n\r\n")
                    .then_some(head_end + 5)
            });
    }
    None
}

/// The first `page` event of the stream at `path`: (the response's head, the stream so
/// far, de-chunked).
pub async fn first_event(port: u16, path: &str) -> (String, String) {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await
        .expect("send");
    let mut raw = Vec::new();
    let mut chunk = [0u8; 16384];
    let read = async {
        loop {
            let text = String::from_utf8_lossy(&raw).into_owned();
            if let Some((head, rest)) = text.split_once("\r\n\r\n") {
                let body = dechunk(rest);
                if let Some(at) = body.find("event: page") {
                    if body[at..].contains("\n\n") {
                        return (head.to_owned(), body);
                    }
                }
            }
            let n = s.read(&mut chunk).await.expect("read");
            assert!(n > 0, "the stream ended: {text}");
            raw.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .unwrap_or_else(|_| panic!("no page event from {path}"))
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

impl Browser {
    /// chromedriver on a free port with a headless Chromium of `width` x `height`.
    pub async fn start(width: u32, height: u32) -> Browser {
        let port = free_port();
        let driver = Proc(
            Command::new("chromedriver")
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start chromedriver (is chromium-driver installed? make setup)"),
        );
        eventually("chromedriver answers", Duration::from_secs(30), || async {
            let (status, body) = request(port, "GET", "/status", "").await?;
            (status == 200 && body.contains("\"ready\":true")).then_some(())
        })
        .await;
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--hide-scrollbars",
                         format!("--window-size={width},{height}")]
            }
        }}});
        let (status, body) = request(port, "POST", "/session", &caps.to_string())
            .await
            .expect("chromedriver: new session");
        assert_eq!(status, 200, "new session: {body}");
        let v: Value = serde_json::from_str(&body).expect("session JSON");
        let session = v["value"]["sessionId"]
            .as_str()
            .expect("session id")
            .to_owned();
        Browser {
            port,
            session,
            _driver: driver,
        }
    }

    /// A WebDriver command of this session; its `value`.
    async fn command(&self, method: &str, path: &str, body: Value) -> Value {
        let path = format!("/session/{}{path}", self.session);
        let body = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        let (status, text) = request(self.port, method, &path, &body)
            .await
            .unwrap_or_else(|| panic!("chromedriver did not answer {method} {path}"));
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert_eq!(status, 200, "{method} {path}: {text}");
        v["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.command("POST", "/url", json!({ "url": url })).await;
    }

    /// Run `script` (a function body; `return` gives its value) in the page.
    pub async fn eval(&self, script: &str) -> Value {
        self.command(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }

    /// Wait (polling every 50 ms) until `script` returns `true`; panics with `what` and
    /// the page's text.
    pub async fn wait_for(&self, what: &str, timeout: Duration, script: &str) {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if self.eval(script).await == Value::Bool(true) {
                return;
            }
            if std::time::Instant::now() > deadline {
                let text = self.text().await;
                panic!("timed out: {what}; the page reads:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What the page shows, as text.
    pub async fn text(&self) -> String {
        self.eval("return document.body.innerText;")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The element `css` selects (it must exist).
    pub async fn find(&self, css: &str) -> String {
        let v = self
            .command(
                "POST",
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_owned()
    }

    /// Type `text` into element `el`, as a person at a keyboard would.
    pub async fn type_into(&self, el: &str, text: &str) {
        self.command(
            "POST",
            &format!("/element/{el}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    pub async fn click(&self, el: &str) {
        self.command("POST", &format!("/element/{el}/click"), json!({}))
            .await;
    }

    /// Press and release one key (a WebDriver key code, e.g. `\u{E004}` for Tab).
    pub async fn press(&self, key: &str) {
        self.command(
            "POST",
            "/actions",
            json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
                {"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}
            ]}]}),
        )
        .await;
    }

    /// Resize the window (a phone is about 390 x 844).
    pub async fn resize(&self, width: u32, height: u32) {
        self.command(
            "POST",
            "/window/rect",
            json!({"width": width, "height": height}),
        )
        .await;
    }

    /// The viewport as PNG.
    pub async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine as _;
        let v = self.command("GET", "/screenshot", Value::Null).await;
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("base64 PNG"))
            .expect("decode PNG")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // End the session so Chromium exits before chromedriver is killed.
        let (port, path) = (self.port, format!("/session/{}", self.session));
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(request(port, "DELETE", &path, ""))
        })
        .join();
    }
}
