//! KIP-848 server-side assignors: `uniform` (balanced and sticky) and
//! `range` (contiguous ranges per topic, as the classic range assignor).
//! Both are pure functions of the members' subscriptions, their current
//! partitions and the topics' partition counts.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use crate::api::Assignment;

pub const UNIFORM: &str = "uniform";
pub const RANGE: &str = "range";
/// The assignors a member may ask for (`group.remote.assignor`).
pub const ASSIGNORS: &[&str] = &[UNIFORM, RANGE];

#[derive(Debug, Clone)]
pub struct MemberSpec {
    pub member_id: String,
    /// Topics the member subscribes to that exist.
    pub topics: BTreeSet<Uuid>,
    /// What the member owns now (for stickiness).
    pub current: Assignment,
}

/// Runs the named assignor (`uniform` for an unknown name).
pub fn assign(
    name: &str,
    members: &[MemberSpec],
    partitions: &BTreeMap<Uuid, u32>,
) -> BTreeMap<String, Assignment> {
    match name {
        RANGE => range(members, partitions),
        _ => uniform(members, partitions),
    }
}

/// Every partition goes to one subscribed member; counts differ by at most
/// one among members with the same subscriptions; a member keeps what it
/// owns as far as that balance allows, so a rebalance moves few partitions.
pub fn uniform(
    members: &[MemberSpec],
    partitions: &BTreeMap<Uuid, u32>,
) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = members
        .iter()
        .map(|m| (m.member_id.clone(), Assignment::new()))
        .collect();
    if members.is_empty() {
        return out;
    }
    let wanted: Vec<(Uuid, i32)> = partitions
        .iter()
        .filter(|(t, _)| members.iter().any(|m| m.topics.contains(*t)))
        .flat_map(|(t, n)| (0..*n as i32).map(move |p| (*t, p)))
        .collect();
    let total = wanted.len();
    let floor = total / members.len();
    let mut extra = total % members.len();
    let mut counts: BTreeMap<&str, usize> =
        members.iter().map(|m| (m.member_id.as_str(), 0)).collect();
    let mut taken: BTreeSet<(Uuid, i32)> = BTreeSet::new();
    // Stickiness: each member keeps up to the floor of what it owns, then
    // members owning more keep one extra while extras last.
    let owned = |m: &MemberSpec| -> Vec<(Uuid, i32)> {
        m.current
            .iter()
            .filter(|(t, _)| m.topics.contains(*t))
            .flat_map(|(t, ps)| {
                let n = partitions.get(t).copied().unwrap_or(0) as i32;
                ps.iter().filter(move |p| **p < n).map(move |p| (*t, *p))
            })
            .collect()
    };
    for pass in 0..2 {
        for m in members {
            let limit = if pass == 0 { floor } else { floor + 1 };
            if pass == 1 && extra == 0 {
                break;
            }
            let have = counts[m.member_id.as_str()];
            if have >= limit {
                continue;
            }
            for tp in owned(m) {
                if counts[m.member_id.as_str()] >= limit {
                    break;
                }
                if taken.insert(tp) {
                    out.get_mut(&m.member_id)
                        .expect("every member has an entry")
                        .entry(tp.0)
                        .or_default()
                        .push(tp.1);
                    *counts.get_mut(m.member_id.as_str()).expect("entry") += 1;
                    if pass == 1 {
                        extra -= 1;
                        break;
                    }
                }
            }
        }
    }
    // The rest go to the least loaded subscribed member.
    for tp in wanted {
        if taken.contains(&tp) {
            continue;
        }
        let best = members
            .iter()
            .filter(|m| m.topics.contains(&tp.0))
            .min_by_key(|m| (counts[m.member_id.as_str()], m.member_id.as_str()));
        if let Some(m) = best {
            out.get_mut(&m.member_id)
                .expect("entry")
                .entry(tp.0)
                .or_default()
                .push(tp.1);
            *counts.get_mut(m.member_id.as_str()).expect("entry") += 1;
        }
    }
    for a in out.values_mut() {
        for ps in a.values_mut() {
            ps.sort_unstable();
        }
    }
    out
}

/// For each topic, its subscribed members (by member id) get contiguous
/// ranges; the first `partitions % members` get one more.
pub fn range(
    members: &[MemberSpec],
    partitions: &BTreeMap<Uuid, u32>,
) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = members
        .iter()
        .map(|m| (m.member_id.clone(), Assignment::new()))
        .collect();
    for (topic, n) in partitions {
        let mut subs: Vec<&MemberSpec> = members
            .iter()
            .filter(|m| m.topics.contains(topic))
            .collect();
        if subs.is_empty() {
            continue;
        }
        subs.sort_by(|a, b| a.member_id.cmp(&b.member_id));
        let n = *n as usize;
        let per = n / subs.len();
        let extra = n % subs.len();
        let mut next = 0usize;
        for (i, m) in subs.iter().enumerate() {
            let count = per + usize::from(i < extra);
            if count > 0 {
                out.get_mut(&m.member_id)
                    .expect("entry")
                    .insert(*topic, (next..next + count).map(|p| p as i32).collect());
            }
            next += count;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, topics: &[Uuid], current: Assignment) -> MemberSpec {
        MemberSpec {
            member_id: id.into(),
            topics: topics.iter().copied().collect(),
            current,
        }
    }

    fn count(a: &Assignment) -> usize {
        a.values().map(|p| p.len()).sum()
    }

    #[test]
    fn uniform_balances_and_keeps_owned_partitions() {
        let t = Uuid::from_u128(1);
        let parts = BTreeMap::from([(t, 5u32)]);
        let all = Assignment::from([(t, vec![0, 1, 2, 3, 4])]);
        let members = vec![
            member("a", &[t], all),
            member("b", &[t], Assignment::new()),
            member("c", &[t], Assignment::new()),
        ];
        let out = uniform(&members, &parts);
        let counts: Vec<usize> = out.values().map(count).collect();
        assert_eq!(counts.iter().sum::<usize>(), 5);
        assert!(counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1);
        // "a" keeps partitions it owned rather than trading them.
        assert!(out["a"][&t].iter().all(|p| [0, 1, 2, 3, 4].contains(p)));
        assert_eq!(count(&out["a"]), 2);
    }

    #[test]
    fn uniform_gives_each_partition_once_across_uneven_subscriptions() {
        let (t1, t2) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let parts = BTreeMap::from([(t1, 3u32), (t2, 4u32)]);
        let members = vec![
            member("a", &[t1], Assignment::new()),
            member("b", &[t1, t2], Assignment::new()),
            member("c", &[t2], Assignment::new()),
        ];
        let out = uniform(&members, &parts);
        let mut seen = BTreeSet::new();
        for (m, a) in &out {
            for (t, ps) in a {
                let spec = members.iter().find(|s| &s.member_id == m).unwrap();
                assert!(
                    spec.topics.contains(t),
                    "{m} got a topic it does not subscribe to"
                );
                for p in ps {
                    assert!(seen.insert((*t, *p)), "partition given twice");
                }
            }
        }
        assert_eq!(seen.len(), 7);
    }

    #[test]
    fn range_gives_contiguous_ranges_extra_to_the_first() {
        let t = Uuid::from_u128(9);
        let parts = BTreeMap::from([(t, 5u32)]);
        let members = vec![
            member("b", &[t], Assignment::new()),
            member("a", &[t], Assignment::new()),
        ];
        let out = range(&members, &parts);
        assert_eq!(out["a"][&t], vec![0, 1, 2]);
        assert_eq!(out["b"][&t], vec![3, 4]);
    }
}
