//! A local directory tree (or one file) as a [`Source`]. Files ending in `.exr` (any case),
//! or those an include/exclude [`KeyFilter`] keeps (matched against the path below the
//! directory, as S3 keys below the prefix are), are listed in a deterministic order (sorted
//! per directory); symbolic links to files are followed, links to directories are not (no
//! cycles). A file named on its own is listed whatever its name.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use tokio::sync::mpsc;

use super::filter::KeyFilter;
use super::{Held, ReadHeader, Source, SourceError};
use crate::catalog::SourceFile;
use crate::header::{self, ReadError};

/// A local directory (or a single file) to scan.
#[derive(Debug, Clone)]
pub struct LocalSource {
    /// Absolute path of the directory (for a single file, its directory).
    root: PathBuf,
    /// Set when the source is a single file: its name.
    single: Option<String>,
    /// Which files of a directory are listed (else those ending in `.exr`).
    filter: Option<KeyFilter>,
}

/// Whether a file name ends in `.exr` (any case), UTF-8 or not.
fn is_exr(name: &OsStr) -> bool {
    let name = name.as_bytes();
    name.len() > 4 && name[name.len() - 4..].eq_ignore_ascii_case(b".exr")
}

impl LocalSource {
    /// A source for `path`, a directory or an EXR file.
    pub fn new(path: &Path) -> Result<Self, SourceError> {
        let unusable = |reason: String| SourceError::Unusable { location: path.display().to_string(), reason };
        let absolute = fs::canonicalize(path).map_err(|e| unusable(e.to_string()))?;
        let meta = fs::metadata(&absolute).map_err(|e| unusable(e.to_string()))?;
        if meta.is_dir() {
            return Ok(Self { root: absolute, single: None, filter: None });
        }
        match (absolute.parent(), absolute.file_name().and_then(|n| n.to_str())) {
            (Some(dir), Some(name)) if meta.is_file() => {
                Ok(Self { root: dir.to_path_buf(), single: Some(name.to_string()), filter: None })
            }
            _ => Err(unusable("neither a directory nor a file".into())),
        }
    }

    /// Lists the files of a directory that `filter` keeps instead of those ending in `.exr`.
    pub fn with_filter(self, filter: KeyFilter) -> Self {
        Self { filter: Some(filter), ..self }
    }

    /// Whether the file at `path` (under the root) is listed.
    fn keeps(&self, path: &Path) -> bool {
        match &self.filter {
            None => path.file_name().is_some_and(is_exr),
            Some(filter) => path.strip_prefix(&self.root).is_ok_and(|relative| {
                filter.keeps(&relative.to_string_lossy().replace(std::path::MAIN_SEPARATOR, "/"))
            }),
        }
    }

    /// The absolute directory scanned.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The catalog entry of `path` (absolute, under the root).
    fn entry(&self, path: &Path, meta: &fs::Metadata) -> Option<SourceFile> {
        let key = path.strip_prefix(&self.root).ok()?.to_str()?.replace(std::path::MAIN_SEPARATOR, "/");
        Some(SourceFile {
            uri: file_uri(path)?,
            bucket: None,
            key,
            size_bytes: meta.len(),
            last_modified: meta.modified().ok(),
            etag: None,
        })
    }

    /// Walks the tree, calling `found` per EXR file or per unreadable entry; stops when
    /// `found` returns false.
    fn walk(&self, found: &mut dyn FnMut(Result<SourceFile, SourceError>) -> bool) -> Result<(), SourceError> {
        if let Some(name) = &self.single {
            let path = self.root.join(name);
            let meta = fs::metadata(&path)
                .map_err(|e| SourceError::Unusable { location: path.display().to_string(), reason: e.to_string() })?;
            if let Some(file) = self.entry(&path, &meta) {
                found(Ok(file));
            }
            return Ok(());
        }
        let mut dirs = vec![self.root.clone()];
        while let Some(dir) = dirs.pop() {
            let listing = match fs::read_dir(&dir) {
                Ok(listing) => listing,
                Err(e) if dir == self.root => {
                    return Err(SourceError::Unusable { location: dir.display().to_string(), reason: e.to_string() });
                }
                Err(e) => {
                    if !found(Err(SourceError::Entry { location: dir.display().to_string(), reason: e.to_string() })) {
                        return Ok(());
                    }
                    continue;
                }
            };
            let mut entries: Vec<_> = listing.filter_map(Result::ok).collect();
            entries.sort_by_key(|e| e.file_name());
            let mut subdirs = Vec::new();
            for entry in entries {
                let path = entry.path();
                let Ok(kind) = entry.file_type() else { continue };
                if kind.is_dir() {
                    subdirs.push(path);
                    continue;
                }
                if !self.keeps(&path) {
                    continue;
                }
                // Follows a link to a file; a link to a directory is skipped.
                let item = match fs::metadata(&path) {
                    Ok(meta) if meta.is_file() => match self.entry(&path, &meta) {
                        Some(file) => Ok(file),
                        // Catalog keys and URIs are UTF-8: such a file is counted as failed.
                        None => Err(SourceError::Entry {
                            location: path.to_string_lossy().into_owned(),
                            reason: "path is not UTF-8: cannot be cataloged".into(),
                        }),
                    },
                    Ok(_) => continue,
                    Err(e) => Err(SourceError::Entry { location: path.display().to_string(), reason: e.to_string() }),
                };
                if !found(item) {
                    return Ok(());
                }
            }
            // Depth first, in name order.
            dirs.extend(subdirs.into_iter().rev());
        }
        Ok(())
    }
}

/// `file://` followed by the absolute path, with `%`, space, `#` and `?` escaped; `None`
/// for a path that is not UTF-8.
pub fn file_uri(path: &Path) -> Option<String> {
    let text = path.to_str()?;
    let mut uri = String::with_capacity(text.len() + 7);
    uri.push_str("file://");
    for c in text.chars() {
        match c {
            '%' => uri.push_str("%25"),
            ' ' => uri.push_str("%20"),
            '#' => uri.push_str("%23"),
            '?' => uri.push_str("%3F"),
            c => uri.push(c),
        }
    }
    Some(uri)
}

impl Source for LocalSource {
    async fn list(&self, found: mpsc::Sender<Result<SourceFile, SourceError>>) -> Result<(), SourceError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.walk(&mut |item| found.blocking_send(item).is_ok()))
            .await
            .map_err(|e| SourceError::Unusable { location: "directory walk".into(), reason: e.to_string() })?
    }

    async fn read_header(&self, file: &SourceFile) -> Result<ReadHeader, SourceError> {
        let path = self.root.join(&file.key);
        tokio::task::spawn_blocking(move || {
            let mut f = File::open(&path).map_err(|e| SourceError::File { reason: format!("open failed: {e}") })?;
            match header::read_header(&mut f) {
                Ok((header, read)) => {
                    Ok(ReadHeader { header, bytes_read: read as u64, file: None, held: Held::default() })
                }
                Err(e @ ReadError::Io(_)) => Err(SourceError::File { reason: e.to_string() }),
                Err(ReadError::Header(e)) => Err(SourceError::File { reason: e.to_string() }),
            }
        })
        .await
        .map_err(|e| SourceError::File { reason: format!("read task: {e}") })?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_exr_files_in_name_order() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        fs::create_dir_all(dir.path().join("b/c"))?;
        for name in ["b/c/z.exr", "b/a.EXR", "a.exr", "notes.txt", "b/c/frame.exr.bak", "with space.exr"] {
            fs::write(dir.path().join(name), b"x")?;
        }
        let source = LocalSource::new(dir.path())?;
        let mut keys = Vec::new();
        source.walk(&mut |item| {
            if let Ok(file) = item {
                keys.push((file.key, file.uri, file.size_bytes));
            }
            true
        })?;
        let names: Vec<&str> = keys.iter().map(|(k, _, _)| k.as_str()).collect();
        assert_eq!(names, ["a.exr", "with space.exr", "b/a.EXR", "b/c/z.exr"]);
        assert!(keys[1].1.ends_with("/with%20space.exr"), "{}", keys[1].1);
        assert!(keys.iter().all(|(_, uri, size)| uri.starts_with("file:///") && *size == 1));
        assert!(LocalSource::new(&dir.path().join("missing")).is_err());

        let include = ["b/**/*.exr".to_string(), "*.exr.bak".to_string()];
        let filtered = source.with_filter(KeyFilter::new(&include, &["z.*".to_string()])?);
        let mut keys = Vec::new();
        filtered.walk(&mut |item| {
            keys.extend(item.ok().map(|file| file.key));
            true
        })?;
        assert_eq!(keys, ["b/a.EXR", "b/c/frame.exr.bak"], "include and exclude globs, case-insensitive");
        Ok(())
    }

    #[test]
    fn files_with_names_that_are_not_utf8_are_reported_not_skipped() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        fs::write(dir.path().join("ok.exr"), b"x")?;
        fs::write(dir.path().join(OsStr::from_bytes(b"bad\xff.EXR")), b"x")?;
        fs::write(dir.path().join(OsStr::from_bytes(b"notes\xff.txt")), b"x")?;
        let source = LocalSource::new(dir.path())?;
        let (mut files, mut errors) = (Vec::new(), Vec::new());
        source.walk(&mut |item| {
            match item {
                Ok(file) => files.push(file.key),
                Err(e) => errors.push(e.to_string()),
            }
            true
        })?;
        assert_eq!(files, ["ok.exr"]);
        assert_eq!(errors.len(), 1, "only the EXR is reported: {errors:?}");
        assert!(errors[0].contains("bad\u{FFFD}.EXR") && errors[0].contains("not UTF-8"), "{}", errors[0]);
        Ok(())
    }
}
