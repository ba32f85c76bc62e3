//! Which Flight failures are worth a retry.

use arrow::error::ArrowError;
use arrow_flight::error::FlightError;
use tonic::{Code, Status};

use crate::sink::SinkError;

/// A gRPC status as a [`SinkError`]. UNAVAILABLE, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED and
/// ABORTED are transient; so is UNAUTHENTICATED when the sink can authenticate again
/// (`can_reauthenticate`: its token may have been forgotten by a restarted server), and any
/// status caused by a broken connection.
/// SQLite-backed servers report lock contention between writers as UNKNOWN with
/// "database is locked": transient too.
pub(super) fn from_status(status: &Status, what: &str, can_reauthenticate: bool) -> SinkError {
    let message = format!("{what}: {} ({:?})", status.message(), status.code());
    // A connection that broke (reset, refused) comes back as a status with a transport
    // error as its source, whatever its code.
    let broken = std::error::Error::source(status).is_some_and(|e| e.is::<tonic::transport::Error>());
    if broken {
        return SinkError::Transient(message);
    }
    match status.code() {
        Code::Unavailable | Code::ResourceExhausted | Code::DeadlineExceeded | Code::Aborted => {
            SinkError::Transient(message)
        }
        Code::Unauthenticated if can_reauthenticate => SinkError::Transient(message),
        Code::Unauthenticated | Code::PermissionDenied => SinkError::Auth(message),
        Code::Unknown | Code::Internal if status.message().contains("database is locked") => {
            SinkError::Transient(message)
        }
        _ => SinkError::Failed(message),
    }
}

/// A Flight client error as a [`SinkError`].
pub(super) fn from_flight(error: FlightError, what: &str, can_reauthenticate: bool) -> SinkError {
    match error {
        FlightError::Tonic(status) => from_status(&status, what, can_reauthenticate),
        FlightError::Arrow(ArrowError::ExternalError(inner)) => match inner.downcast::<Status>() {
            Ok(status) => from_status(&status, what, can_reauthenticate),
            Err(inner) => SinkError::Failed(format!("{what}: {inner}")),
        },
        FlightError::ExternalError(inner) => match inner.downcast::<FlightError>() {
            Ok(inner) => from_flight(*inner, what, can_reauthenticate),
            Err(inner) => SinkError::Failed(format!("{what}: {inner}")),
        },
        other => SinkError::Failed(format!("{what}: {other}")),
    }
}

/// A failure to connect as a [`SinkError`]: certificate problems are configuration errors,
/// anything else (refused, reset, unreachable) is transient.
pub(super) fn from_transport(error: &tonic::transport::Error, endpoint: &str) -> SinkError {
    let mut chain = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        chain.push_str(": ");
        chain.push_str(&e.to_string());
        source = e.source();
    }
    let lower = chain.to_lowercase();
    if lower.contains("certificate") || lower.contains("tls") && lower.contains("handshake") {
        SinkError::Config(format!("TLS to {endpoint}: {chain}"))
    } else {
        SinkError::Transient(format!("connecting to {endpoint}: {chain}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_codes_are_retried_and_auth_is_not() {
        for code in [Code::Unavailable, Code::ResourceExhausted, Code::DeadlineExceeded] {
            assert!(from_status(&Status::new(code, "x"), "op", false).is_transient(), "{code:?}");
        }
        assert!(matches!(from_status(&Status::unauthenticated("bad"), "op", false), SinkError::Auth(_)));
        assert!(from_status(&Status::unauthenticated("expired"), "op", true).is_transient());
        assert!(matches!(from_status(&Status::invalid_argument("no such table"), "op", true), SinkError::Failed(_)));
        assert!(from_status(&Status::unknown("database is locked (5)"), "op", false).is_transient());
        let wrapped = FlightError::Tonic(Box::new(Status::unavailable("gone")));
        assert!(from_flight(wrapped, "op", false).is_transient());
    }
}
