//! What an S3 request failure means for a scan: retry it, skip the object, or stop.
//!
//! `object_store` reports HTTP statuses only inside its error messages (its status-bearing
//! error type is private), so the status is read from the error chain's text; transport
//! failures are recognised by their public [`HttpError`] type.

use object_store::client::HttpError;

use crate::retry::Transient;

/// A classified S3 failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum S3Failure {
    /// The server is unreachable, overloaded (503 SlowDown, 429) or failing (5xx): a later
    /// attempt may succeed.
    #[error("S3 unavailable: {0}")]
    Transient(String),
    /// The credentials were refused or could not sign (401, 403, an S3 error code such as
    /// `ExpiredToken` or `RequestTimeTooSkewed`):
    /// no object can be read with them, so the scan stops rather than failing each object.
    #[error("S3 refused the credentials: {0}")]
    Denied(String),
    /// The bucket or object does not exist (404).
    #[error("not found: {0}")]
    NotFound(String),
    /// The object changed between two requests (412 on `If-Match`).
    #[error("object changed while it was read: {0}")]
    Changed(String),
    /// Any other refusal (400, 416 on an empty object, an unlistable key…).
    #[error("S3 request refused: {0}")]
    Refused(String),
}

impl Transient for S3Failure {
    fn is_transient(&self) -> bool {
        matches!(self, S3Failure::Transient(_))
    }
}

/// S3 error codes that mean the request's credentials or signature are at fault, whatever
/// the status (AWS answers `ExpiredToken` with 400, `RequestTimeTooSkewed` with 403).
const CREDENTIAL_CODES: &[&str] = &[
    "AccessDenied",
    "AuthorizationHeaderMalformed",
    "ExpiredToken",
    "InvalidAccessKeyId",
    "InvalidClientTokenId",
    "InvalidToken",
    "RequestExpired",
    "RequestTimeTooSkewed",
    "SignatureDoesNotMatch",
    "TokenRefreshRequired",
];

/// The `<Code>` of an S3 error document in `text`.
fn error_code(text: &str) -> Option<&str> {
    text.split_once("<Code>").and_then(|(_, rest)| rest.split_once("</Code>")).map(|(code, _)| code)
}

/// The HTTP status named in `message` (`… status code: 503 Service Unavailable …`).
fn status_in(message: &str) -> Option<u16> {
    let rest = &message[message.find("status code: ")? + "status code: ".len()..];
    rest.get(..3)?.parse().ok()
}

/// `416 InvalidRange`: the status and the S3 error code of an error document, when the
/// message carries them.
fn concise(status: u16, text: &str) -> String {
    match (status, error_code(text)) {
        (416, _) => "416 InvalidRange: the object is empty".to_string(),
        (_, Some(code)) => format!("{status} {code}"),
        (_, None) => format!("HTTP {status}"),
    }
}

/// One line: the error and its sources, without repeating nested messages.
fn chain_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let line = e.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = e.source();
    }
    text.replace('\n', " ")
}

/// Classifies an `object_store` error.
pub fn classify(error: &object_store::Error) -> S3Failure {
    use object_store::Error as E;
    let text = chain_text(error);
    match error {
        E::NotFound { .. } => return S3Failure::NotFound(concise(404, &text)),
        E::PermissionDenied { .. } => return S3Failure::Denied(concise(403, &text)),
        E::Unauthenticated { .. } => return S3Failure::Denied(concise(401, &text)),
        E::Precondition { .. } => return S3Failure::Changed(concise(412, &text)),
        E::InvalidPath { .. } => return S3Failure::Refused(text),
        _ => {}
    }
    let mut status = None;
    let mut transport = None;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(http) = e.downcast_ref::<HttpError>() {
            transport = Some(http.kind());
        }
        status = status.or_else(|| status_in(&e.to_string()));
        source = e.source();
    }
    let credential_code = error_code(&text).is_some_and(|code| CREDENTIAL_CODES.contains(&code));
    match (status, transport) {
        (Some(code @ (401 | 403)), _) => S3Failure::Denied(concise(code, &text)),
        (Some(code), _) if credential_code => S3Failure::Denied(concise(code, &text)),
        (Some(code @ 404), _) => S3Failure::NotFound(concise(code, &text)),
        (Some(code @ 412), _) => S3Failure::Changed(concise(code, &text)),
        (Some(code @ (408 | 429 | 500..=599)), _) => S3Failure::Transient(concise(code, &text)),
        (Some(code), _) => S3Failure::Refused(concise(code, &text)),
        // An untrusted or mismatched certificate does not heal by waiting.
        (None, Some(_)) if text.to_ascii_lowercase().contains("certificate") => S3Failure::Refused(text),
        // Any other transport failure (connect, reset, timeout, a body cut short) may pass.
        (None, Some(_)) => S3Failure::Transient(text),
        // An error document inside a 200 response (S3 does this for SlowDown too).
        (None, None) if text.contains("SlowDown") || text.contains("InternalError") => S3Failure::Transient(text),
        (None, None) => S3Failure::Refused(text),
    }
}

#[cfg(test)]
mod tests {
    use object_store::client::HttpErrorKind;

    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error(
        "Error performing GET http://x/b/k in 2ms - Server returned non-2xx status code: {0}: <Error><Code>X</Code></Error>"
    )]
    struct Status(&'static str);

    fn generic(status: &'static str) -> object_store::Error {
        object_store::Error::Generic { store: "S3", source: Box::new(Status(status)) }
    }

    #[test]
    fn statuses_are_read_from_the_message() {
        assert!(classify(&generic("503 Service Unavailable")).is_transient());
        assert!(classify(&generic("500 Internal Server Error")).is_transient());
        assert!(classify(&generic("429 Too Many Requests")).is_transient());
        assert!(matches!(classify(&generic("403 Forbidden")), S3Failure::Denied(_)));
        assert!(matches!(classify(&generic("404 Not Found")), S3Failure::NotFound(_)));
        assert!(matches!(classify(&generic("416 Range Not Satisfiable")), S3Failure::Refused(_)));
        assert!(matches!(classify(&generic("412 Precondition Failed")), S3Failure::Changed(_)));
        assert_eq!(classify(&generic("403 Forbidden")).to_string(), "S3 refused the credentials: 403 X");
        let empty = classify(&generic("416 Range Not Satisfiable")).to_string();
        assert_eq!(empty, "S3 request refused: 416 InvalidRange: the object is empty");
    }

    #[derive(Debug, thiserror::Error)]
    #[error("Server returned non-2xx status code: {0}: <Error><Code>{1}</Code><Message>m</Message></Error>")]
    struct Coded(&'static str, &'static str);

    #[test]
    fn credential_codes_are_denials_whatever_the_status() {
        for (status, code) in [
            ("400 Bad Request", "ExpiredToken"),
            ("400 Bad Request", "InvalidToken"),
            ("403 Forbidden", "RequestTimeTooSkewed"),
            ("403 Forbidden", "SignatureDoesNotMatch"),
            ("403 Forbidden", "InvalidAccessKeyId"),
        ] {
            let error = object_store::Error::Generic { store: "S3", source: Box::new(Coded(status, code)) };
            let failure = classify(&error);
            assert!(matches!(failure, S3Failure::Denied(_)), "{status} {code}: {failure:?}");
            assert!(failure.to_string().ends_with(code), "{failure}");
        }
        let other =
            object_store::Error::Generic { store: "S3", source: Box::new(Coded("400 Bad Request", "InvalidArgument")) };
        assert!(matches!(classify(&other), S3Failure::Refused(_)));
    }

    #[test]
    fn transport_failures_are_transient() {
        for kind in [HttpErrorKind::Connect, HttpErrorKind::Request, HttpErrorKind::Timeout, HttpErrorKind::Interrupted]
        {
            let source = Box::new(HttpError::new(kind, std::io::Error::other("reset")));
            let error = object_store::Error::Generic { store: "S3", source };
            assert!(classify(&error).is_transient(), "{kind:?}");
        }
        let tls =
            HttpError::new(HttpErrorKind::Connect, std::io::Error::other("invalid peer certificate: UnknownIssuer"));
        let error = object_store::Error::Generic { store: "S3", source: Box::new(tls) };
        assert!(matches!(classify(&error), S3Failure::Refused(_)), "a certificate error is not retried");
    }

    #[test]
    fn typed_errors_keep_their_meaning() {
        let e = object_store::Error::NotFound { path: "k".into(), source: Box::new(Status("404 Not Found")) };
        assert!(matches!(classify(&e), S3Failure::NotFound(_)));
        let e = object_store::Error::PermissionDenied { path: "k".into(), source: Box::new(Status("403 Forbidden")) };
        assert!(matches!(classify(&e), S3Failure::Denied(_)));
    }
}
