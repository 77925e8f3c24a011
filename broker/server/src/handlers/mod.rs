//! One file per Kafka API, named by the api's snake-case name in the
//! protocol crate's table ([`corelog_protocol::for_each_api!`]). Every
//! handler has the same shape:
//!
//! ```text
//! pub async fn handle(cx: &RequestContext<'_>, request: XRequest)
//!     -> Result<Handled<XResponse>, Close>
//! ```
//!
//! [`dispatch`] is generated from the table, so an api in the table without
//! a handler (or with one of the wrong types) fails to compile. What
//! ApiVersions advertises is the table itself,
//! [`corelog_protocol::SUPPORTED_APIS`].

use std::rc::Rc;

use bytes::Bytes;
use corelog_protocol::{encode_response, Request, RequestHeader, Response};

use crate::shard::Shard;

/// Why a connection is closed, with bytes to send before closing if any.
/// A handler returns it for a request that cannot be answered.
#[derive(Debug)]
pub struct Close {
    pub reason: String,
    pub final_bytes: Option<Bytes>,
    /// Whether the reason was already logged (rate-limited, as for an
    /// unsupported version); the connection then closes without another
    /// line.
    pub logged: bool,
}

impl std::fmt::Display for Close {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

pub mod add_offsets_to_txn;
pub mod add_partitions_to_txn;
pub mod alter_configs;
pub mod alter_partition_reassignments;
pub mod api_versions;
pub mod consumer_group_describe;
pub mod consumer_group_heartbeat;
mod controller_outcomes;
pub mod conversions;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_acls;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod describe_producers;
pub mod describe_topic_partitions;
pub mod describe_transactions;
pub mod elect_leaders;
pub mod end_txn;
pub mod fetch;
pub mod find_coordinator;
mod group_common;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod list_partition_reassignments;
pub mod list_transactions;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod sync_group;
pub mod txn_offset_commit;

/// What a handler has to work with besides its request.
pub struct RequestContext<'a> {
    /// The shard the connection lives on.
    pub shard: &'a Rc<Shard>,
    /// The request's header: api version, correlation id, client id.
    pub header: &'a RequestHeader,
    /// The peer as Kafka reports it in group descriptions ("/127.0.0.1").
    pub client_host: &'a str,
    /// The connection's bound on Fetch response bytes not yet written
    /// (`fetch_response_bytes_per_connection_max`).
    pub fetch_budget: &'a Rc<glommio::sync::Semaphore>,
}

/// What a handler answers: a response, which [`dispatch`] encodes at the
/// request's version, or a reply already in wire form.
pub enum Handled<R> {
    /// A response to encode.
    Response(R),
    /// A reply as it goes out: nothing (Produce with acks=0), or Fetch's
    /// vectored segments with their budget permit.
    Reply(Reply),
}

impl<R> From<R> for Handled<R> {
    fn from(response: R) -> Self {
        Handled::Response(response)
    }
}

/// What a connection writes back for a request.
pub enum Reply {
    /// Nothing is sent (Produce with acks=0).
    None,
    Bytes(Bytes),
    /// A response in pieces, for a vectored write (Fetch), with the part of
    /// its connection's `fetch_response_bytes_per_connection_max` that it
    /// holds until it is written.
    Segments(Vec<Bytes>, glommio::sync::StaticPermit),
}

/// Generates [`dispatch`] from the api table: the request of an entry
/// `Key(name): ...` goes to `name::handle`, and its response is encoded as
/// `Response::Key`.
macro_rules! dispatch_table {
    ($($key:ident($name:ident): $request:ident => $response:ident, $min:literal..=$max:literal;)*) => {
        /// Handles one request with its api's handler and encodes the answer.
        pub async fn dispatch(cx: &RequestContext<'_>, request: Request) -> Result<Reply, Close> {
            match request {
                $(
                    Request::$key(r) => match $name::handle(cx, r).await? {
                        Handled::Response(response) => {
                            let response = Response::$key(response);
                            count_errors(&response);
                            encode(cx.header, &response)
                        }
                        Handled::Reply(reply) => Ok(reply),
                    },
                )*
                // `Request` is non-exhaustive; every variant it has comes
                // from the same table, so this arm is never taken.
                other => Err(Close {
                    reason: format!("{:?} is not implemented", other.api_key()),
                    final_bytes: None,
                    logged: false,
                }),
            }
        }
    };
}

corelog_protocol::for_each_api!(dispatch_table);

/// Counts the error codes of an answer in the shard's request metrics
/// ([`crate::request_metrics`]). Answers sent in wire form (Fetch) count
/// theirs where they are built.
pub(crate) fn count_errors(response: &Response) {
    let api_key = response.api_key() as i16;
    corelog_protocol::for_each_error_code(response, &mut |code| {
        crate::request_metrics::count_error(api_key, code)
    });
}

pub fn encode(header: &RequestHeader, response: &Response) -> Result<Reply, Close> {
    encode_response(
        header.api_key,
        header.api_version,
        header.correlation_id,
        response,
    )
    .map(|b| Reply::Bytes(b.freeze()))
    .map_err(|e| Close {
        reason: format!("encoding response: {e}"),
        final_bytes: None,
        logged: false,
    })
}
