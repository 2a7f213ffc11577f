//! `{{secret:NAME}}` references in environment values: the value lives at
//! `/berth/secrets/NAME`, readable by agents only, and is put in at container creation,
//! so stack specs can be shared without passwords in them. Pure text handling here.

const OPEN: &str = "{{secret:";
const CLOSE: &str = "}}";

/// Secret names: letters, digits, `.`, `_` and `-`.
pub fn is_secret_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// The secret names `value` refers to, in order (repeats kept once).
pub fn secret_refs(value: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    let mut rest = value;
    while let Some(i) = rest.find(OPEN) {
        let after = &rest[i + OPEN.len()..];
        let Some(j) = after.find(CLOSE) else { break };
        let name = &after[..j];
        if is_secret_name(name) && !out.contains(&name) {
            out.push(name);
        }
        rest = &after[j + CLOSE.len()..];
    }
    out
}

/// `value` with each reference replaced by `lookup(name)`; `Err(name)` for the first one
/// that has no value.
pub fn substitute(value: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(i) = rest.find(OPEN) {
        out.push_str(&rest[..i]);
        let after = &rest[i + OPEN.len()..];
        let Some(j) = after.find(CLOSE) else {
            out.push_str(&rest[i..]);
            return Ok(out);
        };
        let name = &after[..j];
        if is_secret_name(name) {
            out.push_str(&lookup(name).ok_or_else(|| name.to_owned())?);
        } else {
            out.push_str(&rest[i..i + OPEN.len() + j + CLOSE.len()]);
        }
        rest = &after[j + CLOSE.len()..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_found_and_replaced() {
        let lookup = |n: &str| (n == "db-pass").then(|| "s3cret".to_owned());
        // (value, refs, substituted)
        let cases: [(&str, Vec<&str>, Result<&str, &str>); 6] = [
            ("plain", vec![], Ok("plain")),
            ("{{secret:db-pass}}", vec!["db-pass"], Ok("s3cret")),
            (
                "postgres://u:{{secret:db-pass}}@db/x",
                vec!["db-pass"],
                Ok("postgres://u:s3cret@db/x"),
            ),
            ("{{secret:missing}}", vec!["missing"], Err("missing")),
            (
                "{{secret:bad name}} stays",
                vec![],
                Ok("{{secret:bad name}} stays"),
            ),
            ("{{secret:unclosed", vec![], Ok("{{secret:unclosed")),
        ];
        for (value, refs, want) in cases {
            assert_eq!(secret_refs(value), refs, "{value}");
            assert_eq!(
                substitute(value, lookup),
                want.map(str::to_owned).map_err(str::to_owned),
                "{value}"
            );
        }
    }
}
