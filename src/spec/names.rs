//! The naming rules of a stack: service names are DNS labels, host ids are looser. Pure.

pub(super) const DNS_LABEL_RULE: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 characters";
/// [`is_dns_label`] as a regular expression, for the JSON Schema (with a 63 length limit).
pub const DNS_LABEL_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// [`is_host_id`] as a regular expression, for the JSON Schema.
pub const HOST_ID_PATTERN: &str = "^[A-Za-z0-9._-]{1,253}$";

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub fn is_dns_label(s: &str) -> bool {
    let alphanumeric = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let bytes = s.as_bytes();
    bytes.len() <= 63
        && bytes.first().is_some_and(alphanumeric)
        && bytes.last().is_some_and(alphanumeric)
        && bytes.iter().all(|c| alphanumeric(c) || *c == b'-')
}

/// Host ids are chosen by operators (often FQDNs or cloud instance names), so they get a
/// looser rule than service names: `[A-Za-z0-9._-]`, 1-253 characters.
pub fn is_host_id(s: &str) -> bool {
    (1..=253).contains(&s.len())
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        for ok in ["a", "0", "web-1", &"a".repeat(63)] {
            assert!(is_dns_label(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", "é", &"a".repeat(64)] {
            assert!(!is_dns_label(bad), "{bad}");
        }
    }
}
