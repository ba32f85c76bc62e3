//! Which Flight failures are worth a retry.

use arrow::error::ArrowError;
use arrow_flight::error::FlightError;
use tonic::{Code, Status};

use crate::sink::SinkError;

/// A gRPC status as a [`SinkError`]:
///
/// - transient (retried): UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED, RESOURCE_EXHAUSTED for
///   anything but a message size (quota, overload), any status caused by a broken
///   connection, UNAUTHENTICATED when the sink can authenticate again
///   (`can_reauthenticate`: a restarted server may have forgotten its token), and a locked
///   SQLite database (see [`LOCKED`]);
/// - configuration: a message over a size limit (RESOURCE_EXHAUSTED or OUT_OF_RANGE naming
///   the limit): the same message would be refused again, `max_message_bytes` must change;
/// - authentication: UNAUTHENTICATED otherwise, PERMISSION_DENIED;
/// - failed (not retried): everything else — INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS,
///   FAILED_PRECONDITION, OUT_OF_RANGE, UNIMPLEMENTED, INTERNAL, UNKNOWN, DATA_LOSS, CANCELLED.
pub(super) fn from_status(status: &Status, what: &str, can_reauthenticate: bool) -> SinkError {
    let message = format!("{what}: {} ({:?})", status.message(), status.code());
    // A connection that broke (reset, refused) comes back as a status with a transport
    // error as its source, whatever its code.
    let broken = std::error::Error::source(status).is_some_and(|e| e.is::<tonic::transport::Error>());
    if broken {
        return SinkError::Transient(message);
    }
    match status.code() {
        Code::ResourceExhausted | Code::OutOfRange if too_large(status.message()) => SinkError::Config(format!(
            "{message}: a message is larger than the server (or client) accepts; lower the sink option \
             max_message_bytes"
        )),
        Code::Unavailable | Code::ResourceExhausted | Code::DeadlineExceeded | Code::Aborted => {
            SinkError::Transient(message)
        }
        Code::Unauthenticated if can_reauthenticate => SinkError::Transient(message),
        Code::Unauthenticated | Code::PermissionDenied => SinkError::Auth(message),
        Code::Unknown | Code::Internal if locked(status.message()) => {
            SinkError::Transient(format!("{message}: {LOCKED}"))
        }
        _ => SinkError::Failed(message),
    }
}

/// What a locked SQLite-backed catalog means, in the error that reports it.
pub(super) const LOCKED: &str = "another transaction holds the catalog's write lock (e.g. a writer killed \
     mid-batch); it stays locked until that transaction ends or the server expires it";

/// SQLite's lock contention as arrow-go's SQLite servers report it (UNKNOWN or INTERNAL):
/// `database is locked (5) (SQLITE_BUSY)`, `database table is locked (6)`.
fn locked(message: &str) -> bool {
    ["database is locked", "database table is locked", "SQLITE_BUSY", "SQLITE_LOCKED"]
        .iter()
        .any(|m| message.contains(m))
}

/// A refusal of a message for its size: grpc-go's "received message larger than max (N vs.
/// M)", tonic's "message length too large".
fn too_large(message: &str) -> bool {
    message.contains("larger than max") || message.contains("message length too large")
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
        for code in [Code::Unavailable, Code::ResourceExhausted, Code::DeadlineExceeded, Code::Aborted] {
            assert!(from_status(&Status::new(code, "x"), "op", false).is_transient(), "{code:?}");
        }
        assert!(matches!(from_status(&Status::unauthenticated("bad"), "op", false), SinkError::Auth(_)));
        assert!(matches!(from_status(&Status::permission_denied("no"), "op", true), SinkError::Auth(_)));
        assert!(from_status(&Status::unauthenticated("expired"), "op", true).is_transient());
        let wrapped = FlightError::Tonic(Box::new(Status::unavailable("gone")));
        assert!(from_flight(wrapped, "op", false).is_transient());
    }

    #[test]
    fn permanent_statuses_are_not_retried() {
        for code in [
            Code::InvalidArgument,
            Code::NotFound,
            Code::AlreadyExists,
            Code::FailedPrecondition,
            Code::OutOfRange,
            Code::Unimplemented,
            Code::Internal,
            Code::Unknown,
            Code::DataLoss,
            Code::Cancelled,
        ] {
            let error = from_status(&Status::new(code, "no such table: files"), "op", true);
            assert!(matches!(error, SinkError::Failed(_)), "{code:?}: {error:?}");
        }
    }

    #[test]
    fn oversize_messages_are_a_configuration_error() {
        let grpc_go = Status::resource_exhausted("grpc: received message larger than max (5242880 vs. 4194304)");
        let tonic =
            Status::out_of_range("Error, encoded message length too large: found 9 bytes, the limit is: 8 bytes");
        for status in [grpc_go, tonic] {
            let error = from_status(&status, "ingesting into files", false);
            assert!(matches!(&error, SinkError::Config(m) if m.contains("max_message_bytes")), "{error:?}");
        }
    }

    #[test]
    fn a_locked_database_is_transient_and_says_what_holds_it() {
        for message in ["database is locked (5) (SQLITE_BUSY)", "failed to commit transaction: database is locked"] {
            for status in [Status::unknown(message), Status::internal(message)] {
                let error = from_status(&status, "inserting into files", false);
                assert!(error.is_transient(), "{error:?}");
                assert!(error.to_string().contains("another transaction holds the catalog"), "{error}");
            }
        }
    }
}
