"""The one error type of the twin's operations, answered as an S3-style XML error."""


class ApiError(Exception):
    """A refused request: HTTP status, S3-style error code (as VAST's SDK reads it), message."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
