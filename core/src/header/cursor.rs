//! A bounds-checked little-endian reader over a byte slice. Every read either succeeds or
//! reports what is missing; nothing here can index out of bounds.

use super::value::ValueError;

/// The error of every read past the end of the bytes.
pub(super) const SHORT: ValueError = "value is shorter than its type";

/// Why a null-terminated name could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NameError {
    /// No null byte within the maximum length, although the bytes go on.
    TooLong,
    /// The bytes end before a null byte (and before the maximum length).
    Unterminated,
}

/// Reads values from a byte slice, front to back.
pub(super) struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
    wanted: usize,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0, wanted: 0 }
    }

    pub(super) fn at(data: &'a [u8], pos: usize) -> Self {
        Self { data, pos, wanted: 0 }
    }

    pub(super) fn position(&self) -> usize {
        self.pos
    }

    pub(super) fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    /// After a read failed for lack of bytes: how many bytes (from the start of the slice) it
    /// would have needed at least.
    pub(super) fn wanted(&self) -> usize {
        self.wanted
    }

    /// The next `n` bytes, or `None` (consuming nothing) when fewer remain.
    pub(super) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.saturating_add(n);
        let Some(bytes) = self.data.get(self.pos..end) else {
            self.wanted = end;
            return None;
        };
        self.pos = end;
        Some(bytes)
    }

    /// Everything not read yet.
    pub(super) fn rest(&mut self) -> &'a [u8] {
        let bytes = self.data.get(self.pos..).unwrap_or_default();
        self.pos = self.data.len();
        bytes
    }

    /// A name of at most `max` bytes followed by a null byte; returns the name without the null.
    pub(super) fn name(&mut self, max: usize) -> Result<&'a [u8], NameError> {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        let window = &rest[..rest.len().min(max.saturating_add(1))];
        match window.iter().position(|&b| b == 0) {
            Some(len) => {
                self.pos += len + 1;
                Ok(&window[..len])
            }
            None if window.len() > max => Err(NameError::TooLong),
            None => {
                self.wanted = self.data.len().saturating_add(1);
                Err(NameError::Unterminated)
            }
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ValueError> {
        self.take(N).and_then(|b| b.try_into().ok()).ok_or(SHORT)
    }

    pub(super) fn u8(&mut self) -> Result<u8, ValueError> {
        Ok(self.array::<1>()?[0])
    }

    pub(super) fn u32(&mut self) -> Result<u32, ValueError> {
        self.array().map(u32::from_le_bytes)
    }

    pub(super) fn i32(&mut self) -> Result<i32, ValueError> {
        self.array().map(i32::from_le_bytes)
    }

    pub(super) fn f32(&mut self) -> Result<f32, ValueError> {
        self.array().map(f32::from_le_bytes)
    }

    pub(super) fn f64(&mut self) -> Result<f64, ValueError> {
        self.array().map(f64::from_le_bytes)
    }

    pub(super) fn i32s<const N: usize>(&mut self) -> Result<[i32; N], ValueError> {
        let mut out = [0; N];
        for v in &mut out {
            *v = self.i32()?;
        }
        Ok(out)
    }

    pub(super) fn f32s<const N: usize>(&mut self) -> Result<[f32; N], ValueError> {
        let mut out = [0.0; N];
        for v in &mut out {
            *v = self.f32()?;
        }
        Ok(out)
    }

    pub(super) fn f64s<const N: usize>(&mut self) -> Result<[f64; N], ValueError> {
        let mut out = [0.0; N];
        for v in &mut out {
            *v = self.f64()?;
        }
        Ok(out)
    }
}
