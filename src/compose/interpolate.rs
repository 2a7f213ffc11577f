//! Compose's variable interpolation in a parsed document: `${VAR}`, `${VAR:-default}`,
//! `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`, `${VAR:+alt}`, `${VAR+alt}`, `$VAR`
//! and `$$`. Pure: the variables come in as a function.

use serde_json::Value;

use super::report::Report;

/// Replace every variable in the string values of `value` (never in keys, as compose),
/// looking names up with `var`. `path` names `value` in the document.
pub fn interpolate_tree(
    value: &mut Value,
    path: &str,
    var: &dyn Fn(&str) -> Option<String>,
    report: &mut Report,
) {
    match value {
        Value::String(s) => match interpolate(s, var) {
            Ok(done) => {
                for name in &done.unset {
                    report.warn(
                        path,
                        format!("variable {name} is not set; a blank string is used"),
                    );
                }
                *s = done.text;
            }
            Err(message) => report.error(path, message),
        },
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate_tree(item, &format!("{path}[{i}]"), var, report);
            }
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                let at = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                interpolate_tree(item, &at, var, report);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// A string with its variables replaced, and the names that were used but unset.
#[derive(Debug, PartialEq, Eq)]
pub struct Interpolated {
    pub text: String,
    pub unset: Vec<String>,
}

/// Replace the variables in one string; `Err` for a malformed reference or a required
/// variable (`:?`, `?`) that is missing.
pub fn interpolate(s: &str, var: &dyn Fn(&str) -> Option<String>) -> Result<Interpolated, String> {
    let mut out = Interpolated {
        text: String::new(),
        unset: Vec::new(),
    };
    let mut rest = s;
    while let Some(at) = rest.find('$') {
        out.text.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.text.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = closing_brace(body)
                .ok_or_else(|| format!("invalid interpolation format in {s:?}: no closing }}"))?;
            let value = braced(&body[..end], s, var, &mut out.unset)?;
            out.text.push_str(&value);
            rest = &body[end + 1..];
        } else {
            let len = name_len(after);
            if len == 0 {
                return Err(format!(
                    "invalid interpolation format in {s:?}: write $$ for a literal $"
                ));
            }
            let name = &after[..len];
            out.text.push_str(&lookup(name, var, &mut out.unset));
            rest = &after[len..];
        }
    }
    out.text.push_str(rest);
    Ok(out)
}

/// The value of `${body}`.
fn braced(
    body: &str,
    whole: &str,
    var: &dyn Fn(&str) -> Option<String>,
    unset: &mut Vec<String>,
) -> Result<String, String> {
    let len = name_len(body);
    let (name, op) = body.split_at(len);
    if name.is_empty() {
        return Err(format!(
            "invalid interpolation format in {whole:?}: ${{{body}}} names no variable"
        ));
    }
    let value = var(name);
    let set_and_nonempty = value.as_deref().is_some_and(|v| !v.is_empty());
    // The word after an operator may hold variables of its own.
    let word = |w: &str, unset: &mut Vec<String>| -> Result<String, String> {
        let done = interpolate(w, var)?;
        unset.extend(done.unset);
        Ok(done.text)
    };
    if op.is_empty() {
        return Ok(lookup(name, var, unset));
    }
    // `:` makes an empty value count as unset.
    let (strict, op) = match op.strip_prefix(':') {
        Some(rest) => (true, rest),
        None => (false, op),
    };
    let present = if strict {
        set_and_nonempty
    } else {
        value.is_some()
    };
    let mut chars = op.chars();
    let (symbol, w) = (chars.next(), chars.as_str());
    match symbol {
        Some('-') if present => Ok(value.unwrap_or_default()),
        Some('-') => word(w, unset),
        Some('+') if present => word(w, unset),
        Some('+') => Ok(String::new()),
        Some('?') if present => Ok(value.unwrap_or_default()),
        Some('?') => {
            let message = word(w, unset)?;
            Err(format!(
                "required variable {name} is missing a value: {message}"
            ))
        }
        _ => Err(format!(
            "invalid interpolation format in {whole:?}: ${{{body}}}"
        )),
    }
}

fn lookup(name: &str, var: &dyn Fn(&str) -> Option<String>, unset: &mut Vec<String>) -> String {
    var(name).unwrap_or_else(|| {
        unset.push(name.to_owned());
        String::new()
    })
}

/// The length of the variable name `s` starts with: `[A-Za-z_][A-Za-z0-9_]*`.
fn name_len(s: &str) -> usize {
    let mut len = 0;
    for (i, c) in s.char_indices() {
        let ok = c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit());
        if !ok {
            break;
        }
        len = i + c.len_utf8();
    }
    len
}

/// The index of the `}` that closes a `${` whose body starts `s`, past nested `${...}`.
fn closing_brace(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

/// A `.env` or `env_file` file as compose reads it: `NAME=value` lines, `#` comments,
/// an optional `export `, and values in single quotes (literal), double quotes (with
/// `\n`, `\"` and `\\`) or bare (trimmed, ` #` starts a comment). A line with no `=`
/// names a variable with no value.
pub fn parse_env_file(text: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((name, value)) = line.split_once('=') else {
            out.push((line.to_owned(), None));
            continue;
        };
        let value = value.trim();
        let value = if let Some(inner) = value.strip_prefix('\'') {
            inner.split_once('\'').map_or(inner, |(v, _)| v).to_owned()
        } else if let Some(inner) = value.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => match chars.next() {
                        Some('n') => v.push('\n'),
                        Some(other) => v.push(other),
                        None => v.push('\\'),
                    },
                    c => v.push(c),
                }
            }
            v
        } else {
            value.split(" #").next().unwrap_or("").trim_end().to_owned()
        };
        out.push((name.trim().to_owned(), Some(value)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(name: &str) -> Option<String> {
        match name {
            "TAG" => Some("1.2".into()),
            "EMPTY" => Some(String::new()),
            "PORT" => Some("8080".into()),
            _ => None,
        }
    }

    #[test]
    fn every_form_of_reference_is_replaced_as_compose_does() {
        // (case, input, output, unset names)
        let cases: &[(&str, &str, &str, &[&str])] = &[
            ("braced", "app:${TAG}", "app:1.2", &[]),
            ("bare", "app:$TAG", "app:1.2", &[]),
            (
                "bare name ends at a non-name char",
                "$PORT/tcp",
                "8080/tcp",
                &[],
            ),
            (
                "dollar dollar is a literal dollar",
                "echo $$HOME",
                "echo $HOME",
                &[],
            ),
            (
                "unset without default is blank",
                "a${NOPE}b",
                "ab",
                &["NOPE"],
            ),
            (":- on unset", "${NOPE:-x}", "x", &[]),
            (":- on empty", "${EMPTY:-x}", "x", &[]),
            (":- on set", "${TAG:-x}", "1.2", &[]),
            ("- on unset", "${NOPE-x}", "x", &[]),
            ("- on empty keeps empty", "${EMPTY-x}", "", &[]),
            (":+ on set", "${TAG:+yes}", "yes", &[]),
            (":+ on empty", "${EMPTY:+yes}", "", &[]),
            ("+ on empty", "${EMPTY+yes}", "yes", &[]),
            (":? on set", "${TAG:?need it}", "1.2", &[]),
            ("? on empty is fine", "${EMPTY?need it}", "", &[]),
            (
                "a default holds a variable",
                "${NOPE:-${PORT}}",
                "8080",
                &[],
            ),
            ("no dollar", "plain", "plain", &[]),
        ];
        for (name, input, want, unset) in cases {
            let got = interpolate(input, &vars).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(got.text, *want, "{name}");
            assert_eq!(got.unset, *unset, "{name}");
        }
    }

    #[test]
    fn a_missing_required_variable_or_bad_format_is_an_error() {
        // (case, input, error contains)
        let cases = [
            (
                ":? on unset",
                "${NOPE:?set NOPE}",
                "NOPE is missing a value: set NOPE",
            ),
            (
                ":? on empty",
                "${EMPTY:?set it}",
                "EMPTY is missing a value",
            ),
            ("? on unset", "${NOPE?x}", "NOPE is missing a value"),
            ("unclosed", "${TAG", "no closing }"),
            ("dollar digit", "$1", "write $$"),
            ("empty braces", "${}", "names no variable"),
            (
                "unknown operator",
                "${TAG/x}",
                "invalid interpolation format",
            ),
        ];
        for (name, input, want) in cases {
            let err = interpolate(input, &vars).expect_err(name);
            assert!(err.contains(want), "{name}: {err}");
        }
    }

    #[test]
    fn only_values_are_interpolated_and_problems_carry_their_path() {
        let mut doc = serde_json::json!({
            "services": {"web": {"image": "app:${TAG}", "labels": {"${TAG}": "$NOPE"},
                                 "command": ["echo", "${X:?needed}"]}}
        });
        let mut report = Report::default();
        interpolate_tree(&mut doc, "", &vars, &mut report);
        assert_eq!(doc["services"]["web"]["image"], "app:1.2");
        assert_eq!(doc["services"]["web"]["labels"]["${TAG}"], "");
        let lines: Vec<String> = report.lines();
        assert_eq!(
            lines,
            [
                "error: services.web.command[1]: required variable X is missing a value: needed",
                "warning: services.web.labels.${TAG}: variable NOPE is not set; a blank string is used",
            ]
        );
    }

    #[test]
    fn env_files_read_as_compose_reads_them() {
        let text =
            "# comment\n\nA=1\nexport B = two \nC='lit $x # no'\nD=\"q\\\"n\\n\"\nE=v # c\nF\nG=\n";
        let got = parse_env_file(text);
        let want: Vec<(String, Option<String>)> = [
            ("A", Some("1")),
            ("B", Some("two")),
            ("C", Some("lit $x # no")),
            ("D", Some("q\"n\n")),
            ("E", Some("v")),
            ("F", None),
            ("G", Some("")),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.map(str::to_owned)))
        .collect();
        assert_eq!(got, want);
    }
}
