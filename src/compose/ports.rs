//! Compose's `ports` (short and long syntax) and `expose`, as Berth ports. Pure.

use serde_json::{Map, Value};

use super::report::Report;
use super::values::scalar;
use crate::spec::Port;

/// Every entry of a service's `ports` at `path`, in order.
pub fn ports(value: Value, path: &str, report: &mut Report) -> Vec<Port> {
    each_entry(value, path, report, |item, at, report| match item {
        Value::Object(map) => long(map, at, report),
        other => match scalar(&other) {
            Some(s) => short(&s, at, report),
            None => Err(format!("{other} is not a port")),
        },
    })
}

/// `expose`: ports the container listens on, published nowhere.
pub fn expose(value: Value, path: &str, report: &mut Report) -> Vec<Port> {
    each_entry(value, path, report, |item, _, _| {
        let s = scalar(&item).ok_or_else(|| format!("{item} is not a port"))?;
        let (ports, protocol) = split_protocol(&s)?;
        Ok(range(ports)?
            .map(|p| port(p, None, protocol, None))
            .collect())
    })
}

/// The ports of each entry of the list at `path`, by `parse`; an entry it cannot read is
/// reported at its own path (`path[i]`) and left out.
fn each_entry(
    value: Value,
    path: &str,
    report: &mut Report,
    mut parse: impl FnMut(Value, &str, &mut Report) -> Result<Vec<Port>, String>,
) -> Vec<Port> {
    let Value::Array(items) = value else {
        report.error(path, "expected a list of ports");
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let at = format!("{path}[{i}]");
        match parse(item, &at, report) {
            Ok(ports) => out.extend(ports),
            Err(message) => report.error(at, message),
        }
    }
    out
}

/// `[HOST_IP:][HOST_PORT[-END]:]CONTAINER_PORT[-END][/PROTOCOL]`; `[::1]` for IPv6.
fn short(s: &str, at: &str, report: &mut Report) -> Result<Vec<Port>, String> {
    let (spec, protocol) = split_protocol(s)?;
    let (ip, rest) = match spec.strip_prefix('[') {
        Some(bracketed) => {
            let (ip, rest) = bracketed
                .split_once("]:")
                .ok_or_else(|| format!("{s:?} is not a port mapping"))?;
            (Some(ip), rest)
        }
        None => {
            let parts: Vec<&str> = spec.split(':').collect();
            match parts.len() {
                1 | 2 => (None, spec),
                3 => (Some(parts[0]), &spec[parts[0].len() + 1..]),
                _ => {
                    return Err(format!(
                        "{s:?} is not a port mapping (write an IPv6 address in brackets)"
                    ))
                }
            }
        }
    };
    let (host, container) = match rest.split_once(':') {
        Some((host, container)) => (Some(host).filter(|h| !h.is_empty()), container),
        None => (None, rest),
    };
    pair(ip, host, container, protocol, at, report)
}

fn long(mut map: Map<String, Value>, at: &str, report: &mut Report) -> Result<Vec<Port>, String> {
    let target = map
        .remove("target")
        .and_then(|v| scalar(&v))
        .ok_or("a long-syntax port needs a target")?;
    let published = map.remove("published").and_then(|v| scalar(&v));
    let ip = map.remove("host_ip").and_then(|v| scalar(&v));
    let protocol = map
        .remove("protocol")
        .and_then(|v| scalar(&v))
        .unwrap_or_else(|| "tcp".to_owned());
    // Swarm's routing mesh (`ingress`) has no meaning on one engine; compose ignores it.
    map.remove("mode");
    for key in map.keys() {
        report.unsupported(format!("{at}.{key}"));
    }
    let protocol = known_protocol(&protocol)?;
    pair(
        ip.as_deref(),
        published.as_deref(),
        &target,
        protocol,
        at,
        report,
    )
}

/// One container port (or range) and the host port (or range) publishing it.
fn pair(
    ip: Option<&str>,
    host: Option<&str>,
    container: &str,
    protocol: &'static str,
    at: &str,
    report: &mut Report,
) -> Result<Vec<Port>, String> {
    let ip = ip.filter(|ip| !ip.is_empty()).map(str::to_owned);
    let containers: Vec<i64> = range(container)?.collect();
    let Some(host) = host else {
        report.warn(
            at,
            format!(
                "compose publishes container port {container} on a random host port; Berth \
                 publishes only a port with a host port, so it is not published (write \
                 HOST:{container})"
            ),
        );
        return Ok(containers
            .into_iter()
            .map(|c| port(c, None, protocol, None))
            .collect());
    };
    let hosts: Vec<i64> = range(host)?.collect();
    if hosts.len() == containers.len() {
        return Ok(containers
            .into_iter()
            .zip(hosts)
            .map(|(c, h)| port(c, Some(h), protocol, ip.clone()))
            .collect());
    }
    if containers.len() == 1 {
        report.warn(
            at,
            format!(
                "compose picks a free host port from {host}; Berth publishes the first, {}",
                hosts[0]
            ),
        );
        return Ok(vec![port(containers[0], Some(hosts[0]), protocol, ip)]);
    }
    Err(format!(
        "host ports {host} and container ports {container} are ranges of different lengths"
    ))
}

fn port(container: i64, host: Option<i64>, protocol: &str, host_ip: Option<String>) -> Port {
    Port {
        container_port: container,
        host_port: host,
        protocol: Some(protocol.to_owned()),
        host_ip,
    }
}

fn split_protocol(s: &str) -> Result<(&str, &'static str), String> {
    match s.split_once('/') {
        Some((ports, protocol)) => Ok((ports, known_protocol(protocol)?)),
        None => Ok((s, "tcp")),
    }
}

fn known_protocol(protocol: &str) -> Result<&'static str, String> {
    match protocol {
        "tcp" => Ok("tcp"),
        "udp" => Ok("udp"),
        other => Err(format!(
            "protocol {other:?} is not supported (Berth publishes tcp and udp)"
        )),
    }
}

/// `80` or `8000-8002`.
fn range(s: &str) -> Result<impl Iterator<Item = i64>, String> {
    let number = |n: &str| {
        n.trim()
            .parse::<i64>()
            .map_err(|_| format!("{s:?} is not a port or a range of ports"))
    };
    let (start, end) = match s.split_once('-') {
        Some((a, b)) => (number(a)?, number(b)?),
        None => (number(s)?, number(s)?),
    };
    if end < start {
        return Err(format!("{s:?} is a range that ends before it starts"));
    }
    Ok(start..=end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(container: i64, host: Option<i64>, protocol: &str, ip: Option<&str>) -> Port {
        port(container, host, protocol, ip.map(str::to_owned))
    }

    #[test]
    fn every_port_syntax_becomes_berth_ports() {
        // (case, entry, ports, warnings)
        let cases: Vec<(&str, Value, Vec<Port>, usize)> = vec![
            (
                "host:container",
                json!("8080:80"),
                vec![p(80, Some(8080), "tcp", None)],
                0,
            ),
            (
                "udp",
                json!("53:53/udp"),
                vec![p(53, Some(53), "udp", None)],
                0,
            ),
            (
                "host ip",
                json!("127.0.0.1:5432:5432"),
                vec![p(5432, Some(5432), "tcp", Some("127.0.0.1"))],
                0,
            ),
            (
                "ipv6 host ip",
                json!("[::1]:8080:80/tcp"),
                vec![p(80, Some(8080), "tcp", Some("::1"))],
                0,
            ),
            (
                "ranges",
                json!("8000-8001:9000-9001"),
                vec![
                    p(9000, Some(8000), "tcp", None),
                    p(9001, Some(8001), "tcp", None),
                ],
                0,
            ),
            (
                "container only: not published",
                json!(80),
                vec![p(80, None, "tcp", None)],
                1,
            ),
            (
                "ip with random host port",
                json!("127.0.0.1::80"),
                vec![p(80, None, "tcp", None)],
                1,
            ),
            (
                "host range for one port: the first",
                json!("8000-8005:80"),
                vec![p(80, Some(8000), "tcp", None)],
                1,
            ),
            (
                "long syntax",
                json!({"target": 80, "published": "8080", "host_ip": "127.0.0.1", "protocol": "udp", "mode": "host"}),
                vec![p(80, Some(8080), "udp", Some("127.0.0.1"))],
                0,
            ),
            (
                "long syntax with an unknown key",
                json!({"target": 80, "published": 8080, "app_protocol": "http"}),
                vec![p(80, Some(8080), "tcp", None)],
                1,
            ),
        ];
        for (name, entry, want, warnings) in cases {
            let mut report = Report::default();
            let got = ports(json!([entry]), "services.web.ports", &mut report);
            assert_eq!(got, want, "{name}");
            assert!(report.errors.is_empty(), "{name}: {:?}", report.errors);
            assert_eq!(
                report.warnings.len(),
                warnings,
                "{name}: {:?}",
                report.warnings
            );
            for w in &report.warnings {
                assert!(w.path.starts_with("services.web.ports[0]"), "{name}: {w}");
            }
        }
    }

    #[test]
    fn a_port_berth_cannot_publish_is_an_error_at_its_path() {
        // (case, entry, error contains)
        let cases = [
            (
                "sctp",
                json!("9999:9999/sctp"),
                "protocol \"sctp\" is not supported",
            ),
            ("not a number", json!("http:80"), "is not a port"),
            (
                "ranges of different lengths",
                json!("8000-8001:80-82"),
                "different lengths",
            ),
            ("backwards range", json!("90-80"), "ends before it starts"),
            (
                "long without target",
                json!({"published": 80}),
                "needs a target",
            ),
        ];
        for (name, entry, want) in cases {
            let mut report = Report::default();
            ports(json!([entry]), "services.web.ports", &mut report);
            let errors: Vec<String> = report.errors.iter().map(|e| e.to_string()).collect();
            assert!(
                errors.len() == 1
                    && errors[0].starts_with("services.web.ports[0]: ")
                    && errors[0].contains(want),
                "{name}: {errors:?}"
            );
        }
    }

    #[test]
    fn expose_lists_ports_published_nowhere() {
        let mut report = Report::default();
        let got = expose(
            json!(["3000", 4000, "5000-5001/udp"]),
            "services.web.expose",
            &mut report,
        );
        assert_eq!(
            got,
            vec![
                p(3000, None, "tcp", None),
                p(4000, None, "tcp", None),
                p(5000, None, "udp", None),
                p(5001, None, "udp", None)
            ]
        );
        assert!(report.warnings.is_empty() && report.errors.is_empty());
    }
}
