//! Include/exclude globs on object keys.
//!
//! Patterns are matched, case-insensitively, against the key relative to the scanned prefix
//! (`shot010/beauty.1001.exr` under `s3://bucket/renders/`). `*` and `?` stay within one
//! `/`-separated segment, `**` crosses segments, `{a,b}` and `[…]` work as in shells. A
//! pattern without `/` matches the last segment only (`*.exr` matches at any depth), as in
//! `.gitignore`. A key is kept when it matches some include pattern and no exclude
//! pattern; with no include pattern given, the include is `*.exr`.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// Include used when none is given.
pub const DEFAULT_INCLUDE: &str = "*.exr";

/// A glob could not be compiled.
#[derive(Debug, thiserror::Error)]
#[error("bad glob `{pattern}`: {reason}")]
pub struct GlobError {
    /// The pattern as given.
    pub pattern: String,
    /// Why it is not a glob.
    pub reason: String,
}

/// Which keys a scan keeps.
#[derive(Debug, Clone)]
pub struct KeyFilter {
    include: GlobSet,
    exclude: GlobSet,
    include_patterns: Vec<String>,
    exclude_patterns: Vec<String>,
}

fn compile(patterns: &[String]) -> Result<GlobSet, GlobError> {
    let mut set = GlobSetBuilder::new();
    for pattern in patterns {
        let full = if pattern.contains('/') { pattern.clone() } else { format!("**/{pattern}") };
        let glob = GlobBuilder::new(&full)
            .literal_separator(true)
            .case_insensitive(true)
            .build()
            .map_err(|e| GlobError { pattern: pattern.clone(), reason: e.kind().to_string() })?;
        set.add(glob);
    }
    set.build().map_err(|e| GlobError { pattern: patterns.join(","), reason: e.to_string() })
}

/// Splits a comma-separated list of patterns, dropping empty items.
pub fn split_patterns(list: &str) -> Vec<String> {
    list.split(',').map(str::trim).filter(|p| !p.is_empty()).map(str::to_owned).collect()
}

impl KeyFilter {
    /// A filter keeping keys matching some of `include` (default `*.exr`) and none of `exclude`.
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self, GlobError> {
        let include_patterns = if include.is_empty() { vec![DEFAULT_INCLUDE.to_string()] } else { include.to_vec() };
        Ok(Self {
            include: compile(&include_patterns)?,
            exclude: compile(exclude)?,
            include_patterns,
            exclude_patterns: exclude.to_vec(),
        })
    }

    /// Whether `relative_key` (the key without the scanned prefix) is kept.
    pub fn keeps(&self, relative_key: &str) -> bool {
        self.include.is_match(relative_key) && !self.exclude.is_match(relative_key)
    }

    /// The include patterns in force.
    pub fn include_patterns(&self) -> &[String] {
        &self.include_patterns
    }

    /// The exclude patterns in force.
    pub fn exclude_patterns(&self) -> &[String] {
        &self.exclude_patterns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(include: &str, exclude: &str) -> KeyFilter {
        KeyFilter::new(&split_patterns(include), &split_patterns(exclude)).expect("valid globs")
    }

    #[test]
    fn default_keeps_exr_files_at_any_depth() {
        let f = filter("", "");
        assert!(f.keeps("a.exr"));
        assert!(f.keeps("shot/010/beauty.1001.EXR"));
        assert!(!f.keeps("shot/notes.txt"));
        assert!(!f.keeps("shot/beauty.exr.bak"));
    }

    #[test]
    fn include_and_exclude_combine() {
        let f = filter("shot*/**/*.exr, *.sxr", "**/tmp/**,*_preview.exr");
        assert!(f.keeps("shot010/comp/v001/a.exr"));
        assert!(f.keeps("x/y.sxr"));
        assert!(!f.keeps("seq/a.exr"), "the include needs a shot* first segment");
        assert!(!f.keeps("shot010/tmp/a.exr"));
        assert!(!f.keeps("shot010/comp/a_preview.exr"));
        // `*` does not cross `/`.
        assert!(!filter("shot*.exr/x", "").keeps("shot1/a.exr/x"));
    }

    #[test]
    fn bad_globs_are_refused() {
        let error = KeyFilter::new(&["[a-".to_string()], &[]).expect_err("unclosed class");
        assert_eq!(error.pattern, "[a-");
    }
}
