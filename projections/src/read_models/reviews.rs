//! `reviews`: every review with its moderation state. Public reads filter `approved`;
//! admins read the `pending` queue.

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use events::RecordedEvent;
use events::domain::reviews::ReviewEvent;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::Result;
use crate::projection::Projection;

pub struct Reviews;

const DDL: &str = "
create table review (
    review_id     uuid primary key,
    product_id    uuid not null,
    buyer_id      uuid not null,
    rating        smallint not null,
    text          text not null,
    -- pending, approved, rejected
    status        text not null,
    submitted_at  timestamptz not null,
    moderated_at  timestamptz,
    moderator_id  uuid,
    reason        text
);
create index review_product_approved on review (product_id, submitted_at desc) where status = 'approved';
create index review_pending on review (submitted_at) where status = 'pending';
";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewRow {
    pub review_id: Uuid,
    pub product_id: Uuid,
    pub buyer_id: Uuid,
    pub rating: i16,
    pub text: String,
    pub status: String,
    pub submitted_at: DateTime<Utc>,
    pub moderated_at: Option<DateTime<Utc>>,
    pub moderator_id: Option<Uuid>,
    pub reason: Option<String>,
}

/// The pure part.
#[derive(Debug, Default)]
pub struct ReviewsChanges {
    pub reviews: HashMap<Uuid, ReviewRow>,
    pub changed: BTreeSet<Uuid>,
}

impl ReviewsChanges {
    pub fn apply(&mut self, event: &RecordedEvent, decoded: ReviewEvent) {
        let at = event.recorded_at;
        match decoded {
            ReviewEvent::Submitted(submitted) => {
                self.changed.insert(submitted.review_id);
                self.reviews.insert(
                    submitted.review_id,
                    ReviewRow {
                        review_id: submitted.review_id,
                        product_id: submitted.product_id,
                        buyer_id: submitted.buyer_id,
                        rating: i16::from(submitted.rating),
                        text: submitted.text,
                        status: "pending".into(),
                        submitted_at: at,
                        moderated_at: None,
                        moderator_id: None,
                        reason: None,
                    },
                );
            }
            ReviewEvent::Approved(approved) => {
                if let Some(review) = self.reviews.get_mut(&approved.review_id) {
                    review.status = "approved".into();
                    review.moderated_at = Some(at);
                    review.moderator_id = Some(approved.moderator_id);
                    review.reason = None;
                    self.changed.insert(approved.review_id);
                }
            }
            ReviewEvent::Rejected(rejected) => {
                if let Some(review) = self.reviews.get_mut(&rejected.review_id) {
                    review.status = "rejected".into();
                    review.moderated_at = Some(at);
                    review.moderator_id = Some(rejected.moderator_id);
                    review.reason = Some(rejected.reason);
                    self.changed.insert(rejected.review_id);
                }
            }
        }
    }
}

#[async_trait]
impl Projection for Reviews {
    fn name(&self) -> &'static str {
        "reviews"
    }

    fn version(&self) -> u32 {
        1
    }

    fn ddl(&self) -> &'static str {
        DDL
    }

    fn tables(&self) -> &'static [&'static str] {
        &["review"]
    }

    fn event_types(&self) -> &'static [&'static str] {
        &["review.submitted", "review.approved", "review.rejected"]
    }

    async fn apply(&self, conn: &mut PgConnection, events: &[RecordedEvent]) -> Result<()> {
        let decoded = events.iter().map(|e| e.decode::<ReviewEvent>()).collect::<Result<Vec<_>, _>>()?;
        let ids: BTreeSet<Uuid> = decoded
            .iter()
            .filter_map(|d| match d {
                ReviewEvent::Approved(a) => Some(a.review_id),
                ReviewEvent::Rejected(r) => Some(r.review_id),
                ReviewEvent::Submitted(_) => None,
            })
            .collect();
        let mut changes = ReviewsChanges {
            reviews: sql::load(conn, &ids.into_iter().collect::<Vec<_>>()).await?,
            ..Default::default()
        };
        for (event, decoded) in events.iter().zip(decoded) {
            changes.apply(event, decoded);
        }
        sql::save(conn, &changes).await
    }
}

mod sql {
    use super::*;

    fn review(row: PgRow) -> sqlx::Result<ReviewRow> {
        Ok(ReviewRow {
            review_id: row.try_get(0)?,
            product_id: row.try_get(1)?,
            buyer_id: row.try_get(2)?,
            rating: row.try_get(3)?,
            text: row.try_get(4)?,
            status: row.try_get(5)?,
            submitted_at: row.try_get(6)?,
            moderated_at: row.try_get(7)?,
            moderator_id: row.try_get(8)?,
            reason: row.try_get(9)?,
        })
    }

    pub async fn load(conn: &mut PgConnection, ids: &[Uuid]) -> Result<HashMap<Uuid, ReviewRow>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let rows = sqlx::query(
            "select review_id, product_id, buyer_id, rating, text, status, submitted_at, moderated_at, \
                    moderator_id, reason from review where review_id = any($1)",
        )
        .bind(ids)
        .try_map(review)
        .fetch_all(&mut *conn)
        .await?;
        Ok(rows.into_iter().map(|r| (r.review_id, r)).collect())
    }

    pub async fn save(conn: &mut PgConnection, changes: &ReviewsChanges) -> Result<()> {
        let rows: Vec<&ReviewRow> = changes.changed.iter().filter_map(|id| changes.reviews.get(id)).collect();
        if rows.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "insert into review (review_id, product_id, buyer_id, rating, text, status, submitted_at, moderated_at, \
                                 moderator_id, reason) \
             select * from unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::smallint[], $5::text[], $6::text[], \
                                  $7::timestamptz[], $8::timestamptz[], $9::uuid[], $10::text[]) \
             on conflict (review_id) do update set product_id = excluded.product_id, buyer_id = excluded.buyer_id, \
                rating = excluded.rating, text = excluded.text, status = excluded.status, \
                submitted_at = excluded.submitted_at, moderated_at = excluded.moderated_at, \
                moderator_id = excluded.moderator_id, reason = excluded.reason",
        )
        .bind(rows.iter().map(|r| r.review_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.product_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.buyer_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.rating).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.text.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.status.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.submitted_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.moderated_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.moderator_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.reason.as_deref()).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read_models::testing::{at, recorded};
    use events::domain::reviews::{ReviewApproved, ReviewRejected, ReviewSubmitted};

    #[test]
    fn reviews_wait_in_the_queue_until_moderated() {
        let (r1, r2, product, buyer, admin) =
            (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let mut changes = ReviewsChanges::default();
        let mut apply = |review: Uuid, version: u64, event: ReviewEvent| {
            changes.apply(&recorded("review", review, version, &event), event);
        };
        for review in [r1, r2] {
            apply(
                review,
                1,
                ReviewEvent::Submitted(ReviewSubmitted {
                    review_id: review,
                    product_id: product,
                    buyer_id: buyer,
                    rating: 4,
                    text: "good".into(),
                }),
            );
        }
        apply(
            r1,
            2,
            ReviewEvent::Approved(ReviewApproved {
                review_id: r1,
                product_id: product,
                rating: 4,
                moderator_id: admin,
            }),
        );
        apply(
            r2,
            3,
            ReviewEvent::Rejected(ReviewRejected {
                review_id: r2,
                product_id: product,
                moderator_id: admin,
                reason: "off-topic".into(),
            }),
        );
        let first = &changes.reviews[&r1];
        assert_eq!(
            (first.status.as_str(), first.moderated_at, first.moderator_id),
            ("approved", Some(at(2)), Some(admin))
        );
        let second = &changes.reviews[&r2];
        assert_eq!(
            (second.status.as_str(), second.reason.as_deref(), second.submitted_at),
            ("rejected", Some("off-topic"), at(1))
        );
    }
}
