//! The store test suite, written once and run on both backends: `tests/sqlite.rs` and
//! `tests/postgres.rs` each build a [`Fixture`] (a fresh, not yet opened store) per test and
//! expand [`store_suite!`], which turns every suite function below into a test.

use confab_store::{Address, Credential, NewUser, Store, StoreLocation};

mod backup;
mod change_control;
mod contacts;
mod feed;
mod hot;
mod members;
mod presence;
mod schema;
mod topology;
mod users;

pub use backup::*;
pub use change_control::*;
pub use contacts::*;
pub use feed::*;
pub use hot::*;
pub use members::*;
pub use presence::*;
pub use schema::*;
pub use topology::*;
pub use users::*;

/// A fresh store location for one test, and a way around the store's API to reach it.
pub struct Fixture {
    /// Where the store will be; nothing has opened it yet.
    pub location: StoreLocation,
    /// Runs raw SQL against the store's database (to fake what only another build would do).
    pub raw: Box<dyn Fn(String) -> BoxFuture<()> + Send + Sync>,
    /// Whatever must live as long as the test (a temporary directory).
    pub _keep: Option<Box<dyn std::any::Any + Send + Sync>>,
}

/// A boxed, sendable future.
pub type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl Fixture {
    /// Opens a handle on the fixture's store (migrating it on first open).
    pub async fn open(&self) -> Store {
        match Store::open(&self.location).await {
            Ok(store) => store,
            Err(e) => panic!("opening {}: {e}", self.location),
        }
    }

    /// Opens a handle with the defaults created (domain example.com, pool default).
    pub async fn open_with_defaults(&self) -> Store {
        let store = self.open().await;
        store
            .ensure_defaults("example.com")
            .await
            .expect("ensure_defaults");
        store
    }

    /// Runs raw SQL on the store's database.
    pub async fn raw(&self, sql: &str) {
        (self.raw)(sql.to_owned()).await
    }
}

/// Turns every suite function into a test of the calling file, each with a fresh fixture from
/// `$fixture` (an async fn) and the attributes given first (e.g. `#[ignore = "…"]`).
macro_rules! store_suite {
    ($(#[$attr:meta])* fixture = $fixture:path;) => {
        store_suite!(@each [$(#[$attr])*] $fixture;
            migrations_idempotent, concurrent_open, newer_schema_refused, reopen_keeps_data,
            defaults, domains_and_pools,
            users_add_and_find, users_list_filters, users_enable_disable, users_remove_cascades,
            users_add_with_credentials, users_add_many_and_remove_many, credentials_replace,
            users_move_drains_and_keeps_user_data,
            directory_snapshot_in_pages,
            registrations_upsert_and_remove, registrations_purge, registrations_replaced_in_batches,
            offline_cap_and_age, offline_claim_ack_never_lost, offline_concurrent_claims,
            feed_every_mutation, feed_concurrent_writers, feed_watcher_within_a_second,
            two_handles_see_each_other,
            contacts_add_list_remove, contacts_groups, contacts_duplicates_and_update,
            contacts_unknown_user, contacts_cascade_on_user_removal,
            presence_rules_per_user_and_domain, contacts_feed_entries,
            contacts_validation_changes_nothing,
            presence_write_read_replace, presence_goes_with_its_user,
            topology_publish_and_read_back, topology_refuses_removing_what_users_use,
            pool_members_heartbeat_and_leave, administrators_and_their_roles,
            change_records_through_their_states, audit_tampering_is_found,
            audit_deletion_and_reordering_are_found, audit_truncation_is_found,
            audit_swaps_are_found, sources_blocked_and_unblocked,
            pool_maintenance_needs_a_serving_pair, backup_round_trip_and_refusals,
            migrations_written_by_revision, pool_usage_sampled_when_it_changes);
    };
    (@each $attrs:tt $fixture:path; $($name:ident),* $(,)?) => {
        $( store_suite!(@one $attrs $fixture, $name); )*
    };
    (@one [$($attr:tt)*] $fixture:path, $name:ident) => {
        $($attr)*
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let fixture = $fixture().await;
            common::$name(&fixture).await;
        }
    };
}

/// `user@domain`, which the tests write correctly.
pub fn addr(text: &str) -> Address {
    Address::parse(text).expect("test address")
}

/// Adds an enabled user on the default pool.
pub async fn add(store: &Store, address: &str) {
    store
        .add_user(&NewUser {
            address: addr(address),
            display_name: None,
            pool: "default".into(),
            enabled: true,
        })
        .await
        .expect("add_user");
}

/// A credential with a made-up HA1 of the right shape.
pub fn cred(realm: &str, algorithm: &str, fill: char) -> Credential {
    let len = if algorithm == "MD5" { 32 } else { 64 };
    Credential {
        realm: realm.into(),
        algorithm: algorithm.into(),
        ha1: std::iter::repeat_n(fill, len).collect(),
    }
}
