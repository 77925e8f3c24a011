//! ApiVersions: which APIs and versions this broker implements.

use corelog_protocol::error_code;
use corelog_protocol::kafka_protocol::messages::ApiVersionsRequest;
use corelog_protocol::{
    api_versions_request_is_valid, api_versions_response, RequestHeader, Response,
};

use super::SERVER_APIS;

pub fn handle(header: &RequestHeader, request: ApiVersionsRequest) -> Response {
    let mut response = api_versions_response(SERVER_APIS);
    if !api_versions_request_is_valid(&request, header.api_version) {
        response.error_code = error_code::INVALID_REQUEST;
    }
    Response::ApiVersions(response)
}
