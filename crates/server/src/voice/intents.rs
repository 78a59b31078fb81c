//! The one brain behind every assistant: from an intent, a spoken store
//! name and a linked account to what to say, what to show and whether the
//! conversation is over. Adapters only translate wire formats to a
//! [`Turn`] and a [`Reply`] back.

use super::texts::{say, FluentValue, Lang};
use crate::problem::ApiError;
use crate::AppState;
use sarafan_core::ids::{MemberId, ProgramId};
use sarafan_core::ledger::account::Asset;
use sarafan_core::member::MemberStatus;
use sarafan_core::outbox::Topic;
use sarafan_core::voice::{match_name, parse_token, Assistant, NameMatch, TokenKind};
use sarafan_store::outbox::Outgoing;
use sarafan_store::{
    IdempotencyBegin, IdempotencyScope, Member, Program, SavedResponse, VoiceAssistant,
};
use time::OffsetDateTime;

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// The skill was opened without a question.
    Launch,
    /// Share the referral program: its terms, and the member's link.
    Share,
    Terms,
    Balance,
    Progress,
    Help,
    Stop,
    /// Start the weekly routine that sends the link to the member's contacts.
    WeeklyOn,
    /// Stop it: one sentence.
    WeeklyOff,
    Unknown,
}

impl Intent {
    /// From an intent name as a skill or agent declares it. Our own intents
    /// may be written `ShareProgram`, `share_program` or `share.program`;
    /// the platforms' built-in help, stop, cancel, welcome and fallback
    /// intents are understood too.
    pub fn from_name(name: &str) -> Self {
        let key: String = name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_lowercase())
            .collect();
        match key.as_str() {
            "shareprogram" | "share" => Self::Share,
            "programterms" | "terms" => Self::Terms,
            "mybalance" | "balance" => Self::Balance,
            "myprogress" | "referralprogress" | "progress" => Self::Progress,
            "help" | "amazonhelpintent" | "yandexhelp" | "yandexwhatcanyoudo" => Self::Help,
            "stop" | "cancel" | "amazonstopintent" | "amazoncancelintent" => Self::Stop,
            "defaultwelcomeintent" | "welcome" | "launch" => Self::Launch,
            "weeklyshareon" | "weeklyshare" | "startweeklyshare" => Self::WeeklyOn,
            "weeklyshareoff" | "stopweeklyshare" => Self::WeeklyOff,
            _ => Self::Unknown,
        }
    }

    /// The name kept in a platform's session state while a store is asked
    /// for; [`Intent::from_name`] reads it back.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Launch => "welcome",
            Self::Share => "share_program",
            Self::Terms => "program_terms",
            Self::Balance => "my_balance",
            Self::Progress => "my_progress",
            Self::Help => "help",
            Self::Stop => "stop",
            Self::WeeklyOn => "weekly_share_on",
            Self::WeeklyOff => "weekly_share_off",
            Self::Unknown => "unknown",
        }
    }
}

/// The session-state key (Alice `session_state`, Alexa session
/// attributes, Dialogflow context or session parameter) holding the
/// intent whose store the last answer asked for.
pub const PENDING: &str = "sarafan_pending";

/// One request, as every adapter sees it.
pub struct Turn<'a> {
    pub assistant: Assistant,
    pub intent: Intent,
    /// The store name the user said, if any.
    pub store: Option<String>,
    /// The whole utterance, where the platform gives it: the answer to
    /// "which store?" may match no intent and fill no slot.
    pub utterance: Option<String>,
    /// The intent whose store the previous answer asked for (from the
    /// platform's session state).
    pub pending: Option<Intent>,
    pub lang: Lang,
    /// The linked account's access token, if the user linked one.
    pub access_token: Option<String>,
    /// The request's own id: a retried request sends the link once.
    pub request_id: String,
    /// The programs whose configuration this request authenticated against.
    pub configs: &'a [VoiceAssistant],
}

/// Something to show beside the speech.
#[derive(Debug, Clone, PartialEq)]
pub struct Card {
    pub title: String,
    pub text: String,
    /// The member's referral link.
    pub url: String,
}

/// What to answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// Plain text; adapters wrap it in SSML where the platform wants it.
    pub speech: String,
    pub card: Option<Card>,
    pub end_session: bool,
    /// Ask the platform to offer account linking.
    pub link_account: bool,
    /// The program the answer is about, for the linking card's title.
    pub program_name: Option<String>,
    /// The answer asks which store: the intent to carry on with once the
    /// next turn names one (adapters keep it in the session state).
    pub asks_store: Option<Intent>,
}

impl Reply {
    fn ask(speech: String) -> Self {
        Self {
            speech,
            card: None,
            end_session: false,
            link_account: false,
            program_name: None,
            asks_store: None,
        }
    }

    fn ask_store(intent: Intent, speech: String) -> Self {
        Self {
            asks_store: Some(intent),
            ..Self::ask(speech)
        }
    }

    fn tell(speech: String) -> Self {
        Self {
            end_session: true,
            ..Self::ask(speech)
        }
    }
}

impl Turn<'_> {
    /// A turn that answers "which store?": matching no intent of its own,
    /// it carries on with the pending intent, the store being its slot or
    /// else all that was said.
    fn resumed(self) -> Self {
        match (self.pending, self.intent) {
            (Some(pending), Intent::Unknown) => Self {
                intent: pending,
                store: self.store.clone().or_else(|| self.utterance.clone()),
                ..self
            },
            _ => self,
        }
    }
}

/// Answers one turn. Only sharing changes anything (the link message in the
/// outbox, the member's referral code on first use).
pub async fn answer(state: &AppState, turn: Turn<'_>) -> Result<Reply, ApiError> {
    let turn = turn.resumed();
    let lang = turn.lang;
    match turn.intent {
        Intent::Stop => return Ok(Reply::tell(say(lang, "voice-bye", &[]))),
        Intent::Help => return Ok(Reply::ask(say(lang, "voice-help", &[]))),
        Intent::Unknown => return Ok(Reply::ask(say(lang, "voice-fallback", &[]))),
        _ => {}
    }
    let mut programs = Vec::with_capacity(turn.configs.len());
    for c in turn.configs {
        programs.extend(state.store.program(c.program).await?);
    }
    let linked = linked_member(state, &turn).await?;
    let store = turn
        .store
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let program = match store {
        Some(spoken) => {
            let named: Vec<(String, usize)> = programs
                .iter()
                .enumerate()
                .map(|(i, p)| (p.name.clone(), i))
                .collect();
            match match_name(spoken, &named) {
                NameMatch::One(i) => &programs[i],
                NameMatch::Ambiguous(found) => {
                    let names: Vec<&str> =
                        found.iter().map(|i| programs[*i].name.as_str()).collect();
                    let or = format!(" {} ", say(lang, "voice-or", &[]));
                    let options = names.join(&or);
                    return Ok(Reply::ask_store(
                        turn.intent,
                        say(
                            lang,
                            "voice-ambiguous",
                            &[("options", FluentValue::from(options.as_str()))],
                        ),
                    ));
                }
                NameMatch::None => {
                    return Ok(Reply::ask_store(
                        turn.intent,
                        say(
                            lang,
                            "voice-unknown-store",
                            &[("store", FluentValue::from(spoken))],
                        ),
                    ))
                }
            }
        }
        None => match (&linked, programs.as_slice()) {
            (Some(m), _) if programs.iter().any(|p| p.id == m.program_id) => programs
                .iter()
                .find(|p| p.id == m.program_id)
                .expect("checked above"),
            (_, [only]) => only,
            (_, [first, ..]) if turn.intent == Intent::Launch => {
                return Ok(Reply::ask_store(
                    turn.intent,
                    say(
                        lang,
                        "voice-welcome-any",
                        &[("example", FluentValue::from(first.name.as_str()))],
                    ),
                ))
            }
            _ => {
                return Ok(Reply::ask_store(
                    turn.intent,
                    say(lang, "voice-which-store", &[]),
                ))
            }
        },
    };
    let member = linked.filter(|m| m.program_id == program.id);
    let name = FluentValue::from(program.name.as_str());
    let reply = match (turn.intent, member) {
        (Intent::Launch, _) => Reply::ask(say(lang, "voice-welcome", &[("program", name)])),
        (Intent::Terms, _) => Reply::tell(terms(lang, program)),
        (Intent::Share, Some(member)) => share(state, &turn, program, &member).await?,
        (Intent::Balance, Some(member)) => {
            Reply::tell(balance(state, lang, program, member.id).await?)
        }
        (Intent::Progress, Some(member)) => {
            Reply::tell(progress(state, lang, member.id, program.id).await?)
        }
        (Intent::WeeklyOn, Some(member)) => {
            Reply::tell(weekly_on(state, lang, program, member.id).await?)
        }
        (Intent::WeeklyOff, Some(member)) => {
            state
                .store
                .clear_share_routine(program.id, member.id)
                .await?;
            Reply::tell(say(lang, "voice-weekly-off", &[]))
        }
        (intent, None) => {
            let link = say(lang, "voice-link-account", &[("program", name)]);
            let speech = if intent == Intent::Share {
                format!("{} {link}", terms(lang, program))
            } else {
                link
            };
            Reply {
                link_account: true,
                ..Reply::tell(speech)
            }
        }
        _ => Reply::ask(say(lang, "voice-fallback", &[])),
    };
    Ok(Reply {
        program_name: Some(program.name.clone()),
        ..reply
    })
}

/// The weekly routine sends to the contacts the member listed (in the
/// portal or through the store's API); by voice it can only be confirmed.
async fn weekly_on(
    state: &AppState,
    lang: Lang,
    program: &Program,
    member: MemberId,
) -> Result<String, ApiError> {
    let contacts = state
        .store
        .share_routine(program.id, member)
        .await?
        .map(|r| r.contacts.iter().filter(|c| !c.unsubscribed).count())
        .unwrap_or(0);
    Ok(if contacts == 0 {
        say(
            lang,
            "voice-weekly-no-contacts",
            &[("program", FluentValue::from(program.name.as_str()))],
        )
    } else {
        say(
            lang,
            "voice-weekly-on",
            &[("contacts", FluentValue::from(contacts))],
        )
    })
}

/// The member the request's access token was issued for, when it is a
/// live token of this assistant for one of the authenticated programs and
/// the member is active.
async fn linked_member(state: &AppState, turn: &Turn<'_>) -> Result<Option<Member>, ApiError> {
    let Some(token) = turn.access_token.as_deref() else {
        return Ok(None);
    };
    let Some(presented) = parse_token(TokenKind::Access, token) else {
        return Ok(None);
    };
    if !turn
        .configs
        .iter()
        .any(|c| c.program == presented.program_id)
    {
        return Ok(None);
    }
    let Some(grant) = state
        .store
        .take_voice_grant(presented.program_id, TokenKind::Access, &presented.hash)
        .await?
        .filter(|g| g.assistant == turn.assistant)
    else {
        return Ok(None);
    };
    Ok(state
        .store
        .member(presented.program_id, grant.member)
        .await?
        .filter(|m| m.status == MemberStatus::Active))
}

/// The program's terms in at most two sentences.
fn terms(lang: Lang, program: &Program) -> String {
    let name = FluentValue::from(program.name.as_str());
    let text = program
        .terms
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if text.is_empty() {
        return say(lang, "voice-no-terms", &[("program", name)]);
    }
    let mut end = text.len();
    let mut sentences = 0;
    for (i, c) in text.char_indices() {
        if matches!(c, '.' | '!' | '?') && text[i + 1..].starts_with(' ') {
            sentences += 1;
            if sentences == 2 {
                end = i + 1;
                break;
            }
        }
    }
    say(
        lang,
        "voice-terms",
        &[
            ("program", name),
            ("terms", FluentValue::from(&text[..end])),
        ],
    )
}

/// Speaks the terms, sends the member's link through the outbox (once per
/// request, however often the platform retries it) and shows it.
async fn share(
    state: &AppState,
    turn: &Turn<'_>,
    program: &Program,
    member: &Member,
) -> Result<Reply, ApiError> {
    let codes = state
        .store
        .referral_code_for(program.id, member.id)
        .await?
        .ok_or_else(|| ApiError::Internal("linked member vanished".into()))?;
    let url = format!("{}/r/{}", state.config.public_url, codes.code);
    let scope = IdempotencyScope {
        program: program.id,
        caller: member.id.0,
        method: "VOICE",
        path: turn.assistant.as_str(),
        key: &turn.request_id,
    };
    let expired_before = sarafan_store::now() - state.config.idempotency_ttl;
    let first = state
        .store
        .idempotency_begin(&scope, member.id.0.as_bytes(), expired_before)
        .await?;
    if first == IdempotencyBegin::Run {
        let data = serde_json::json!({
            "member_id": member.id,
            "link": url,
            "assistant": turn.assistant.as_str(),
        });
        let sent = state
            .store
            .enqueue(
                program.id,
                &[Outgoing::new(Topic::ShareRequested, Some(member.id), data)],
            )
            .await;
        if let Err(e) = sent {
            state.store.idempotency_abandon(&scope).await?;
            return Err(e.into());
        }
        let done = SavedResponse {
            status: 200,
            content_type: None,
            body: Vec::new(),
        };
        state.store.idempotency_finish(&scope, &done).await?;
    }
    let mailed = member.email.is_some() && member.consent.email;
    let lang = turn.lang;
    let how = say(
        lang,
        if mailed {
            "voice-share-sent"
        } else {
            "voice-share-shown"
        },
        &[],
    );
    let title = say(
        lang,
        "voice-card-title",
        &[("program", FluentValue::from(program.name.as_str()))],
    );
    Ok(Reply {
        card: Some(Card {
            title,
            text: url.clone(),
            url,
        }),
        ..Reply::tell(format!("{} {how}", terms(lang, program)))
    })
}

async fn balance(
    state: &AppState,
    lang: Lang,
    program: &Program,
    member: MemberId,
) -> Result<String, ApiError> {
    let b = state
        .store
        .member_balance(program.id, member, Asset::Points)
        .await?;
    let mut speech = say(
        lang,
        "voice-balance",
        &[
            ("points", FluentValue::from(b.spendable)),
            ("pending", FluentValue::from(b.pending)),
            ("program", FluentValue::from(program.name.as_str())),
        ],
    );
    let next = match b.expiring.first() {
        Some((at, points)) => say(
            lang,
            "voice-expiring",
            &[
                ("points", FluentValue::from(*points)),
                ("date", FluentValue::from(spoken_date(lang, *at))),
            ],
        ),
        None => say(lang, "voice-nothing-expiring", &[]),
    };
    speech.push(' ');
    speech.push_str(&next);
    Ok(speech)
}

async fn progress(
    state: &AppState,
    lang: Lang,
    member: MemberId,
    program: ProgramId,
) -> Result<String, ApiError> {
    let p = state.store.referral_progress(program, member).await?;
    let now = sarafan_store::now();
    let earned = p.rewards.iter().filter(|r| r.is_earned(now)).count();
    let pending = p
        .rewards
        .iter()
        .filter(|r| !r.is_earned(now) && matches!(r.status.as_str(), "granted" | "awaiting_choice"))
        .count();
    let count = |n: usize| FluentValue::from(n as i64);
    Ok(say(
        lang,
        "voice-progress",
        &[
            ("joined", FluentValue::from(p.signed_up as i64)),
            ("qualified", FluentValue::from(p.qualified as i64)),
            ("earned", count(earned)),
            ("pending", count(pending)),
        ],
    ))
}

/// "31 December" / «31 декабря».
fn spoken_date(lang: Lang, at: OffsetDateTime) -> String {
    const EN: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const RU: [&str; 12] = [
        "января",
        "февраля",
        "марта",
        "апреля",
        "мая",
        "июня",
        "июля",
        "августа",
        "сентября",
        "октября",
        "ноября",
        "декабря",
    ];
    let month = usize::from(u8::from(at.month())) - 1;
    let months = if lang == Lang::Ru { RU } else { EN };
    format!("{} {}", at.day(), months[month])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intent_names_in_any_spelling() {
        assert_eq!(Intent::from_name("ShareProgram"), Intent::Share);
        assert_eq!(Intent::from_name("share_program"), Intent::Share);
        assert_eq!(Intent::from_name("AMAZON.StopIntent"), Intent::Stop);
        assert_eq!(Intent::from_name("AMAZON.CancelIntent"), Intent::Stop);
        assert_eq!(Intent::from_name("YANDEX.HELP"), Intent::Help);
        assert_eq!(Intent::from_name("Default Welcome Intent"), Intent::Launch);
        assert_eq!(Intent::from_name("OrderPizza"), Intent::Unknown);
        assert_eq!(Intent::from_name("WeeklyShareOn"), Intent::WeeklyOn);
        assert_eq!(Intent::from_name("weekly_share_off"), Intent::WeeklyOff);
    }

    #[test]
    fn pending_intents_read_back() {
        for intent in [
            Intent::Launch,
            Intent::Share,
            Intent::Terms,
            Intent::Balance,
            Intent::Progress,
            Intent::WeeklyOn,
            Intent::WeeklyOff,
        ] {
            assert_eq!(Intent::from_name(intent.as_str()), intent);
        }
    }
}
