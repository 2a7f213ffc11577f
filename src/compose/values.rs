//! Compose's scalar syntaxes: durations (`1m30s`), byte sizes (`512M`), shell words
//! (`command: sh -c "a b"`), and scalars read as strings. Pure.

use serde_json::Value;

/// A compose duration in seconds: Go's syntax (`1h2m3.5s`, `10ms`, `500us`), or a bare
/// number of seconds.
pub fn duration_secs(value: &Value) -> Result<f64, String> {
    let s = match value {
        Value::Number(n) => return n.as_f64().ok_or_else(|| format!("{n} is not a duration")),
        Value::String(s) => s.trim(),
        other => return Err(format!("{other} is not a duration")),
    };
    if let Ok(n) = s.parse::<f64>() {
        return Ok(n);
    }
    let bad = || format!("{s:?} is not a duration (like 1m30s, 10s or 500ms)");
    let mut total = 0.0;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let number: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return Err(bad()),
        };
        total += number * scale;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// A compose byte size (`512M`, `1g`, `1024k`, `100b`, `2gb`, or a number of bytes), in
/// bytes. Units are binary, as Docker's.
pub fn bytes(value: &Value) -> Result<u64, String> {
    let s = match value {
        Value::Number(n) => return n.as_u64().ok_or_else(|| format!("{n} is not a size")),
        Value::String(s) => s.trim().to_ascii_lowercase(),
        other => return Err(format!("{other} is not a size")),
    };
    let bad = || format!("{s:?} is not a size (like 512M or 1g)");
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let number: f64 = s[..split].parse().map_err(|_| bad())?;
    let scale: f64 = match &s[split..] {
        "" | "b" => 1.0,
        "k" | "kb" => 1024.0,
        "m" | "mb" => 1024.0 * 1024.0,
        "g" | "gb" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bad()),
    };
    Ok((number * scale).round() as u64)
}

/// Split a command line into words as a POSIX shell would (quotes and backslashes, no
/// expansion), as compose splits a `command` or `entrypoint` string.
pub fn shell_words(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if let Some(w) = word.take() {
                    words.push(w);
                }
            }
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err(format!("{s:?} has an unclosed '")),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => w.push(c),
                            Some(c) => {
                                w.push('\\');
                                w.push(c);
                            }
                            None => return Err(format!("{s:?} has an unclosed \"")),
                        },
                        Some(c) => w.push(c),
                        None => return Err(format!("{s:?} has an unclosed \"")),
                    }
                }
            }
            '\\' => {
                let w = word.get_or_insert_with(String::new);
                if let Some(c) = chars.next() {
                    w.push(c);
                }
            }
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

/// A scalar as the string compose would pass on: `8080` and `true` become `"8080"` and
/// `"true"`; `None` for null, lists and maps.
pub fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `"0.5"` or `0.5` as a number.
pub fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_read_as_go_and_compose_write_them() {
        // (input, seconds)
        let cases = [
            (json!("1m30s"), 90.0),
            (json!("10s"), 10.0),
            (json!("500ms"), 0.5),
            (json!("1h"), 3600.0),
            (json!("1.5s"), 1.5),
            (json!("2m"), 120.0),
            (json!("100us"), 0.0001),
            (json!(5), 5.0),
            (json!("7"), 7.0),
        ];
        for (input, want) in cases {
            let got = duration_secs(&input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert!((got - want).abs() < 1e-9, "{input}: {got}");
        }
        for bad in [json!("1x"), json!("s"), json!(""), json!([1])] {
            assert!(duration_secs(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_read_with_docker_binary_units() {
        let mb = 1024 * 1024;
        let cases = [
            (json!("512M"), 512 * mb),
            (json!("512m"), 512 * mb),
            (json!("1g"), 1024 * mb),
            (json!("2gb"), 2048 * mb),
            (json!("1024k"), mb),
            (json!("100b"), 100),
            (json!(2048), 2048),
            (json!("1.5g"), 1536 * mb),
        ];
        for (input, want) in cases {
            assert_eq!(bytes(&input), Ok(want), "{input}");
        }
        assert!(bytes(&json!("12 parsecs")).is_err());
    }

    #[test]
    fn shell_words_split_as_a_posix_shell_would() {
        // (input, words)
        let cases: &[(&str, &[&str])] = &[
            ("a b  c", &["a", "b", "c"]),
            (
                r#"sh -c "trap 'exit 0' TERM; sleep 1 & wait""#,
                &["sh", "-c", "trap 'exit 0' TERM; sleep 1 & wait"],
            ),
            ("echo 'a b'c", &["echo", "a bc"]),
            (r#"echo "a \"q\" \n""#, &["echo", "a \"q\" \\n"]),
            (r"a\ b", &["a b"]),
            ("echo ''", &["echo", ""]),
            ("", &[]),
        ];
        for (input, want) in cases {
            assert_eq!(shell_words(input).unwrap(), *want, "{input}");
        }
        assert!(shell_words("echo 'open").is_err());
        assert!(shell_words("echo \"open").is_err());
    }
}
