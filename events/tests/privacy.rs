//! Crypto-shredding against a real PostgreSQL: sealed values open until the key is erased.

use events::privacy::{KeyVault, Opened, PrivacyError};
use events::testing::TestDatabase;
use uuid::Uuid;

#[tokio::test]
async fn sealed_values_open_until_the_key_is_erased() {
    let db = TestDatabase::with_event_store().await;
    let vault = KeyVault::new(db.pool().clone());
    let alice = Uuid::now_v7();
    vault.create_key(alice).await.expect("key");
    vault.create_key(alice).await.expect("creating twice is harmless");

    let sealed = vault.seal(alice, "alice@example.com").await.expect("seal");
    assert!(!sealed.ciphertext.contains("alice"), "ciphertext is not the plaintext");
    let again = vault.seal(alice, "alice@example.com").await.expect("seal");
    assert_ne!(sealed.nonce, again.nonce, "a fresh nonce per value");
    assert_eq!(vault.open(&sealed).await.expect("open"), Opened::Value("alice@example.com".into()));

    // Another process (no cache) opens it too, and sees the erasure.
    let other_process = KeyVault::new(db.pool().clone());
    assert_eq!(other_process.open(&sealed).await.expect("open"), Opened::Value("alice@example.com".into()));

    vault.erase(alice).await.expect("erase");
    assert_eq!(vault.open(&sealed).await.expect("open after erase"), Opened::Erased);
    assert_eq!(KeyVault::new(db.pool().clone()).open(&sealed).await.expect("fresh vault"), Opened::Erased);
    assert!(matches!(vault.seal(alice, "new data").await, Err(PrivacyError::NoKey(id)) if id == alice));
    let stored: i64 = sqlx::query_scalar("select count(*) from event_store.personal_data_key")
        .fetch_one(db.pool())
        .await
        .expect("count");
    assert_eq!(stored, 0, "the key row is gone");
}

#[tokio::test]
async fn a_value_cannot_be_opened_as_another_accounts() {
    let db = TestDatabase::with_event_store().await;
    let vault = KeyVault::new(db.pool().clone());
    let (alice, bob) = (Uuid::now_v7(), Uuid::now_v7());
    vault.create_key(alice).await.expect("key");
    vault.create_key(bob).await.expect("key");
    let mut sealed = vault.seal(alice, "12 Rue de la Paix, Paris").await.expect("seal");
    sealed.key_id = bob;
    assert!(matches!(vault.open(&sealed).await, Err(PrivacyError::Corrupt(_))));
    let mut tampered = vault.seal(alice, "x").await.expect("seal");
    tampered.ciphertext = "not base64!".into();
    assert!(matches!(vault.open(&tampered).await, Err(PrivacyError::Corrupt(_))));

    let fresh = KeyVault::new(db.pool().clone());
    fresh.preload(&[alice, bob, Uuid::now_v7()]).await.expect("preload");
    let sealed = vault.seal(bob, "bob").await.expect("seal");
    assert_eq!(fresh.open(&sealed).await.expect("open").value().as_deref(), Some("bob"));
}
