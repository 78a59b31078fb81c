//! What the CLI's tests share: a database per test (a temporary SQLite
//! file, or a fresh PostgreSQL schema) and running the real binary on it.

#![allow(dead_code)] // each test file uses its own part

use std::process::{Command, Output};

pub struct Db {
    pub args: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Db {
    /// The same database opened in the test, for what the CLI cannot do.
    pub async fn store(&self) -> sarafan_store::Store {
        let mut opts = sarafan_store::ConnectOptions::new(self.flag("--database-url").unwrap());
        opts.pg_schema = self.flag("--pg-schema");
        sarafan_store::Store::open(&opts).await.unwrap()
    }

    fn flag(&self, name: &str) -> Option<String> {
        self.args
            .iter()
            .position(|a| a == name)
            .map(|i| self.args[i + 1].clone())
    }
}

pub fn sqlite() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    Db {
        args: vec!["--database-url".into(), url],
        _dir: dir,
    }
}

pub fn postgres() -> Db {
    let url = std::env::var("SARAFAN_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/sarafan_test".into());
    Db {
        args: vec![
            "--database-url".into(),
            url,
            "--pg-schema".into(),
            format!("t_{}", uuid::Uuid::now_v7().simple()),
        ],
        _dir: tempfile::tempdir().unwrap(),
    }
}

pub fn run(db: &Db, args: &[&str]) -> Output {
    // The database flags belong to the last subcommand.
    Command::new(env!("CARGO_BIN_EXE_sarafan"))
        .args(args)
        .args(&db.args)
        .output()
        .unwrap()
}

pub fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Creates a program; returns its id and its admin key.
pub fn program(db: &Db) -> (String, String) {
    let o = run(
        db,
        &["program", "create", "--name", "Shop", "--currency", "RUB"],
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let id = out.split_whitespace().nth(1).unwrap().to_owned();
    let key = out
        .split_whitespace()
        .find(|w| w.starts_with("sar_"))
        .unwrap()
        .to_owned();
    (id, key)
}

/// Runs each named `fn name(db: Db)` once per backend.
#[macro_export]
macro_rules! on_both {
    ($($name:ident),*) => {$(
        mod $name {
            #[test]
            fn sqlite() { super::$name($crate::common::sqlite()) }
            #[test]
            fn postgres() { super::$name($crate::common::postgres()) }
        }
    )*};
}
