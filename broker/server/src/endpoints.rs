//! The brokers this node describes to clients, and where each listens.
//!
//! In `single-port` mode ([`ListenerMode::SinglePort`]) the node is one
//! broker, [`NODE_ID`], at its advertised address: every shard accepts on
//! the same port, and requests for another shard's partitions travel over
//! the channel mesh.
//!
//! In `shard-direct` mode each shard is also described as a broker of its
//! own, node id `NODE_ID + s` at the advertised host and port `+ 1 + s`,
//! and it listens there besides the shared port. Metadata names the owning
//! shard's node as each partition's leader, and FindCoordinator names the
//! shard that owns a group's offsets partition, so Kafka clients, which
//! send a partition's requests to its leader, reach the owning shard with
//! no cross-core hop. A request that arrives on the wrong shard's port is
//! still served (forwarded over the mesh), so a client with stale metadata
//! loses only time. Shard 0 keeps the node id of the whole broker.
//!
//! In cluster mode (issue 17) the node is the broker of its `node_id`, and
//! the brokers clients are told of are the live brokers of the metadata
//! quorum's image ([`brokers`]). Everything that maps shards to node ids
//! goes through this module so that the scheme changes in one place.

use std::net::SocketAddr;

use crate::config::{ListenerMode, ServerConfig};
use crate::metadata::ClusterMetadata;
use crate::{NodeId, ShardId, NODE_ID};

/// A broker as clients see it: id, host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub node_id: NodeId,
    pub host: String,
    pub port: u16,
}

/// The node id clients see as the owner (leader, coordinator) of what
/// `shard` owns.
pub fn node_of(config: &ServerConfig, shard: ShardId) -> NodeId {
    // A cluster node (single-port mode, checked at start) is its node id.
    if let Some(id) = config.node_id {
        return NodeId(id);
    }
    match config.listener_mode {
        ListenerMode::SinglePort => NODE_ID,
        ListenerMode::ShardDirect => NodeId(NODE_ID.0 + shard.0 as i32),
    }
}

/// The broker that owns what `shard` owns, as clients see it.
pub fn endpoint_of(config: &ServerConfig, shard: ShardId) -> Endpoint {
    let (host, port) = config.advertised();
    let port = match config.listener_mode {
        ListenerMode::SinglePort => port,
        // Checked at start by `check_ports`: it fits a u16.
        ListenerMode::ShardDirect => port.saturating_add(1 + shard.0 as u16),
    };
    Endpoint {
        node_id: node_of(config, shard),
        host,
        port,
    }
}

/// Every broker this node describes, in node id order.
pub fn endpoints(config: &ServerConfig, shard_count: usize) -> Vec<Endpoint> {
    match config.listener_mode {
        ListenerMode::SinglePort => vec![endpoint_of(config, ShardId(0))],
        ListenerMode::ShardDirect => (0..shard_count)
            .map(|s| endpoint_of(config, ShardId(s as u32)))
            .collect(),
    }
}

/// Every broker clients are told of: in cluster mode the live brokers of
/// the quorum's image as `md` last took it (this node alone until its
/// table has followed the image once), otherwise [`endpoints`].
pub fn brokers(config: &ServerConfig, md: &ClusterMetadata, shard_count: usize) -> Vec<Endpoint> {
    if config.node_id.is_none() || md.brokers.is_empty() {
        return endpoints(config, shard_count);
    }
    md.brokers
        .iter()
        .map(|b| Endpoint {
            node_id: NodeId(b.id),
            host: b.host.clone(),
            port: b.port,
        })
        .collect()
}

/// Whether `id` names a broker this node describes (a broker config
/// resource's name, a replica in a manual assignment).
pub fn is_own_node(config: &ServerConfig, shard_count: usize, id: i32) -> bool {
    endpoints(config, shard_count)
        .iter()
        .any(|e| e.node_id.0 == id)
}

/// Whether a broker config resource's `name` is this node: empty (the
/// node answering) or the id of one of the brokers it describes.
pub fn names_own_broker(config: &ServerConfig, shard_count: usize, name: &str) -> bool {
    name.is_empty()
        || name
            .parse::<i32>()
            .is_ok_and(|id| is_own_node(config, shard_count, id))
}

/// The shard's own listen address in `shard-direct` mode (`listen` port
/// + 1 + shard); `None` in `single-port` mode.
pub fn shard_listen_addr(config: &ServerConfig, shard: ShardId) -> Option<SocketAddr> {
    match config.listener_mode {
        ListenerMode::SinglePort => None,
        ListenerMode::ShardDirect => {
            let mut addr = config.listen;
            addr.set_port(config.listen.port().saturating_add(1 + shard.0 as u16));
            Some(addr)
        }
    }
}

/// Refuses a `shard-direct` layout whose per-shard ports would run past
/// 65535, for the listen or the advertised port.
pub fn check_ports(config: &ServerConfig, shard_count: usize) -> Result<(), String> {
    if config.listener_mode == ListenerMode::SinglePort {
        return Ok(());
    }
    let last = shard_count as u32;
    for (what, port) in [
        ("listen", config.listen.port()),
        ("advertised_listener", config.advertised().1),
    ] {
        if port as u32 + last > u16::MAX as u32 {
            return Err(format!(
                "listener_mode shard-direct: {what} port {port} + {last} shard ports runs past 65535"
            ));
        }
    }
    if config.listen.port() == 0 {
        return Err("listener_mode shard-direct: needs a fixed listen port, not 0".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(mode: ListenerMode) -> ServerConfig {
        ServerConfig {
            listen: "127.0.0.1:9092".parse().unwrap(),
            listener_mode: mode,
            ..ServerConfig::default()
        }
    }

    #[test]
    fn single_port_describes_one_broker_for_every_shard() {
        let c = config(ListenerMode::SinglePort);
        assert_eq!(
            endpoints(&c, 4),
            vec![Endpoint {
                node_id: NODE_ID,
                host: "127.0.0.1".into(),
                port: 9092
            }]
        );
        assert_eq!(node_of(&c, ShardId(3)), NODE_ID);
        assert_eq!(shard_listen_addr(&c, ShardId(3)), None);
        assert!(is_own_node(&c, 4, NODE_ID.0));
        assert!(!is_own_node(&c, 4, NODE_ID.0 + 1));
    }

    #[test]
    fn shard_direct_describes_a_broker_per_shard_on_its_own_port() {
        let mut c = config(ListenerMode::ShardDirect);
        c.advertised_listener = Some("broker.example:19092".into());
        let e = endpoints(&c, 2);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].node_id, NODE_ID);
        assert_eq!((e[0].host.as_str(), e[0].port), ("broker.example", 19093));
        assert_eq!(e[1].node_id, NodeId(NODE_ID.0 + 1));
        assert_eq!(e[1].port, 19094);
        assert_eq!(
            shard_listen_addr(&c, ShardId(1)),
            Some("127.0.0.1:9094".parse().unwrap())
        );
        assert!(is_own_node(&c, 2, NODE_ID.0 + 1));
        assert!(!is_own_node(&c, 2, NODE_ID.0 + 2));
    }

    #[test]
    fn shard_direct_ports_past_65535_are_refused() {
        let mut c = config(ListenerMode::ShardDirect);
        c.listen = "127.0.0.1:65534".parse().unwrap();
        assert!(check_ports(&c, 1).is_ok());
        assert!(check_ports(&c, 2).unwrap_err().contains("65535"));
        c.listen = "127.0.0.1:0".parse().unwrap();
        assert!(check_ports(&c, 2).is_err());
        assert!(check_ports(&config(ListenerMode::SinglePort), 2).is_ok());
    }
}
