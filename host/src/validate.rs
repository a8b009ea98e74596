//! Checks shared by every endpoint that stores text.

use crate::error::{Error, Result};

/// Trims `value` and checks it is 1-`max` characters with no control
/// characters (PostgreSQL cannot store NUL, and no name needs a tab).
pub fn text<'a>(field: &str, value: &'a str, max: usize) -> Result<&'a str> {
    let value = value.trim();
    let length = value.chars().count();
    if length == 0 || length > max {
        return Err(Error::invalid(format!(
            "{field} must be 1-{max} characters"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "{field} must not contain control characters"
        )));
    }
    Ok(value)
}

/// The same for an optional search term, which may be empty but not longer
/// than `max` and without control characters.
pub fn search<'a>(field: &str, value: &'a str, max: usize) -> Result<&'a str> {
    if value.chars().count() > max {
        return Err(Error::invalid(format!(
            "{field} must be at most {max} characters"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "{field} must not contain control characters"
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_trimmed_bounded_and_free_of_control_characters() {
        assert_eq!(text("name", "  kim ", 10).ok(), Some("kim"));
        assert!(text("name", "   ", 10).is_err());
        assert!(text("name", "abcdefghijk", 10).is_err());
        assert!(text("name", "a\u{0}b", 10).is_err());
        assert!(text("name", "a\tb", 10).is_err());
        assert!(search("name", "", 10).is_ok());
        assert!(search("name", "\u{85}", 10).is_err());
    }
}
