//! JSON bound as text: SQLite's `TEXT`, PostgreSQL's `json`. sqlx's `Json`
//! binds as `jsonb` on PostgreSQL, which the server parses into its binary
//! form; the ledger's request and result columns are `json` (kept as sent,
//! parsed only to check them), so their hot insert skips that parse.

use serde_json::value::RawValue;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, Postgres};
use sqlx::sqlite::{Sqlite, SqliteArgumentValue, SqliteTypeInfo};
use sqlx::{Encode, Type};

/// A serialised JSON value to bind into a `json` (PostgreSQL) or `TEXT`
/// (SQLite) column.
#[derive(Clone, Copy)]
pub(crate) struct JsonText<'a>(pub &'a RawValue);

impl Type<Postgres> for JsonText<'_> {
    fn type_info() -> PgTypeInfo {
        // `json`'s fixed oid.
        PgTypeInfo::with_oid(sqlx::postgres::types::Oid(114))
    }
}

impl Encode<'_, Postgres> for JsonText<'_> {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        // `json`'s binary form is its text.
        buf.extend_from_slice(self.0.get().as_bytes());
        Ok(IsNull::No)
    }
}

impl Type<Sqlite> for JsonText<'_> {
    fn type_info() -> SqliteTypeInfo {
        <str as Type<Sqlite>>::type_info()
    }
}

impl<'q> Encode<'q, Sqlite> for JsonText<'q> {
    fn encode_by_ref(&self, buf: &mut Vec<SqliteArgumentValue<'q>>) -> Result<IsNull, BoxDynError> {
        <&str as Encode<'q, Sqlite>>::encode(self.0.get(), buf)
    }
}
