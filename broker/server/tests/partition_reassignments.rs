//! AlterPartitionReassignments and ListPartitionReassignments on a
//! single-node broker (two shards): every partition has its one replica,
//! this broker, so naming it again is accepted and changes nothing, any
//! other broker is INVALID_REPLICA_ASSIGNMENT, there is never a move to
//! cancel, and the list of moves in progress is empty. The cluster's
//! moves are tested with real processes
//! (`tests/clients/test_replication.py`) and in the controller's tests.

mod common;

use common::{topic, TestServer};
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, ApiKey, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
};

fn partition(index: i32, replicas: Option<&[i32]>) -> ReassignablePartition {
    ReassignablePartition::default()
        .with_partition_index(index)
        .with_replicas(replicas.map(|r| r.iter().copied().map(BrokerId).collect()))
}

#[test]
fn a_single_node_moves_no_partition_and_says_why() {
    let server = TestServer::start(2);
    let mut c = server.client();
    c.create_topic("kept", 2);
    let request = AlterPartitionReassignmentsRequest::default().with_topics(vec![
        ReassignableTopic::default()
            .with_name(topic("kept"))
            .with_partitions(vec![
                partition(0, Some(&[1])),
                partition(1, Some(&[2])),
                partition(1, None),
            ]),
        ReassignableTopic::default()
            .with_name(topic("absent"))
            .with_partitions(vec![partition(0, Some(&[1]))]),
    ]);
    let resp: AlterPartitionReassignmentsResponse =
        c.request(ApiKey::AlterPartitionReassignments, 0, &request);
    assert_eq!(resp.error_code, 0);
    let codes: Vec<(String, i32, i16)> = resp
        .responses
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.0.to_string(), p.partition_index, p.error_code))
        })
        .collect();
    assert_eq!(
        codes,
        [
            ("kept".to_string(), 0, 0),
            ("kept".to_string(), 1, 39),  // INVALID_REPLICA_ASSIGNMENT
            ("kept".to_string(), 1, 85),  // NO_REASSIGNMENT_IN_PROGRESS
            ("absent".to_string(), 0, 3), // UNKNOWN_TOPIC_OR_PARTITION
        ]
    );
    let listed: ListPartitionReassignmentsResponse = c.request(
        ApiKey::ListPartitionReassignments,
        0,
        &ListPartitionReassignmentsRequest::default().with_topics(Some(vec![
            ListPartitionReassignmentsTopics::default()
                .with_name(topic("kept"))
                .with_partition_indexes(vec![0, 1]),
        ])),
    );
    assert_eq!((listed.error_code, listed.topics.len()), (0, 0));
    // Both answered on the same connection, which stays usable.
    assert_eq!(c.partition_count("kept"), Some(2));
}
