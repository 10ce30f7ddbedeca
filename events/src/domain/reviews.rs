//! Reviews: one per buyer and product (the stream id is derived from both), moderated by
//! admins; only approved reviews count towards a product's rating.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::domain_events;

/// Stream category of reviews: `review-<review id>`.
pub const REVIEW_CATEGORY: &str = "review";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewSubmitted {
    pub review_id: Uuid,
    pub product_id: Uuid,
    pub buyer_id: Uuid,
    pub rating: u8,
    pub text: String,
}

/// Carries the product and rating so rating projections need not look elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewApproved {
    pub review_id: Uuid,
    pub product_id: Uuid,
    pub rating: u8,
    pub moderator_id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewRejected {
    pub review_id: Uuid,
    pub product_id: Uuid,
    pub moderator_id: Uuid,
    pub reason: String,
}

domain_events! {
    /// Events of a review stream.
    pub enum ReviewEvent {
        "review.submitted" v 1 => Submitted(ReviewSubmitted),
        "review.approved" v 1 => Approved(ReviewApproved),
        "review.rejected" v 1 => Rejected(ReviewRejected),
    }
}
