//! The way out: the outbox and its worker, signed webhooks, e-mail.

mod expiry;
mod ledger;
mod mail;
mod outbox;
mod share;
mod support;
mod templates;
mod timezone;
mod webhooks;
