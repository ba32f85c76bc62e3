use sha2::{Digest, Sha256};

use super::build::{self, PartBytes, attribute, f32s, i32s};
use super::limits::{MAX_ATTRIBUTE_BYTES, MAX_ATTRIBUTES, MAX_CHANNELS, MAX_PARTS, MAX_STRINGS};
use super::*;

/// The committed seed files (written by the OpenEXR Python bindings, see
/// `worker/fuzz/make_seeds.py`).
pub(crate) const SEEDS: &[(&str, &[u8])] = &[
    ("beauty_aovs.1001.exr", include_bytes!("../../fuzz/corpus/header/beauty_aovs.1001.exr")),
    ("deep_scanline.exr", include_bytes!("../../fuzz/corpus/header/deep_scanline.exr")),
    ("deep_tile.exr", include_bytes!("../../fuzz/corpus/header/deep_tile.exr")),
    ("every_attribute_type.exr", include_bytes!("../../fuzz/corpus/header/every_attribute_type.exr")),
    ("htj2k256.exr", include_bytes!("../../fuzz/corpus/header/htj2k256.exr")),
    ("long_names.exr", include_bytes!("../../fuzz/corpus/header/long_names.exr")),
    ("luminance_chroma.exr", include_bytes!("../../fuzz/corpus/header/luminance_chroma.exr")),
    ("multipart_views.exr", include_bytes!("../../fuzz/corpus/header/multipart_views.exr")),
    ("multiview.exr", include_bytes!("../../fuzz/corpus/header/multiview.exr")),
    ("tiled_mipmap.exr", include_bytes!("../../fuzz/corpus/header/tiled_mipmap.exr")),
    ("tiled_ripmap.exr", include_bytes!("../../fuzz/corpus/header/tiled_ripmap.exr")),
];

pub(crate) fn seed(name: &str) -> Header {
    let (_, bytes) = SEEDS.iter().find(|(n, _)| *n == name).expect("seed exists");
    parse_complete(bytes).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn value<'h>(part: &'h Part, name: &str) -> &'h AttributeValue {
    &part.attribute(name).unwrap_or_else(|| panic!("attribute {name}")).value
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

#[test]
fn every_seed_parses_and_header_bytes_is_where_the_offset_table_starts() {
    for (name, bytes) in SEEDS {
        let header = parse_complete(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let end = header.header_bytes;
        assert_eq!(header.header_hash, <[u8; 32]>::from(Sha256::digest(&bytes[..end])), "{name}");
        // The first chunk offset points just past the offset table(s), which start right
        // after the header: offset - header_bytes is 8 × (total chunk count).
        let first = u64_at(bytes, end) as usize;
        assert!(
            first > end && first <= bytes.len() && (first - end).is_multiple_of(8),
            "{name}: offset {first}, header {end}"
        );
        let chunks: Option<usize> = header
            .parts
            .iter()
            .map(|p| match p.attribute("chunkCount").map(|a| &a.value) {
                Some(AttributeValue::Int(n)) => Some(*n as usize),
                _ => None,
            })
            .sum();
        if let Some(chunks) = chunks {
            assert_eq!(first, end + 8 * chunks, "{name}");
        }
    }
}

#[test]
fn single_part_scanline_header_bytes_matches_the_chunk_count() {
    // 8×8 pixels, DWAB (256 lines per chunk): one chunk.
    let (_, bytes) = SEEDS[0];
    let header = parse_complete(bytes).unwrap();
    assert_eq!(u64_at(bytes, header.header_bytes) as usize, header.header_bytes + 8);
}

#[test]
fn every_attribute_type_decodes_like_exrheader_prints_it() {
    use AttributeValue as V;
    let header = seed("every_attribute_type.exr");
    assert_eq!((header.version, header.flags, header.parts.len()), (2, 0, 1));
    let p = &header.parts[0];
    assert_eq!(value(p, "a_int"), &V::Int(7));
    assert_eq!(value(p, "a_float"), &V::Float(1.5));
    assert_eq!(value(p, "a_string"), &V::String("hello".into()));
    assert_eq!(value(p, "a_stringvector"), &V::StringVector(vec!["x".into(), "yy".into()]));
    assert_eq!(value(p, "a_v2i"), &V::V2i([1, 2]));
    assert_eq!(value(p, "a_v2f"), &V::V2f([1.5, 2.5]));
    assert_eq!(value(p, "a_v2d"), &V::V2d([1.25, 2.25]));
    assert_eq!(value(p, "a_v3i"), &V::V3i([1, 2, 3]));
    assert_eq!(value(p, "a_v3f"), &V::V3f([1.0, 2.0, 3.0]));
    assert_eq!(value(p, "a_v3d"), &V::V3d([1.0, 2.0, 3.0]));
    assert_eq!(value(p, "a_box2i"), &V::Box2i(Box2i { min: [0, 1], max: [3, 4] }));
    assert_eq!(value(p, "a_box2f"), &V::Box2f(Box2f { min: [0.0, 1.0], max: [3.0, 4.0] }));
    assert_eq!(value(p, "a_m33f"), &V::M33f(Box::new([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]])));
    assert_eq!(value(p, "a_m33d"), &V::M33d(Box::new([[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 3.0]])));
    let m44f = |d: f32| std::array::from_fn(|r| std::array::from_fn(|c| if r == c { d } else { 0.0 }));
    assert_eq!(value(p, "a_m44f"), &V::M44f(Box::new(m44f(4.0))));
    let m44d = |d: f64| std::array::from_fn(|r| std::array::from_fn(|c| if r == c { d } else { 0.0 }));
    assert_eq!(value(p, "a_m44d"), &V::M44d(Box::new(m44d(5.0))));
    assert_eq!(value(p, "a_floatvector"), &V::FloatVector(vec![1.0, 2.0, 3.0, 4.0, 5.0]));
    assert_eq!(value(p, "a_rational"), &V::Rational(Rational { n: 24000, d: 1001 }));
    let keycode = KeyCode {
        film_mfc_code: 1,
        film_type: 2,
        prefix: 3,
        count: 4,
        perf_offset: 5,
        perfs_per_frame: 4,
        perfs_per_count: 64,
    };
    assert_eq!(value(p, "a_keycode"), &V::KeyCode(Box::new(keycode)));
    // exrheader: time 01:02:03:04, drop frame 1, color frame 0, field/phase 1,
    // bgf0 0, bgf1 1, bgf2 0, user data 0x87654321.
    let V::TimeCode(tc) = *value(p, "a_timecode") else { panic!("timecode") };
    assert_eq!((tc.hours(), tc.minutes(), tc.seconds(), tc.frame()), (1, 2, 3, 4));
    assert_eq!((tc.drop_frame(), tc.color_frame(), tc.field_phase()), (true, false, true));
    assert_eq!((tc.bgf(), tc.user_data), ([false, true, false], 0x8765_4321));
    let chromaticities =
        Chromaticities { red: [0.64, 0.33], green: [0.3, 0.6], blue: [0.15, 0.06], white: [0.3127, 0.329] };
    assert_eq!(value(p, "a_chromaticities"), &V::Chromaticities(Box::new(chromaticities)));
    assert_eq!(value(p, "a_envmap"), &V::Envmap(Envmap(1)));
    assert_eq!(value(p, "a_lineorder"), &V::LineOrder(LineOrder(1)));
    assert_eq!(value(p, "a_compression"), &V::Compression(Compression(9)));
    let tiles = TileDescription { x_size: 32, y_size: 16, level_mode: LevelMode(1), rounding_mode: RoundingMode(1) };
    assert_eq!(value(p, "a_tiledesc"), &V::TileDescription(tiles));
    // The bindings write the 2×3 preview as pixel i = (i, i, i, i).
    let pixels: Vec<u8> = (0..6).flat_map(|i| [i; 4]).collect();
    let preview = Preview { width: 3, height: 2, sha256: Sha256::digest(&pixels).into() };
    assert_eq!(value(p, "a_preview"), &V::Preview(Box::new(preview)));
    assert_eq!(value(p, "a_bytes"), &V::Bytes { type_hint: "".into(), data: b"abc".as_slice().into() });

    // Type names exactly as exrheader prints them.
    let types: Vec<(&str, &str)> = p.attributes().iter().map(|a| (a.name.as_str(), a.type_name())).collect();
    for expected in [
        ("a_box2f", "box2f"),
        ("a_bytes", "bytes"),
        ("a_lineorder", "lineOrder"),
        ("a_tiledesc", "tiledesc"),
        ("a_stringvector", "stringvector"),
        ("a_floatvector", "floatvector"),
        ("channels", "chlist"),
        ("screenWindowCenter", "v2f"),
    ] {
        assert!(types.contains(&expected), "{expected:?} in {types:?}");
    }
    assert_eq!(p.attributes().len(), 37);
    assert_eq!(p.compression.to_string(), "piz");
    assert_eq!(p.data_window, Box2i { min: [0, 0], max: [3, 3] });
    let names: Vec<_> = p.channels().iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["A", "B", "G", "R"]);
}

#[test]
fn part_types_flags_and_tiles() {
    let cases = [
        ("deep_scanline.exr", PartType::DeepScanline, FLAG_NON_IMAGE, None),
        ("deep_tile.exr", PartType::DeepTile, FLAG_NON_IMAGE, Some((2, 2, "one", "down"))),
        ("tiled_mipmap.exr", PartType::TiledImage, FLAG_TILED, Some((4, 4, "mipmap", "down"))),
        ("tiled_ripmap.exr", PartType::TiledImage, FLAG_TILED, Some((4, 2, "ripmap", "up"))),
        ("beauty_aovs.1001.exr", PartType::ScanlineImage, 0, None),
    ];
    for (name, part_type, flags, tiles) in cases {
        let header = seed(name);
        assert_eq!(header.flags, flags, "{name}");
        let part = &header.parts[0];
        assert_eq!(part.part_type, part_type, "{name}");
        assert_eq!(header.deep(), part_type.is_deep(), "{name}");
        assert_eq!(header.tiled(), part_type.is_tiled(), "{name}");
        let got = part.tiles.map(|t| (t.x_size, t.y_size, t.level_mode.to_string(), t.rounding_mode.to_string()));
        let want = tiles.map(|(x, y, l, r)| (x, y, l.to_string(), r.to_string()));
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn multipart_parts_names_views_and_types() {
    let header = seed("multipart_views.exr");
    assert!(header.multipart());
    assert!(header.tiled() && !header.deep());
    let summary: Vec<_> =
        header.parts.iter().map(|p| (p.index, p.name(), p.view(), p.type_name(), p.compression.to_string())).collect();
    assert_eq!(
        summary,
        [
            (0, Some("beauty_left"), Some("left"), "scanlineimage", "zip".to_string()),
            (1, Some("beauty_right"), Some("right"), "scanlineimage", "zip".to_string()),
            (2, Some("depth"), None, "tiledimage", "piz".to_string()),
        ]
    );
    assert_eq!(header.parts[2].channels()[0].layer(), "depth");
    assert_eq!(header.parts[2].channels()[0].pixel_type.to_string(), "float");
}

#[test]
fn multiview_and_subsampled_channels() {
    let header = seed("multiview.exr");
    assert_eq!(
        value(&header.parts[0], "multiView"),
        &AttributeValue::StringVector(vec!["left".into(), "right".into()])
    );
    let header = seed("luminance_chroma.exr");
    let channels: Vec<_> =
        header.parts[0].channels().iter().map(|c| (c.name.as_str(), c.x_sampling, c.y_sampling, c.p_linear)).collect();
    assert_eq!(channels, [("BY", 2, 2, true), ("RY", 2, 2, true), ("Y", 1, 1, false)]);
}

#[test]
fn long_names_and_layer_split() {
    let header = seed("long_names.exr");
    assert!(header.long_names());
    let part = &header.parts[0];
    assert!(part.attribute(&format!("a_very_long_attribute_name_{}", "x".repeat(40))).is_some());
    let split: Vec<_> = part.channels().iter().map(|c| (c.layer(), c.component())).collect();
    assert_eq!(split, [("", "R"), ("a.deeply.nested.layer_with_a_name_longer_than_thirty_one_bytes", "R")]);
}

#[test]
fn layer_component_split_on_the_last_dot() {
    let channel = |name: &str| Channel {
        name: name.into(),
        pixel_type: PixelType(1),
        p_linear: false,
        x_sampling: 1,
        y_sampling: 1,
    };
    for (name, layer, component) in
        [("diffuse.R", "diffuse", "R"), ("R", "", "R"), ("a.b.c.R", "a.b.c", "R"), ("a.", "a", "")]
    {
        let c = channel(name);
        assert_eq!((c.layer(), c.component()), (layer, component), "{name}");
        assert_eq!(c.split(), (layer, component), "{name}");
    }
}

#[test]
fn htj2k_is_named_and_unknown_codes_are_reported() {
    assert_eq!(seed("htj2k256.exr").parts[0].compression.to_string(), "htj2k256");
    let bytes = build::file(0, &[PartBytes::scanline(&["R"], 4, 4, 42)]);
    let header = parse_complete(&bytes).unwrap();
    assert_eq!(header.parts[0].compression, Compression(42));
    assert_eq!(header.parts[0].compression.to_string(), "unknown(42)");
    // OpenEXR 3.5's ZSTD code: the exr crate refuses the file, this reader names it.
    let bytes = build::file(0, &[PartBytes::scanline(&["R"], 4, 4, 13)]);
    assert_eq!(parse_complete(&bytes).unwrap().parts[0].compression.to_string(), "zstd");
    assert!(exr::meta::MetaData::read_from_buffered(&bytes[..], false).is_err());
}

#[test]
fn odd_values_are_reported_not_refused() {
    let part = PartBytes::scanline(&["R"], 4, 4, 0)
        .without("dataWindow")
        .with(attribute("dataWindow", "box2i", &i32s(&[10, 10, 0, 0])))
        .without("lineOrder")
        .with(attribute("lineOrder", "lineOrder", &[7]))
        .without("channels")
        .with(attribute("channels", "chlist", &build::channel_list(&[("R", 9, 0, 0)])));
    let header = parse_complete(&build::file(0, &[part])).unwrap();
    let p = &header.parts[0];
    assert_eq!(p.data_window.width(), -9);
    assert_eq!(p.line_order.to_string(), "unknown(7)");
    assert_eq!(p.channels()[0].pixel_type.to_string(), "unknown(9)");
    assert_eq!((p.channels()[0].x_sampling, p.channels()[0].y_sampling), (0, 0));
}

#[test]
fn custom_types_keep_their_name_and_bytes() {
    let part = PartBytes::scanline(&["R"], 4, 4, 0)
        .with(attribute("studio:thing", "myType", b"\x00\x01\xff"))
        .with(attribute("manifest", "idmanifest", b"zz"))
        .with(attribute("empty", "", b""));
    let header = parse_complete(&build::file(0, &[part])).unwrap();
    let p = &header.parts[0];
    assert_eq!(
        value(p, "studio:thing"),
        &AttributeValue::Raw { type_name: "myType".into(), data: vec![0, 1, 255].into() }
    );
    assert_eq!(p.attribute("manifest").unwrap().type_name(), "idmanifest");
    assert_eq!(p.attribute("empty").unwrap().type_name(), "");
}

#[test]
fn single_part_without_type_attribute_infers_it_from_flags() {
    let tiles = attribute("tiles", "tiledesc", &[8, 0, 0, 0, 8, 0, 0, 0, 0]);
    let scan = parse_complete(&build::file(0, &[PartBytes::scanline(&["R"], 4, 4, 0)])).unwrap();
    assert_eq!(scan.parts[0].type_name(), "scanlineimage");
    let tiled =
        parse_complete(&build::file(FLAG_TILED, &[PartBytes::scanline(&["R"], 4, 4, 0).with(tiles.clone())])).unwrap();
    assert_eq!(tiled.parts[0].type_name(), "tiledimage");
    let deep = parse_complete(&build::file(FLAG_NON_IMAGE, &[PartBytes::scanline(&["R"], 4, 4, 0)])).unwrap();
    assert_eq!(deep.parts[0].type_name(), "deepscanline");
    // A single-part image file's flags override its `type` (OpenEXR's InputFile does this).
    let stale = parse_complete(&build::file(
        0,
        &[PartBytes::scanline(&["R"], 4, 4, 0).with(build::string("type", "deeptile"))],
    ))
    .unwrap();
    assert_eq!(stale.parts[0].part_type, PartType::ScanlineImage);
    let odd = parse_complete(&build::file(
        FLAG_NON_IMAGE,
        &[PartBytes::scanline(&["R"], 4, 4, 0).with(build::string("type", "mystery"))],
    ))
    .unwrap();
    assert_eq!((odd.parts[0].part_type, odd.parts[0].type_name()), (PartType::Unknown, "mystery"));
    let missing_tiles = build::file(FLAG_TILED, &[PartBytes::scanline(&["R"], 4, 4, 0)]);
    assert_eq!(parse_complete(&missing_tiles), Err(HeaderError::MissingAttribute { part: 0, attribute: "tiles" }));
}

#[test]
fn repeated_attributes_keep_first_position_and_last_value() {
    let part = PartBytes::scanline(&["R"], 4, 4, 0)
        .with(attribute("frame", "int", &i32s(&[1])))
        .with(build::string("owner", "me"))
        .with(attribute("frame", "int", &i32s(&[2])));
    let header = parse_complete(&build::file(0, &[part])).unwrap();
    let names: Vec<_> = header.parts[0].attributes().iter().map(|a| a.name.as_str()).collect();
    assert_eq!(&names[names.len() - 2..], ["frame", "owner"]);
    assert_eq!(value(&header.parts[0], "frame"), &AttributeValue::Int(2));

    let conflict = PartBytes::scanline(&["R"], 4, 4, 0).with(attribute("frame", "int", &i32s(&[1]))).with(attribute(
        "frame",
        "float",
        &f32s(&[1.0]),
    ));
    assert!(matches!(parse_complete(&build::file(0, &[conflict])), Err(HeaderError::TypeConflict { .. })));
}

#[test]
fn framing_errors() {
    let good = build::file(0, &[PartBytes::scanline(&["R"], 4, 4, 0)]);
    assert_eq!(parse(b"GIF89a"), Err(HeaderError::NotExr));
    assert_eq!(parse(&[0x76, 0x2f]), Ok(Progress::NeedMore(8)));
    assert_eq!(parse(&[0x76, 0x2f, 0x31, 0x02]), Err(HeaderError::NotExr));
    let mut v1 = good.clone();
    v1[4] = 1;
    assert_eq!(parse(&v1), Err(HeaderError::UnsupportedVersion(1)));
    let mut flags = good.clone();
    flags[5] |= 0x01;
    assert_eq!(parse(&flags), Err(HeaderError::UnknownFlags(0x100)));
    assert_eq!(parse_complete(&build::file(FLAG_MULTIPART, &[])), Err(HeaderError::NoParts));

    let missing = build::file(0, &[PartBytes::scanline(&["R"], 4, 4, 0).without("compression")]);
    assert_eq!(parse_complete(&missing), Err(HeaderError::MissingAttribute { part: 0, attribute: "compression" }));
    let wrong = build::file(
        0,
        &[PartBytes::scanline(&["R"], 4, 4, 0).without("dataWindow").with(attribute(
            "dataWindow",
            "box2f",
            &f32s(&[0.0; 4]),
        ))],
    );
    assert_eq!(
        parse_complete(&wrong),
        Err(HeaderError::WrongType { part: 0, attribute: "dataWindow", expected: "box2i", found: "box2f".into() })
    );
    // Known types are read by their structure, whatever their declared size (as OpenEXR 3.1).
    let mut wrong_size = attribute("n", "int", &[1, 0, 0, 0]);
    wrong_size[6..10].copy_from_slice(&0x7f10_i32.to_le_bytes());
    let wrong_size = build::file(0, &[PartBytes::scanline(&["R"], 4, 4, 0).with(wrong_size)]);
    assert_eq!(
        parse_complete(&wrong_size).unwrap().parts[0].attribute("n").map(|a| &a.value),
        Some(&AttributeValue::Int(1))
    );
    let cut_int = build::file(0, &[PartBytes::scanline(&["R"], 4, 4, 0).with(attribute("n", "int", &[1, 2]))]);
    assert!(matches!(parse_complete(&cut_int), Err(HeaderError::Truncated { .. })));

    let mut preview = vec![0xff; 8];
    preview.extend_from_slice(&[0; 16]);
    let huge_preview =
        build::file(0, &[PartBytes::scanline(&["R"], 4, 4, 0).with(attribute("p", "preview", &preview))]);
    assert!(matches!(
        parse_complete(&huge_preview),
        Err(HeaderError::BadValue { reason: "pixels exceed the attribute size limit", .. })
    ));

    let mut negative = build::file(0, &[PartBytes::scanline(&["R"], 4, 4, 0)]);
    negative.truncate(negative.len() - 1);
    negative.extend_from_slice(b"x\0int\0\xff\xff\xff\xff");
    assert!(matches!(parse(&negative), Err(HeaderError::NegativeSize { .. })));
}

#[test]
fn names_up_to_255_bytes() {
    let ok = build::file(0, &[PartBytes::scanline(&["R"], 4, 4, 0).with(build::string(&"n".repeat(255), "v"))]);
    assert!(parse_complete(&ok).is_ok());
    let too_long = build::file(0, &[PartBytes::scanline(&["R"], 4, 4, 0).with(build::string(&"n".repeat(256), "v"))]);
    assert_eq!(parse_complete(&too_long), Err(HeaderError::NameTooLong { part: 0, what: "attribute name" }));
    // A name cut by the end of the prefix only asks for more.
    let cut = &too_long[..too_long.len() - 300];
    assert!(matches!(parse(cut), Ok(Progress::NeedMore(_))));
}

#[test]
fn caps_refuse_hostile_counts_and_sizes() {
    let base = || PartBytes::scanline(&["R"], 4, 4, 0);

    let mut huge = build::file(0, &[base()]);
    huge.pop();
    huge.extend_from_slice(b"big\0string\0\xff\xff\xff\x7f");
    assert!(matches!(
        parse(&huge),
        Err(HeaderError::AttributeTooLarge { size: 0x7fff_ffff, limit: MAX_ATTRIBUTE_BYTES, .. })
    ));

    let channels: Vec<_> = (0..=MAX_CHANNELS).map(|i| format!("c{i}")).collect();
    let list: Vec<_> = channels.iter().map(|c| (c.as_str(), 1, 1, 1)).collect();
    let many_channels = base().without("channels").with(attribute("channels", "chlist", &build::channel_list(&list)));
    assert_eq!(
        parse_complete(&build::file(0, &[many_channels])),
        Err(HeaderError::TooMany { what: "channels", limit: MAX_CHANNELS })
    );

    let strings = vec![0u8; 4 * (MAX_STRINGS + 1)];
    let many_strings = base().with(attribute("sv", "stringvector", &strings));
    assert_eq!(
        parse_complete(&build::file(0, &[many_strings])),
        Err(HeaderError::TooMany { what: "strings", limit: MAX_STRINGS })
    );

    // Repeats of one attribute count too, so a hostile header cannot loop on duplicates.
    let mut repeated = base();
    repeated.attributes.extend(std::iter::repeat_n(attribute("x", "int", &[0; 4]), MAX_ATTRIBUTES));
    assert_eq!(
        parse_complete(&build::file(0, &[repeated])),
        Err(HeaderError::TooMany { what: "attributes", limit: MAX_ATTRIBUTES })
    );

    let parts = vec![base().with(build::string("type", "scanlineimage")); MAX_PARTS + 1];
    assert_eq!(
        parse_complete(&build::file(FLAG_MULTIPART, &parts)),
        Err(HeaderError::TooMany { what: "parts", limit: MAX_PARTS })
    );
}

#[test]
fn many_distinct_attributes_are_read_in_linear_time() {
    let mut part = PartBytes::scanline(&["R"], 4, 4, 0);
    part.attributes.extend((0..60_000).map(|i| attribute(&format!("a{i}"), "int", &i32s(&[i]))));
    let started = std::time::Instant::now();
    let header = parse_complete(&build::file(0, &[part])).unwrap();
    assert_eq!(header.parts[0].attributes().len(), 60_008);
    assert!(started.elapsed().as_secs() < 10, "took {:?}", started.elapsed());
}

#[test]
fn every_prefix_asks_for_more_with_a_bound_that_never_overshoots() {
    for (name, bytes) in SEEDS {
        let full = parse_complete(bytes).unwrap();
        for len in 0..full.header_bytes {
            match parse(&bytes[..len]) {
                Ok(Progress::NeedMore(n)) => {
                    assert!(
                        n > len && n <= full.header_bytes,
                        "{name}[..{len}]: NeedMore({n}), header {}",
                        full.header_bytes
                    );
                }
                other => panic!("{name}[..{len}]: {other:?}"),
            }
        }
        assert_eq!(parse(&bytes[..full.header_bytes]), Ok(Progress::Complete(full.clone())), "{name}");
        assert_eq!(
            parse_complete(&bytes[..full.header_bytes - 1]),
            Err(HeaderError::Truncated { needed: full.header_bytes, available: full.header_bytes - 1 }),
            "{name}: the last byte is the terminator, the bound is exact"
        );
    }
}

#[test]
fn following_need_more_reaches_the_header() {
    for (name, bytes) in SEEDS {
        let mut len = 0;
        let mut steps = 0;
        let header = loop {
            steps += 1;
            match parse(&bytes[..len.min(bytes.len())]).unwrap() {
                Progress::Complete(header) => break header,
                Progress::NeedMore(n) => len = n,
            }
        };
        assert_eq!(header, parse_complete(bytes).unwrap(), "{name}");
        assert!(steps < 1000, "{name}: {steps} steps");
    }
}

/// xorshift64*: a fixed-seed generator, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn bit_flips_and_truncations_never_panic() {
    let mut outcomes = [0usize; 3];
    for (_, bytes) in SEEDS {
        let end = parse_complete(bytes).unwrap().header_bytes;
        let mut copy = bytes[..end].to_vec();
        for i in 0..end {
            for bit in 0..8 {
                copy[i] ^= 1 << bit;
                for len in [end, i + 1] {
                    outcomes[match parse(&copy[..len]) {
                        Ok(Progress::Complete(_)) => 0,
                        Ok(Progress::NeedMore(n)) => {
                            assert!(n > len);
                            1
                        }
                        Err(_) => 2,
                    }] += 1;
                }
                copy[i] ^= 1 << bit;
            }
        }
    }
    // Flips both survive (inside values) and break things (inside names and sizes).
    assert!(outcomes.iter().all(|n| *n > 100), "{outcomes:?}");
}

#[test]
fn random_corruption_never_panics() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for (_, bytes) in SEEDS {
        let end = parse_complete(bytes).unwrap().header_bytes;
        for _ in 0..3000 {
            let mut copy = bytes[..end].to_vec();
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(copy.len());
                copy[i] = match rng.below(4) {
                    0 => 0,
                    1 => 0xff,
                    2 => 0x7f,
                    _ => rng.next() as u8,
                };
            }
            let len = if rng.below(4) == 0 { rng.below(copy.len()) } else { copy.len() };
            if let Ok(Progress::NeedMore(n)) = parse(&copy[..len]) {
                assert!(n > len);
            }
        }
    }
}

#[test]
fn read_header_reads_only_the_header() {
    struct Counting<'a> {
        bytes: &'a [u8],
        read: usize,
    }
    impl std::io::Read for Counting<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.bytes.len() - self.read);
            buf[..n].copy_from_slice(&self.bytes[self.read..self.read + n]);
            self.read += n;
            Ok(n)
        }
    }
    // A header of ~150 KiB: more than the first read, so the read must grow, once.
    let part = PartBytes::scanline(&["R"], 4, 4, 0).with(attribute("blob", "myType", &vec![7; 150_000]));
    let mut file = build::file(0, &[part]);
    let header_len = file.len();
    file.extend(std::iter::repeat_n(0xee, 1_000_000));
    let mut reader = Counting { bytes: &file, read: 0 };
    let (header, read) = read_header(&mut reader).unwrap();
    assert_eq!(header.header_bytes, header_len);
    assert_eq!(read, reader.read);
    assert!(read >= header_len && read <= 2 * header_len, "read {read} for a header of {header_len}");

    let mut short = Counting { bytes: &file[..1000], read: 0 };
    assert!(matches!(read_header(&mut short), Err(ReadError::Header(HeaderError::Truncated { available: 1000, .. }))));
}

/// The `exr` crate, read independently, agrees on everything both readers accept.
#[test]
fn agrees_with_the_exr_crate() {
    use exr::meta::attribute::SampleType;
    let mut compared = 0;
    for (name, bytes) in SEEDS {
        let ours = parse_complete(bytes).unwrap();
        let Ok(theirs) = exr::meta::MetaData::read_from_buffered(&bytes[..], false) else {
            continue;
        };
        compared += 1;
        assert_eq!(ours.parts.len(), theirs.headers.len(), "{name}");
        for (part, header) in ours.parts.iter().zip(theirs.headers.iter()) {
            let channels: Vec<_> = part
                .channels()
                .iter()
                .map(|c| {
                    (
                        c.name.to_string(),
                        c.pixel_type.to_string(),
                        c.x_sampling as usize,
                        c.y_sampling as usize,
                        c.p_linear,
                    )
                })
                .collect();
            let their_channels: Vec<_> = header
                .channels
                .list
                .iter()
                .map(|c| {
                    let t = match c.sample_type {
                        SampleType::U32 => "uint",
                        SampleType::F16 => "half",
                        SampleType::F32 => "float",
                    };
                    (c.name.to_string(), t.to_string(), c.sampling.x(), c.sampling.y(), c.quantize_linearly)
                })
                .collect();
            assert_eq!(channels, their_channels, "{name}");
            let position = header.own_attributes.layer_position;
            assert_eq!(part.data_window.min, [position.x(), position.y()], "{name}");
            assert_eq!(
                (part.data_window.width() as usize, part.data_window.height() as usize),
                (header.layer_size.x(), header.layer_size.y()),
                "{name}"
            );
            let display = header.shared_attributes.display_window;
            assert_eq!(part.display_window.min, [display.position.x(), display.position.y()], "{name}");
            assert_eq!(part.display_window.width() as usize, display.size.x(), "{name}");
            assert_eq!(part.pixel_aspect_ratio, header.shared_attributes.pixel_aspect, "{name}");
            assert_eq!(part.part_type.is_deep(), header.deep, "{name}");
            assert_eq!(
                part.name(),
                header.own_attributes.layer_name.as_ref().map(|t| t.to_string()).as_deref(),
                "{name}"
            );
        }
    }
    assert!(compared >= 8, "exr read only {compared} seeds");
}

#[test]
fn known_types_ignore_their_declared_size() {
    // As OpenEXR 3.1 reads them (real-world `comp_bad_*_bounds_*` files): a `chlist` declared
    // 0x30303030 bytes and a `box2i` declared 0x7f10 bytes, each followed directly by the next
    // attribute. The declared sizes must neither be refused nor drive allocation or NeedMore.
    let with_size = |mut bytes: Vec<u8>, name: &str, size: i32| {
        let at = name.len() + 1 + bytes[name.len() + 1..].iter().position(|&b| b == 0).unwrap() + 1;
        bytes[at..at + 4].copy_from_slice(&size.to_le_bytes());
        bytes
    };
    let channels =
        with_size(attribute("channels", "chlist", &build::channel_list(&[("R", 1, 1, 1)])), "channels", 0x3030_3030);
    let window = with_size(attribute("displayWindow", "box2i", &i32s(&[0, 0, 3, 3])), "displayWindow", 0x7f10);
    let part =
        PartBytes::scanline(&["R"], 4, 4, 0).without("channels").without("displayWindow").with(channels).with(window);
    let bytes = build::file(0, &[part]);
    let header = parse_complete(&bytes).unwrap();
    assert_eq!(header.header_bytes, bytes.len());
    assert_eq!(header.parts[0].channels().len(), 1);
    assert_eq!(header.parts[0].display_window, Box2i { min: [0, 0], max: [3, 3] });
    for cut in 8..bytes.len() {
        match parse(&bytes[..cut]) {
            Ok(Progress::NeedMore(n)) => assert!(n > cut && n <= bytes.len(), "cut {cut}: NeedMore({n})"),
            other => panic!("cut {cut}: {other:?}"),
        }
    }
}

#[test]
fn attribute_values_stay_small() {
    // Large values are boxed so that attribute lists stay compact (the parse hot path).
    assert!(std::mem::size_of::<AttributeValue>() <= 40, "{}", std::mem::size_of::<AttributeValue>());
}
