//! `sarafan demo`: a seeded demo store on a local SQLite file.

use crate::config::{self, ServeArgs};
use anyhow::Result;
use sarafan_core::apikey::Scope;
use sarafan_core::ledger::rules::{EarnRules, Multiplier, Rate, Rounding};
use sarafan_core::member::{Consent, Email, MemberFields, NewMember};
use sarafan_core::program::{Currency, Locale, ProgramName, ProgramSettings};
use sarafan_core::staff::hash_password;
use sarafan_store::{NewProgram, Store};
use time::macros::datetime;

const DEMO_DB: &str = "sqlite://sarafan-demo.db";
const DEMO_PROGRAM: &str = "Sarafan Coffee (demo)";
/// The demo's console owner; a fresh password each start.
const DEMO_OWNER: &str = "owner@example.com";

const DEMO_MEMBERS: &[(&str, &str, &str, &str, &str)] = &[
    (
        "CRM-1001",
        "anna.ivanova@example.com",
        "+79161234501",
        "Анна Иванова",
        "ru",
    ),
    (
        "CRM-1002",
        "boris.petrov@example.com",
        "+79161234502",
        "Борис Петров",
        "ru",
    ),
    (
        "CRM-1003",
        "dariush.rahimi@example.com",
        "+989121234503",
        "داریوش رحیمی",
        "fa",
    ),
    (
        "CRM-1004",
        "elena.smirnova@example.com",
        "+79161234504",
        "Елена Смирнова",
        "ru",
    ),
    (
        "CRM-1005",
        "frank.miller@example.com",
        "+447700900505",
        "Frank Miller",
        "en",
    ),
];

pub async fn run(args: ServeArgs) -> Result<()> {
    let settings = args.resolve(Some(DEMO_DB))?;
    config::init_logging(&settings);
    let store = settings.open_store().await?;
    let program = match store
        .programs()
        .await?
        .into_iter()
        .find(|p| p.name == DEMO_PROGRAM)
    {
        Some(p) => p,
        None => seed(&store).await?,
    };
    let (_, token) = store
        .issue_api_key(program.id, "demo", Scope::Admin)
        .await?;
    let password = console_owner(&store, &program).await?;
    let url = &settings.public_url;
    let banner = format!(
        "\nSarafan demo store \"{name}\" ({currency}) is running on {db}\n\n  \
         API docs:      {url}/docs\n  \
         OpenAPI:       {url}/api/v1/openapi.json\n  \
         Health:        {url}/healthz   Metrics: {url}/metrics\n  \
         Member portal: {url}/m/{program_id}   (sign in as anna.ivanova@example.com; the code is in this log)\n\n  \
         Admin API key: {token}\n  \
         Console: {url}/console  login: {DEMO_OWNER}  password: {password}\n\n  \
         Try:  curl -H 'Authorization: Bearer {token}' {url}/api/v1/members\n\n\
         Press Ctrl-C to stop.",
        name = program.name,
        program_id = program.id,
        currency = program.currency,
        db = settings.redacted_url(),
    );
    config::serve(store, settings, Some(banner)).await
}

/// The demo owner's console password: the account is created on the
/// first start and gets a fresh password on every start (like the API key).
async fn console_owner(store: &Store, program: &sarafan_store::Program) -> Result<String> {
    let password = crate::staff::generate_password();
    let email = Email::parse(DEMO_OWNER)?;
    let exists = store.staff_credentials(program.id, &email).await?.is_some();
    if exists {
        let hash = {
            let p = password.clone();
            tokio::task::spawn_blocking(move || hash_password(&p, rand::random())).await?
        };
        store.set_staff_password(program.id, &email, &hash).await?;
    } else {
        crate::staff::create(
            store,
            program,
            DEMO_OWNER,
            "owner",
            Some(password.clone()),
            Some("Demo owner"),
        )
        .await?;
    }
    Ok(password)
}

async fn seed(store: &Store) -> Result<sarafan_store::Program> {
    let retailer = store.create_retailer("Sarafan demo retail").await?;
    let program = store
        .create_program(
            retailer,
            &NewProgram {
                name: ProgramName::parse(DEMO_PROGRAM)?,
                currency: Currency::parse("RUB")?,
                locale: Locale::parse("locale", "ru")?,
                terms: "Every purchase earns 5 points per 100 ₽, coffee beans 10; points last a year. \
                        Invite a friend with your link: when they make their first purchase of 500 ₽ or more, \
                        you both get 300 points. 1 point = 1 ₽ off your next order."
                    .into(),
                settings: ProgramSettings {
                    points_expire_after_days: Some(365),
                    ..ProgramSettings::default()
                },
            },
        )
        .await?;
    for &(external_id, email, phone, name, locale) in DEMO_MEMBERS {
        let member = NewMember::parse(MemberFields {
            external_id: Some(external_id),
            email: Some(email),
            phone: Some(phone),
            name: Some(name),
            locale: Some(locale),
            consent: Consent {
                email: true,
                sms: false,
                messengers: true,
            },
        })?;
        store.register_member(program.id, &member).await?;
    }
    // The earn rules the terms above promise, so a purchase sent to the
    // demo earns points with their reasons.
    store
        .add_earn_rules(
            program.id,
            &EarnRules {
                version: 1,
                effective_from: datetime!(2026-01-01 00:00 UTC),
                base_rate: Rate {
                    points: 5,
                    per_minor: 10_000,
                },
                rounding: Rounding::Floor,
                category_multipliers: vec![Multiplier {
                    key: "coffee".into(),
                    basis_points: 20_000,
                }],
                sku_multipliers: vec![],
                min_order: 0,
                cap_per_order: None,
                cap_per_day: None,
                promotions: vec![],
                condition: None,
            },
        )
        .await?;
    // The referral rules the terms above promise.
    let referral: sarafan_core::referral::ReferralRules = serde_json::from_value(
        serde_json::json!({
            "version": 0, "effective_from": "2026-01-01T00:00:00Z",
            "qualifying": {"action": "purchase_at_least", "min_amount": 50000},
            "hold_days": 14,
            "tiers": [{"referrer": [{"kind": "points", "amount": 300}], "friend": {"kind": "points", "amount": 300}}]
        }),
    )?;
    referral.validate()?;
    store.add_referral_rules(program.id, &referral).await?;
    Ok(program)
}
