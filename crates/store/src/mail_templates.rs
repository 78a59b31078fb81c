//! A program's own wording of its automated e-mails, per message name and
//! language. The server checks a template before it is stored; here it is
//! text.

use crate::{now, with_db, Result, Store};
use sarafan_core::ids::ProgramId;
use time::OffsetDateTime;

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct MailTemplate {
    /// The message: `welcome`, `reward_earned`, …
    pub name: String,
    /// The language: `en`, `ru`, `fa`.
    pub locale: String,
    /// The subject line's template; `None` keeps the built-in subject.
    pub subject: Option<String>,
    /// The text's template, paragraphs separated by blank lines.
    pub body: String,
    pub updated_at: OffsetDateTime,
}

const COLUMNS: &str = "name, locale, subject, body, updated_at";

impl Store {
    pub async fn mail_template(
        &self,
        program: ProgramId,
        name: &str,
        locale: &str,
    ) -> Result<Option<MailTemplate>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM mail_templates WHERE program_id = $1 AND name = $2 AND locale = $3"
        );
        Ok(with_db!(self, read, |pool| {
            sqlx::query_as(&sql)
                .bind(program.0)
                .bind(name)
                .bind(locale)
                .fetch_optional(pool)
                .await?
        }))
    }

    pub async fn mail_templates(&self, program: ProgramId) -> Result<Vec<MailTemplate>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM mail_templates WHERE program_id = $1 ORDER BY name, locale"
        );
        Ok(with_db!(self, read, |pool| {
            sqlx::query_as(&sql).bind(program.0).fetch_all(pool).await?
        }))
    }

    /// Creates or replaces a template. Storing the same text again changes
    /// nothing, `updated_at` included, so a repeated PUT answers the same.
    pub async fn put_mail_template(
        &self,
        program: ProgramId,
        name: &str,
        locale: &str,
        subject: Option<&str>,
        body: &str,
    ) -> Result<MailTemplate> {
        let upsert = format!(
            "INSERT INTO mail_templates (program_id, {COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (program_id, name, locale) DO UPDATE SET subject = excluded.subject, \
               body = excluded.body, updated_at = excluded.updated_at \
             WHERE mail_templates.subject IS DISTINCT FROM excluded.subject \
               OR mail_templates.body <> excluded.body"
        );
        let select = format!(
            "SELECT {COLUMNS} FROM mail_templates WHERE program_id = $1 AND name = $2 AND locale = $3"
        );
        Ok(with_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(&upsert)
                .bind(program.0)
                .bind(name)
                .bind(locale)
                .bind(subject)
                .bind(body)
                .bind(now())
                .execute(&mut *tx)
                .await?;
            let row: MailTemplate = sqlx::query_as(&select)
                .bind(program.0)
                .bind(name)
                .bind(locale)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            row
        }))
    }

    /// Deletes a template (the built-in one is sent again); whether there
    /// was one.
    pub async fn delete_mail_template(
        &self,
        program: ProgramId,
        name: &str,
        locale: &str,
    ) -> Result<bool> {
        let deleted = with_db!(self, write, |pool| {
            sqlx::query(
                "DELETE FROM mail_templates WHERE program_id = $1 AND name = $2 AND locale = $3",
            )
            .bind(program.0)
            .bind(name)
            .bind(locale)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(deleted == 1)
    }
}
