//! `deliveries`: deliveries and their tracking history.

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use events::RecordedEvent;
use events::domain::deliveries::DeliveryEvent;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::Result;
use crate::projection::Projection;

pub struct Deliveries;

const DDL: &str = "
create table delivery (
    delivery_id     uuid primary key,
    order_id        uuid not null,
    buyer_id        uuid not null,
    carrier_id      uuid,
    -- created, then the status of the latest tracking event
    status          text not null,
    location        text,
    created_at      timestamptz not null,
    updated_at      timestamptz not null,
    -- Internal: entries in delivery_tracking.
    tracking_count  integer not null
) with (fillfactor = 70);
create index delivery_order on delivery (order_id);
create table delivery_tracking (
    delivery_id  uuid not null,
    seq          integer not null,
    status       text not null,
    location     text not null,
    carrier_id   uuid not null,
    occurred_at  timestamptz not null,
    recorded_at  timestamptz not null,
    primary key (delivery_id, seq)
);
";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRow {
    pub delivery_id: Uuid,
    pub order_id: Uuid,
    pub buyer_id: Uuid,
    pub carrier_id: Option<Uuid>,
    pub status: String,
    pub location: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub tracking_count: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackingRow {
    pub delivery_id: Uuid,
    pub seq: i32,
    pub status: String,
    pub location: String,
    pub carrier_id: Uuid,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
}

/// The pure part.
#[derive(Debug, Default)]
pub struct DeliveriesChanges {
    pub deliveries: HashMap<Uuid, DeliveryRow>,
    pub changed: BTreeSet<Uuid>,
    pub tracking: Vec<TrackingRow>,
}

impl DeliveriesChanges {
    pub fn apply(&mut self, event: &RecordedEvent, decoded: DeliveryEvent) {
        let at = event.recorded_at;
        match decoded {
            DeliveryEvent::Created(created) => {
                self.deliveries.insert(
                    created.delivery_id,
                    DeliveryRow {
                        delivery_id: created.delivery_id,
                        order_id: created.order_id,
                        buyer_id: created.buyer_id,
                        carrier_id: None,
                        status: "created".into(),
                        location: None,
                        created_at: at,
                        updated_at: at,
                        tracking_count: 0,
                    },
                );
                self.changed.insert(created.delivery_id);
            }
            DeliveryEvent::Tracked(tracked) => {
                let Some(delivery) = self.deliveries.get_mut(&tracked.delivery_id) else {
                    tracing::debug!(delivery_id = %tracked.delivery_id, "tracking of an unknown delivery");
                    return;
                };
                delivery.carrier_id = Some(tracked.carrier_id);
                delivery.status = tracked.status.as_str().to_owned();
                delivery.location = Some(tracked.location.clone());
                delivery.updated_at = at;
                delivery.tracking_count += 1;
                self.tracking.push(TrackingRow {
                    delivery_id: tracked.delivery_id,
                    seq: delivery.tracking_count,
                    status: tracked.status.as_str().to_owned(),
                    location: tracked.location,
                    carrier_id: tracked.carrier_id,
                    occurred_at: tracked.occurred_at,
                    recorded_at: at,
                });
                self.changed.insert(tracked.delivery_id);
            }
        }
    }
}

#[async_trait]
impl Projection for Deliveries {
    fn name(&self) -> &'static str {
        "deliveries"
    }

    fn version(&self) -> u32 {
        1
    }

    fn ddl(&self) -> &'static str {
        DDL
    }

    fn tables(&self) -> &'static [&'static str] {
        &["delivery", "delivery_tracking"]
    }

    fn event_types(&self) -> &'static [&'static str] {
        &["delivery.created", "delivery.tracked"]
    }

    async fn apply(&self, conn: &mut PgConnection, events: &[RecordedEvent]) -> Result<()> {
        let decoded = events.iter().map(|e| e.decode::<DeliveryEvent>()).collect::<Result<Vec<_>, _>>()?;
        let ids: BTreeSet<Uuid> = decoded
            .iter()
            .filter_map(|d| match d {
                DeliveryEvent::Tracked(t) => Some(t.delivery_id),
                DeliveryEvent::Created(_) => None,
            })
            .collect();
        let mut changes = DeliveriesChanges {
            deliveries: sql::load(conn, &ids.into_iter().collect::<Vec<_>>()).await?,
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

    fn delivery(row: PgRow) -> sqlx::Result<DeliveryRow> {
        Ok(DeliveryRow {
            delivery_id: row.try_get(0)?,
            order_id: row.try_get(1)?,
            buyer_id: row.try_get(2)?,
            carrier_id: row.try_get(3)?,
            status: row.try_get(4)?,
            location: row.try_get(5)?,
            created_at: row.try_get(6)?,
            updated_at: row.try_get(7)?,
            tracking_count: row.try_get(8)?,
        })
    }

    pub async fn load(conn: &mut PgConnection, ids: &[Uuid]) -> Result<HashMap<Uuid, DeliveryRow>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let rows = sqlx::query(
            "select delivery_id, order_id, buyer_id, carrier_id, status, location, created_at, updated_at, \
                    tracking_count from delivery where delivery_id = any($1)",
        )
        .bind(ids)
        .try_map(delivery)
        .fetch_all(&mut *conn)
        .await?;
        Ok(rows.into_iter().map(|d| (d.delivery_id, d)).collect())
    }

    pub async fn save(conn: &mut PgConnection, changes: &DeliveriesChanges) -> Result<()> {
        let rows: Vec<&DeliveryRow> = changes.changed.iter().filter_map(|id| changes.deliveries.get(id)).collect();
        if !rows.is_empty() {
            sqlx::query(
                "insert into delivery (delivery_id, order_id, buyer_id, carrier_id, status, location, created_at, \
                                       updated_at, tracking_count) \
                 select * from unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], \
                                      $7::timestamptz[], $8::timestamptz[], $9::int[]) \
                 on conflict (delivery_id) do update set order_id = excluded.order_id, buyer_id = excluded.buyer_id, \
                    carrier_id = excluded.carrier_id, status = excluded.status, location = excluded.location, \
                    created_at = excluded.created_at, updated_at = excluded.updated_at, \
                    tracking_count = excluded.tracking_count",
            )
            .bind(rows.iter().map(|d| d.delivery_id).collect::<Vec<_>>())
            .bind(rows.iter().map(|d| d.order_id).collect::<Vec<_>>())
            .bind(rows.iter().map(|d| d.buyer_id).collect::<Vec<_>>())
            .bind(rows.iter().map(|d| d.carrier_id).collect::<Vec<_>>())
            .bind(rows.iter().map(|d| d.status.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|d| d.location.as_deref()).collect::<Vec<_>>())
            .bind(rows.iter().map(|d| d.created_at).collect::<Vec<_>>())
            .bind(rows.iter().map(|d| d.updated_at).collect::<Vec<_>>())
            .bind(rows.iter().map(|d| d.tracking_count).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
        }
        let tracking = &changes.tracking;
        if !tracking.is_empty() {
            sqlx::query(
                "insert into delivery_tracking (delivery_id, seq, status, location, carrier_id, occurred_at, recorded_at) \
                 select * from unnest($1::uuid[], $2::int[], $3::text[], $4::text[], $5::uuid[], \
                                      $6::timestamptz[], $7::timestamptz[])",
            )
            .bind(tracking.iter().map(|t| t.delivery_id).collect::<Vec<_>>())
            .bind(tracking.iter().map(|t| t.seq).collect::<Vec<_>>())
            .bind(tracking.iter().map(|t| t.status.as_str()).collect::<Vec<_>>())
            .bind(tracking.iter().map(|t| t.location.as_str()).collect::<Vec<_>>())
            .bind(tracking.iter().map(|t| t.carrier_id).collect::<Vec<_>>())
            .bind(tracking.iter().map(|t| t.occurred_at).collect::<Vec<_>>())
            .bind(tracking.iter().map(|t| t.recorded_at).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read_models::testing::{at, recorded};
    use events::domain::deliveries::{DeliveryCreated, DeliveryTracked, TrackingStatus};
    use events::privacy::Sealed;

    #[test]
    fn tracking_events_move_the_status_and_build_the_history() {
        let (delivery, order, buyer, carrier) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let mut changes = DeliveriesChanges::default();
        let created = DeliveryEvent::Created(DeliveryCreated {
            delivery_id: delivery,
            order_id: order,
            buyer_id: buyer,
            shipping_address: Sealed { key_id: buyer, nonce: String::new(), ciphertext: String::new() },
        });
        changes.apply(&recorded("delivery", delivery, 1, &created), created);
        for (version, status, place) in [
            (2, TrackingStatus::PickedUp, "Lyon hub"),
            (3, TrackingStatus::FailedAttempt, "Paris 11e"),
            (4, TrackingStatus::Delivered, "Paris 11e"),
        ] {
            let tracked = DeliveryEvent::Tracked(DeliveryTracked {
                delivery_id: delivery,
                order_id: order,
                carrier_id: carrier,
                status,
                location: place.into(),
                occurred_at: at(version * 10),
            });
            changes.apply(&recorded("delivery", delivery, version, &tracked), tracked);
        }
        let row = &changes.deliveries[&delivery];
        assert_eq!(
            (row.status.as_str(), row.carrier_id, row.location.as_deref(), row.tracking_count),
            ("delivered", Some(carrier), Some("Paris 11e"), 3)
        );
        assert_eq!((row.created_at, row.updated_at), (at(1), at(4)));
        let history: Vec<(i32, &str, DateTime<Utc>)> =
            changes.tracking.iter().map(|t| (t.seq, t.status.as_str(), t.occurred_at)).collect();
        assert_eq!(history, [(1, "picked_up", at(20)), (2, "failed_attempt", at(30)), (3, "delivered", at(40))]);
    }
}
