//! Why a header could not be read.

use thiserror::Error;

/// A header that cannot be read, with a one-line reason.
///
/// Names taken from the file are printed with `{:?}` so that control characters in a hostile
/// header cannot break the one-line form.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HeaderError {
    /// The first four bytes are not the OpenEXR magic number.
    #[error("not an OpenEXR file (bad magic number)")]
    NotExr,
    /// The version field names a file format version other than 2.
    #[error("unsupported OpenEXR file format version {0}")]
    UnsupportedVersion(u8),
    /// The version field sets flag bits OpenEXR does not define.
    #[error("unknown flags 0x{0:x} in the version field")]
    UnknownFlags(u32),
    /// The bytes end inside the header.
    #[error("truncated header: needs at least {needed} bytes, only {available} available")]
    Truncated {
        /// Smallest prefix length that could hold the header.
        needed: usize,
        /// Bytes that were available.
        available: usize,
    },
    /// The header would be longer than [`super::limits::MAX_HEADER_BYTES`].
    #[error("header longer than the limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A count exceeds its hard cap.
    #[error("more than {limit} {what} in the header")]
    TooMany {
        /// What was counted (parts, attributes, channels, strings).
        what: &'static str,
        /// The cap.
        limit: usize,
    },
    /// A multi-part file whose header list is empty.
    #[error("multi-part file without parts")]
    NoParts,
    /// A name is not null-terminated within its maximum length of 255 bytes.
    #[error("part {part}: {what} longer than 255 bytes")]
    NameTooLong {
        /// Part index.
        part: usize,
        /// Which name (attribute name, attribute type name).
        what: &'static str,
    },
    /// An attribute declares a negative size.
    #[error("part {part}: attribute {attribute:?} has a negative size")]
    NegativeSize {
        /// Part index.
        part: usize,
        /// Attribute name.
        attribute: String,
    },
    /// An attribute value exceeds [`super::limits::MAX_ATTRIBUTE_BYTES`].
    #[error("part {part}: attribute {attribute:?} of {size} bytes exceeds the limit of {limit}")]
    AttributeTooLarge {
        /// Part index.
        part: usize,
        /// Attribute name.
        attribute: String,
        /// Declared size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The value of a known attribute type does not decode.
    #[error("part {part}: attribute {attribute:?} of type {type_name:?}: {reason}")]
    BadValue {
        /// Part index.
        part: usize,
        /// Attribute name.
        attribute: String,
        /// Attribute type name.
        type_name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The same attribute name appears twice with different types (OpenEXR refuses this too).
    #[error("part {part}: attribute {attribute:?} appears as {first:?} and as {second:?}")]
    TypeConflict {
        /// Part index.
        part: usize,
        /// Attribute name.
        attribute: String,
        /// Type of the first occurrence.
        first: String,
        /// Type of the later occurrence.
        second: String,
    },
    /// A required attribute is absent.
    #[error("part {part}: missing required attribute {attribute:?}")]
    MissingAttribute {
        /// Part index.
        part: usize,
        /// Attribute name.
        attribute: &'static str,
    },
    /// A required attribute has the wrong type.
    #[error("part {part}: attribute {attribute:?} has type {found:?}, expected {expected:?}")]
    WrongType {
        /// Part index.
        part: usize,
        /// Attribute name.
        attribute: &'static str,
        /// The type OpenEXR defines for it.
        expected: &'static str,
        /// The type found in the file.
        found: String,
    },
    /// A part of a multi-part file disagrees with the first part on attributes OpenEXR requires
    /// all parts to share.
    #[error("part {part}: shared attributes differ from part 0: {attributes}")]
    SharedAttributes {
        /// Part index.
        part: usize,
        /// The differing attributes, comma-separated.
        attributes: String,
    },
}
