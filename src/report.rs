//! How a failed command is told to the user: one line, each cause once.
//!
//! An error and its causes are printed as `what: why: why`. Many errors already write their
//! cause into their own message and also return it as their `source` (ours wrap I/O and object
//! store errors so; `object_store`'s errors do it at every level), so printing the whole chain
//! would repeat each cause once per level. A cause whose message its wrapper's message already
//! holds is left out; one that adds something is appended.

/// `error` and its causes on one line, each message once.
pub fn report(error: &anyhow::Error) -> String {
    let mut line = String::new();
    let mut wrapper = String::new();
    for cause in error.chain() {
        let message = cause.to_string();
        if !message.is_empty() && !wrapper.contains(&message) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&message);
        }
        wrapper = message;
    }
    line
}

#[cfg(test)]
mod tests {
    use super::report;
    use anyhow::Context;
    use aperture_warehouse::error::io;

    fn not_a_directory() -> std::io::Error {
        std::io::Error::from_raw_os_error(20)
    }

    #[test]
    fn a_cause_written_into_its_wrapper_is_printed_once() {
        let os = not_a_directory().to_string();
        let error = Err::<(), _>(not_a_directory())
            .map_err(io("read", "/tmp/a-file/x/_sink/manifest.json"))
            .context("while compacting the warehouse")
            .unwrap_err();
        assert_eq!(
            format!("{error:#}").matches(&os).count(),
            2,
            "the chain repeats the cause, which is what this guards against"
        );
        let line = report(&error);
        assert_eq!(
            line,
            format!(
                "while compacting the warehouse: could not read /tmp/a-file/x/_sink/manifest.json: {os}"
            )
        );
    }

    #[test]
    fn causes_that_add_something_are_all_kept_in_order() {
        let error = anyhow::Error::new(not_a_directory())
            .context("could not open the root")
            .context("while starting the sink");
        assert_eq!(
            report(&error),
            format!(
                "while starting the sink: could not open the root: {}",
                not_a_directory()
            )
        );
    }

    #[test]
    fn a_cause_is_compared_with_its_own_wrapper_only() {
        // "refused" is in the outermost message, but not in the one that wraps it.
        let error = anyhow::Error::msg("refused")
            .context("could not connect")
            .context("while reading what the peer refused");
        assert_eq!(
            report(&error),
            "while reading what the peer refused: could not connect: refused"
        );
    }

    #[test]
    fn a_nested_store_error_keeps_only_what_its_outer_levels_left_out() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let store = object_store::Error::Generic {
            store: "S3",
            source: Box::new(refused),
        };
        let outer = store.to_string();
        let error = Err::<(), _>(store)
            .map_err(aperture_warehouse::error::object(
                "read",
                "s3://b/r/_sink/manifest.json",
            ))
            .context("while compacting the warehouse")
            .unwrap_err();
        let line = report(&error);
        assert_eq!(line.matches(&outer).count(), 1, "{line}");
        assert!(
            line.starts_with("while compacting the warehouse: could not read s3://b/r/"),
            "{line}"
        );
    }
}
