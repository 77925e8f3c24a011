//! Kafka error codes as people read them: Kafka's own name for each code
//! (`UNKNOWN_TOPIC_OR_PARTITION`), and for the common ones what to do
//! about it, so a command line tool can say both.

use kafka_protocol::ResponseError;

/// Kafka's name of an error code, e.g. `TOPIC_ALREADY_EXISTS`, or
/// `ERROR_CODE_<n>` for a code this codec does not know.
pub fn error_name(code: i16) -> String {
    if code == 0 {
        return "NONE".to_string();
    }
    match ResponseError::try_from_code(code).filter(|e| !matches!(e, ResponseError::Unknown(_))) {
        Some(e) => {
            // The codec names errors in CamelCase; Kafka's documentation
            // and its tools use SCREAMING_SNAKE_CASE.
            let mut name = String::new();
            for (i, c) in format!("{e:?}").chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    name.push('_');
                }
                name.push(c.to_ascii_uppercase());
            }
            name
        }
        None => format!("ERROR_CODE_{code}"),
    }
}

/// What a user can do about the errors a command line user meets most;
/// None where there is no advice better than the name.
pub fn error_hint(code: i16) -> Option<&'static str> {
    Some(match code {
        3 => "check the topic name (`corelog topic list`), or create the topic",
        7 => "the broker took too long; retry, or raise the request timeout",
        10 => "the record is larger than the topic's max.message.bytes",
        14..=16 => "the group coordinator is moving or loading; retry in a moment",
        17 => "topic names use ASCII letters, digits, '.', '_' and '-', up to 249 characters",
        24 => "group ids must not be empty",
        25 => "the member is not known to the group; start the consumer again",
        27 => "the group is rebalancing; retry when it is stable",
        36 => "the topic exists already; choose another name or delete it first",
        37 => "the partition count must be at least 1 (and larger than today's to add partitions)",
        38 => "the replication factor must be at least 1 and at most the number of brokers",
        40 => "check the config name and value (`corelog config get` lists the names)",
        41 => "ask the controller, or retry when the cluster has one",
        68 => "stop the group's consumers first, then retry",
        69 => "check the group id (`corelog group list`)",
        87 => "the value has the wrong type or is out of range for that config",
        _ => return None,
    })
}

/// `NAME (code)`, then the broker's message and the advice where there
/// are any: the text a command line tool prints for an error code.
pub fn describe_error(code: i16, message: Option<&str>) -> String {
    let mut text = format!("{} ({code})", error_name(code));
    if let Some(m) = message.filter(|m| !m.is_empty()) {
        text.push_str(": ");
        text.push_str(m);
    }
    if let Some(hint) = error_hint(code) {
        text.push_str("; ");
        text.push_str(hint);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_named_as_kafka_names_them() {
        assert_eq!(error_name(0), "NONE");
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(36), "TOPIC_ALREADY_EXISTS");
        assert_eq!(error_name(68), "NON_EMPTY_GROUP");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(9999), "ERROR_CODE_9999");
    }

    #[test]
    fn descriptions_carry_the_message_and_the_advice() {
        let text = describe_error(40, Some("no such config"));
        assert!(
            text.starts_with("INVALID_CONFIG (40): no such config; "),
            "{text}"
        );
        assert_eq!(describe_error(9999, None), "ERROR_CODE_9999 (9999)");
    }
}
