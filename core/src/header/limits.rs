//! Hard caps on what a header may contain, so that a hostile header cannot make the reader
//! allocate without bound. Every cap is far above what real renders write (a 1080p beauty with
//! 40 AOVs has a header of a few KiB); the largest legitimate item is a preview image.

use super::value::DecodeError;

/// Longest header (all parts, from the magic number to the end of the header list).
pub const MAX_HEADER_BYTES: usize = 16 * 1024 * 1024;
/// Largest single attribute value (a 1024×1024 preview is 4 MiB).
pub const MAX_ATTRIBUTE_BYTES: usize = 8 * 1024 * 1024;
/// Most parts in a multi-part file.
pub const MAX_PARTS: usize = 4096;
/// Most attributes in the whole header (all parts together).
pub const MAX_ATTRIBUTES: usize = 65_536;
/// Most channels in the whole header (all channel lists together).
pub const MAX_CHANNELS: usize = 65_536;
/// Most strings in the whole header's `stringvector` values together.
pub const MAX_STRINGS: usize = 65_536;
/// Longest attribute, type or channel name, as in OpenEXR (`Name::MAX_LENGTH`).
pub const MAX_NAME_BYTES: usize = 255;

/// What is left of the count caps while one header is read.
#[derive(Debug)]
pub(super) struct Budget {
    attributes: usize,
    channels: usize,
    strings: usize,
}

impl Budget {
    pub(super) fn new() -> Self {
        Self { attributes: MAX_ATTRIBUTES, channels: MAX_CHANNELS, strings: MAX_STRINGS }
    }

    /// Takes one attribute from the budget; `false` once the cap is reached.
    pub(super) fn attribute(&mut self) -> bool {
        take(&mut self.attributes)
    }

    pub(super) fn channel(&mut self) -> Result<(), DecodeError> {
        if take(&mut self.channels) { Ok(()) } else { Err(DecodeError::TooMany("channels", MAX_CHANNELS)) }
    }

    pub(super) fn string(&mut self) -> Result<(), DecodeError> {
        if take(&mut self.strings) { Ok(()) } else { Err(DecodeError::TooMany("strings", MAX_STRINGS)) }
    }
}

fn take(left: &mut usize) -> bool {
    match left.checked_sub(1) {
        Some(rest) => {
            *left = rest;
            true
        }
        None => false,
    }
}
