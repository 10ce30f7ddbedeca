//! Upcasting: rewriting stored JSON of an older schema version into the current shape.
//!
//! Events are immutable, schemas are not. When an event's shape changes, its schema version
//! goes up by one and an [`Upcaster`] from the old version is added to [`UPCASTERS`]. On load,
//! stored JSON passes through every step from its version to the current one, then
//! deserialises into today's struct. Keyed by `(event type, schema version)`.

use serde::de::DeserializeOwned;
use serde_json::Value;

/// One step: `event_type` at `from_version` becomes `from_version + 1`.
pub struct Upcaster {
    pub event_type: &'static str,
    pub from_version: u32,
    pub upcast: fn(Value) -> Result<Value, String>,
}

/// Every upcasting step of every event type.
pub static UPCASTERS: &[Upcaster] = &[
    // account.registered v1 carried no role: every account of that time was a buyer.
    Upcaster {
        event_type: "account.registered",
        from_version: 1,
        upcast: |mut data| {
            let object = data.as_object_mut().ok_or("account.registered v1 is not a JSON object")?;
            object.entry("role").or_insert_with(|| Value::from("buyer"));
            Ok(data)
        },
    },
];

fn step(event_type: &str, from_version: u32) -> Option<&'static Upcaster> {
    UPCASTERS.iter().find(|u| u.event_type == event_type && u.from_version == from_version)
}

/// Deserialise stored JSON of `event_type` written at `stored_version` into the payload type
/// of `current_version`, applying the upcasting chain in between.
pub fn decode_current<T: DeserializeOwned>(
    event_type: &str,
    stored_version: u32,
    current_version: u32,
    data: &str,
) -> Result<T, String> {
    if stored_version == current_version {
        return serde_json::from_str(data).map_err(|e| format!("invalid JSON for this type: {e}"));
    }
    if stored_version > current_version {
        return Err(format!(
            "written by a newer schema (v{stored_version}) than this build knows (v{current_version})"
        ));
    }
    let mut value: Value = serde_json::from_str(data).map_err(|e| format!("invalid JSON: {e}"))?;
    for version in stored_version..current_version {
        let upcaster = step(event_type, version)
            .ok_or_else(|| format!("no upcaster from schema v{version} to v{}", version + 1))?;
        value = (upcaster.upcast)(value).map_err(|e| format!("upcasting from v{version}: {e}"))?;
    }
    serde_json::from_value(value).map_err(|e| format!("invalid JSON after upcasting: {e}"))
}
