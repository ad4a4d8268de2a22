//! The tables of a ledger in PostgreSQL, made in one transaction on first open, the functions a
//! writer calls (one round trip each), and the schema version a later build checks.
//!
//! A DBA can read every table: the log with its seq, time, kind and subject beside the sealed
//! bytes the chain hashes; token records with their operation, token and expiry; the tip row; one
//! table per view with typed columns named as in the API (generated from the row's record, so
//! they can never disagree with it) beside the canonical key and value the ledger reads.

use crate::views::ViewTree;

/// The schema version this build writes (it reads and migrates version 1: see `make_schema`).
/// Version 2 added the person keys table and the `commit_batch` that writes it.
pub const SCHEMA_VERSION: i32 = 2;

/// How a typed column is generated from a view row's `record` (JSON named as in the API).
#[derive(Clone, Copy)]
enum Column {
    /// Text: the record's field.
    Text(&'static str),
    /// A number: the record's field as bigint.
    Number(&'static str),
    /// A time: the record's field (milliseconds since the epoch) as timestamptz.
    Time(&'static str),
}

/// The typed columns of `view`'s table: (column name, how it is generated).
fn columns(view: ViewTree) -> &'static [(&'static str, Column)] {
    use Column::{Number, Text, Time};
    match view {
        ViewTree::Users => &[
            ("user_id", Text("userId")),
            ("status", Text("status")),
            ("email_address", Text("emailAddress")),
            ("type", Text("type")),
            ("first_name", Text("firstName")),
            ("last_name", Text("lastName")),
            ("api_access", Text("apiAccess")),
            ("api_access_principal_arn", Text("apiAccessPrincipalArn")),
            ("create_time", Time("createTime")),
            ("last_enabled_time", Time("lastEnabledTime")),
            ("last_disabled_time", Time("lastDisabledTime")),
            ("last_modified_time", Time("lastModifiedTime")),
            ("last_login_time", Time("lastLoginTime")),
        ],
        ViewTree::Emails => &[("email_key", Text("emailKey")), ("user_id", Text("userId"))],
        ViewTree::Counters => &[("name", Text("name")), ("count", Number("count"))],
        ViewTree::KxUsers => &[
            ("environment_id", Text("environmentId")),
            ("user_name", Text("userName")),
            ("iam_role", Text("iamRole")),
            ("create_time", Time("createTime")),
            ("update_time", Time("updateTime")),
        ],
        ViewTree::History => &[("subject", Text("subject")), ("seq", Number("seq"))],
        ViewTree::AccessKeys => &[
            ("access_key_id", Text("accessKeyId")),
            ("user_id", Text("userId")),
            ("create_time", Time("createTime")),
        ],
        ViewTree::Groups => &[
            ("permission_group_id", Text("permissionGroupId")),
            ("name", Text("name")),
            ("description", Text("description")),
            ("create_time", Time("createTime")),
            ("last_modified_time", Time("lastModifiedTime")),
        ],
        ViewTree::Memberships => &[
            ("permission_group_id", Text("permissionGroupId")),
            ("user_id", Text("userId")),
            ("indexed_by", Text("indexedBy")),
        ],
        ViewTree::Passwords => &[("user_id", Text("userId"))],
        ViewTree::PrincipalKeys => &[
            ("access_key_id", Text("accessKeyId")),
            ("principal_arn", Text("principalArn")),
            ("create_time", Time("createTime")),
        ],
        ViewTree::Merkle => &[
            ("tree_size", Number("treeSize")),
            ("level", Number("level")),
            ("node_index", Number("index")),
            ("hash", Text("hash")),
        ],
        ViewTree::TemporaryCredentials => &[
            ("access_key_id", Text("accessKeyId")),
            ("user_id", Text("userId")),
            ("principal_arn", Text("principalArn")),
            ("expires", Time("expiresMs")),
        ],
    }
}

/// The column definition of a typed column.
fn column_sql(name: &str, column: Column) -> String {
    let (sql_type, expression) = match column {
        Column::Text(field) => ("text", format!("record->>'{field}'")),
        Column::Number(field) => ("bigint", format!("(record->>'{field}')::bigint")),
        Column::Time(field) => {
            ("timestamptz", format!("to_timestamp((record->>'{field}')::bigint / 1000.0)"))
        }
    };
    format!("{name} {sql_type} GENERATED ALWAYS AS ({expression}) STORED")
}

/// The SQL that makes the table of signed checkpoints, if missing (a ledger made before they were
/// recorded gets it at its next writable open).
pub fn checkpoints_table(schema: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {schema}.checkpoints (size bigint PRIMARY KEY, record bytea NOT NULL);"
    )
}

/// The table of person keys, outside the chain (see [`crate::backend::Changeset::person_keys`]).
pub const PERSON_KEYS: &str = "person_keys";

/// The SQL that makes the table of person keys and (re)makes the functions that write it, if
/// missing (a ledger made before personal data was sealed gets them at its next migration).
pub fn person_keys_table(schema: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {schema}.{PERSON_KEYS} (key bytea PRIMARY KEY, value bytea NOT NULL, record jsonb);
         {}",
        functions(schema)
    )
}

/// The SQL that makes a new ledger's tables and functions in `schema`, which exists.
pub fn create(schema: &str) -> String {
    let mut sql = format!(
        "CREATE TABLE {schema}.schema_version (version integer NOT NULL);
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
         CREATE INDEX ON {schema}.sign_in_failures (email_key, at_ms);
         {checkpoints}
         CREATE TABLE {schema}.{PERSON_KEYS} (key bytea PRIMARY KEY, value bytea NOT NULL, record jsonb);",
        zeros = "00".repeat(32),
        checkpoints = checkpoints_table(schema),
    );
    for view in ViewTree::ALL {
        let typed: Vec<String> =
            columns(view).iter().map(|(name, column)| column_sql(name, *column)).collect();
        sql.push_str(&format!(
            "CREATE TABLE {schema}.{} (key bytea PRIMARY KEY, value bytea NOT NULL, record jsonb, {});",
            table(view),
            typed.join(", ")
        ));
    }
    sql.push_str(&functions(schema));
    sql
}

/// The functions a writer calls, each one round trip.
///
/// - `fetch_rows(tables, keys)`: the values of (table, key) pairs, by their place in the arrays
///   (`tokens` names the token records).
/// - `commit_batch(…)`: one batch's log rows, view and person-key rows (a NULL value deletes), token records
///   (a NULL record deletes) and tip, if the head is still the base; else nothing, and the head
///   that moved. It runs as one statement, so as one transaction.
fn functions(schema: &str) -> String {
    // Static statements per table (not EXECUTE), so that each session plans them once.
    let mut fetch = String::new();
    let mut write = String::new();
    let tables = ViewTree::ALL.iter().map(|view| (table(*view), "value")).chain([("tokens", "record")]);
    for (name, column) in tables {
        fetch.push_str(&format!(
            "IF '{name}' = ANY(tables) THEN
                 RETURN QUERY SELECT w.place::integer, t.{column}
                     FROM unnest(tables, keys) WITH ORDINALITY AS w(name, key, place)
                     JOIN {schema}.{name} t ON t.key = w.key WHERE w.name = '{name}';
             END IF;\n"
        ));
    }
    for name in ViewTree::ALL.iter().map(|view| table(*view)).chain([PERSON_KEYS]) {
        write.push_str(&format!(
            "IF '{name}' = ANY(tables) THEN
                 DELETE FROM {schema}.{name} WHERE key IN
                     (SELECT w.key FROM unnest(tables, keys, vals) AS w(name, key, value)
                      WHERE w.name = '{name}' AND w.value IS NULL);
                 INSERT INTO {schema}.{name} (key, value, record)
                     SELECT w.key, w.value, w.record FROM unnest(tables, keys, vals, records) AS w(name, key, value, record)
                     WHERE w.name = '{name}' AND w.value IS NOT NULL
                     ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, record = EXCLUDED.record;
             END IF;\n"
        ));
    }
    format!(
        "CREATE OR REPLACE FUNCTION {schema}.fetch_rows(tables text[], keys bytea[])
         RETURNS TABLE (place integer, value bytea) LANGUAGE plpgsql AS $$
         #variable_conflict use_column
         BEGIN
             {fetch}
         END $$;

         CREATE OR REPLACE FUNCTION {schema}.commit_batch(
             base_seq bigint, base_hash bytea,
             seqs bigint[], times bigint[], kinds text[], subjects text[], sealed bytea[],
             tables text[], keys bytea[], vals bytea[], records jsonb[],
             token_keys bytea[], operations text[], client_tokens text[], expiries bigint[],
             token_records bytea[],
             tip_seq bigint, tip_hash bytea, tip_time_ms bigint, tip_views_seq bigint, channel text)
         RETURNS TABLE (moved boolean, head_seq bigint, head_hash bytea, head_time_ms bigint)
         LANGUAGE plpgsql AS $$
         #variable_conflict use_column
         DECLARE cur record;
         BEGIN
             SELECT t.head_seq, t.head_hash, t.head_time_ms INTO cur FROM {schema}.tip t FOR UPDATE;
             IF cur.head_seq <> base_seq OR cur.head_hash <> base_hash THEN
                 RETURN QUERY SELECT true, cur.head_seq, cur.head_hash, cur.head_time_ms;
                 RETURN;
             END IF;
             INSERT INTO {schema}.log (seq, time_ms, kind, subject, sealed)
                 SELECT * FROM unnest(seqs, times, kinds, subjects, sealed);
             {write}
             IF EXISTS (SELECT FROM unnest(token_records) AS w(record) WHERE w.record IS NULL) THEN
                 DELETE FROM {schema}.tokens WHERE key IN
                     (SELECT w.key FROM unnest(token_keys, token_records) AS w(key, record) WHERE w.record IS NULL);
             END IF;
             INSERT INTO {schema}.tokens (key, operation, client_token, expires_ms, record)
                 SELECT * FROM unnest(token_keys, operations, client_tokens, expiries, token_records)
                     AS w(key, operation, client_token, expires_ms, record)
                 WHERE w.record IS NOT NULL
                 ON CONFLICT (key) DO UPDATE SET expires_ms = EXCLUDED.expires_ms, record = EXCLUDED.record;
             IF tip_seq IS NOT NULL THEN
                 UPDATE {schema}.tip SET head_seq = tip_seq, head_hash = tip_hash,
                     head_time_ms = tip_time_ms, views_seq = tip_views_seq;
                 PERFORM pg_notify(channel, tip_seq::text);
             END IF;
             RETURN QUERY SELECT false, cur.head_seq, cur.head_hash, cur.head_time_ms;
         END $$;"
    )
}

/// The table of `view`.
pub fn table(view: ViewTree) -> &'static str {
    view.name()
}
