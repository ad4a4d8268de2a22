//! The ledger on PostgreSQL against the baselines a user would otherwise write, in one run on
//! one throwaway server (`cargo bench --bench postgres`; a report, not a timed test).
//!
//! - durable CreateUser with a clientToken at 1, 16 and 64 callers on one host, and 64 callers
//!   spread over 2 and 4 hosts (ledgers on one database);
//! - the per-command transaction postgres-es or esrs users write (read the aggregate's version,
//!   insert the event with the next one, upsert the view row, insert the token, commit), from
//!   the same number of connections;
//! - GetUser at 64 callers against a plain primary-key `SELECT`;
//! - the same ledger operations on sled beside them;
//! - the Merkle tree's cost: durable CreateUser at 64 callers with the tree and without it
//!   (`Config::keep_tree`, whitebox), on sled and on 1, 2 and 4 hosts, the two runs of each
//!   interleaved three times so that the disk's drift falls on both.
//!
//! - sealing personal data (issue 34): durable CreateUser at 64 callers on one host, sealed and
//!   in the clear (`Config::seal_personal_data`, whitebox), A B B A A B B A.
//!
//! `USER_LEDGER_BENCH_SECS` (default 3) is how long each figure runs; `USER_LEDGER_BENCH_ONLY=tree`
//! or `=sealing` runs that A/B alone.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

#[path = "common/rate.rs"]
mod rate;

#[path = "../tests/all/common/postgres.rs"]
#[allow(dead_code)]
mod pg;

use rate::rate;
use user_ledger::{Caller, Config, CreateUserRequest, Ledger};

/// Prints one line of the report: a figure and its ratio to a baseline, if any.
type Row = dyn Fn(String, f64, Option<(&str, f64)>);

fn create_on(hosts: &[Ledger], callers: usize, tag: &str) -> f64 {
    rate(callers, |caller, i| {
        let request = CreateUserRequest {
            client_token: Some(format!("{tag}-{caller}-{i}")),
            ..CreateUserRequest::new(format!("{tag}-{caller}-{i}@example.com"), "APP_USER")
        };
        hosts[caller % hosts.len()].create_user(&Caller::System, &request).unwrap();
    })
}

fn get_on(ledger: &Ledger, ids: &[String], callers: usize) -> f64 {
    rate(callers, |caller, i| {
        let id = &ids[(caller * 7919 + i as usize) % ids.len()];
        ledger.get_user(&Caller::System, id).unwrap();
    })
}

/// The per-command transaction of an event-sourcing library on PostgreSQL, as its users write it.
fn per_command(url: &str, callers: usize, tag: &str) -> f64 {
    let mut setup = postgres::Client::connect(url, postgres::NoTls).unwrap();
    setup
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS es_events (aggregate_id text, version bigint, payload bytea, \
             PRIMARY KEY (aggregate_id, version));
             CREATE TABLE IF NOT EXISTS es_users (user_id text PRIMARY KEY, email text UNIQUE, body bytea);
             CREATE TABLE IF NOT EXISTS es_tokens (token text PRIMARY KEY, response bytea);",
        )
        .unwrap();
    let clients: Vec<_> = (0..callers)
        .map(|_| std::sync::Mutex::new(postgres::Client::connect(url, postgres::NoTls).unwrap()))
        .collect();
    rate(callers, |caller, i| {
        let mut client = clients[caller].lock().unwrap();
        let id = format!("{tag}-{caller}-{i}");
        let payload = vec![7u8; 160];
        let mut tx = client.transaction().unwrap();
        let version: i64 = tx
            .query_one("SELECT coalesce(max(version), 0) FROM es_events WHERE aggregate_id = $1", &[&id])
            .unwrap()
            .get(0);
        tx.execute("INSERT INTO es_events VALUES ($1, $2, $3)", &[&id, &(version + 1), &payload]).unwrap();
        tx.execute(
            "INSERT INTO es_users VALUES ($1, $2, $3) ON CONFLICT (user_id) DO UPDATE SET body = EXCLUDED.body",
            &[&id, &format!("{id}@example.com"), &payload],
        )
        .unwrap();
        tx.execute("INSERT INTO es_tokens VALUES ($1, $2)", &[&id, &payload]).unwrap();
        tx.commit().unwrap();
    })
}

fn plain_select(url: &str, ids: &[String], callers: usize) -> f64 {
    let clients: Vec<_> = (0..callers)
        .map(|_| std::sync::Mutex::new(postgres::Client::connect(url, postgres::NoTls).unwrap()))
        .collect();
    rate(callers, |caller, i| {
        let id = &ids[(caller * 7919 + i as usize) % ids.len()];
        let mut client = clients[caller].lock().unwrap();
        client.query_opt("SELECT body FROM es_users WHERE user_id = $1", &[id]).unwrap();
    })
}

fn main() {
    let server = pg::server();
    let location = |schema: &str| format!("{}?schema={schema}", server.url);
    let row = |what: String, ours: f64, base: Option<(&str, f64)>| {
        let ratio = base.map_or(String::new(), |(name, b)| format!("{:.2}× {name}", ours / b));
        println!("{what:<48} {ours:>10.0}/s  {ratio}");
    };

    // USER_LEDGER_BENCH_ONLY=tree or =sealing runs that A/B alone.
    let only = std::env::var("USER_LEDGER_BENCH_ONLY").ok();
    if only.is_none() {
        baselines(&server.url, &location, &row);
    }
    if only.as_deref() != Some("sealing") {
        tree_cost(&location, &row);
    }
    if only.as_deref() != Some("tree") {
        sealing_cost(&location, &row);
    }
}

/// Durable CreateUser (an address and two names, a clientToken) at 64 callers on one host,
/// personal data sealed (B) and in the clear (A), in the order A B B A A B B A.
fn sealing_cost(location: &dyn Fn(&str) -> String, row: &Row) {
    println!("\nsealing personal data: CreateUser+token with names, 1 host, 64 callers, A B B A A B B A");
    let (mut clear, mut sealed) = (0.0, 0.0);
    for run in 0..8 {
        let mut config = pg::pg(location(&format!("sealing{run}")));
        let is_clear = matches!(run % 4, 0 | 3);
        config.seal_personal_data = !is_clear;
        let ledger = Ledger::open(config).unwrap();
        let rate = rate(64, |caller, i| {
            let request = CreateUserRequest {
                client_token: Some(format!("s{run}-{caller}-{i}")),
                first_name: Some(format!("First{caller}")),
                last_name: Some(format!("Last{i}")),
                ..CreateUserRequest::new(format!("s{run}-{caller}-{i}@example.com"), "APP_USER")
            };
            ledger.create_user(&Caller::System, &request).unwrap();
        });
        *(if is_clear { &mut clear } else { &mut sealed }) += rate / 4.0;
    }
    row("PostgreSQL: sealed".into(), sealed, Some(("clear", clear)));
    row("PostgreSQL: clear".into(), clear, None);
}

/// The ledger against the per-command transaction and a plain select, on PostgreSQL and sled.
fn baselines(url: &str, location: &dyn Fn(&str) -> String, row: &Row) {
    let one = [Ledger::open(pg::pg(location("bench1"))).unwrap()];
    let mut one_host_64 = 0.0;
    for callers in [1, 16, 64] {
        let ours = create_on(&one, callers, &format!("c{callers}"));
        let base = per_command(url, callers, &format!("b{callers}"));
        row(format!("CreateUser+token, 1 host, {callers} callers"), ours, Some(("per-command tx", base)));
        row(format!("  per-command transaction, {callers} connections"), base, None);
        if callers == 64 {
            one_host_64 = ours;
        }
    }
    for hosts in [2, 4] {
        let ledgers: Vec<Ledger> =
            (0..hosts).map(|_| Ledger::open(pg::pg(location(&format!("bench{hosts}")))).unwrap()).collect();
        let ours = create_on(&ledgers, 64, &format!("h{hosts}"));
        row(format!("CreateUser+token, {hosts} hosts, 64 callers"), ours, Some(("1 host", one_host_64)));
    }
    let ids: Vec<String> = (0..1000)
        .map(|i| {
            let request = CreateUserRequest::new(format!("get{i}@example.com"), "APP_USER");
            one[0].create_user(&Caller::System, &request).unwrap().user_id
        })
        .collect();
    let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
    let base_ids: Vec<String> = client
        .query("SELECT user_id FROM es_users LIMIT 1000", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let select = plain_select(url, &base_ids, 64);
    row("GetUser, 64 callers".into(), get_on(&one[0], &ids, 64), Some(("plain select", select)));
    row("  plain primary-key SELECT, 64 connections".into(), select, None);

    let dir = tempfile::tempdir().unwrap();
    let sled = [Ledger::open(Config::new(dir.path().join("db"))).unwrap()];
    for callers in [1, 16, 64] {
        row(
            format!("sled: CreateUser+token, {callers} callers"),
            create_on(&sled, callers, &format!("s{callers}")),
            None,
        );
    }
    let sled_ids: Vec<String> = (0..1000)
        .map(|i| {
            sled[0]
                .create_user(
                    &Caller::System,
                    &CreateUserRequest::new(format!("g{i}@example.com"), "APP_USER"),
                )
                .unwrap()
                .user_id
        })
        .collect();
    row("sled: GetUser, 64 callers".into(), get_on(&sled[0], &sled_ids, 64), None);
}

/// Durable CreateUser at 64 callers with the Merkle tree and without it, on each engine.
fn tree_cost(location: &dyn Fn(&str) -> String, row: &Row) {
    println!("\nthe Merkle tree's cost: CreateUser+token, 64 callers, mean of 3 interleaved runs");
    let tree = |keep: bool, mut config: Config| {
        config.keep_tree = keep;
        config
    };
    let sled_dir = tempfile::tempdir().unwrap();
    let sled_on = |keep: bool| {
        let name = if keep { "with" } else { "without" };
        vec![Ledger::open(tree(keep, Config::new(sled_dir.path().join(name)))).unwrap()]
    };
    let pg_on = |keep: bool, hosts: usize| {
        let schema = format!("tree{}{hosts}", if keep { "with" } else { "without" });
        (0..hosts).map(|_| Ledger::open(tree(keep, pg::pg(location(&schema)))).unwrap()).collect::<Vec<_>>()
    };
    type Hosts<'a> = Box<dyn Fn(bool) -> Vec<Ledger> + 'a>;
    let engines: [(&str, Hosts); 4] = [
        ("sled", Box::new(sled_on)),
        ("PostgreSQL, 1 host", Box::new(|keep| pg_on(keep, 1))),
        ("PostgreSQL, 2 hosts", Box::new(|keep| pg_on(keep, 2))),
        ("PostgreSQL, 4 hosts", Box::new(|keep| pg_on(keep, 4))),
    ];
    for (engine, (name, open)) in engines.iter().enumerate() {
        let (with, without) = (open(true), open(false));
        let (mut a, mut b) = (0.0, 0.0);
        for round in 0..3 {
            b += create_on(&without, 64, &format!("t{engine}-b{round}"));
            a += create_on(&with, 64, &format!("t{engine}-a{round}"));
        }
        let (a, b) = (a / 3.0, b / 3.0);
        row(format!("{name}: with the tree"), a, Some(("without", b)));
        row(format!("{name}: without the tree"), b, None);
    }
}
