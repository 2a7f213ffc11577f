//! What a conversion says besides the stack: warnings for what it left out or changed,
//! and errors for what it cannot convert, each at its path in the compose file. Pure.

use std::fmt;

use crate::spec::Problem;

/// Something the converted stack does not carry as compose would, e.g.
/// `services.db.sysctls: not supported, ignored`. The stack is still written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// Where in the compose file, `services.db.sysctls`; empty for the file as a whole.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Warnings and errors gathered while converting, in the order found.
#[derive(Debug, Default)]
pub struct Report {
    pub warnings: Vec<Warning>,
    /// What could not be converted; any one means no stack.
    pub errors: Vec<Problem>,
}

impl Report {
    pub fn warn(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(Warning {
            path: path.into(),
            message: message.into(),
        });
    }

    pub fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(Problem::new(path, message));
    }

    /// The standard warning for a key Berth has no field for.
    pub fn unsupported(&mut self, path: impl Into<String>) {
        self.warn(path, "not supported, ignored");
    }

    /// Errors, then warnings, one line each, as `berth convert` prints them.
    pub fn lines(&self) -> Vec<String> {
        let errors = self.errors.iter().map(|p| format!("error: {p}"));
        let warnings = self.warnings.iter().map(|w| format!("warning: {w}"));
        errors.chain(warnings).collect()
    }
}
