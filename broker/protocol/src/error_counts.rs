//! The error codes a response carries, at every level: Kafka's
//! `AbstractResponse.errorCounts()`, which its request metrics count by
//! api and error. The broker's metrics do the same with
//! [`for_each_error_code`].
//!
//! Only nonzero codes are reported: a response full of `NONE` says nothing
//! an operator counts, and skipping them keeps the per-request cost at one
//! walk over the response's entries.

use crate::Response;

/// Calls `f` with every nonzero error code in `response`: top-level codes
/// and those of each topic, partition, group, member or resource in it.
pub fn for_each_error_code(response: &Response, f: &mut dyn FnMut(i16)) {
    let mut code = |c: i16| {
        if c != 0 {
            f(c)
        }
    };
    match response {
        Response::ApiVersions(r) => code(r.error_code),
        Response::Metadata(r) => {
            code(r.error_code);
            for t in &r.topics {
                code(t.error_code);
                t.partitions.iter().for_each(|p| code(p.error_code));
            }
        }
        Response::Produce(r) => r
            .responses
            .iter()
            .flat_map(|t| &t.partition_responses)
            .for_each(|p| code(p.error_code)),
        Response::Fetch(r) => {
            code(r.error_code);
            r.responses
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| code(p.error_code));
        }
        Response::ListOffsets(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| code(p.error_code)),
        Response::OffsetForLeaderEpoch(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| code(p.error_code)),
        Response::CreateTopics(r) => r.topics.iter().for_each(|t| code(t.error_code)),
        Response::InitProducerId(r) => code(r.error_code),
        Response::DeleteTopics(r) => r.responses.iter().for_each(|t| code(t.error_code)),
        Response::CreatePartitions(r) => r.results.iter().for_each(|t| code(t.error_code)),
        Response::DescribeConfigs(r) => r.results.iter().for_each(|t| code(t.error_code)),
        Response::AlterConfigs(r) => r.responses.iter().for_each(|t| code(t.error_code)),
        Response::IncrementalAlterConfigs(r) => r.responses.iter().for_each(|t| code(t.error_code)),
        Response::DeleteRecords(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| code(p.error_code)),
        Response::DescribeCluster(r) => code(r.error_code),
        Response::DescribeLogDirs(r) => {
            code(r.error_code);
            r.results.iter().for_each(|d| code(d.error_code));
        }
        Response::ElectLeaders(r) => {
            code(r.error_code);
            r.replica_election_results
                .iter()
                .flat_map(|t| &t.partition_result)
                .for_each(|p| code(p.error_code));
        }
        Response::AlterPartitionReassignments(r) => {
            code(r.error_code);
            r.responses
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| code(p.error_code));
        }
        Response::ListPartitionReassignments(r) => code(r.error_code),
        Response::DescribeTopicPartitions(r) => {
            for t in &r.topics {
                code(t.error_code);
                t.partitions.iter().for_each(|p| code(p.error_code));
            }
        }
        Response::FindCoordinator(r) => {
            code(r.error_code);
            r.coordinators.iter().for_each(|c| code(c.error_code));
        }
        Response::JoinGroup(r) => code(r.error_code),
        Response::SyncGroup(r) => code(r.error_code),
        Response::Heartbeat(r) => code(r.error_code),
        Response::LeaveGroup(r) => {
            code(r.error_code);
            r.members.iter().for_each(|m| code(m.error_code));
        }
        Response::OffsetCommit(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| code(p.error_code)),
        Response::OffsetFetch(r) => {
            code(r.error_code);
            r.topics
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| code(p.error_code));
            for g in &r.groups {
                code(g.error_code);
                g.topics
                    .iter()
                    .flat_map(|t| &t.partitions)
                    .for_each(|p| code(p.error_code));
            }
        }
        Response::ListGroups(r) => code(r.error_code),
        Response::DescribeGroups(r) => r.groups.iter().for_each(|g| code(g.error_code)),
        Response::DeleteGroups(r) => r.results.iter().for_each(|g| code(g.error_code)),
        Response::OffsetDelete(r) => {
            code(r.error_code);
            r.topics
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| code(p.error_code));
        }
        Response::ConsumerGroupHeartbeat(r) => code(r.error_code),
        Response::ConsumerGroupDescribe(r) => r.groups.iter().for_each(|g| code(g.error_code)),
        Response::AddPartitionsToTxn(r) => {
            code(r.error_code);
            r.results_by_transaction
                .iter()
                .flat_map(|t| &t.topic_results)
                .flat_map(|t| &t.results_by_partition)
                .for_each(|p| code(p.partition_error_code));
        }
        Response::AddOffsetsToTxn(r) => code(r.error_code),
        Response::EndTxn(r) => code(r.error_code),
        Response::TxnOffsetCommit(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| code(p.error_code)),
        Response::DescribeTransactions(r) => {
            r.transaction_states.iter().for_each(|s| code(s.error_code))
        }
        Response::ListTransactions(r) => code(r.error_code),
        Response::DescribeProducers(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| code(p.error_code)),
        Response::DescribeAcls(r) => code(r.error_code),
        // Every api of the table is listed above. One added to the table
        // later reports no codes until it gets a line here; adding an api
        // stays one table entry and a handler, and its errors are counted
        // once someone writes where its codes are.
        #[allow(unreachable_patterns)]
        _ => {}
    }
}

/// Kafka's name of an error code, as its metrics and tools print it
/// (`UNKNOWN_TOPIC_OR_PARTITION`), or `UNKNOWN_CODE_<n>` for a code this
/// version does not know.
pub fn error_name(code: i16) -> String {
    use crate::ResponseError;
    match ResponseError::try_from_code(code) {
        Some(ResponseError::Unknown(_)) | None => format!("UNKNOWN_CODE_{code}"),
        Some(e) => {
            // The variants are Kafka's names in CamelCase.
            let mut name = String::new();
            for (i, c) in format!("{e:?}").chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    name.push('_');
                }
                name.push(c.to_ascii_uppercase());
            }
            name
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::produce_response::{
        PartitionProduceResponse, TopicProduceResponse,
    };
    use kafka_protocol::messages::ProduceResponse;

    #[test]
    fn nested_codes_are_reported_and_none_is_skipped() {
        let response = Response::Produce(ProduceResponse::default().with_responses(vec![
            TopicProduceResponse::default().with_partition_responses(vec![
                PartitionProduceResponse::default().with_error_code(0),
                PartitionProduceResponse::default().with_error_code(3),
                PartitionProduceResponse::default().with_error_code(6),
            ]),
        ]));
        let mut codes = Vec::new();
        for_each_error_code(&response, &mut |c| codes.push(c));
        assert_eq!(codes, vec![3, 6]);
    }

    #[test]
    fn names_are_kafkas() {
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(6), "NOT_LEADER_OR_FOLLOWER");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(9999), "UNKNOWN_CODE_9999");
    }
}
