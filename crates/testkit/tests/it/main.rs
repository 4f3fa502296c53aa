//! The test kit against a real PostgreSQL: the seeder is deterministic whichever path loads the
//! rows, reseeding replaces the data, and a cluster survives a stop and start.

#![allow(clippy::unwrap_used)]

use bakeoff_testkit::postgres::LocalPostgres;
use bakeoff_testkit::seed::{SeedSpec, seed};

/// A digest of every contact row, in key order: equal digests mean identical data.
async fn digest(database_url: &str) -> (i64, i64, i64, String) {
    let client = bakeoff_testkit::connect(database_url).await.unwrap();
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM contacts), \
                    (SELECT count(*) FROM contact_phones), \
                    (SELECT count(*) FROM contact_emails), \
                    md5((SELECT string_agg(concat_ws('|', contact_id, first_name, last_name, type_id), ',' ORDER BY contact_id) FROM contacts) \
                     || (SELECT string_agg(concat_ws('|', phone_id, contact_id, phone_number), ',' ORDER BY phone_id) FROM contact_phones) \
                     || (SELECT string_agg(concat_ws('|', email_id, contact_id, email_address), ',' ORDER BY email_id) FROM contact_emails))",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2), row.get(3))
}

#[tokio::test(flavor = "multi_thread")]
async fn seeding_is_deterministic_whichever_role_loads_it() {
    let postgres = LocalPostgres::start_throwaway().await.unwrap();
    let spec = SeedSpec {
        contacts: 3_000,
        seed: 11,
    };

    // The superuser path: all tables at once, triggers off, indexes rebuilt.
    seed(&postgres.admin_url(), &spec, &|_| {}).await.unwrap();
    let by_superuser = digest(&postgres.admin_url()).await;
    assert_eq!(by_superuser.0, 3_000);
    assert!(
        by_superuser.1 > 3_000 && by_superuser.1 < 6_000,
        "0-3 phones each: {by_superuser:?}"
    );

    // Another seed replaces everything.
    seed(
        &postgres.admin_url(),
        &SeedSpec {
            contacts: 500,
            seed: 12,
        },
        &|_| {},
    )
    .await
    .unwrap();
    let other = digest(&postgres.admin_url()).await;
    assert_eq!(other.0, 500);
    assert_ne!(other.3, by_superuser.3);

    // The ordinary path (the server role, constraints checked row by row) gives the same rows.
    seed(&postgres.app_url(), &spec, &|_| {}).await.unwrap();
    assert_eq!(digest(&postgres.admin_url()).await, by_superuser);

    // The indexes the API relies on are back after the fast path.
    let client = bakeoff_testkit::connect(&postgres.admin_url())
        .await
        .unwrap();
    let indexes: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = 'public' AND indexname LIKE '%\\_idx'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(indexes, 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_keeps_its_data_across_a_restart() {
    let mut postgres = LocalPostgres::start_throwaway().await.unwrap();
    seed(
        &postgres.admin_url(),
        &SeedSpec {
            contacts: 100,
            seed: 1,
        },
        &|_| {},
    )
    .await
    .unwrap();
    let before = digest(&postgres.admin_url()).await;
    postgres.stop().unwrap();
    assert!(
        bakeoff_testkit::connect(&postgres.admin_url())
            .await
            .is_err()
    );
    postgres.start().unwrap();
    assert_eq!(digest(&postgres.admin_url()).await, before);
}
