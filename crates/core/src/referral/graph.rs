//! Walks of the referral graph: each member has at most one referrer, so the
//! graph is a forest and "up the chain" is a path.

use crate::ids::MemberId;
use std::collections::HashMap;

/// The referrer of `start`, then theirs, and so on, at most `depth` long.
/// Stops at a member already seen, so a corrupt cycle cannot loop.
pub fn chain(
    parents: &HashMap<MemberId, MemberId>,
    start: MemberId,
    depth: usize,
) -> Vec<MemberId> {
    let mut out: Vec<MemberId> = Vec::new();
    let mut at = start;
    while out.len() < depth {
        match parents.get(&at) {
            Some(&p) if p != start && !out.contains(&p) => {
                out.push(p);
                at = p;
            }
            _ => break,
        }
    }
    out
}

/// Whether binding `friend` to `referrer` closes a cycle: the friend is the
/// referrer, or one of the referrer's referrers up the chain.
pub fn closes_cycle(
    parents: &HashMap<MemberId, MemberId>,
    referrer: MemberId,
    friend: MemberId,
) -> bool {
    referrer == friend || chain(parents, referrer, usize::MAX).contains(&friend)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(n: u8) -> MemberId {
        MemberId::from_parts(u64::from(n), [n; 10])
    }

    #[test]
    fn chains_and_cycles() {
        // 1 referred 2, 2 referred 3, 3 referred 4.
        let parents: HashMap<_, _> = [(m(2), m(1)), (m(3), m(2)), (m(4), m(3))].into();
        assert_eq!(chain(&parents, m(4), 2), vec![m(3), m(2)]);
        assert_eq!(chain(&parents, m(4), 10), vec![m(3), m(2), m(1)]);
        assert!(
            closes_cycle(&parents, m(4), m(1)),
            "4 referring their great-grand-referrer"
        );
        assert!(closes_cycle(&parents, m(4), m(4)));
        assert!(!closes_cycle(&parents, m(1), m(5)));
        assert!(
            !closes_cycle(&parents, m(2), m(4)),
            "a descendant is not a cycle, just odd"
        );
    }

    proptest! {
        /// A forest built only by bindings that close no cycle stays a
        /// forest: every chain ends.
        #[test]
        fn refusing_cycles_keeps_a_forest(edges in proptest::collection::vec((0u8..12, 0u8..12), 0..60)) {
            let mut parents = HashMap::new();
            for (r, f) in edges {
                let (r, f) = (m(r), m(f));
                if !parents.contains_key(&f) && !closes_cycle(&parents, r, f) {
                    parents.insert(f, r);
                }
            }
            for &start in parents.keys() {
                let c = chain(&parents, start, usize::MAX);
                prop_assert!(c.len() <= 12);
                prop_assert!(!c.contains(&start));
                prop_assert!(!parents.contains_key(c.last().unwrap()), "chain stopped early");
            }
        }
    }
}
