//! The one error a parse of client input can produce.

use std::fmt;

/// A value a client sent that cannot become a domain value: names the field
/// and says how to fix it, so both the HTTP problem and the CLI message can
/// be precise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path of the offending field, as the client spelled it.
    pub field: String,
    /// What is wrong and what would be accepted.
    pub reason: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Re-roots the error under a parent field (`email` → `member.email`).
    pub fn within(mut self, parent: &str) -> Self {
        self.field = format!("{parent}.{}", self.field);
        self
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl std::error::Error for FieldError {}
