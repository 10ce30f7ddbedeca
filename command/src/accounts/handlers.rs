//! Account commands: register, log in, change profile, close and erase.

use chrono::{DateTime, Utc};
use events::domain::accounts::{ACCOUNT_CATEGORY, EMAIL_CATEGORY, Role};
use events::privacy::Opened;
use events::{AppendRequest, StreamId};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::decider::{Account, AccountCommand, AccountDecider, EmailCommand, EmailDecider, EmailRegistration};
use crate::auth::{Caller, hash_password, verify_password};
use crate::decider::Decider;
use crate::error::{CommandError, Result, refused};
use crate::handling::{Accepted, Context, Idempotency, Meta, append_accepted, id_body, load, new_events, unchanged};
use crate::values::{Email, Password, PersonName};

/// The stream that says who holds an email address. Named by a digest, so the address itself
/// never appears in the log.
pub fn email_stream(email: &Email) -> StreamId {
    let digest = Sha256::digest(email.as_str().as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    StreamId::new(EMAIL_CATEGORY, hex)
}

pub fn account_stream(account_id: Uuid) -> StreamId {
    StreamId::new(ACCOUNT_CATEGORY, account_id)
}

#[derive(Debug, Clone)]
pub struct Registration {
    pub email: Email,
    pub password: Password,
    pub name: PersonName,
    pub role: Role,
}

/// Register an account (buyers and vendors over HTTP; carriers and admins from the CLI).
pub async fn register(
    ctx: &Context,
    registration: Registration,
    meta: &Meta,
    idempotency: Option<&Idempotency>,
) -> Result<Accepted> {
    let password_hash = hash_password(registration.password).await?;
    let account_id = Uuid::now_v7();
    // The key must exist before any event that carries data sealed with it.
    ctx.vault.create_key(account_id).await?;
    let email = ctx.vault.seal(account_id, registration.email.as_str()).await?;
    let name = ctx.vault.seal(account_id, registration.name.as_str()).await?;
    let email_stream = email_stream(&registration.email);
    let metadata = meta.metadata();
    crate::retrying!(ctx, {
        let registry = load::<EmailDecider>(&*ctx.store, &email_stream).await?;
        let claimed = EmailDecider::decide(&EmailCommand::Claim { account_id }, &registry.state).map_err(refused)?;
        let registered = AccountDecider::decide(
            &AccountCommand::Register {
                account_id,
                role: registration.role,
                email: email.clone(),
                name: name.clone(),
                password_hash: password_hash.clone(),
            },
            &Account::Unregistered,
        )
        .map_err(refused)?;
        let mut body = id_body(account_id);
        body.insert("role".into(), registration.role.as_str().into());
        let account =
            (account_stream(account_id), events::ExpectedVersion::NoStream, new_events(&registered, &metadata));
        if !ctx.store.capabilities().atomic_multi_stream {
            // No atomic append of both streams: claim the email first (a concurrent claim
            // conflicts and the retry refuses `email_taken`), then write the account. A crash
            // in between leaves the email claimed by no account (docs/ARCHITECTURE.md).
            if !claimed.is_empty() {
                let claim = AppendRequest::new().stream(
                    email_stream.clone(),
                    registry.expected(),
                    new_events(&claimed, &metadata),
                );
                ctx.store.append(claim).await?;
            }
            let request = AppendRequest::new().stream(account.0, account.1, account.2);
            return append_accepted(ctx, request, 201, body, idempotency).await;
        }
        let request = AppendRequest::new()
            .stream(email_stream.clone(), registry.expected(), new_events(&claimed, &metadata))
            .stream(account.0, account.1, account.2);
        append_accepted(ctx, request, 201, body, idempotency).await
    })
}

/// A logged-in session.
#[derive(Debug, Clone)]
pub struct Session {
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub account_id: Uuid,
    pub role: Role,
}

fn invalid_credentials() -> CommandError {
    CommandError::refused(401, "invalid_credentials", "the email or the password is wrong")
}

/// Check an email and password and issue an access token.
pub async fn login(ctx: &Context, email: &Email, password: String) -> Result<Session> {
    // A well-formed hash to verify against when the email is unknown, so that the answer
    // takes as long as for a wrong password (no account enumeration by timing).
    const DECOY: &str =
        "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$J8M2YkqXJ8xB3VvC0m0iS1Hq9Xh6K4c6VtD8s1a1s9E";
    let registry = load::<EmailDecider>(&*ctx.store, &email_stream(email)).await?;
    let account = match registry.state {
        EmailRegistration::Claimed { account_id } => {
            load::<AccountDecider>(&*ctx.store, &account_stream(account_id)).await?.state
        }
        EmailRegistration::Free => Account::Unregistered,
    };
    let Account::Active { account_id, role, password_hash, .. } = account else {
        let _ = verify_password(password, DECOY.to_owned()).await;
        return Err(invalid_credentials());
    };
    if !verify_password(password, password_hash).await? {
        return Err(invalid_credentials());
    }
    let (token, expires_at) =
        ctx.tokens.issue(Caller { account_id, role }, ctx.now()).map_err(CommandError::internal)?;
    Ok(Session { token, expires_at, account_id, role })
}

/// What an account holder may change about themself.
#[derive(Debug, Clone, Default)]
pub struct ProfileChanges {
    pub name: Option<PersonName>,
    pub email: Option<Email>,
    pub password: Option<Password>,
}

/// Change name, email and/or password, in one atomic append.
pub async fn change_profile(ctx: &Context, caller: &Caller, changes: ProfileChanges, meta: &Meta) -> Result<Accepted> {
    let account_id = caller.account_id;
    let name = match &changes.name {
        Some(name) => Some(ctx.vault.seal(account_id, name.as_str()).await?),
        None => None,
    };
    let new_email = match &changes.email {
        Some(email) => Some((ctx.vault.seal(account_id, email.as_str()).await?, email_stream(email))),
        None => None,
    };
    let password_hash = match changes.password.clone() {
        Some(password) => Some(hash_password(password).await?),
        None => None,
    };
    let metadata = meta.metadata();
    crate::retrying!(ctx, {
        let account = load::<AccountDecider>(&*ctx.store, &account_stream(account_id)).await?;
        let mut commands = Vec::new();
        let mut request = AppendRequest::new();
        if let Some(name) = &name {
            commands.push(AccountCommand::ChangeName { name: name.clone() });
        }
        if let (Some((email, stream)), Account::Active { email: current, .. }) = (&new_email, &account.state) {
            let previous = previous_email_stream(ctx, current).await?;
            if previous != *stream {
                let claim = load::<EmailDecider>(&*ctx.store, stream).await?;
                let claimed =
                    EmailDecider::decide(&EmailCommand::Claim { account_id }, &claim.state).map_err(refused)?;
                let old = load::<EmailDecider>(&*ctx.store, &previous).await?;
                let released =
                    EmailDecider::decide(&EmailCommand::Release { account_id }, &old.state).map_err(refused)?;
                request = request.stream(stream.clone(), claim.expected(), new_events(&claimed, &metadata)).stream(
                    previous.clone(),
                    old.expected(),
                    new_events(&released, &metadata),
                );
                commands.push(AccountCommand::ChangeEmail {
                    email: email.clone(),
                    previous_email_stream: previous.to_string(),
                    email_stream: stream.to_string(),
                });
            }
        }
        if let Some(hash) = &password_hash {
            commands.push(AccountCommand::ChangePassword { password_hash: hash.clone() });
        }
        let mut state = account.state.clone();
        let mut decided = Vec::new();
        for command in &commands {
            let events = AccountDecider::decide(command, &state).map_err(refused)?;
            state = events.iter().fold(state, AccountDecider::evolve);
            decided.extend(events);
        }
        if decided.is_empty() {
            if let Account::Unregistered = account.state {
                return Err(refused(super::decider::AccountError::NotFound));
            }
            return Ok(Accepted::new(200, account_id, unchanged(ctx, account.position).await?));
        }
        let request = request.stream(account_stream(account_id), account.expected(), new_events(&decided, &metadata));
        // In steps (no atomic multi-stream append): emails first, which decide nothing twice,
        // then the account, which a retry decides from.
        let appended = crate::handling::append_steps(ctx, request, &account_stream(account_id)).await?;
        Ok(Accepted { status: 200, body: id_body(account_id), position: appended.position() })
    })
}

/// The registry stream of the email an account holds now (its sealed email, opened).
async fn previous_email_stream(ctx: &Context, sealed: &events::privacy::Sealed) -> Result<StreamId> {
    match ctx.vault.open(sealed).await? {
        Opened::Value(email) => {
            let email = Email::parse(&email).map_err(CommandError::internal)?;
            Ok(email_stream(&email))
        }
        Opened::Erased => Err(refused(super::decider::AccountError::Erased)),
    }
}

/// Close the account and erase its personal data: an erasure event, the email released,
/// then the account's key destroyed (everything sealed with it becomes unreadable).
pub async fn erase(ctx: &Context, caller: &Caller, meta: &Meta) -> Result<Accepted> {
    let account_id = caller.account_id;
    let metadata = meta.metadata();
    let accepted = crate::retrying!(ctx, {
        let account = load::<AccountDecider>(&*ctx.store, &account_stream(account_id)).await?;
        let erased = AccountDecider::decide(&AccountCommand::Erase, &account.state).map_err(refused)?;
        let Account::Active { email, .. } = &account.state else {
            // Already erased: nothing to append, but make sure the key is gone.
            return Ok(Accepted::new(200, account_id, unchanged(ctx, account.position).await?).with("erased", true));
        };
        let mut request =
            AppendRequest::new().stream(account_stream(account_id), account.expected(), new_events(&erased, &metadata));
        if let Ok(stream) = previous_email_stream(ctx, email).await {
            let registry = load::<EmailDecider>(&*ctx.store, &stream).await?;
            let released =
                EmailDecider::decide(&EmailCommand::Release { account_id }, &registry.state).map_err(refused)?;
            if !released.is_empty() {
                request = request.stream(stream, registry.expected(), new_events(&released, &metadata));
            }
        }
        let mut body = id_body(account_id);
        body.insert("erased".into(), true.into());
        // In steps: the email released first (a retry releases nothing twice), the account last.
        let appended = crate::handling::append_steps(ctx, request, &account_stream(account_id)).await?;
        Ok(Accepted { status: 200, body, position: appended.position() })
    })?;
    ctx.vault.erase(account_id).await?;
    Ok(accepted)
}
