//! Ids derived from other ids, so that a step repeated (a retried command, a process manager
//! replaying an event) produces the same id and therefore appends nothing new.

use uuid::Uuid;

/// Namespace of all Agora-derived ids (UUID v5).
const NAMESPACE: Uuid = Uuid::from_u128(0x6167_6f72_612d_4964_8000_0000_0000_0001);

/// A stable id for `kind` and `parts`: the same inputs give the same id, always.
pub fn derived(kind: &str, parts: &[&[u8]]) -> Uuid {
    let mut name = Vec::with_capacity(kind.len() + parts.iter().map(|p| p.len() + 1).sum::<usize>());
    name.extend_from_slice(kind.as_bytes());
    for part in parts {
        // Length-prefixed, so ("ab", "c") and ("a", "bc") never collide.
        name.extend_from_slice(&(part.len() as u32).to_be_bytes());
        name.extend_from_slice(part);
    }
    Uuid::new_v5(&NAMESPACE, &name)
}

/// The id of the event a process manager appends in reaction to `trigger` (step `n`).
pub fn reaction_event(trigger: Uuid, step: &str, n: usize) -> Uuid {
    derived("reaction", &[trigger.as_bytes(), step.as_bytes(), &n.to_be_bytes()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_inputs_same_id_different_inputs_different_id() {
        let a = Uuid::now_v7();
        let b = Uuid::now_v7();
        assert_eq!(derived("review", &[a.as_bytes(), b.as_bytes()]), derived("review", &[a.as_bytes(), b.as_bytes()]));
        assert_ne!(derived("review", &[a.as_bytes(), b.as_bytes()]), derived("review", &[b.as_bytes(), a.as_bytes()]));
        assert_ne!(derived("ab", &[b"c"]), derived("a", &[b"bc"]));
        assert_ne!(derived("x", &[b"ab", b"c"]), derived("x", &[b"a", b"bc"]));
        assert_eq!(reaction_event(a, "confirm", 0), reaction_event(a, "confirm", 0));
        assert_ne!(reaction_event(a, "confirm", 0), reaction_event(a, "confirm", 1));
    }
}
