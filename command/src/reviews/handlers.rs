//! Review commands: submit (buyers who received the product), moderate (admins).

use events::domain::reviews::REVIEW_CATEGORY;
use events::identity::Caller;
use events::{AppendRequest, StreamId};
use uuid::Uuid;

use super::decider::{Decision, ReviewCommand, ReviewDecider};
use crate::decider::Decider;
use crate::error::{Result, refused};
use crate::handling::{Accepted, Context, Idempotency, Meta, append_accepted, execute, fold_recorded, id_body};
use crate::orders::decider::PurchasesDecider;
use crate::orders::handlers::purchases_stream;
use crate::values::{Rating, ReviewText};

pub fn review_stream(review_id: Uuid) -> StreamId {
    StreamId::new(REVIEW_CATEGORY, review_id)
}

/// One review per buyer and product: its id follows from both.
pub fn review_id_for(buyer_id: Uuid, product_id: Uuid) -> Uuid {
    events::ids::derived("review", &[buyer_id.as_bytes(), product_id.as_bytes()])
}

pub async fn submit(
    ctx: &Context,
    caller: Caller,
    product_id: Uuid,
    rating: Rating,
    text: ReviewText,
    meta: &Meta,
    idempotency: Option<&Idempotency>,
) -> Result<Accepted> {
    let buyer_id = caller.account_id;
    let review_id = review_id_for(buyer_id, product_id);
    let metadata = meta.metadata();
    crate::retrying!(ctx, {
        let recorded = ctx.store.read_streams(&[review_stream(review_id), purchases_stream(buyer_id)]).await?;
        let review = fold_recorded::<ReviewDecider>(&recorded[0])?;
        let purchases = fold_recorded::<PurchasesDecider>(&recorded[1])?;
        let command = ReviewCommand::Submit {
            review_id,
            product_id,
            buyer_id,
            rating: rating.get(),
            text: text.to_string(),
            received: purchases.state.products.contains(&product_id),
        };
        let submitted = ReviewDecider::decide(&command, &review.state).map_err(refused)?;
        let request = AppendRequest::new().stream(
            review_stream(review_id),
            review.expected(),
            crate::handling::new_events(&submitted, &metadata),
        );
        let mut body = id_body(review_id);
        body.insert("status".into(), "pending".into());
        append_accepted(ctx, request, 201, body, idempotency).await
    })
}

pub async fn moderate(
    ctx: &Context,
    caller: Caller,
    review_id: Uuid,
    decision: Decision,
    meta: &Meta,
) -> Result<Accepted> {
    let status = match decision {
        Decision::Approve => "approved",
        Decision::Reject { .. } => "rejected",
    };
    let command = ReviewCommand::Moderate { moderator_id: caller.account_id, decision };
    execute::<ReviewDecider>(ctx, &review_stream(review_id), &command, &meta.metadata(), 200, None, |_| {
        let mut body = id_body(review_id);
        body.insert("status".into(), status.into());
        body
    })
    .await
}
