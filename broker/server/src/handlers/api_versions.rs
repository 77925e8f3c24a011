//! ApiVersions: which APIs and versions this broker implements, which is the
//! protocol crate's api table as it is.

use corelog_protocol::error_code;
use corelog_protocol::kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use corelog_protocol::{api_versions_request_is_valid, api_versions_response, SUPPORTED_APIS};

use super::Close;
use super::{Handled, RequestContext};

pub async fn handle(
    cx: &RequestContext<'_>,
    request: ApiVersionsRequest,
) -> Result<Handled<ApiVersionsResponse>, Close> {
    let RequestContext { header, .. } = *cx;
    let mut response = api_versions_response(SUPPORTED_APIS);
    if !api_versions_request_is_valid(&request, header.api_version) {
        response.error_code = error_code::INVALID_REQUEST;
    }
    Ok(response.into())
}
