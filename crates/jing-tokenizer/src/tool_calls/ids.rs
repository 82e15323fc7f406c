//! Tool-call ids: `call_` + 24 hex digits, reproducible from a seed.

/// A source of tool-call ids.
///
/// Each id is `call_` followed by 24 lowercase hex digits mixed (SplitMix64)
/// from the seed and a counter, so ids differ within a response and, given
/// different seeds, between responses, while a fixed seed gives a fixed
/// sequence for tests. A server seeds it per request, e.g. from its random
/// request id. Not cryptographic: ids are labels, not secrets.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ToolCallIds {
    seed: u64,
    counter: u64,
}

impl ToolCallIds {
    /// An id sequence for `seed`.
    pub fn new(seed: u64) -> Self {
        Self { seed, counter: 0 }
    }

    /// The next id.
    pub fn next_id(&mut self) -> String {
        let base = mix(self.seed ^ mix(self.counter.wrapping_add(0x5EED)));
        self.counter = self.counter.wrapping_add(1);
        let low = mix(base) & 0xFFFF_FFFF;
        format!("call_{base:016x}{low:08x}")
    }
}

/// SplitMix64's output function.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_well_formed_distinct_and_reproducible() {
        let mut ids = ToolCallIds::new(42);
        let list: Vec<String> = (0..1000).map(|_| ids.next_id()).collect();
        for id in &list {
            assert_eq!(id.len(), 5 + 24);
            assert!(id.starts_with("call_"));
            assert!(id[5..].bytes().all(|b| b.is_ascii_hexdigit()));
        }
        assert_eq!(list.iter().collect::<HashSet<_>>().len(), list.len());
        assert_eq!(ToolCallIds::new(42).next_id(), list[0]);
        assert_ne!(ToolCallIds::new(43).next_id(), list[0]);
    }
}
