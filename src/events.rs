//! Boot events: schema, kmsg logger, boot report.
