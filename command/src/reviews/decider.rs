//! Reviews, as a pure decider: one per buyer and product, only after delivery, moderated once.

use events::domain::reviews::{ReviewApproved, ReviewEvent, ReviewRejected, ReviewSubmitted};
use uuid::Uuid;

use crate::decider::Decider;
use crate::error::{Refusal, Refuse};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Review {
    NotSubmitted,
    Pending { review_id: Uuid, product_id: Uuid, rating: u8 },
    Approved,
    Rejected,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Reject { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReviewCommand {
    /// `received`: the buyer's purchases include the product (a delivered order).
    Submit {
        review_id: Uuid,
        product_id: Uuid,
        buyer_id: Uuid,
        rating: u8,
        text: String,
        received: bool,
    },
    Moderate {
        moderator_id: Uuid,
        decision: Decision,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReviewError {
    NotReceived,
    AlreadyReviewed,
    NotFound,
    AlreadyModerated,
}

impl Refuse for ReviewError {
    fn refusal(&self) -> Refusal {
        let (status, code, message) = match self {
            ReviewError::NotReceived => {
                (403, "not_purchased", "only buyers who received this product can review it".to_owned())
            }
            ReviewError::AlreadyReviewed => {
                (409, "already_reviewed", "you have already reviewed this product".to_owned())
            }
            ReviewError::NotFound => (404, "not_found", "review was not found".to_owned()),
            ReviewError::AlreadyModerated => (409, "already_moderated", "this review was already moderated".to_owned()),
        };
        Refusal { status, code, message }
    }
}

pub struct ReviewDecider;

impl Decider for ReviewDecider {
    type State = Review;
    type Command = ReviewCommand;
    type Event = ReviewEvent;
    type Error = ReviewError;

    fn initial_state() -> Review {
        Review::NotSubmitted
    }

    /// Every review event moves a review on, whatever came before.
    fn evolve(_: Review, event: &ReviewEvent) -> Review {
        match event {
            ReviewEvent::Submitted(e) => {
                Review::Pending { review_id: e.review_id, product_id: e.product_id, rating: e.rating }
            }
            ReviewEvent::Approved(_) => Review::Approved,
            ReviewEvent::Rejected(_) => Review::Rejected,
        }
    }

    fn decide(command: &ReviewCommand, state: &Review) -> Result<Vec<ReviewEvent>, ReviewError> {
        match (command, state) {
            (ReviewCommand::Submit { received: false, .. }, _) => Err(ReviewError::NotReceived),
            (ReviewCommand::Submit { review_id, product_id, buyer_id, rating, text, .. }, Review::NotSubmitted) => {
                Ok(vec![ReviewEvent::Submitted(ReviewSubmitted {
                    review_id: *review_id,
                    product_id: *product_id,
                    buyer_id: *buyer_id,
                    rating: *rating,
                    text: text.clone(),
                })])
            }
            (ReviewCommand::Submit { .. }, _) => Err(ReviewError::AlreadyReviewed),
            (ReviewCommand::Moderate { .. }, Review::NotSubmitted) => Err(ReviewError::NotFound),
            (ReviewCommand::Moderate { moderator_id, decision }, Review::Pending { review_id, product_id, rating }) => {
                Ok(vec![match decision {
                    Decision::Approve => ReviewEvent::Approved(ReviewApproved {
                        review_id: *review_id,
                        product_id: *product_id,
                        rating: *rating,
                        moderator_id: *moderator_id,
                    }),
                    Decision::Reject { reason } => ReviewEvent::Rejected(ReviewRejected {
                        review_id: *review_id,
                        product_id: *product_id,
                        moderator_id: *moderator_id,
                        reason: reason.clone(),
                    }),
                }])
            }
            (ReviewCommand::Moderate { .. }, _) => Err(ReviewError::AlreadyModerated),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::Spec;

    fn submit(received: bool) -> ReviewCommand {
        ReviewCommand::Submit {
            review_id: Uuid::from_u128(1),
            product_id: Uuid::from_u128(2),
            buyer_id: Uuid::from_u128(3),
            rating: 4,
            text: "Sturdy".into(),
            received,
        }
    }

    fn submitted() -> ReviewEvent {
        ReviewEvent::Submitted(ReviewSubmitted {
            review_id: Uuid::from_u128(1),
            product_id: Uuid::from_u128(2),
            buyer_id: Uuid::from_u128(3),
            rating: 4,
            text: "Sturdy".into(),
        })
    }

    fn moderate(decision: Decision) -> ReviewCommand {
        ReviewCommand::Moderate { moderator_id: Uuid::from_u128(9), decision }
    }

    #[test]
    fn only_buyers_who_received_the_product_review_it_once() {
        Spec::<ReviewDecider>::given(Vec::<ReviewEvent>::new()).when(submit(true)).then([submitted()]);
        Spec::<ReviewDecider>::given(Vec::<ReviewEvent>::new())
            .when(submit(false))
            .then_error(ReviewError::NotReceived);
        Spec::<ReviewDecider>::given([submitted()]).when(submit(true)).then_error(ReviewError::AlreadyReviewed);
    }

    #[test]
    fn moderation_is_final() {
        let approved = ReviewEvent::Approved(ReviewApproved {
            review_id: Uuid::from_u128(1),
            product_id: Uuid::from_u128(2),
            rating: 4,
            moderator_id: Uuid::from_u128(9),
        });
        Spec::<ReviewDecider>::given([submitted()]).when(moderate(Decision::Approve)).then([approved.clone()]);
        Spec::<ReviewDecider>::given([submitted()]).when(moderate(Decision::Reject { reason: "spam".into() })).then([
            ReviewEvent::Rejected(ReviewRejected {
                review_id: Uuid::from_u128(1),
                product_id: Uuid::from_u128(2),
                moderator_id: Uuid::from_u128(9),
                reason: "spam".into(),
            }),
        ]);
        Spec::<ReviewDecider>::given([submitted(), approved])
            .when(moderate(Decision::Reject { reason: "late".into() }))
            .then_error(ReviewError::AlreadyModerated);
        Spec::<ReviewDecider>::given(Vec::<ReviewEvent>::new())
            .when(moderate(Decision::Approve))
            .then_error(ReviewError::NotFound);
    }
}
