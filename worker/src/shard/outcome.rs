//! How a shard ended, as the Job's pod failure policy reads it: the exit code.

use crate::scan::ScanError;
use crate::sink::SinkError;
use crate::source::SourceError;

/// How a shard (or the planner) ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every object was handled (objects that could not be read are recorded as failed).
    Done,
    /// Bad configuration or usage: retrying cannot help.
    Config(String),
    /// S3 or the sink stayed unreachable (or throttling) past the retries: retry the index.
    Unavailable(String),
    /// S3 refused the credentials (denied, expired, clock skew): retry the index in a new
    /// pod, which reads the credentials again.
    Credentials(String),
    /// Stopped by SIGTERM/SIGINT after writing what it had read: retry the index.
    Interrupted(String),
}

impl Outcome {
    /// The process exit code: 0, 2, 3 or 4.
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::Done => 0,
            Outcome::Config(_) => 2,
            Outcome::Unavailable(_) | Outcome::Interrupted(_) => 3,
            Outcome::Credentials(_) => 4,
        }
    }

    /// `done`, `config`, `unavailable`, `interrupted` or `credentials`.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Config(_) => "config",
            Outcome::Unavailable(_) => "unavailable",
            Outcome::Interrupted(_) => "interrupted",
            Outcome::Credentials(_) => "credentials",
        }
    }

    /// The error, if the shard did not finish.
    pub fn error(&self) -> Option<&str> {
        match self {
            Outcome::Done => None,
            Outcome::Config(e) | Outcome::Unavailable(e) | Outcome::Interrupted(e) | Outcome::Credentials(e) => Some(e),
        }
    }

    /// What a source failure means.
    pub fn of_source(error: &SourceError) -> Self {
        match error {
            SourceError::Unusable { .. } => Outcome::Config(error.to_string()),
            SourceError::Credentials { .. } => Outcome::Credentials(error.to_string()),
            _ => Outcome::Unavailable(error.to_string()),
        }
    }

    /// What a sink failure means.
    pub fn of_sink(error: &SinkError) -> Self {
        match error {
            SinkError::Config(_) | SinkError::Auth(_) | SinkError::Schema(_) => Outcome::Config(error.to_string()),
            _ => Outcome::Unavailable(error.to_string()),
        }
    }

    /// What a failed scan means.
    pub fn of_scan(error: &ScanError) -> Self {
        match error {
            ScanError::Source(e) => Self::of_source(e),
            ScanError::Sink(e) => Self::of_sink(e),
            ScanError::Catalog(_) => Outcome::Unavailable(error.to_string()),
            ScanError::Interrupted(_) => Outcome::Interrupted(error.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_contract() {
        let unusable = SourceError::Unusable { location: "s3://b/".into(), reason: "no such bucket".into() };
        let down = SourceError::Unavailable { location: "s3://b/".into(), reason: "503".into() };
        assert_eq!(Outcome::of_source(&unusable).exit_code(), 2);
        assert_eq!(Outcome::of_source(&down).exit_code(), 3);
        let refused = SourceError::Credentials { location: "s3://b/k".into(), reason: "403 ExpiredToken".into() };
        assert_eq!(Outcome::of_source(&refused).exit_code(), 4);
        assert_eq!(Outcome::of_source(&refused).name(), "credentials");
        assert_eq!(Outcome::of_sink(&SinkError::Auth("no".into())).exit_code(), 2);
        assert_eq!(Outcome::of_sink(&SinkError::Transient("down".into())).exit_code(), 3);
        assert_eq!(Outcome::of_scan(&ScanError::Sink(SinkError::Schema("x".into()))).name(), "config");
        assert_eq!(Outcome::Done.exit_code(), 0);
        let interrupted = ScanError::Interrupted(Box::new(crate::scan::Tally::default().summary(Default::default())));
        assert_eq!(Outcome::of_scan(&interrupted).exit_code(), 3);
        assert_eq!(Outcome::of_scan(&interrupted).name(), "interrupted");
    }
}
