//! Which node a sandbox goes to (SPEC §15): among the live nodes, the one with the
//! fewest instances of its pool, then the fewest overall, then by name (so a choice is
//! the same every time for the same state). A sandbox with a disk goes where its disk
//! is, once it is somewhere.

use std::collections::BTreeMap;

/// What the choice looks at.
#[derive(Debug, Default, Clone)]
pub struct Cluster<'a> {
    /// Live nodes, with their placements: (pool of each).
    pub nodes: BTreeMap<&'a str, Vec<Option<&'a str>>>,
}

/// Where a sandbox goes, or why it can't go anywhere yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice<'a> {
    /// This node.
    Node(&'a str),
    /// Its disk is on a node that is not live.
    DiskAway {
        /// The node holding the disk.
        node: String,
    },
    /// No node is live.
    NoNode,
}

/// The node for a sandbox of `pool`; `pinned`: the node its disk is on.
pub fn choose<'a>(cluster: &Cluster<'a>, pool: Option<&str>, pinned: Option<&str>) -> Choice<'a> {
    if let Some(home) = pinned {
        return match cluster.nodes.get_key_value(home) {
            Some((name, _)) => Choice::Node(name),
            None => Choice::DiskAway {
                node: home.to_string(),
            },
        };
    }
    cluster
        .nodes
        .iter()
        .min_by_key(|(name, placed)| {
            let of_pool = placed.iter().filter(|p| p.is_some() && **p == pool).count();
            (of_pool, placed.len(), **name)
        })
        .map_or(Choice::NoNode, |(name, _)| Choice::Node(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster<'a>(nodes: &[(&'a str, Vec<Option<&'a str>>)]) -> Cluster<'a> {
        Cluster {
            nodes: nodes.iter().cloned().collect(),
        }
    }

    #[test]
    fn a_pool_spreads_over_the_nodes_then_fills_the_emptiest() {
        let mut c = cluster(&[("a", vec![]), ("b", vec![]), ("c", vec![])]);
        let mut got = Vec::new();
        for _ in 0..4 {
            let Choice::Node(n) = choose(&c, Some("web"), None) else {
                panic!("no node");
            };
            got.push(n);
            c.nodes.entry(n).or_default().push(Some("web"));
        }
        assert_eq!(got, ["a", "b", "c", "a"]);
        // Another pool goes first where fewest run at all.
        c.nodes.entry("a").or_default().push(Some("worker"));
        assert_eq!(choose(&c, Some("store"), None), Choice::Node("b"));
    }

    #[test]
    fn a_disk_keeps_its_sandboxes_on_its_node_and_waits_for_it() {
        let c = cluster(&[("a", vec![Some("db")]), ("b", vec![])]);
        assert_eq!(choose(&c, Some("db"), Some("a")), Choice::Node("a"));
        assert_eq!(
            choose(&c, Some("db"), Some("gone")),
            Choice::DiskAway {
                node: "gone".into()
            }
        );
        assert_eq!(choose(&Cluster::default(), None, None), Choice::NoNode);
    }
}
