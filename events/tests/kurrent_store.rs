//! The store contract suite against KurrentDB (EventStoreDB), when `EVENTSTORE_URL` points
//! at a server; and the start-up errors of `KurrentStore::connect`, which need no server.
//!
//! No KurrentDB server runs where this project is built, so in CI the suite prints
//! "SKIPPED: EVENTSTORE_URL not set" and only the start-up tests run. To run it (README,
//! "KurrentDB"): `docker compose -f deploy/compose.yaml --profile kurrentdb up -d kurrentdb`, then
//! `EVENTSTORE_URL=esdb://127.0.0.1:2113?tls=false cargo test -p events --features kurrentdb --test kurrent_store`.

#[cfg(not(feature = "kurrentdb"))]
#[test]
fn kurrent_store_suite() {
    use std::io::Write;
    // Straight to stderr, past the test harness's output capture: a skip must show.
    let _ = writeln!(std::io::stderr(), "SKIPPED: the events crate was built without the `kurrentdb` feature");
}

#[cfg(feature = "kurrentdb")]
mod kurrent {
    use std::io::Write;
    use std::sync::Arc;
    use std::time::Duration;

    use async_trait::async_trait;
    use events::testing::contract::{self, HeldAppend, StoreHarness};
    use events::{AppendRequest, EventStore, KurrentStore};

    struct KurrentHarness {
        store: KurrentStore,
    }

    #[async_trait]
    impl StoreHarness for KurrentHarness {
        fn store(&self) -> Arc<dyn EventStore> {
            Arc::new(self.store.clone())
        }

        /// KurrentDB has no client-visible transactions to hold open.
        async fn begin_held_append(&self, _request: AppendRequest) -> Option<Box<dyn HeldAppend>> {
            None
        }
    }

    /// Every contract test, one after the other, against the server in `EVENTSTORE_URL`.
    /// The suite assumes a fresh store: use a new server (container) per run.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn store_contract_against_kurrentdb() {
        let Ok(url) = std::env::var("EVENTSTORE_URL") else {
            // Straight to stderr, past the test harness's output capture: a skip must show.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: EVENTSTORE_URL not set (no KurrentDB server); the KurrentDB contract suite did not run"
            );
            return;
        };
        let store = KurrentStore::connect(&url, Duration::from_secs(10)).await.expect("connect to EVENTSTORE_URL");
        let harness = KurrentHarness { store };
        assert!(!harness.store().capabilities().atomic_multi_stream);
        contract::expected_version_conflicts(&harness).await;
        contract::multi_stream_append_is_all_or_nothing(&harness).await;
        contract::racing_appenders_get_one_winner_per_version(&harness).await;
        contract::held_transaction_is_never_skipped(&harness).await;
        contract::read_all_delivers_every_committed_event_once_in_a_stable_order(&harness).await;
        contract::replayed_event_ids_append_nothing(&harness).await;
        contract::subscription_catches_up_then_goes_live(&harness).await;
        contract::head_is_the_last_visible_event(&harness).await;
        contract::idempotency_record_is_stored_with_the_append(&harness).await;
        contract::invalid_appends_are_refused(&harness).await;
    }

    fn connect_error(url: &str) -> String {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        match runtime.block_on(KurrentStore::connect(url, Duration::from_secs(10))) {
            Ok(_) => panic!("{url} connected"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn a_url_of_another_scheme_is_refused_before_connecting() {
        let error = connect_error("postgres://agora:hunter2@127.0.0.1:5432/agora");
        assert!(error.contains("is not a KurrentDB/EventStoreDB URL"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[test]
    fn an_unreachable_server_is_one_error_naming_the_url_without_credentials() {
        // Nothing listens on port 9 of loopback.
        let error = connect_error("esdb://admin:hunter2@127.0.0.1:9?tls=false");
        assert!(error.starts_with("cannot reach KurrentDB at esdb://***@127.0.0.1:9?tls=false"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[test]
    fn a_connection_string_the_client_cannot_parse_is_named() {
        let error = connect_error("esdb://admin:hunter2@?tls=sometimes");
        assert!(error.contains("EVENTSTORE_URL") && !error.contains("hunter2"), "{error}");
    }
}
