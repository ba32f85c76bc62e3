//! Frame numbers from file names.

/// The frame number in a file name: the digits ending the name (before a non-numeric
/// extension such as `.exr`), separated by `.` or `_` or making up the whole name.
/// `beauty.1001.exr`, `beauty_1001.exr` and `shot010_v002.1001.exr` give 1001;
/// `beauty.exr` and `shot010.exr` give `None`. Any directory part of `path` is ignored.
pub fn frame_number(path: &str) -> Option<i64> {
    let name = path.rsplit(['/', '\\']).next().unwrap_or(path);
    let stem = match name.rsplit_once('.') {
        Some((stem, ext)) if !ext.is_empty() && !ext.bytes().all(|b| b.is_ascii_digit()) => stem,
        _ => name,
    };
    let digits_start = stem.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let digits = &stem[digits_start..];
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    match stem[..digits_start].chars().next_back() {
        None | Some('.' | '_') => digits.parse().ok(),
        Some(_) => None,
    }
}
