//! The attributes every part of a multi-part file must share.
//!
//! OpenEXR's `MultiPartInputFile` refuses a file whose parts disagree with the first part on
//! them (`checkSharedAttributesValues`), so this reader refuses it too. The list and the
//! comparisons are OpenEXR's: `displayWindow` and `pixelAspectRatio` always (with their
//! defaults when absent); and the attributes OpenEXR looks up by the *type* names
//! `timecode` and `chromaticities`, which differ when a later part has one that the first
//! part lacks or holds with another value.

use super::error::HeaderError;
use super::part::Part;
use super::value::AttributeValue;

/// Checks every part after the first against the first.
pub(super) fn check(parts: &[Part]) -> Result<(), HeaderError> {
    let Some((first, rest)) = parts.split_first() else {
        return Ok(());
    };
    for part in rest {
        let mut differing = Vec::new();
        if part.display_window != first.display_window {
            differing.push("displayWindow");
        }
        // `!=` on floats, as OpenEXR compares them (a NaN never conforms).
        if part.pixel_aspect_ratio != first.pixel_aspect_ratio {
            differing.push("pixelAspectRatio");
        }
        for name in ["timecode", "chromaticities"] {
            if let Some(value) = typed(part, name)
                && typed(first, name) != Some(value)
            {
                differing.push(name);
            }
        }
        if !differing.is_empty() {
            return Err(HeaderError::SharedAttributes { part: part.index, attributes: differing.join(", ") });
        }
    }
    Ok(())
}

/// The attribute `name`, only when it has the type of the same name (OpenEXR's
/// `findTypedAttribute`).
fn typed<'a>(part: &'a Part, name: &str) -> Option<&'a AttributeValue> {
    let value = &part.attribute(name)?.value;
    (value.type_name() == name).then_some(value)
}

#[cfg(test)]
mod tests {
    use crate::header::build::{self, PartBytes, attribute, f32s, i32s};
    use crate::header::{FLAG_MULTIPART, HeaderError, parse_complete};

    fn part(name: &str) -> PartBytes {
        PartBytes::scanline(&["R"], 4, 4, 0)
            .with(build::string("name", name))
            .with(build::string("type", "scanlineimage"))
    }

    #[test]
    fn parts_must_agree_on_shared_attributes() {
        let agreeing = build::file(FLAG_MULTIPART, &[part("a"), part("b")]);
        assert_eq!(parse_complete(&agreeing).map(|h| h.parts.len()), Ok(2));

        let aspect = part("b").without("pixelAspectRatio").with(attribute("pixelAspectRatio", "float", &f32s(&[2.0])));
        let display =
            part("b").without("displayWindow").with(attribute("displayWindow", "box2i", &i32s(&[0, 0, 7, 7])));
        let timecode = part("b").with(attribute("timecode", "timecode", &i32s(&[1, 0])));
        for (later, differing) in [(aspect, "pixelAspectRatio"), (display, "displayWindow"), (timecode, "timecode")] {
            let file = build::file(FLAG_MULTIPART, &[part("a"), later]);
            let want = HeaderError::SharedAttributes { part: 1, attributes: differing.into() };
            assert_eq!(parse_complete(&file).map(|h| h.parts.len()), Err(want));
        }
        // As in OpenEXR, only a later part's extra `timecode` conflicts, not the first part's.
        let first_only = build::file(
            FLAG_MULTIPART,
            &[part("a").with(attribute("timecode", "timecode", &i32s(&[1, 0]))), part("b")],
        );
        assert!(parse_complete(&first_only).is_ok());
    }

    #[test]
    fn defaultable_attributes_may_be_absent() {
        let bare = PartBytes::scanline(&["R"], 4, 4, 0)
            .without("pixelAspectRatio")
            .without("lineOrder")
            .without("screenWindowCenter")
            .without("screenWindowWidth");
        let header = parse_complete(&build::file(0, &[bare])).unwrap();
        let part = &header.parts[0];
        assert_eq!((part.pixel_aspect_ratio, part.line_order.to_string()), (1.0, "increasing_y".to_owned()));
        assert!(part.attribute("pixelAspectRatio").is_none());
    }
}
