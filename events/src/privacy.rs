//! Personal data in events: sealed (encrypted) with a key that belongs to one account.
//!
//! The log is immutable, so personal data (email, name, shipping address) is never written in
//! clear. It is sealed with the owning account's key (XChaCha20-Poly1305, the account id as
//! associated data), and the key lives in `event_store.personal_data_key`, outside the log.
//! Erasing an account deletes its key: every value sealed with it becomes unreadable, in the
//! log and in every rebuild of the read models ("crypto-shredding").

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD as BASE64;
use chacha20poly1305::aead::{Aead, Generate, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

/// An encrypted value and the id of the key that opens it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// The account whose key sealed this value.
    pub key_id: Uuid,
    /// Base64 nonce.
    pub nonce: String,
    /// Base64 ciphertext with its authentication tag.
    pub ciphertext: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    #[error("no personal-data key for account {0} (never created, or erased)")]
    NoKey(Uuid),
    #[error("sealed value of account {0} is corrupt or was sealed with another key")]
    Corrupt(Uuid),
    #[error("key storage: {0}")]
    Database(#[from] sqlx::Error),
}

/// What opening a sealed value gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    Value(String),
    /// The account was erased: the value is gone for good.
    Erased,
}

impl Opened {
    pub fn value(self) -> Option<String> {
        match self {
            Opened::Value(v) => Some(v),
            Opened::Erased => None,
        }
    }
}

/// The keys of all accounts, cached in memory once read (an erased key is cached as gone).
#[derive(Clone)]
pub struct KeyVault {
    pool: PgPool,
    cache: Arc<DashMap<Uuid, Option<Arc<XChaCha20Poly1305>>>>,
}

impl KeyVault {
    pub fn new(pool: PgPool) -> Self {
        Self { pool, cache: Arc::default() }
    }

    /// Create the key of an account, unless it exists. Call before appending the first
    /// event that carries sealed data of that account.
    pub async fn create_key(&self, key_id: Uuid) -> Result<(), PrivacyError> {
        let key = chacha20poly1305::Key::generate();
        sqlx::query("insert into event_store.personal_data_key (key_id, key) values ($1, $2) on conflict do nothing")
            .bind(key_id)
            .bind(key.as_slice())
            .execute(&self.pool)
            .await?;
        self.cache.remove(&key_id);
        Ok(())
    }

    async fn cipher(&self, key_id: Uuid) -> Result<Option<Arc<XChaCha20Poly1305>>, PrivacyError> {
        if let Some(cached) = self.cache.get(&key_id) {
            return Ok(cached.clone());
        }
        let key: Option<Vec<u8>> =
            sqlx::query_scalar("select key from event_store.personal_data_key where key_id = $1")
                .bind(key_id)
                .fetch_optional(&self.pool)
                .await?;
        let cipher = match key {
            Some(bytes) => {
                Some(Arc::new(XChaCha20Poly1305::new_from_slice(&bytes).map_err(|_| PrivacyError::Corrupt(key_id))?))
            }
            None => None,
        };
        self.cache.insert(key_id, cipher.clone());
        Ok(cipher)
    }

    /// Load the keys of many accounts in one query (projectors call this per batch).
    pub async fn preload(&self, key_ids: &[Uuid]) -> Result<(), PrivacyError> {
        let missing: Vec<Uuid> = key_ids.iter().copied().filter(|id| !self.cache.contains_key(id)).collect();
        if missing.is_empty() {
            return Ok(());
        }
        let rows: Vec<(Uuid, Vec<u8>)> =
            sqlx::query_as("select key_id, key from event_store.personal_data_key where key_id = any($1)")
                .bind(&missing)
                .fetch_all(&self.pool)
                .await?;
        for id in &missing {
            self.cache.insert(*id, None);
        }
        for (id, bytes) in rows {
            let cipher = XChaCha20Poly1305::new_from_slice(&bytes).map_err(|_| PrivacyError::Corrupt(id))?;
            self.cache.insert(id, Some(Arc::new(cipher)));
        }
        Ok(())
    }

    /// Encrypt `plaintext` with the key of `key_id` (which must exist).
    pub async fn seal(&self, key_id: Uuid, plaintext: &str) -> Result<Sealed, PrivacyError> {
        let cipher = self.cipher(key_id).await?.ok_or(PrivacyError::NoKey(key_id))?;
        let nonce = XNonce::generate();
        let ciphertext = cipher
            .encrypt(&nonce, Payload { msg: plaintext.as_bytes(), aad: key_id.as_bytes() })
            .map_err(|_| PrivacyError::Corrupt(key_id))?;
        Ok(Sealed { key_id, nonce: BASE64.encode(nonce.as_slice()), ciphertext: BASE64.encode(ciphertext) })
    }

    /// Decrypt a sealed value; `Erased` once its account's key is gone.
    pub async fn open(&self, sealed: &Sealed) -> Result<Opened, PrivacyError> {
        let Some(cipher) = self.cipher(sealed.key_id).await? else {
            return Ok(Opened::Erased);
        };
        let corrupt = || PrivacyError::Corrupt(sealed.key_id);
        let nonce = BASE64.decode(&sealed.nonce).map_err(|_| corrupt())?;
        let nonce = XNonce::try_from(nonce.as_slice()).map_err(|_| corrupt())?;
        let ciphertext = BASE64.decode(&sealed.ciphertext).map_err(|_| corrupt())?;
        let plaintext = cipher
            .decrypt(&nonce, Payload { msg: &ciphertext, aad: sealed.key_id.as_bytes() })
            .map_err(|_| corrupt())?;
        String::from_utf8(plaintext).map(Opened::Value).map_err(|_| corrupt())
    }

    /// Destroy the key of an account: everything sealed with it is unreadable from now on.
    pub async fn erase(&self, key_id: Uuid) -> Result<(), PrivacyError> {
        sqlx::query("delete from event_store.personal_data_key where key_id = $1")
            .bind(key_id)
            .execute(&self.pool)
            .await?;
        self.forget(key_id);
        Ok(())
    }

    /// Drop a cached key (a projector does this when it reads an account's erasure event,
    /// which another process may have caused).
    pub fn forget(&self, key_id: Uuid) {
        self.cache.insert(key_id, None);
    }
}
