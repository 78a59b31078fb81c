//! Bounded, trimmed text: the shared rule behind every free-text field.

use crate::FieldError;

/// Trims `raw` and checks it holds between `min` and `max` characters and no
/// control characters. Lengths count Unicode scalar values, not bytes, so a
/// Persian or Russian name gets the same allowance as a Latin one.
pub fn bounded(field: &str, raw: &str, min: usize, max: usize) -> Result<String, FieldError> {
    let s = raw.trim();
    let len = s.chars().count();
    if len < min {
        return Err(if min == 1 {
            FieldError::new(field, "must not be empty")
        } else {
            FieldError::new(field, format!("must be at least {min} characters"))
        });
    }
    if len > max {
        return Err(FieldError::new(
            field,
            format!("is {len} characters long; the limit is {max}"),
        ));
    }
    if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn trims_and_limits() {
        assert_eq!(bounded("name", "  Ann ", 1, 10).unwrap(), "Ann");
        assert_eq!(
            bounded("name", "   ", 1, 10).unwrap_err().reason,
            "must not be empty"
        );
        assert!(bounded("name", "abcdefghijk", 1, 10)
            .unwrap_err()
            .reason
            .contains("limit is 10"));
        assert!(bounded("name", "a\u{0}b", 1, 10).is_err());
    }

    #[test]
    fn counts_characters_not_bytes() {
        assert!(bounded("name", "Сарафан", 1, 7).is_ok());
        assert!(bounded("name", "سارافان", 1, 7).is_ok());
    }

    proptest! {
        #[test]
        fn accepted_text_is_trimmed_and_within_bounds(s in "\\PC{0,40}") {
            if let Ok(v) = bounded("f", &s, 1, 20) {
                prop_assert_eq!(v.trim(), v.as_str());
                let n = v.chars().count();
                prop_assert!((1..=20).contains(&n));
            }
        }
    }
}
