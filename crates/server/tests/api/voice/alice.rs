//! Yandex Alice: protocol 1.0 requests, every intent, linked and unlinked,
//! Russian and English; the skill id guards the door.

use super::{configure, VoiceApp, ALICE_SKILL};
use crate::helpers::{json, problem, Db};
use crate::on_both_databases;
use sarafan_core::voice::Assistant;
use serde_json::{json, Value};

on_both_databases!(
    alice_intents_linked_and_unlinked,
    alice_bad_input,
    weekly_share_by_voice,
    alice_account_linking_as_documented,
    alice_remembers_which_store_was_asked
);

/// A request as Yandex Dialogs sends it (after the protocol
/// documentation's example).
fn request(
    command: &str,
    intent: Option<(&str, Option<&str>)>,
    token: Option<&str>,
    locale: &str,
    new: bool,
) -> Value {
    let intents = match intent {
        Some((name, Some(store))) => json!({name: {"slots": {"store": {
            "type": "YANDEX.STRING",
            "tokens": {"start": 3, "end": 5},
            "value": store,
        }}}}),
        Some((name, None)) => json!({name: {"slots": {}}}),
        None => json!({}),
    };
    let mut user =
        json!({"user_id": "6C91DA5198D1758C6A9F63A7C5CDDF09359F683B13A18A151FBF4C8B092BB0C2"});
    if let Some(t) = token {
        user["access_token"] = json!(t);
    }
    json!({
        "meta": {
            "locale": locale,
            "timezone": "Europe/Moscow",
            "client_id": "ru.yandex.searchplugin/7.16 (none none; android 4.4.2)",
            "interfaces": {"screen": {}, "payments": {}, "account_linking": {}},
        },
        "session": {
            "message_id": 1,
            "session_id": format!("2eac4854-fce721f3-b845abba-{}", uuid::Uuid::now_v7().simple()),
            "skill_id": ALICE_SKILL,
            "user": user,
            "application": {"application_id": "AREALAPPLICATION1D"},
            "user_id": "AC9WC3DF6FCE052E45A4566A48E6B7193774B84814CE49A922E163B8B29881DC",
            "new": new,
        },
        "request": {
            "command": command,
            "original_utterance": command,
            "type": "SimpleUtterance",
            "markup": {"dangerous_context": false},
            "payload": {},
            "nlu": {
                "tokens": command.split_whitespace().collect::<Vec<_>>(),
                "entities": [],
                "intents": intents,
            },
        },
        "state": {"session": {}, "user": {}, "application": {}},
        "version": "1.0",
    })
}

impl VoiceApp {
    async fn alice(&self, body: Value) -> Value {
        let resp = self
            .app
            .client
            .post(format!("{}/voice/alice", self.app.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let out = json(resp).await;
        assert_eq!(out["version"], "1.0");
        out
    }
}

/// `start_account_linking` as the Yandex Dialogs documentation has it:
/// among the response's directives, beside the text that explains it.
fn assert_starts_linking(out: &Value) {
    assert_eq!(
        out["response"]["directives"],
        json!({"start_account_linking": {}}),
        "{out}"
    );
    assert!(out.get("start_account_linking").is_none(), "{out}");
    assert!(text(out).contains("свяжите аккаунт"), "{out}");
    assert_eq!(out["response"]["end_session"], false);
}

fn text(out: &Value) -> &str {
    assert_eq!(out["response"]["text"], out["response"]["tts"]);
    out["response"]["text"].as_str().unwrap()
}

async fn alice_intents_linked_and_unlinked(db: Db) {
    let v = VoiceApp::spawn(db).await;
    let token = v.link(v.app.program, Assistant::Alice, v.anna).await;
    let ru = "ru-RU";

    let out = v.alice(request("", None, None, ru, true)).await;
    assert!(
        text(&out)
            .starts_with("Здравствуйте! Я могу поделиться реферальной программой Coffee House"),
        "{out}"
    );
    assert_eq!(out["response"]["end_session"], false);

    // Unlinked share: the terms are spoken, with how to link.
    let said = "поделись реферальной программой кофе хаус";
    let out = v
        .alice(request(
            said,
            Some(("share_program", Some("кофе хаус"))),
            None,
            ru,
            false,
        ))
        .await;
    assert!(
        text(&out).contains("Invite a friend and you both get 300 points"),
        "{out}"
    );
    assert!(text(&out).contains("свяжите аккаунт Coffee House"), "{out}");
    assert_eq!(out["response"]["buttons"], json!([]));
    assert_eq!(v.queued().await, 0);

    // Unlinked balance: Alice is asked to start account linking.
    let out = v
        .alice(request(
            "мой баланс",
            Some(("my_balance", None)),
            None,
            ru,
            false,
        ))
        .await;
    assert_starts_linking(&out);

    // Linked share: the link by e-mail and as a button.
    let out = v
        .alice(request(
            said,
            Some(("share_program", Some("кофе хаус"))),
            Some(&token),
            ru,
            false,
        ))
        .await;
    assert!(
        text(&out).ends_with("Я отправила вашу ссылку на почту."),
        "{out}"
    );
    let button = &out["response"]["buttons"][0];
    assert_eq!(button["title"], "Ваша реферальная ссылка Coffee House");
    assert_eq!(button["hide"], false);
    let shares = v.shares().await;
    assert_eq!(shares.len(), 1);
    assert_eq!(shares[0]["payload"]["link"], button["url"]);
    assert_eq!(shares[0]["payload"]["assistant"], "alice");
    assert_eq!(out["response"]["end_session"], true);

    let out = v
        .alice(request(
            "условия",
            Some(("program_terms", None)),
            None,
            ru,
            false,
        ))
        .await;
    assert!(
        text(&out).starts_with("Coffee House: Invite a friend"),
        "{out}"
    );
    let out = v
        .alice(request(
            "баланс",
            Some(("my_balance", None)),
            Some(&token),
            ru,
            false,
        ))
        .await;
    assert_eq!(
        text(&out),
        "У вас 0 баллов в Coffee House. В ближайшее время ничего не сгорает."
    );
    let out = v
        .alice(request(
            "как мои друзья",
            Some(("my_progress", None)),
            Some(&token),
            ru,
            false,
        ))
        .await;
    assert_eq!(
        text(&out),
        "По вашей ссылке пока никто не присоединился. Наград получено: 0, ожидается: 0."
    );
    let out = v
        .alice(request(
            "помощь",
            Some(("YANDEX.HELP", None)),
            None,
            ru,
            false,
        ))
        .await;
    assert!(text(&out).starts_with("Скажите:"), "{out}");
    let out = v
        .alice(request("хватит", Some(("stop", None)), None, ru, false))
        .await;
    assert_eq!(text(&out), "До свидания!");
    assert_eq!(out["response"]["end_session"], true);

    // English surfaces get English.
    let out = v
        .alice(request(
            "balance",
            Some(("my_balance", None)),
            Some(&token),
            "en-US",
            false,
        ))
        .await;
    assert_eq!(
        text(&out),
        "You have 0 points with Coffee House. Nothing expires soon."
    );
    assert_eq!(v.queued().await, 1, "only the one share was queued");
}

async fn alice_bad_input(db: Db) {
    let v = VoiceApp::spawn(db).await;
    // Unknown intent, unknown store, a request type we do not handle.
    let out = v
        .alice(request("закажи пиццу", None, None, "ru-RU", false))
        .await;
    assert!(text(&out).starts_with("Извините, я не поняла."), "{out}");
    let out = v
        .alice(request(
            "поделись",
            Some(("share_program", Some("пицца палас"))),
            None,
            "ru-RU",
            false,
        ))
        .await;
    assert_eq!(
        text(&out),
        "Я не знаю магазина «пицца палас». Какой магазин вы имеете в виду?"
    );
    let mut odd = request("", None, None, "ru-RU", false);
    odd["request"]["type"] = json!("Purchase.Confirmation");
    let out = v.alice(odd).await;
    assert!(text(&out).starts_with("Извините"), "{out}");

    // Two programs on one skill: a vague name is asked back.
    let second = v.app.new_tenant("Coffee Bean").await;
    configure(&v.app, &second.admin_key, "alice", ALICE_SKILL).await;
    let out = v
        .alice(request(
            "поделись",
            Some(("share_program", Some("coffee"))),
            None,
            "en-US",
            false,
        ))
        .await;
    assert_eq!(
        text(&out),
        "Which one do you mean: Coffee House or Coffee Bean?"
    );
    assert_eq!(out["response"]["end_session"], false);
    let out = v
        .alice(request(
            "поделись",
            Some(("share_program", None)),
            None,
            "ru-RU",
            false,
        ))
        .await;
    assert_eq!(text(&out), "Какой магазин вы имеете в виду?");

    // Another skill, broken JSON, not Alice's protocol.
    let mut foreign = request("баланс", Some(("my_balance", None)), None, "ru-RU", false);
    foreign["session"]["skill_id"] = json!("someone-elses-skill");
    let post = |body: Vec<u8>| {
        v.app
            .client
            .post(format!("{}/voice/alice", v.app.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    problem(
        post(serde_json::to_vec(&foreign).unwrap()).await.unwrap(),
        401,
        "unauthorized",
    )
    .await;
    problem(
        post(b"{\"meta\":".to_vec()).await.unwrap(),
        400,
        "malformed-json",
    )
    .await;
    let p = problem(
        post(br#"{"version":"1.0"}"#.to_vec()).await.unwrap(),
        422,
        "invalid-field",
    )
    .await;
    assert_eq!(p["field"], "meta");
    assert_eq!(v.queued().await, 0);
}

/// The weekly routine by voice: confirmed only when the member listed
/// contacts; stopped in one sentence.
async fn weekly_share_by_voice(db: Db) {
    let v = VoiceApp::spawn(db).await;
    let token = v.link(v.app.program, Assistant::Alice, v.anna).await;
    let routine = format!("/api/v1/members/{}/share-routine", v.anna.0);
    let on = || {
        request(
            "присылай мою ссылку друзьям каждую неделю",
            Some(("weekly_share_on", None)),
            Some(&token),
            "ru-RU",
            false,
        )
    };

    // No contacts yet: says where to list them, and starts nothing.
    let out = v.alice(on()).await;
    assert!(text(&out).contains("Сначала укажите друзей"), "{out}");
    let held = json(v.app.get(&routine).await).await;
    assert_eq!(held["contacts"], json!([]), "{held}");

    let resp = v
        .app
        .request(reqwest::Method::PUT, &routine, &v.app.key)
        .json(&json!({"contacts": ["boris@example.com", "vera@example.com"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let out = v.alice(on()).await;
    assert!(text(&out).contains("2 контактам"), "{out}");
    assert_eq!(out["response"]["end_session"], true);

    // Stopping is one sentence, and the contacts are gone.
    let out = v
        .alice(request(
            "останови еженедельную рассылку",
            Some(("weekly_share_off", None)),
            Some(&token),
            "ru-RU",
            false,
        ))
        .await;
    assert!(text(&out).starts_with("Готово, больше не буду"), "{out}");
    let held = json(v.app.get(&routine).await).await;
    assert_eq!(held["contacts"], json!([]), "{held}");

    // Unlinked: asked to link, nothing changes.
    let out = v
        .alice(request(
            "останови еженедельную рассылку",
            Some(("weekly_share_off", None)),
            None,
            "ru-RU",
            false,
        ))
        .await;
    assert_starts_linking(&out);
}

/// Account linking as Yandex documents it: the directive under
/// `response.directives`; the `account_linking_complete_event` that comes
/// back in place of `request` greets the member; a long program name's
/// button title fits Alice's 64 characters.
async fn alice_account_linking_as_documented(db: Db) {
    let v = VoiceApp::spawn(db).await;
    // Unlinked share: the terms, the way to link, and the linking card.
    let out = v
        .alice(request(
            "поделись программой кофе хаус",
            Some(("share_program", Some("кофе хаус"))),
            None,
            "ru-RU",
            false,
        ))
        .await;
    assert_starts_linking(&out);
    assert!(text(&out).contains("Invite a friend"), "{out}");
    // A surface that cannot link is not asked to.
    let mut no_link = request("баланс", Some(("my_balance", None)), None, "ru-RU", false);
    no_link["meta"]["interfaces"] = json!({"screen": {}});
    let out = v.alice(no_link).await;
    assert!(out["response"].get("directives").is_none(), "{out}");
    assert_eq!(out["response"]["end_session"], true);

    // The user linked: Alice sends the event instead of a request.
    let token = v.link(v.app.program, Assistant::Alice, v.anna).await;
    let mut linked = request("", None, Some(&token), "ru-RU", false);
    linked.as_object_mut().unwrap().remove("request");
    linked["account_linking_complete_event"] = json!({});
    let out = v.alice(linked).await;
    assert!(
        text(&out)
            .starts_with("Здравствуйте! Я могу поделиться реферальной программой Coffee House"),
        "{out}"
    );
    assert_eq!(out["response"]["end_session"], false);

    // Neither a request nor the event: a problem naming the request.
    let mut neither = request("", None, None, "ru-RU", false);
    neither.as_object_mut().unwrap().remove("request");
    let resp = v
        .app
        .client
        .post(format!("{}/voice/alice", v.app.base))
        .json(&neither)
        .send()
        .await
        .unwrap();
    assert_eq!(
        problem(resp, 422, "invalid-field").await["field"],
        "request"
    );

    // A long name: the button title is cut to 64 characters, not bytes.
    let long = "Кофейня «Зёрна и обжарка» на Большой Никитской, дом двадцать два";
    v.app.patch("/api/v1/program", json!({"name": long})).await;
    let out = v
        .alice(request(
            "поделись",
            Some(("share_program", None)),
            Some(&token),
            "ru-RU",
            false,
        ))
        .await;
    let title = out["response"]["buttons"][0]["title"].as_str().unwrap();
    assert_eq!(title.chars().count(), 64, "{title}");
    assert!(
        title.starts_with("Ваша реферальная ссылка Кофейня"),
        "{title}"
    );
    assert!(title.ends_with('…'), "{title}");
}

/// "Which store?" is remembered in `session_state` and the answer, which
/// matches no intent, carries on with the question's intent.
async fn alice_remembers_which_store_was_asked(db: Db) {
    let v = VoiceApp::spawn(db).await;
    let second = v.app.new_tenant("Шоколадница").await;
    configure(&v.app, &second.admin_key, "alice", ALICE_SKILL).await;
    let out = v
        .alice(request(
            "расскажи условия",
            Some(("program_terms", None)),
            None,
            "ru-RU",
            false,
        ))
        .await;
    assert_eq!(text(&out), "Какой магазин вы имеете в виду?");
    assert_eq!(
        out["session_state"],
        json!({"sarafan_pending": "program_terms"})
    );

    // The answer is only a store name; Alice sends the state back.
    let mut answer = request("шоколадница", None, None, "ru-RU", false);
    answer["state"]["session"] = out["session_state"].clone();
    let out = v.alice(answer).await;
    assert_eq!(
        text(&out),
        "Шоколадница: Bring a friend, both get 300 points."
    );
    assert_eq!(out["session_state"], json!({}), "answered: forgotten");

    // Without the state the same words are not understood.
    let out = v
        .alice(request("шоколадница", None, None, "ru-RU", false))
        .await;
    assert!(text(&out).starts_with("Извините"), "{out}");
    assert_eq!(v.queued().await, 0);
}
