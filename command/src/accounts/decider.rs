//! Accounts and the email registry, as pure deciders.

use events::domain::accounts::{
    AccountEmailChanged, AccountErased, AccountEvent, AccountNameChanged, AccountPasswordChanged, AccountRegistered,
    EmailClaimed, EmailEvent, EmailReleased, Role,
};
use events::privacy::Sealed;
use uuid::Uuid;

use crate::decider::Decider;
use crate::error::{Refusal, Refuse};

#[derive(Debug, Clone, PartialEq)]
pub enum Account {
    Unregistered,
    Active { account_id: Uuid, role: Role, email: Sealed, password_hash: String },
    Erased { account_id: Uuid },
}

#[derive(Debug, Clone, PartialEq)]
pub enum AccountCommand {
    Register { account_id: Uuid, role: Role, email: Sealed, name: Sealed, password_hash: String },
    ChangeName { name: Sealed },
    ChangeEmail { email: Sealed, previous_email_stream: String, email_stream: String },
    ChangePassword { password_hash: String },
    Erase,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountError {
    AlreadyRegistered,
    NotFound,
    Erased,
}

impl Refuse for AccountError {
    fn refusal(&self) -> Refusal {
        match self {
            AccountError::AlreadyRegistered => {
                Refusal { status: 409, code: "already_registered", message: "this account already exists".into() }
            }
            AccountError::NotFound => {
                Refusal { status: 404, code: "not_found", message: "account was not found".into() }
            }
            AccountError::Erased => Refusal {
                status: 410,
                code: "account_closed",
                message: "this account was closed and its personal data erased".into(),
            },
        }
    }
}

pub struct AccountDecider;

impl Decider for AccountDecider {
    type State = Account;
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Error = AccountError;

    fn initial_state() -> Account {
        Account::Unregistered
    }

    fn evolve(state: Account, event: &AccountEvent) -> Account {
        match (state, event) {
            (_, AccountEvent::Registered(e)) => Account::Active {
                account_id: e.account_id,
                role: e.role,
                email: e.email.clone(),
                password_hash: e.password_hash.clone(),
            },
            (Account::Active { account_id, role, password_hash, .. }, AccountEvent::EmailChanged(e)) => {
                Account::Active { account_id, role, email: e.email.clone(), password_hash }
            }
            (Account::Active { account_id, role, email, .. }, AccountEvent::PasswordChanged(e)) => {
                Account::Active { account_id, role, email, password_hash: e.password_hash.clone() }
            }
            (_, AccountEvent::Erased(e)) => Account::Erased { account_id: e.account_id },
            (state, _) => state,
        }
    }

    fn decide(command: &AccountCommand, state: &Account) -> Result<Vec<AccountEvent>, AccountError> {
        match (command, state) {
            (AccountCommand::Register { account_id, role, email, name, password_hash }, Account::Unregistered) => {
                Ok(vec![AccountEvent::Registered(AccountRegistered {
                    account_id: *account_id,
                    role: *role,
                    email: email.clone(),
                    name: name.clone(),
                    password_hash: password_hash.clone(),
                })])
            }
            (AccountCommand::Register { .. }, _) => Err(AccountError::AlreadyRegistered),
            // Erasing twice is fine: the second time there is nothing left to do.
            (AccountCommand::Erase, Account::Erased { .. }) => Ok(vec![]),
            (_, Account::Unregistered) => Err(AccountError::NotFound),
            (_, Account::Erased { .. }) => Err(AccountError::Erased),
            (AccountCommand::ChangeName { name }, Account::Active { .. }) => {
                Ok(vec![AccountEvent::NameChanged(AccountNameChanged { name: name.clone() })])
            }
            (AccountCommand::ChangeEmail { email, previous_email_stream, email_stream }, Account::Active { .. }) => {
                Ok(vec![AccountEvent::EmailChanged(AccountEmailChanged {
                    email: email.clone(),
                    previous_email_stream: previous_email_stream.clone(),
                    email_stream: email_stream.clone(),
                })])
            }
            (AccountCommand::ChangePassword { password_hash }, Account::Active { .. }) => {
                Ok(vec![AccountEvent::PasswordChanged(AccountPasswordChanged { password_hash: password_hash.clone() })])
            }
            (AccountCommand::Erase, Account::Active { account_id, .. }) => {
                Ok(vec![AccountEvent::Erased(AccountErased { account_id: *account_id })])
            }
        }
    }
}

/// Who holds an email address now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailRegistration {
    Free,
    Claimed { account_id: Uuid },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailCommand {
    Claim { account_id: Uuid },
    Release { account_id: Uuid },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailError {
    Taken,
}

impl Refuse for EmailError {
    fn refusal(&self) -> Refusal {
        Refusal { status: 409, code: "email_taken", message: "an account with this email already exists".into() }
    }
}

pub struct EmailDecider;

impl Decider for EmailDecider {
    type State = EmailRegistration;
    type Command = EmailCommand;
    type Event = EmailEvent;
    type Error = EmailError;

    fn initial_state() -> EmailRegistration {
        EmailRegistration::Free
    }

    fn evolve(_: EmailRegistration, event: &EmailEvent) -> EmailRegistration {
        match event {
            EmailEvent::Claimed(e) => EmailRegistration::Claimed { account_id: e.account_id },
            EmailEvent::Released(_) => EmailRegistration::Free,
        }
    }

    fn decide(command: &EmailCommand, state: &EmailRegistration) -> Result<Vec<EmailEvent>, EmailError> {
        match (command, state) {
            (EmailCommand::Claim { account_id }, EmailRegistration::Free) => {
                Ok(vec![EmailEvent::Claimed(EmailClaimed { account_id: *account_id })])
            }
            (EmailCommand::Claim { account_id }, EmailRegistration::Claimed { account_id: holder })
                if holder == account_id =>
            {
                Ok(vec![])
            }
            (EmailCommand::Claim { .. }, EmailRegistration::Claimed { .. }) => Err(EmailError::Taken),
            (EmailCommand::Release { account_id }, EmailRegistration::Claimed { account_id: holder })
                if holder == account_id =>
            {
                Ok(vec![EmailEvent::Released(EmailReleased { account_id: *account_id })])
            }
            (EmailCommand::Release { .. }, _) => Ok(vec![]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::Spec;

    fn sealed(text: &str) -> Sealed {
        Sealed { key_id: Uuid::nil(), nonce: "n".into(), ciphertext: text.into() }
    }

    fn registered(id: Uuid) -> AccountEvent {
        AccountEvent::Registered(AccountRegistered {
            account_id: id,
            role: Role::Buyer,
            email: sealed("alice@example.com"),
            name: sealed("Alice"),
            password_hash: "$argon2id$hash".into(),
        })
    }

    #[test]
    fn registering_a_new_account() {
        let id = Uuid::now_v7();
        Spec::<AccountDecider>::given(Vec::<AccountEvent>::new())
            .when(AccountCommand::Register {
                account_id: id,
                role: Role::Buyer,
                email: sealed("alice@example.com"),
                name: sealed("Alice"),
                password_hash: "$argon2id$hash".into(),
            })
            .then([registered(id)]);
    }

    #[test]
    fn registering_twice_is_refused() {
        let id = Uuid::now_v7();
        Spec::<AccountDecider>::given([registered(id)])
            .when(AccountCommand::Register {
                account_id: id,
                role: Role::Vendor,
                email: sealed("x"),
                name: sealed("x"),
                password_hash: "h".into(),
            })
            .then_error(AccountError::AlreadyRegistered);
    }

    #[test]
    fn profile_changes_need_an_active_account() {
        let id = Uuid::now_v7();
        Spec::<AccountDecider>::given([registered(id)])
            .when(AccountCommand::ChangeName { name: sealed("Alicia") })
            .then([AccountEvent::NameChanged(AccountNameChanged { name: sealed("Alicia") })]);
        Spec::<AccountDecider>::given([registered(id)])
            .when(AccountCommand::ChangePassword { password_hash: "new".into() })
            .then([AccountEvent::PasswordChanged(AccountPasswordChanged { password_hash: "new".into() })]);
        Spec::<AccountDecider>::given([registered(id)])
            .when(AccountCommand::ChangeEmail {
                email: sealed("new@example.com"),
                previous_email_stream: "email-a".into(),
                email_stream: "email-b".into(),
            })
            .then([AccountEvent::EmailChanged(AccountEmailChanged {
                email: sealed("new@example.com"),
                previous_email_stream: "email-a".into(),
                email_stream: "email-b".into(),
            })]);
        Spec::<AccountDecider>::given(Vec::<AccountEvent>::new())
            .when(AccountCommand::ChangeName { name: sealed("Nobody") })
            .then_error(AccountError::NotFound);
        Spec::<AccountDecider>::given([registered(id), AccountEvent::Erased(AccountErased { account_id: id })])
            .when(AccountCommand::ChangeName { name: sealed("Ghost") })
            .then_error(AccountError::Erased);
    }

    #[test]
    fn erasing_is_final_and_idempotent() {
        let id = Uuid::now_v7();
        Spec::<AccountDecider>::given([registered(id)])
            .when(AccountCommand::Erase)
            .then([AccountEvent::Erased(AccountErased { account_id: id })]);
        Spec::<AccountDecider>::given([registered(id), AccountEvent::Erased(AccountErased { account_id: id })])
            .when(AccountCommand::Erase)
            .then_nothing();
        Spec::<AccountDecider>::given(Vec::<AccountEvent>::new())
            .when(AccountCommand::Erase)
            .then_error(AccountError::NotFound);
    }

    #[test]
    fn an_email_belongs_to_one_account_at_a_time() {
        let (alice, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let claimed = EmailEvent::Claimed(EmailClaimed { account_id: alice });
        Spec::<EmailDecider>::given(Vec::<EmailEvent>::new())
            .when(EmailCommand::Claim { account_id: alice })
            .then([claimed.clone()]);
        Spec::<EmailDecider>::given([claimed.clone()])
            .when(EmailCommand::Claim { account_id: bob })
            .then_error(EmailError::Taken);
        Spec::<EmailDecider>::given([claimed.clone()]).when(EmailCommand::Claim { account_id: alice }).then_nothing();
        Spec::<EmailDecider>::given([claimed.clone()])
            .when(EmailCommand::Release { account_id: alice })
            .then([EmailEvent::Released(EmailReleased { account_id: alice })]);
        Spec::<EmailDecider>::given([claimed.clone()]).when(EmailCommand::Release { account_id: bob }).then_nothing();
        Spec::<EmailDecider>::given([claimed, EmailEvent::Released(EmailReleased { account_id: alice })])
            .when(EmailCommand::Claim { account_id: bob })
            .then([EmailEvent::Claimed(EmailClaimed { account_id: bob })]);
    }
}
