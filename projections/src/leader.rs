//! Leadership: one active instance per projection or reactor, through a PostgreSQL
//! session-level advisory lock held on a dedicated connection.
//!
//! The connection is opened outside any pool on purpose: a pool may recycle or share its
//! connections, and the lock belongs to the session. When the holder dies, PostgreSQL ends
//! its session and the lock is free for a standby.

use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};

use crate::Result;

/// First key of every Agora advisory lock ("AGOR"), so they are easy to find in `pg_locks`.
pub const LOCK_CLASS: i32 = 0x4147_4f52;

/// Second key of the lock `kind:name` (FNV-1a, stable across builds and processes).
pub fn lock_key(kind: &str, name: &str) -> i32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in kind.bytes().chain([b':']).chain(name.bytes()) {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash as i32
}

/// `application_name` of this process's leader connections: status shows it, with the
/// process id, for the lock holder.
pub fn application_name(role: &str) -> String {
    format!("agora-{role}:{}", std::process::id())
}

/// A connection of its own (not from the pool), named for `pg_stat_activity`.
pub async fn connect_dedicated(pool: &PgPool, role: &str) -> Result<PgConnection> {
    let options = (*pool.connect_options()).clone().application_name(&application_name(role));
    Ok(options.connect().await?)
}

/// Take the lock if it is free; never waits.
pub async fn try_lock(conn: &mut PgConnection, key: i32) -> Result<bool> {
    Ok(sqlx::query_scalar("select pg_try_advisory_lock($1, $2)").bind(LOCK_CLASS).bind(key).fetch_one(conn).await?)
}

/// Release the lock (closing the connection releases it too).
pub async fn unlock(conn: &mut PgConnection, key: i32) -> Result<()> {
    sqlx::query("select pg_advisory_unlock($1, $2)").bind(LOCK_CLASS).bind(key).execute(conn).await?;
    Ok(())
}

/// Whether the session (and with it the lock) is still alive.
pub async fn alive(conn: &mut PgConnection) -> bool {
    conn.ping().await.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_and_distinct() {
        assert_eq!(lock_key("projection", "catalog"), lock_key("projection", "catalog"));
        assert_ne!(lock_key("projection", "catalog"), lock_key("rebuild", "catalog"));
        assert_ne!(lock_key("projection", "catalog"), lock_key("projection", "orders"));
    }
}
