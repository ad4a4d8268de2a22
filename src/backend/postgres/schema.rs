//! The tables of a ledger in PostgreSQL, made in one transaction on first open, and the schema
//! version a later build checks.
//!
//! A DBA can read every table: the log with its seq, time, kind and subject beside the sealed
//! bytes the chain hashes; token records with their operation, token and expiry; the tip row; one
//! table per view with its canonical key and value and the record as JSON named as in the API.

use crate::views::ViewTree;

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: i32 = 1;

/// The SQL that makes a new ledger's tables in `schema`.
pub fn create(schema: &str) -> String {
    let mut sql = format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         CREATE TABLE {schema}.schema_version (version integer NOT NULL);
         INSERT INTO {schema}.schema_version VALUES ({SCHEMA_VERSION});
         CREATE TABLE {schema}.meta (name text PRIMARY KEY, value bytea NOT NULL);
         CREATE TABLE {schema}.tip (
             only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
             head_seq bigint NOT NULL, head_hash bytea NOT NULL, head_time_ms bigint NOT NULL,
             views_seq bigint NOT NULL);
         INSERT INTO {schema}.tip VALUES (true, 0, '\\x{zeros}', 0, 0);
         CREATE TABLE {schema}.log (
             seq bigint PRIMARY KEY, time_ms bigint NOT NULL, kind text NOT NULL,
             subject text NOT NULL, sealed bytea NOT NULL);
         CREATE TABLE {schema}.tokens (
             key bytea PRIMARY KEY, operation text NOT NULL, client_token text NOT NULL,
             expires_ms bigint NOT NULL, record bytea NOT NULL);
         CREATE INDEX ON {schema}.tokens (expires_ms);
         CREATE TABLE {schema}.sign_in_failures (email_key text NOT NULL, at_ms bigint NOT NULL);
         CREATE INDEX ON {schema}.sign_in_failures (email_key, at_ms);",
        zeros = "00".repeat(32)
    );
    for view in ViewTree::ALL {
        sql.push_str(&format!(
            "CREATE TABLE {schema}.{} (key bytea PRIMARY KEY, value bytea NOT NULL, record jsonb);",
            table(view)
        ));
    }
    sql
}

/// The table of `view`.
pub fn table(view: ViewTree) -> &'static str {
    view.name()
}
