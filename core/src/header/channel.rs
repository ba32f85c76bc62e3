//! Channels of a part (`chlist` entries) and their layer/component split.

use std::fmt;

use super::Name;

/// Pixel type code of a channel: 0 `uint`, 1 `half`, 2 `float`; other codes are kept and
/// print as `unknown(N)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PixelType(pub i32);

impl PixelType {
    /// `uint`, `half` or `float`; `None` for codes OpenEXR does not define.
    pub fn name(self) -> Option<&'static str> {
        match self.0 {
            0 => Some("uint"),
            1 => Some("half"),
            2 => Some("float"),
            _ => None,
        }
    }
}

impl fmt::Display for PixelType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "unknown({})", self.0),
        }
    }
}

/// One channel of a part, as its `chlist` entry describes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Channel {
    /// Full name, e.g. `diffuse.R`.
    pub name: Name,
    /// Pixel type.
    pub pixel_type: PixelType,
    /// Perceptually linear hint for lossy compression.
    pub p_linear: bool,
    /// Horizontal subsampling (1 for full resolution; 2 for the chroma of luminance/chroma files).
    pub x_sampling: i32,
    /// Vertical subsampling.
    pub y_sampling: i32,
}

impl Channel {
    /// Layer and component at once: the name split on its last dot.
    pub fn split(&self) -> (&str, &str) {
        self.name.rsplit_once('.').unwrap_or(("", self.name.as_str()))
    }

    /// Everything before the last dot (`diffuse.R` → `diffuse`, `a.b.c.R` → `a.b.c`), or `""`
    /// for a name without a dot.
    pub fn layer(&self) -> &str {
        self.name.rsplit_once('.').map_or("", |(layer, _)| layer)
    }

    /// Everything after the last dot (`diffuse.R` → `R`), or the whole name without a dot.
    pub fn component(&self) -> &str {
        self.name.rsplit_once('.').map_or(self.name.as_str(), |(_, component)| component)
    }
}
