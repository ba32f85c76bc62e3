//! A small JSON writer for records.
//!
//! Records are most of `exrscan inspect`'s work per file, so they are written directly into a
//! byte buffer: keys are literals, strings that need no escaping (nearly all names in a
//! header) are copied as they are after one fast scan, and only numbers and strings that do
//! need escaping go through `serde_json`, which keeps the output identical to its encoding
//! (shortest round-trip floats, standard escapes).

/// Appends JSON to a byte buffer. The caller writes the structure (braces, keys, commas).
pub(super) struct JsonOut<'a> {
    buf: &'a mut Vec<u8>,
}

impl<'a> JsonOut<'a> {
    pub(super) fn new(buf: &'a mut Vec<u8>) -> Self {
        Self { buf }
    }

    /// Appends bytes that are already JSON (punctuation, `"key":` literals).
    pub(super) fn raw(&mut self, json: &[u8]) {
        self.buf.extend_from_slice(json);
    }

    /// A JSON string.
    pub(super) fn string(&mut self, s: &str) {
        if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
            self.buf.reserve(s.len() + 2);
            self.buf.push(b'"');
            self.buf.extend_from_slice(s.as_bytes());
            self.buf.push(b'"');
        } else {
            // Writing a string into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *self.buf, s);
        }
    }

    /// A JSON string or `null`.
    pub(super) fn opt_string(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.string(s),
            None => self.raw(b"null"),
        }
    }

    /// An integer.
    pub(super) fn int(&mut self, v: impl Into<i64>) {
        let _ = serde_json::to_writer(&mut *self.buf, &v.into());
    }

    /// An unsigned integer.
    pub(super) fn uint(&mut self, v: impl Into<u64>) {
        let _ = serde_json::to_writer(&mut *self.buf, &v.into());
    }

    pub(super) fn bool(&mut self, v: bool) {
        self.raw(if v { b"true" } else { b"false" });
    }

    /// An `f32` in its shortest round-trip form, or the string `"nan"`, `"inf"` or `"-inf"`
    /// (JSON has no non-finite numbers and `null` would lose the value).
    pub(super) fn f32(&mut self, v: f32) {
        if v.is_finite() {
            let _ = serde_json::to_writer(&mut *self.buf, &v);
        } else {
            self.non_finite(f64::from(v));
        }
    }

    /// An `f64`, like [`JsonOut::f32`].
    pub(super) fn f64(&mut self, v: f64) {
        if v.is_finite() {
            let _ = serde_json::to_writer(&mut *self.buf, &v);
        } else {
            self.non_finite(v);
        }
    }

    fn non_finite(&mut self, v: f64) {
        self.raw(if v.is_nan() {
            b"\"nan\""
        } else if v > 0.0 {
            b"\"inf\""
        } else {
            b"\"-inf\""
        });
    }

    /// `[a,b,…]`, each item written by `item`.
    pub(super) fn array<T>(&mut self, items: impl IntoIterator<Item = T>, mut item: impl FnMut(&mut Self, T)) {
        self.raw(b"[");
        for (i, v) in items.into_iter().enumerate() {
            if i > 0 {
                self.raw(b",");
            }
            item(self, v);
        }
        self.raw(b"]");
    }

    /// Lowercase hex of `bytes`, as a JSON string.
    pub(super) fn hex(&mut self, bytes: &[u8]) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        self.buf.push(b'"');
        for b in bytes {
            self.buf.push(HEX[usize::from(b >> 4)]);
            self.buf.push(HEX[usize::from(b & 0x0f)]);
        }
        self.buf.push(b'"');
    }
}

#[cfg(test)]
mod tests {
    use super::JsonOut;

    fn write(f: impl FnOnce(&mut JsonOut<'_>)) -> String {
        let mut buf = Vec::new();
        f(&mut JsonOut::new(&mut buf));
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn strings_escape_exactly_like_serde_json() {
        for s in ["plain", "", "quote\"d", "back\\slash", "new\nline", "\u{1}\u{1f}", "ünïcødé ✓", "tab\t"] {
            assert_eq!(write(|j| j.string(s)), serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(write(|j| j.f32(0.1)), "0.1");
        assert_eq!(write(|j| j.f32(1.0)), "1.0");
        assert_eq!(write(|j| j.f64(f64::NEG_INFINITY)), "\"-inf\"");
        assert_eq!(write(|j| j.f32(f32::NAN)), "\"nan\"");
        assert_eq!(write(|j| j.int(-7i32)), "-7");
        assert_eq!(write(|j| j.uint(u32::MAX)), "4294967295");
        assert_eq!(write(|j| j.array([1i32, 2, 3], |j, v| j.int(v))), "[1,2,3]");
        assert_eq!(write(|j| j.hex(&[0x0f, 0xa0])), "\"0fa0\"");
    }
}
