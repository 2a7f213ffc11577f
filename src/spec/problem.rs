//! One validation problem and the JSON path notation that locates it in the document. Pure.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_path_to_error::Segment;

/// One validation problem, e.g. path `itemListElement[2].ports[0].containerPort`, message
/// `70000 is not a port (1-65535)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// Where in the document, in JavaScript notation; empty for the document as a whole.
    pub path: String,
    pub message: String,
}

impl Problem {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Append one step of a serde path to `path`, in the notation of [`Problem::path`].
pub(super) fn push_segment(path: &mut String, segment: &Segment) {
    match segment {
        Segment::Seq { index } => path.push_str(&format!("[{index}]")),
        Segment::Map { key } | Segment::Enum { variant: key } => {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(key);
        }
        Segment::Unknown => path.push_str(".?"),
    }
}

/// Whether `path` is `root` or lies beneath it.
pub(super) fn is_within(path: &str, root: &str) -> bool {
    root.is_empty()
        || path
            .strip_prefix(root)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.') || rest.starts_with('['))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_display_omits_an_empty_path() {
        assert_eq!(Problem::new("a.b", "bad").to_string(), "a.b: bad");
        assert_eq!(Problem::new("", "bad").to_string(), "bad");
    }
}
