//! The job queue's tests: one binary; every check in `suite` runs on a SQLite
//! file and on PostgreSQL (`CALMESH_TEST_POSTGRES_URL`; without it the
//! PostgreSQL tests print "skipped: CALMESH_TEST_POSTGRES_URL not set" and
//! pass).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;
mod store;
mod suite;

/// A test per check and backend: `sqlite::name` and `postgres::name`.
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let harness = crate::harness::Harness::sqlite().await;
                    crate::suite::$name(&harness).await;
                    harness.finish().await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(harness) = crate::harness::Harness::postgres().await else {
                        return;
                    };
                    crate::suite::$name(&harness).await;
                    harness.finish().await;
                }
            )*
        }
    };
}

on_every_backend!(
    coalescing,
    concurrent_enqueues_coalesce,
    backoff_schedule,
    dead_after_max_attempts,
    lease_takeover,
    no_job_runs_twice,
    one_run_per_key_under_load,
    release_keeps_attempts,
    fail_merges_trigger_during_run,
    retry_and_purge,
    counts_and_age,
    list_and_kinds,
    cleanup_keeps_recent_history,
    throughput,
    a_fire_time_is_enqueued_once,
    fires_in_bulk_are_enqueued_once,
    scheduler_tick,
);
