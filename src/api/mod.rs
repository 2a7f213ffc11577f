//! The agent API: each agent serves its own host's container logs over HTTP (mutual TLS
//! when configured), so `berth logs` reads them from every host at once without a Docker
//! port open anywhere and without logs ever passing through etcd. The wire types are here;
//! `server` is the listener, `client` what `berth logs` uses, `tls` loads certificates.

pub mod client;
pub mod server;
pub mod tls;

use serde::{Deserialize, Serialize};

/// The path logs are served at.
pub const LOGS_PATH: &str = "/v1/logs";

/// What a caller asks of `GET /v1/logs`: one stack's managed containers on this host,
/// optionally one service or replica.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogQuery {
    pub stack: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<u32>,
    /// Only the last lines of each container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail: Option<u64>,
    /// Only lines since this time (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<i64>,
    /// Keep following, through restarts and replacements.
    #[serde(default)]
    pub follow: bool,
}

impl LogQuery {
    /// As a query string (values are ids, names and numbers: nothing to escape but what
    /// `encode` does).
    pub fn to_query(&self) -> String {
        let mut parts = vec![format!("stack={}", encode(&self.stack))];
        if let Some(s) = &self.service {
            parts.push(format!("service={}", encode(s)));
        }
        if let Some(r) = self.replica {
            parts.push(format!("replica={r}"));
        }
        if let Some(t) = self.tail {
            parts.push(format!("tail={t}"));
        }
        if let Some(s) = self.since {
            parts.push(format!("since={s}"));
        }
        if self.follow {
            parts.push("follow=true".to_owned());
        }
        parts.join("&")
    }
}

/// Percent-encodes all but unreserved characters.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One line of a container's log, one JSON object per line on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogLine {
    /// `service.replica`.
    pub slot: String,
    pub container: String,
    pub stream: Stream,
    /// Docker's RFC 3339 timestamp of the line (nanoseconds): sorts as text.
    pub time: String,
    pub line: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_round_trips_through_its_query_string() {
        let q = LogQuery {
            stack: "shop".into(),
            service: Some("web".into()),
            replica: Some(2),
            tail: Some(10),
            since: Some(1_700_000_000),
            follow: true,
        };
        assert_eq!(
            q.to_query(),
            "stack=shop&service=web&replica=2&tail=10&since=1700000000&follow=true"
        );
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }
}
