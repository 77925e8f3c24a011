//! DescribeAcls (v1-3): the ACLs matching a filter, as `kafka-acls.sh
//! --list` and `AdminClient.describeAcls` ask for them.
//!
//! Corelog has no authorizer: every client may do everything, and there are
//! no ACLs to list. A Kafka broker without `authorizer.class.name` answers
//! exactly this case with SECURITY_DISABLED and the message "No Authorizer is
//! configured." (`AclApis.handleDescribeAcls`), which clients show as "security
//! features are disabled"; answering the same tells a tool the truth, where an
//! empty list would claim that ACLs are enforced and none match.
//!
//! Before that, Kafka refuses while parsing a filter with an UNKNOWN (code 0)
//! resource type, pattern type, operation or permission type
//! (`DescribeAclsRequest.validate`), which closes the connection; so does
//! this handler, so that a client sees the same either way.

use corelog_protocol::kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse};
use corelog_protocol::kafka_protocol::protocol::StrBytes;
use corelog_protocol::ResponseError;

use super::{Close, Handled, RequestContext};

/// Kafka's code for UNKNOWN in each of the filter's enums (`ResourceType`,
/// `PatternType`, `AclOperation`, `AclPermissionType`).
const UNKNOWN_CODE: i8 = 0;

/// Kafka's error message for a DescribeAcls without an authorizer.
const NO_AUTHORIZER_MESSAGE: &str = "No Authorizer is configured.";

pub async fn handle(
    _cx: &RequestContext<'_>,
    request: DescribeAclsRequest,
) -> Result<Handled<DescribeAclsResponse>, Close> {
    Ok(answer(&request)?.into())
}

/// The answer to `request`, or the close Kafka's parser would cause.
fn answer(request: &DescribeAclsRequest) -> Result<DescribeAclsResponse, Close> {
    let unknown = [
        ("resource type", request.resource_type_filter),
        ("pattern type", request.pattern_type_filter),
        ("operation", request.operation),
        ("permission type", request.permission_type),
    ]
    .into_iter()
    .find(|&(_, code)| code == UNKNOWN_CODE);
    if let Some((what, _)) = unknown {
        return Err(Close {
            reason: format!("DescribeAcls filter with an UNKNOWN {what}"),
            final_bytes: None,
            logged: false,
        });
    }
    Ok(DescribeAclsResponse::default()
        .with_error_code(ResponseError::SecurityDisabled.code())
        .with_error_message(Some(StrBytes::from_static_str(NO_AUTHORIZER_MESSAGE))))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `kafka-acls.sh --list`'s filter: any resource, pattern, operation
    /// and permission (Kafka's ANY codes 1, 1, 1, 1; the pattern's ANY is 1).
    fn list_all() -> DescribeAclsRequest {
        DescribeAclsRequest::default()
            .with_resource_type_filter(1)
            .with_pattern_type_filter(1)
            .with_operation(1)
            .with_permission_type(1)
    }

    #[test]
    fn without_an_authorizer_the_answer_is_security_disabled() {
        let response = answer(&list_all()).expect("a valid filter is answered");
        assert_eq!(response.error_code, ResponseError::SecurityDisabled.code());
        assert_eq!(
            response.error_message.as_deref(),
            Some(NO_AUTHORIZER_MESSAGE)
        );
        assert!(response.resources.is_empty());
    }

    #[test]
    fn an_unknown_filter_element_closes_as_kafkas_parser_does() {
        let requests = [
            list_all().with_resource_type_filter(UNKNOWN_CODE),
            list_all().with_pattern_type_filter(UNKNOWN_CODE),
            list_all().with_operation(UNKNOWN_CODE),
            list_all().with_permission_type(UNKNOWN_CODE),
        ];
        for request in requests {
            let close = answer(&request).expect_err("UNKNOWN is refused");
            assert!(close.reason.contains("UNKNOWN"), "{}", close.reason);
        }
    }
}
