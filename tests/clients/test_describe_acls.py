"""DescribeAcls (api key 29), the first api added through the one api table
(issue 23): `kafka-acls.sh --list`, AdminClient.describeAcls. Corelog has
no authorizer, so it answers as a Kafka broker without one does:
SECURITY_DISABLED, "No Authorizer is configured.", which every client
reports as such; the versions it advertises are the ones it implements."""
import pytest

import kproto
from conftest import admin

DESCRIBE_ACLS = 29
SECURITY_DISABLED = 54


def test_api_versions_advertises_describe_acls_v1_to_v3(broker):
    err, versions = kproto.api_versions(broker.port)
    assert err == 0
    assert versions[DESCRIBE_ACLS] == (1, 3)


def test_confluent_describe_acls_answers_as_kafka_without_an_authorizer(broker):
    """librdkafka reads DescribeAcls' top-level error code and drops it
    (rd_kafka_DescribeAclsResponse_parse returns no error whatever the code),
    so against Kafka without an authorizer this client gets an empty, error
    free listing; the same is expected here. kafka-python, below, sees the
    code itself."""
    from confluent_kafka.admin import (AclBindingFilter, AclOperation, AclPermissionType,
                                       ResourcePatternType, ResourceType)
    any_acl = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                               AclOperation.ANY, AclPermissionType.ANY)
    future = admin(broker.bootstrap).describe_acls(any_acl, request_timeout=10)
    assert future.result(timeout=15) == []


def test_kafka_python_describe_acls_raises_security_disabled(broker):
    from kafka.admin import (ACLFilter, ACLOperation, ACLPermissionType, ACLResourcePatternType,
                             KafkaAdminClient,
                             ResourcePatternFilter, ResourceType)
    from kafka.errors import SecurityDisabledError
    client = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10000)
    try:
        any_acl = ACLFilter(principal=None, host=None, operation=ACLOperation.ANY,
                            permission_type=ACLPermissionType.ANY,
                            resource_pattern=ResourcePatternFilter(ResourceType.ANY, None,
                                                                   ACLResourcePatternType.ANY))
        with pytest.raises(SecurityDisabledError):
            client.describe_acls(any_acl)
        # The connection stays usable: the error is an answer, not a close.
        assert client.describe_cluster()["cluster_id"]
    finally:
        client.close()
