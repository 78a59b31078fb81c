//! Member card numbers: short, typed or scanned at the till. A card number
//! is the member's serial in the store (unique per program, from 1000000
//! up) followed by a Luhn check digit, so a mistyped digit or two swapped
//! neighbours are caught before any lookup.

use crate::FieldError;

/// The Luhn check digit of `digits` (most significant first).
fn luhn_digit(digits: &[u8]) -> u8 {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 0 {
                let twice = d * 2;
                if twice > 9 {
                    twice - 9
                } else {
                    twice
                }
            } else {
                d
            }
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

/// The card number of the member with `serial`.
pub fn card_number(serial: i64) -> String {
    let body = serial.to_string();
    let digits: Vec<u8> = body.bytes().map(|b| b - b'0').collect();
    format!("{body}{}", luhn_digit(&digits))
}

/// The serial a typed card number names; spaces and dashes are ignored.
/// Errors name `field`.
pub fn parse_card_number(field: &str, raw: &str) -> Result<i64, FieldError> {
    let digits: Vec<u8> = raw
        .chars()
        .filter(|c| !matches!(c, ' ' | '-'))
        .map(|c| c.to_digit(10).map(|d| d as u8))
        .collect::<Option<_>>()
        .ok_or_else(|| FieldError::new(field, "a card number has digits only"))?;
    let Some((&check, body)) = digits.split_last() else {
        return Err(FieldError::new(field, "a card number has digits only"));
    };
    if body.len() > 17 || body.is_empty() {
        return Err(FieldError::new(field, "not a card number (wrong length)"));
    }
    if luhn_digit(body) != check {
        return Err(FieldError::new(
            field,
            "not a card number (the check digit does not match: a typo?)",
        ));
    }
    Ok(body.iter().fold(0i64, |n, &d| n * 10 + i64::from(d)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn luhn_as_cards_use_it() {
        // The classic example: 7992739871 has check digit 3.
        assert_eq!(card_number(7_992_739_871), "79927398713");
        assert_eq!(card_number(1_000_000), "10000008");
        assert_eq!(parse_card_number("c", "1000 0008").unwrap(), 1_000_000);
        assert_eq!(parse_card_number("c", "10000009").unwrap_err().field, "c");
        assert!(parse_card_number("c", "").is_err());
        assert!(parse_card_number("c", "12a4").is_err());
        assert!(parse_card_number("c", "9").is_err());
    }

    proptest! {
        #[test]
        fn one_wrong_digit_or_a_swap_is_caught(serial in 1_000_000i64..100_000_000_000, at in 0usize..8, by in 1u8..10) {
            let n = card_number(serial);
            prop_assert_eq!(parse_card_number("c", &n).unwrap(), serial);
            let mut typo: Vec<u8> = n.bytes().collect();
            typo[at] = b'0' + (typo[at] - b'0' + by) % 10;
            prop_assert!(parse_card_number("c", std::str::from_utf8(&typo).unwrap()).is_err());
            let mut swapped: Vec<u8> = n.bytes().collect();
            if swapped[at] != swapped[at + 1] && !matches!((swapped[at], swapped[at + 1]), (b'0', b'9') | (b'9', b'0')) {
                swapped.swap(at, at + 1);
                prop_assert!(parse_card_number("c", std::str::from_utf8(&swapped).unwrap()).is_err());
            }
        }
    }
}
