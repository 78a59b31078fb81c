//! Voice assistants: which ones Sarafan answers, the tokens of their account
//! linking, and matching a spoken store name against program names.
//!
//! Linking tokens read `sar_<tag>_<program id>_<secret>` like API keys, for
//! the same reason: the program id lets the server look a token up inside
//! its tenant, and only a SHA-256 of the whole token is stored.

use crate::apikey::{hash_token, PresentedToken};
use crate::ids::ProgramId;
use crate::FieldError;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An assistant platform Sarafan answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Assistant {
    /// Google Dialogflow ES and CX fulfilment webhooks.
    Dialogflow,
    /// Amazon Alexa custom skills.
    Alexa,
    /// Yandex Alice skills (Yandex Dialogs).
    Alice,
}

impl Assistant {
    pub const ALL: [Assistant; 3] = [Self::Dialogflow, Self::Alexa, Self::Alice];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dialogflow => "dialogflow",
            Self::Alexa => "alexa",
            Self::Alice => "alice",
        }
    }

    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == raw.trim())
            .ok_or_else(|| FieldError::new(field, "must be one of: dialogflow, alexa, alice"))
    }
}

/// What a linking token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// An authorization code, traded once for tokens.
    Code,
    Access,
    Refresh,
    /// The OAuth client secret of an assistant's configuration.
    ClientSecret,
    /// The secret Dialogflow sends with every webhook call.
    WebhookSecret,
}

impl TokenKind {
    fn tag(self) -> &'static str {
        match self {
            Self::Code => "voc",
            Self::Access => "voa",
            Self::Refresh => "vor",
            Self::ClientSecret => "vcs",
            Self::WebhookSecret => "vws",
        }
    }

    /// The name stored in `voice_grants.kind` (codes and tokens only).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Code => "code",
            Self::Access => "access",
            Self::Refresh => "refresh",
            Self::ClientSecret => "client_secret",
            Self::WebhookSecret => "webhook_secret",
        }
    }
}

/// Builds a token of `kind` for `program` from the caller's 24 random bytes;
/// returns it with its hash.
pub fn issue_token(kind: TokenKind, program: ProgramId, secret: [u8; 24]) -> (String, [u8; 32]) {
    let token = format!(
        "sar_{}_{}_{}",
        kind.tag(),
        program.0.simple(),
        hex::encode(secret)
    );
    let hash = hash_token(&token);
    (token, hash)
}

/// Reads a presented token of `kind`; `None` for anything else.
pub fn parse_token(kind: TokenKind, raw: &str) -> Option<PresentedToken> {
    let rest = raw.trim().strip_prefix("sar_")?.strip_prefix(kind.tag())?;
    let (program, secret) = rest.strip_prefix('_')?.split_once('_')?;
    if program.len() != 32 || secret.len() != 48 || !secret.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    Some(PresentedToken {
        program_id: ProgramId(Uuid::try_parse(program).ok()?),
        hash: hash_token(raw.trim()),
    })
}

/// Whose OAuth client an assistant's account linking uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// A program's own skill or agent.
    Program(ProgramId),
    /// The deployment-wide skill or agent the operator set up: the member
    /// picks the program when linking.
    Shared,
}

/// The word a shared client's id carries in place of a program id.
const SHARED: &str = "shared";

/// The OAuth client id of a program's assistant, `<assistant>-<program
/// id>`, so the authorize and token endpoints find the program from it; or
/// of the deployment-wide one, `<assistant>-shared`.
pub fn client_id(assistant: Assistant, client: Client) -> String {
    match client {
        Client::Program(program) => format!("{}-{}", assistant.as_str(), program.0.simple()),
        Client::Shared => format!("{}-{SHARED}", assistant.as_str()),
    }
}

/// Reads a client id made by [`client_id`].
pub fn parse_client_id(raw: &str) -> Option<(Assistant, Client)> {
    let (assistant, rest) = raw.trim().split_once('-')?;
    let assistant = Assistant::parse("client_id", assistant).ok()?;
    if rest == SHARED {
        return Some((assistant, Client::Shared));
    }
    (rest.len() == 32).then_some(())?;
    let program = ProgramId(Uuid::try_parse(rest).ok()?);
    Some((assistant, Client::Program(program)))
}

/// Checks an assistant's account-linking redirect URIs: https, no fragment.
/// Errors name `redirect_uris[<i>]`.
pub fn redirect_uris(raw: &[String]) -> Result<Vec<String>, FieldError> {
    raw.iter()
        .enumerate()
        .map(|(i, uri)| {
            let field = format!("redirect_uris[{i}]");
            let url = url::Url::parse(uri.trim())
                .map_err(|e| FieldError::new(&field, format!("is not a URL ({e})")))?;
            if url.scheme() != "https" || url.fragment().is_some() {
                return Err(FieldError::new(
                    &field,
                    "must be an https URL without a fragment",
                ));
            }
            Ok(url.to_string())
        })
        .collect()
}

/// How a spoken store name matched the candidates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameMatch<T> {
    One(T),
    /// Several candidates fit about equally well: ask which.
    Ambiguous(Vec<T>),
    None,
}

/// Matches `spoken` against `(name, item)` candidates, ignoring case,
/// punctuation and script (Cyrillic is compared in Latin transliteration,
/// so «кофе хаус» finds "Coffee House"). A candidate fits when one name
/// contains the other or their edit distance is small for their length.
pub fn match_name<T: Clone>(spoken: &str, candidates: &[(String, T)]) -> NameMatch<T> {
    let said = fold(spoken);
    if said.is_empty() {
        return NameMatch::None;
    }
    let mut scored: Vec<(usize, &T)> = candidates
        .iter()
        .filter_map(|(name, item)| {
            let name = fold(name);
            if name.is_empty() {
                return None;
            }
            if name == said {
                return Some((0, item));
            }
            if name.contains(&said) || said.contains(&name) {
                return Some((1, item));
            }
            let skeleton = consonants(&said);
            if skeleton.chars().count() >= 3 && skeleton == consonants(&name) {
                return Some((2, item));
            }
            let d = distance(&said, &name);
            let allowed = said.chars().count().max(name.chars().count()) / 3;
            (d <= allowed).then_some((2 + d, item))
        })
        .collect();
    scored.sort_by_key(|(s, _)| *s);
    match scored.as_slice() {
        [] => NameMatch::None,
        [(_, one)] => NameMatch::One((*one).clone()),
        [(best, one), (next, _), ..] if best < next => NameMatch::One((*one).clone()),
        [(best, _), ..] => NameMatch::Ambiguous(
            scored
                .iter()
                .filter(|(s, _)| s == best)
                .map(|(_, t)| (*t).clone())
                .collect(),
        ),
    }
}

/// The consonants of a folded name: «кофе хаус» and "Coffee House" differ
/// in their vowels only.
fn consonants(folded: &str) -> String {
    folded.chars().filter(|c| !"aeiou".contains(*c)).collect()
}

/// Lower case, letters and digits only, Cyrillic transliterated to Latin,
/// with the spellings that sound alike folded together (c/k, ph/f, w/v,
/// z/s, doubled letters).
fn fold(s: &str) -> String {
    let mut out = String::new();
    for c in s.to_lowercase().chars() {
        match translit(c) {
            Some(latin) => out.push_str(latin),
            None if c.is_alphanumeric() => out.push(c),
            None => {}
        }
    }
    out.replace("ph", "f")
        .replace("ck", "k")
        .replace('c', "k")
        .replace('w', "v")
        .replace('y', "i")
        .replace("ee", "i")
        .replace("oo", "u")
        .replace('z', "s")
        .chars()
        .fold(String::new(), |mut acc, c| {
            if !acc.ends_with(c) {
                acc.push(c);
            }
            acc
        })
}

fn translit(c: char) -> Option<&'static str> {
    const TABLE: [(char, &str); 33] = [
        ('а', "a"),
        ('б', "b"),
        ('в', "v"),
        ('г', "g"),
        ('д', "d"),
        ('е', "e"),
        ('ё', "e"),
        ('ж', "zh"),
        ('з', "z"),
        ('и', "i"),
        ('й', "i"),
        ('к', "k"),
        ('л', "l"),
        ('м', "m"),
        ('н', "n"),
        ('о', "o"),
        ('п', "p"),
        ('р', "r"),
        ('с', "s"),
        ('т', "t"),
        ('у', "u"),
        ('ф', "f"),
        ('х', "h"),
        ('ц', "ts"),
        ('ч', "ch"),
        ('ш', "sh"),
        ('щ', "sch"),
        ('ъ', ""),
        ('ы', "i"),
        ('ь', ""),
        ('э', "e"),
        ('ю', "yu"),
        ('я', "ya"),
    ];
    TABLE.iter().find(|(k, _)| *k == c).map(|(_, v)| *v)
}

/// Levenshtein distance over characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<(String, u8)> {
        vec![
            ("Coffee House".into(), 1),
            ("Шоколадница".into(), 2),
            ("Books & Co".into(), 3),
            ("Books and More".into(), 4),
        ]
    }

    #[test]
    fn matches_across_case_and_script() {
        assert_eq!(match_name("coffee house", &names()), NameMatch::One(1));
        assert_eq!(match_name("кофе хаус", &names()), NameMatch::One(1));
        assert_eq!(match_name("КОФИ ХАУЗ", &names()), NameMatch::One(1));
        assert_eq!(match_name("shokoladnitsa", &names()), NameMatch::One(2));
        assert_eq!(match_name("шоколадницы", &names()), NameMatch::One(2));
        assert_eq!(match_name("Books & Co.", &names()), NameMatch::One(3));
    }

    #[test]
    fn asks_back_or_gives_up() {
        assert_eq!(
            match_name("books", &names()),
            NameMatch::Ambiguous(vec![3, 4])
        );
        assert_eq!(match_name("pizza palace", &names()), NameMatch::None);
        assert_eq!(match_name("  ", &names()), NameMatch::None);
    }

    #[test]
    fn tokens_round_trip_by_kind() {
        let p = ProgramId(Uuid::from_u128(7));
        let (token, hash) = issue_token(TokenKind::Access, p, [3; 24]);
        let read = parse_token(TokenKind::Access, &token).unwrap();
        assert_eq!((read.program_id, read.hash), (p, hash));
        assert!(parse_token(TokenKind::Refresh, &token).is_none());
        assert!(parse_token(TokenKind::Access, &token[..token.len() - 1]).is_none());
        let id = client_id(Assistant::Alice, Client::Program(p));
        assert_eq!(
            parse_client_id(&id),
            Some((Assistant::Alice, Client::Program(p)))
        );
        assert_eq!(
            parse_client_id("alexa-shared"),
            Some((Assistant::Alexa, Client::Shared))
        );
        assert_eq!(parse_client_id("alexa-zz"), None);
    }
}
