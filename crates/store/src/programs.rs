//! Retailers and their programs (the tenants).

use crate::{now, with_db, Result, Store, StoreError};
use sarafan_core::ids::{ProgramId, RetailerId};
use sarafan_core::program::{terms_in, Currency, Locale, ProgramName, ProgramSettings};
use sqlx::types::Json;
use std::collections::BTreeMap;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq)]
pub struct Program {
    pub id: ProgramId,
    pub retailer_id: RetailerId,
    pub name: String,
    pub currency: Currency,
    pub locale: Locale,
    pub terms: String,
    /// Terms per language, beside the default `terms`.
    pub terms_by_locale: BTreeMap<String, String>,
    pub settings: ProgramSettings,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl Program {
    /// The terms to show in `lang` (a language code).
    pub fn terms_in(&self, lang: &str) -> &str {
        terms_in(&self.terms, &self.terms_by_locale, lang)
    }
}

#[derive(sqlx::FromRow)]
struct ProgramRow {
    program_id: Uuid,
    retailer_id: Uuid,
    name: String,
    currency: String,
    locale: String,
    terms: String,
    terms_by_locale: Json<BTreeMap<String, String>>,
    settings: Json<ProgramSettings>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl TryFrom<ProgramRow> for Program {
    type Error = StoreError;
    fn try_from(r: ProgramRow) -> Result<Self> {
        let corrupt = |e: sarafan_core::FieldError| {
            StoreError::Corrupt(format!("program {}: {e}", r.program_id))
        };
        Ok(Self {
            id: ProgramId(r.program_id),
            retailer_id: RetailerId(r.retailer_id),
            currency: Currency::parse(&r.currency).map_err(corrupt)?,
            locale: Locale::parse("locale", &r.locale).map_err(corrupt)?,
            name: r.name,
            terms: r.terms,
            terms_by_locale: r.terms_by_locale.0,
            settings: r.settings.0,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// A program to create, already parsed.
#[derive(Debug, Clone)]
pub struct NewProgram {
    pub name: ProgramName,
    pub currency: Currency,
    pub locale: Locale,
    pub terms: String,
    pub settings: ProgramSettings,
}

/// Fields to change on a program; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ProgramPatch {
    pub name: Option<ProgramName>,
    pub locale: Option<Locale>,
    pub terms: Option<String>,
    /// Replaces the whole map.
    pub terms_by_locale: Option<BTreeMap<String, String>>,
    pub settings: Option<ProgramSettings>,
}

/// The columns a program is created with; reads add [`READ`].
const COLUMNS: &str =
    "program_id, retailer_id, name, currency, locale, terms, settings, created_at, updated_at";
const READ: &str = ", terms_by_locale";

impl Store {
    pub async fn create_retailer(&self, name: &str) -> Result<RetailerId> {
        let id = RetailerId::generate();
        with_db!(self, write, |pool| {
            sqlx::query(
                "INSERT INTO retailers (retailer_id, name, created_at) VALUES ($1, $2, $3)",
            )
            .bind(id.0)
            .bind(name)
            .bind(now())
            .execute(pool)
            .await?;
        });
        Ok(id)
    }

    pub async fn create_program(&self, retailer: RetailerId, p: &NewProgram) -> Result<Program> {
        let id = ProgramId::generate();
        let at = now();
        let sql = format!(
            "INSERT INTO programs ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING {COLUMNS}{READ}"
        );
        let row: ProgramRow = with_db!(self, write, |pool| {
            sqlx::query_as(&sql)
                .bind(id.0)
                .bind(retailer.0)
                .bind(p.name.as_str())
                .bind(p.currency.code())
                .bind(p.locale.as_str())
                .bind(&p.terms)
                .bind(Json(&p.settings))
                .bind(at)
                .fetch_one(pool)
                .await?
        });
        row.try_into()
    }

    pub async fn program(&self, id: ProgramId) -> Result<Option<Program>> {
        let sql = format!("SELECT {COLUMNS}{READ} FROM programs WHERE program_id = $1");
        let row: Option<ProgramRow> = with_db!(self, read, |pool| {
            sqlx::query_as(&sql).bind(id.0).fetch_optional(pool).await?
        });
        row.map(Program::try_from).transpose()
    }

    /// Every program, oldest first (for the operator's CLI, not the API).
    pub async fn programs(&self) -> Result<Vec<Program>> {
        let sql = format!("SELECT {COLUMNS}{READ} FROM programs ORDER BY program_id");
        let rows: Vec<ProgramRow> = with_db!(self, read, |pool| {
            sqlx::query_as(&sql).fetch_all(pool).await?
        });
        rows.into_iter().map(Program::try_from).collect()
    }

    pub async fn update_program(
        &self,
        id: ProgramId,
        patch: &ProgramPatch,
    ) -> Result<Option<Program>> {
        let sql = format!(
            "UPDATE programs SET \
               name = COALESCE($2, name), locale = COALESCE($3, locale), \
               terms = COALESCE($4, terms), \
               settings = CASE WHEN $5 THEN $6 ELSE settings END, updated_at = $7, \
               terms_by_locale = CASE WHEN $8 THEN $9 ELSE terms_by_locale END \
             WHERE program_id = $1 RETURNING {COLUMNS}{READ}"
        );
        let settings = Json(patch.settings.clone().unwrap_or_default());
        let terms_by_locale = Json(patch.terms_by_locale.clone().unwrap_or_default());
        let row: Option<ProgramRow> = with_db!(self, write, |pool| {
            sqlx::query_as(&sql)
                .bind(id.0)
                .bind(patch.name.as_ref().map(ProgramName::as_str))
                .bind(patch.locale.as_ref().map(Locale::as_str))
                .bind(patch.terms.as_deref())
                .bind(patch.settings.is_some())
                .bind(&settings)
                .bind(now())
                .bind(patch.terms_by_locale.is_some())
                .bind(&terms_by_locale)
                .fetch_optional(pool)
                .await?
        });
        row.map(Program::try_from).transpose()
    }
}
