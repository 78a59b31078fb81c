//! The weekly share routine: a member opts in with a short list of
//! contacts' e-mail addresses. The member themself gets a reminder with
//! their own link at most once per [`EVERY`]; the contacts, who never
//! agreed to anything, get one invitation from the program each, ever, and
//! the member's link once per [`EVERY`] only after they opt in with the
//! link in that invitation, until they unsubscribe or the member opts out.

use crate::member::Email;
use crate::FieldError;
use sha2::{Digest, Sha256};

/// Contacts one member may name: a routine for friends, not a mailing list.
pub const MAX_CONTACTS: usize = 20;

/// How often the member (and an opted-in contact) hears from the routine.
pub const EVERY: time::Duration = time::Duration::days(7);

/// Checks a routine's contacts: 1 to [`MAX_CONTACTS`] valid addresses,
/// normalised to lower case, repeats dropped. Errors name `contacts[i]`.
pub fn parse_contacts(raw: &[String]) -> Result<Vec<Email>, FieldError> {
    if raw.is_empty() {
        return Err(FieldError::new(
            "contacts",
            "name at least one e-mail address; to stop the routine, DELETE it",
        ));
    }
    let mut contacts: Vec<Email> = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        let email =
            Email::parse(r).map_err(|e| FieldError::new(format!("contacts[{i}]"), e.reason))?;
        if !contacts.contains(&email) {
            contacts.push(email);
        }
    }
    if contacts.len() > MAX_CONTACTS {
        return Err(FieldError::new(
            "contacts",
            format!("at most {MAX_CONTACTS} addresses (got {})", contacts.len()),
        ));
    }
    Ok(contacts)
}

/// What identifies a contact who unsubscribed: a hash of the address, so
/// the opt-out is kept without keeping the address.
pub fn contact_hash(email: &Email) -> [u8; 32] {
    Sha256::digest(email.as_str().as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn contacts_are_checked_and_normalised() {
        let ok = parse_contacts(&strings(&[
            "Anna@Example.com",
            "anna@example.com",
            "b@example.org",
        ]))
        .unwrap();
        assert_eq!(
            ok.iter().map(Email::as_str).collect::<Vec<_>>(),
            ["anna@example.com", "b@example.org"]
        );
        assert_eq!(parse_contacts(&[]).unwrap_err().field, "contacts");
        assert_eq!(
            parse_contacts(&strings(&["a@example.com", "not an address"]))
                .unwrap_err()
                .field,
            "contacts[1]"
        );
        let many: Vec<String> = (0..=MAX_CONTACTS)
            .map(|i| format!("c{i}@example.com"))
            .collect();
        assert!(parse_contacts(&many)
            .unwrap_err()
            .reason
            .contains("at most 20"));
        assert_eq!(
            parse_contacts(&many[..MAX_CONTACTS]).unwrap().len(),
            MAX_CONTACTS
        );
        assert_eq!(
            contact_hash(&ok[0]),
            contact_hash(&Email::parse("ANNA@example.com").unwrap())
        );
    }
}
