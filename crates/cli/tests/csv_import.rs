//! `sarafan import` and `sarafan export` through the real binary, on SQLite
//! and on PostgreSQL (a fresh schema per test).

mod common;

use common::{run, text, Db};
use std::path::Path;

fn program(db: &Db) -> String {
    common::program(db).0
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p.display().to_string()
}

fn export_members(db: &Db, program: &str) -> Vec<String> {
    let o = run(db, &["export", "members", "--program", program]);
    assert!(o.status.success(), "{}", text(&o).1);
    text(&o).0.lines().skip(1).map(str::to_owned).collect()
}

fn bad_rows_are_reported_and_nothing_imported(db: Db) {
    let p = program(&db);
    let dir = tempfile::tempdir().unwrap();
    let csv = "external_id,email,phone,name,consent_email\n\
               C1,anna@example.com,+79161234567,Анна,yes\n\
               C2,not-an-email,,Boris,no\n\
               ,c@example.com,,Carl,no\n\
               C4,dora@example.com,,Dora,maybe\n\
               C5,anna@example.com,,Eve,no\n\
               C6,\"f@example.com\",,\"Fox, Jr\",no,extra\n";
    let file = write(dir.path(), "bad.csv", csv.as_bytes());
    for dry in [true, false] {
        let mut args = vec!["import", "members", "--program", &p, file.as_str()];
        if dry {
            args.push("--dry-run");
        }
        let o = run(&db, &args);
        let (_, err) = text(&o);
        assert!(!o.status.success());
        for expected in [
            "line 3: email:",
            "line 4: external_id: is empty",
            "line 5: consent_email: \"maybe\"",
            "line 6: a member with these identifiers exists",
            "line 7: malformed CSV: 6 fields where the header has 5",
            "nothing was imported",
        ] {
            assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
        }
        assert!(!err.contains("line 2:"), "{err}");
        assert!(export_members(&db, &p).is_empty(), "nothing half-imported");
    }
    // Opening balances must be whole, non-negative numbers.
    let file = write(
        dir.path(),
        "points.csv",
        b"external_id,points\nC1,-5\nC2,ten\nC3,7\n",
    );
    let o = run(
        &db,
        &["import", "members", "--program", &p, &file, "--dry-run"],
    );
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(
        err.contains("line 2: points: \"-5\"") && err.contains("line 3: points: \"ten\""),
        "{err}"
    );
    // Unknown columns are named.
    let file = write(
        dir.path(),
        "cols.csv",
        b"external_id,emial\nC1,a@example.com\n",
    );
    let o = run(&db, &["import", "members", "--program", &p, &file]);
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(err.contains("unknown column(s) \"emial\""), "{err}");
}

fn import_is_idempotent_and_reads_bom_and_1251(db: Db) {
    let p = program(&db);
    let dir = tempfile::tempdir().unwrap();
    let rows = "external_id,email,name,locale,consent_email,points\nC1,anna@example.com,Анна,ru,true,500\nC2,,Борис,ru,false,\n";
    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend_from_slice(rows.as_bytes());
    let file = write(dir.path(), "bom.csv", &bom);
    let o = run(
        &db,
        &["import", "members", "--program", &p, &file, "--dry-run"],
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("UTF-8 with BOM"), "{err}");
    assert!(out.contains("2 member(s) would be created"), "{out}");
    assert!(
        export_members(&db, &p).is_empty(),
        "a dry run imports nothing"
    );

    let o = run(&db, &["import", "members", "--program", &p, &file]);
    assert!(o.status.success(), "{}", text(&o).1);
    assert!(text(&o).0.contains("imported 2 member(s)"));
    // Again, and as Windows-1251 with one more customer: only the new one is added.
    let more = format!("{rows}C3,vera@example.com,Вера,ru,true,0\n");
    let (cp1251, _, _) = encoding_rs::WINDOWS_1251.encode(&more);
    let file = write(dir.path(), "1251.csv", &cp1251);
    let o = run(&db, &["import", "members", "--program", &p, &file]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("Windows-1251"), "{err}");
    assert!(
        out.contains("imported 1 member(s); 2 were there already"),
        "{out}"
    );
    let members = export_members(&db, &p);
    assert_eq!(members.len(), 3);
    assert!(
        members
            .iter()
            .any(|m| m.contains("C3,vera@example.com,,Вера,ru,active,true")),
        "{members:?}"
    );
    assert!(
        members
            .iter()
            .any(|m| m.contains("C1,anna@example.com,,Анна,ru,active,true")),
        "{members:?}"
    );

    // The opening balance was booked once, with its reason.
    let o = run(&db, &["export", "statement", "--program", &p]);
    let (out, _) = text(&o);
    let postings: Vec<_> = out
        .lines()
        .filter(|l| l.contains("opening balance (imported)"))
        .collect();
    assert_eq!(postings.len(), 1, "{out}");
    assert!(
        postings[0].contains(",C1,") && postings[0].contains(",opening:C1,points,500,"),
        "{out}"
    );
    // A balance carried over is not news: C1 takes e-mail, yet nothing was
    // queued to mail or to webhooks.
    let counts = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let program = sarafan_core::ids::ProgramId(p.parse().unwrap());
        db.store().await.bench_ledger_counts(program).await.unwrap()
    });
    assert!(counts.contains(&("outbox", 0)), "{counts:?}");

    // Bytes that are neither UTF-8 nor Cyrillic letters: a clear error naming the fix.
    let file = write(
        dir.path(),
        "binary.csv",
        b"external_id,name\nC9,\x80\x81\x82\x83\n",
    );
    let o = run(&db, &["import", "members", "--program", &p, &file]);
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(
        err.contains("line 2 is not UTF-8") && err.contains("--encoding windows-1251"),
        "{err}"
    );
}

/// The check reads only, so a customer repeated far apart in the file (in
/// different chunks) is found by the identifiers it remembers: an identical
/// repeat is one customer, a changed one is refused naming both lines.
fn repeats_across_chunks_are_found(db: Db) {
    let p = program(&db);
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("external_id,email,name\n");
    for i in 1..=6000 {
        csv.push_str(&format!("C{i},c{i}@example.com,N{i}\n"));
    }
    let good = format!("{csv}C1,c1@example.com,N1\n");
    let bad = format!("{good}C7000,c2@example.com,Other\nC3,,N3 changed\n");
    let bad = write(dir.path(), "bad.csv", bad.as_bytes());
    let o = run(&db, &["import", "members", "--program", &p, &bad]);
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(
        err.contains(
            "line 6003: a member with these identifiers exists earlier in the file (line 3)"
        ) && err.contains(
            "line 6004: a member with these identifiers exists earlier in the file (line 4)"
        ) && err.contains("2 bad row(s)"),
        "{err}"
    );
    assert!(export_members(&db, &p).is_empty(), "nothing half-imported");
    let good = write(dir.path(), "good.csv", good.as_bytes());
    let o = run(
        &db,
        &["import", "members", "--program", &p, &good, "--dry-run"],
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        out.contains("6000 member(s) would be created, 1 are there already"),
        "{out}"
    );
    let o = run(&db, &["import", "members", "--program", &p, &good]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        out.contains("imported 6000 member(s); 1 were there already"),
        "{out}"
    );
    let o = run(&db, &["import", "members", "--program", &p, &good]);
    assert!(text(&o)
        .0
        .contains("imported 0 member(s); 6001 were there already"));
    assert_eq!(export_members(&db, &p).len(), 6000);
}

fn purchases_book_once(db: Db) {
    let p = program(&db);
    let dir = tempfile::tempdir().unwrap();
    let members = write(dir.path(), "m.csv", b"external_id\nC1\nC2\n");
    assert!(run(&db, &["import", "members", "--program", &p, &members])
        .status
        .success());
    let bad = write(
        dir.path(),
        "bad.csv",
        b"order_id,external_id,amount,currency\nO1,C1,45000,RUB\nO2,C2,lots,RUB\nO3,,100,RUB\n",
    );
    let o = run(
        &db,
        &["import", "purchases", "--program", &p, &bad, "--dry-run"],
    );
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(
        err.contains("line 3: amount: \"lots\"") && err.contains("line 4: external_id"),
        "{err}"
    );
    let good = write(
        dir.path(),
        "good.csv",
        b"order_id,external_id,amount,currency,occurred_at\nO1,C1,45000,RUB,2026-01-02T10:00:00Z\nO2,C2,1000,RUB,\n",
    );
    let o = run(&db, &["import", "purchases", "--program", &p, &good]);
    assert!(o.status.success(), "{}", text(&o).1);
    assert!(text(&o)
        .0
        .contains("booked 2 purchase(s); 0 were booked before"));
    let o = run(&db, &["import", "purchases", "--program", &p, &good]);
    assert!(
        text(&o)
            .0
            .contains("booked 0 purchase(s); 2 were booked before"),
        "{}",
        text(&o).0
    );
    let o = run(&db, &["export", "statement", "--program", &p]);
    assert!(o.status.success(), "{}", text(&o).1);
    assert!(text(&o).0.starts_with(
        "member_id,external_id,transfer_id,seq,kind,event_id,asset,amount,reason,created_at"
    ));
}

/// Referrals made the way the server makes them (attribution, then the
/// friend's booked purchase moving the referral on) come out one row each,
/// with both members' store ids and each side's points.
fn referrals_export(db: Db) {
    use sarafan_core::ids::{MemberId, ProgramId};
    use sarafan_store::referrals::{FriendActivity, Touch};
    let p = program(&db);
    let dir = tempfile::tempdir().unwrap();
    let members = write(dir.path(), "m.csv", b"external_id\nINV\nF1\nF2\n");
    assert!(run(&db, &["import", "members", "--program", &p, &members])
        .status
        .success());
    let purchases = write(
        dir.path(),
        "p.csv",
        b"order_id,external_id,amount,currency\nO1,F1,60000,RUB\n",
    );
    let id_of = |ext: &str| {
        export_members(&db, &p)
            .iter()
            .find(|l| l.split(',').nth(1) == Some(ext))
            .map(|l| MemberId(l.split(',').next().unwrap().parse().unwrap()))
            .unwrap()
    };
    let (inviter, f1, f2) = (id_of("INV"), id_of("F1"), id_of("F2"));
    let program_id = ProgramId(p.parse().unwrap());
    let code = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = db.store().await;
        let rules = serde_json::from_value(serde_json::json!({
            "version": 0, "effective_from": "2026-01-01T00:00:00Z",
            "qualifying": {"action": "purchase_at_least", "min_amount": 50000},
            "hold_days": 14,
            "tiers": [{"referrer": [{"kind": "points", "amount": 300}], "friend": {"kind": "points", "amount": 150}}]
        }))
        .unwrap();
        store.add_referral_rules(program_id, &rules).await.unwrap();
        let now = sarafan_store::now();
        // The inviter's code, as their link carries it.
        let code = store
            .referral_code_for(program_id, inviter)
            .await
            .unwrap()
            .unwrap()
            .code
            .to_string();
        for (friend, code, channel) in [(f1, Some(code.clone()), "link"), (f2, None, "email")] {
            let touch = Touch {
                friend,
                referrer: inviter,
                code,
                channel: channel.into(),
                touched_at: now,
                payment: None,
                device: None,
                ip: None,
            };
            store.attribute(program_id, &touch, now).await.unwrap();
        }
        store.close().await;
        code
    });
    // F1's purchase is booked by the CLI; the server's step after booking
    // moves F1's referral on.
    assert!(
        run(&db, &["import", "purchases", "--program", &p, &purchases])
            .status
            .success()
    );
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = db.store().await;
        let ctx = store.ledger_context(program_id).await.unwrap().unwrap();
        store
            .referral_activity(&ctx, &[FriendActivity::Acted(f1)])
            .await
            .unwrap();
        store.close().await;
    });

    let out_file = dir.path().join("referrals.csv");
    let o = run(
        &db,
        &[
            "export",
            "referrals",
            "--program",
            &p,
            "--output",
            out_file.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o).1);
    let mut reader = csv::Reader::from_path(&out_file).unwrap();
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let rows: Vec<std::collections::HashMap<String, String>> = reader
        .records()
        .map(|r| {
            header
                .iter()
                .cloned()
                .zip(r.unwrap().iter().map(str::to_owned))
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let row = |friend: &str| {
        rows.iter()
            .find(|r| r["friend_external_id"] == friend)
            .unwrap()
    };
    let (r1, r2) = (row("F1"), row("F2"));
    for r in [r1, r2] {
        assert_eq!(r["inviter_external_id"], "INV");
        assert_eq!(r["inviter_member_id"], inviter.to_string());
        assert!(!r["signed_up_at"].is_empty());
    }
    assert_eq!(r1["friend_member_id"], f1.to_string());
    assert_eq!(
        (
            r1["code"].as_str(),
            r1["channel"].as_str(),
            r1["status"].as_str()
        ),
        (code.as_str(), "link", "rewarded")
    );
    assert!(
        !r1["qualified_at"].is_empty() && !r1["rewarded_at"].is_empty(),
        "{r1:?}"
    );
    assert_eq!(
        (r1["inviter_points"].as_str(), r1["friend_points"].as_str()),
        ("300", "150")
    );
    assert_eq!(
        (
            r2["code"].as_str(),
            r2["channel"].as_str(),
            r2["status"].as_str()
        ),
        ("", "email", "signed_up")
    );
    assert!(
        r2["qualified_at"].is_empty() && r2["rejected_at"].is_empty(),
        "{r2:?}"
    );
    assert_eq!(
        (r2["inviter_points"].as_str(), r2["friend_points"].as_str()),
        ("0", "0")
    );

    // An unknown program is named by its flag, and nothing is written.
    let missing = uuid::Uuid::now_v7().to_string();
    let o = run(
        &db,
        &[
            "export",
            "referrals",
            "--program",
            &missing,
            "--output",
            out_file.to_str().unwrap(),
        ],
    );
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(
        err.contains("--program: no program") && err.contains("sarafan program list"),
        "{err}"
    );
    let o = run(&db, &["export", "referrals", "--program", "shop-1"]);
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(err.contains("--program"), "{err}");
}

on_both!(
    bad_rows_are_reported_and_nothing_imported,
    import_is_idempotent_and_reads_bom_and_1251,
    repeats_across_chunks_are_found,
    purchases_book_once,
    referrals_export
);
