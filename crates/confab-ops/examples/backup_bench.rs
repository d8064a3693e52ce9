//! The backup benchmark (BENCHMARKS.md, "Backup, verify and restore"): a SQLite deployment
//! of 100,000 users (one credential each) with 10 contacts each, then, several rounds of
//! each: `backup::create`, `backup::verify` (restore into a scratch store and compare), and a
//! restore (`backup::load` + `backup::restore`) into an empty store. Prints each round and the
//! medians. Bounded: a fixed number of rounds.
//!
//! ```sh
//! cargo run --release -p confab-ops --example backup_bench -- [USERS] [CONTACTS] [ROUNDS]
//! ```

use std::time::{Duration, Instant};

use confab_ops::backup::{self, TakenBy};
use confab_store::{
    Address, Cell, Credential, NewUser, RestoreInto, Store, StoreLocation, DEFAULT_POOL,
};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().expect("a number"));
    let users = args.next().unwrap_or(100_000);
    let contacts_each = args.next().unwrap_or(10);
    let rounds = args.next().unwrap_or(3);
    let dir = tempfile::TempDir::new().expect("temporary directory");
    let store = Store::open(&StoreLocation::in_data_dir(&dir.path().join("data")))
        .await
        .expect("store");
    store.ensure_defaults("localhost").await.expect("defaults");

    let t = Instant::now();
    let all: Vec<(NewUser, Vec<Credential>)> = (1..=users)
        .map(|i| {
            (
                NewUser {
                    address: Address::parse(&format!("user{i}@localhost")).expect("address"),
                    display_name: Some(format!("User {i}")),
                    pool: DEFAULT_POOL.into(),
                    enabled: true,
                },
                vec![Credential {
                    realm: "localhost".into(),
                    algorithm: "SHA-256".into(),
                    ha1: format!("{i:064x}"),
                }],
            )
        })
        .collect();
    for chunk in all.chunks(1000) {
        store
            .add_users_with_credentials(chunk)
            .await
            .expect("users");
    }
    // Contacts: written through a restore of the users' dump with contact rows added (one
    // transaction, where one command per contact would take an hour).
    let mut dump = store.dump().await.expect("dump");
    let ids: Vec<i64> = dump
        .table("users")
        .expect("users")
        .rows
        .iter()
        .map(|r| match r[0] {
            Cell::Int(id) => id,
            _ => panic!("an id"),
        })
        .collect();
    let contacts = dump
        .tables
        .iter_mut()
        .find(|t| t.spec.name == "contacts")
        .expect("contacts");
    let mut next = 1;
    for (n, id) in ids.iter().enumerate() {
        for k in 1..=contacts_each {
            let other = (n + k * 7) % users + 1;
            contacts.rows.push(vec![
                Cell::Int(next),
                Cell::Int(*id),
                Cell::Text(format!("user{other}")),
                Cell::Text("localhost".into()),
                Cell::Text(format!("User {other}")),
                Cell::Null,
                Cell::Int(1_900_000_000),
                Cell::Int(1_900_000_000),
            ]);
            next += 1;
        }
    }
    store
        .restore(&dump, RestoreInto::Replace, None)
        .await
        .expect("contacts");
    drop(dump);
    println!(
        "deployment: {users} users, {} contacts, built in {:.1} s",
        next - 1,
        t.elapsed().as_secs_f64()
    );

    let (mut creates, mut verifies, mut restores) = (Vec::new(), Vec::new(), Vec::new());
    let archive = dir.path().join("bench.tar.gz");
    let mut bytes = 0;
    for round in 1..=rounds {
        let t = Instant::now();
        let created = backup::create(&store, TakenBy::Schedule, &archive, &mut |_| {})
            .await
            .expect("backup");
        creates.push(t.elapsed());
        bytes = created.bytes;
        let t = Instant::now();
        backup::verify(&archive, None).await.expect("verify");
        verifies.push(t.elapsed());
        let target_dir = tempfile::TempDir::new().expect("temporary directory");
        let target = Store::open(&StoreLocation::in_data_dir(&target_dir.path().join("data")))
            .await
            .expect("target");
        let t = Instant::now();
        let loaded = backup::load(&archive).expect("load");
        backup::restore(&target, &loaded, RestoreInto::Empty, "bench", &archive)
            .await
            .expect("restore");
        restores.push(t.elapsed());
        target.close().await;
        println!(
            "round {round}: create {:.2} s, verify {:.2} s, restore {:.2} s",
            creates[round - 1].as_secs_f64(),
            verifies[round - 1].as_secs_f64(),
            restores[round - 1].as_secs_f64()
        );
    }
    println!(
        "archive {:.1} MiB; medians of {rounds}: create {:.2} s, verify {:.2} s, restore {:.2} s",
        bytes as f64 / f64::from(1u32 << 20),
        median(creates).as_secs_f64(),
        median(verifies).as_secs_f64(),
        median(restores).as_secs_f64()
    );
    store.close().await;
}
