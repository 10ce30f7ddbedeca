//! The Decider: pure domain logic, one per aggregate.
//!
//! `decide(command, state) -> events` and `evolve(state, event) -> state`, with no I/O: time,
//! ids and outside facts are inside the command, put there by the handler. Tested as
//! given-events / when-command / then-events with [`Spec`].

use std::fmt::Debug;

pub trait Decider {
    type State;
    type Command;
    type Event: Clone + Debug + PartialEq;
    type Error: Debug + PartialEq;

    fn initial_state() -> Self::State;
    fn evolve(state: Self::State, event: &Self::Event) -> Self::State;
    fn decide(command: &Self::Command, state: &Self::State) -> Result<Vec<Self::Event>, Self::Error>;

    /// The state after `events`, from the beginning.
    fn fold<'a>(events: impl IntoIterator<Item = &'a Self::Event>) -> Self::State
    where
        Self::Event: 'a,
    {
        events.into_iter().fold(Self::initial_state(), Self::evolve)
    }
}

/// `Spec::<D>::given(events).when(command).then(events)`: a decider test that reads like
/// the business rule it checks.
pub struct Spec<D: Decider> {
    given: Vec<D::Event>,
}

impl<D: Decider> Spec<D> {
    pub fn given(events: impl IntoIterator<Item = impl Into<D::Event>>) -> Self {
        Self { given: events.into_iter().map(Into::into).collect() }
    }

    pub fn when(self, command: D::Command) -> Decided<D> {
        let state = D::fold(&self.given);
        Decided { result: D::decide(&command, &state), command }
    }
}

pub struct Decided<D: Decider> {
    command: D::Command,
    result: Result<Vec<D::Event>, D::Error>,
}

impl<D: Decider> Decided<D>
where
    D::Command: Debug,
{
    #[track_caller]
    pub fn then(self, expected: impl IntoIterator<Item = impl Into<D::Event>>) {
        let expected: Vec<D::Event> = expected.into_iter().map(Into::into).collect();
        match self.result {
            Ok(events) => assert_eq!(events, expected, "events decided for {:?}", self.command),
            Err(error) => panic!("{:?} was refused with {error:?}, expected events {expected:?}", self.command),
        }
    }

    #[track_caller]
    pub fn then_nothing(self) {
        match self.result {
            Ok(events) => assert!(events.is_empty(), "{:?} decided {events:?}, expected nothing", self.command),
            Err(error) => panic!("{:?} was refused with {error:?}, expected no events", self.command),
        }
    }

    #[track_caller]
    pub fn then_error(self, expected: D::Error) {
        match self.result {
            Ok(events) => panic!("{:?} decided {events:?}, expected refusal {expected:?}", self.command),
            Err(error) => assert_eq!(error, expected, "refusal of {:?}", self.command),
        }
    }

    /// The decided events, for checks that `then` cannot express (generated values).
    #[track_caller]
    pub fn events(self) -> Vec<D::Event> {
        match self.result {
            Ok(events) => events,
            Err(error) => panic!("{:?} was refused with {error:?}", self.command),
        }
    }
}
