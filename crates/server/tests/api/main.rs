//! HTTP integration tests: every test runs on SQLite and on PostgreSQL.

mod helpers;

mod adjustments;
mod auth;
mod browser;
mod events;
mod idempotency;
mod links;
mod members;
mod messaging;
mod pages;
mod platform;
mod portal;
mod program;
mod redemptions;
mod redirect;
mod referral_fraud;
mod referrals;
mod voice;
