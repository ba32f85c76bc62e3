use sha2::{Digest, Sha256};

use super::*;
use crate::header::build::{self, PartBytes, attribute, f32s, i32s};
use crate::header::tests::{SEEDS, seed};
use crate::header::{Header, parse_complete};

const AOVS: &[&str] = &[
    "A",
    "B",
    "G",
    "R",
    "albedo.R",
    "diffuse.B",
    "diffuse.G",
    "diffuse.R",
    "emission.B",
    "emission.G",
    "emission.R",
    "N.X",
    "N.Y",
    "N.Z",
    "specular.B",
    "specular.G",
    "specular.R",
    "sss.B",
    "sss.G",
    "sss.R",
    "transmission.B",
    "transmission.G",
    "transmission.R",
    "Z",
];
const RGBA: &[&str] = &["A", "B", "G", "R"];
const UTILITY: &[&str] = &[
    "N.X",
    "N.Y",
    "N.Z",
    "P.X",
    "P.Y",
    "P.Z",
    "Z",
    "crypto00.A",
    "crypto00.B",
    "crypto00.G",
    "crypto00.R",
    "crypto01.A",
    "crypto01.B",
    "crypto01.G",
    "crypto01.R",
    "motion.X",
    "motion.Y",
];

/// A 1920×1080 render header like a renderer writes it, for one frame.
fn render(channels: &[&str], frame: i32, comments: &str) -> Header {
    let f = frame as f32;
    let part = PartBytes::scanline(channels, 1920, 1080, 9)
        .with(build::string("owner", "lighting"))
        .with(build::string("comments", comments))
        .with(build::string("capDate", &format!("2024:05:01 12:{:02}:{:02}", frame % 60, frame % 37)))
        .with(build::string("software", "renderer 5.2.1"))
        .with(attribute("frame", "int", &i32s(&[frame])))
        .with(attribute("framesPerSecond", "rational", &[24, 0, 0, 0, 1, 0, 0, 0]))
        .with(attribute("renderTime", "float", &f32s(&[300.0 + (frame % 50) as f32])))
        .with(attribute("samples", "int", &i32s(&[256])))
        .with(attribute("timeCode", "timecode", &[frame as u8, 0x41, 0, 1, 0, 0, 0, 0]))
        .with(attribute(
            "worldToCamera",
            "m44f",
            &f32s(&[f, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, f, 2.0 * f, 0.5, 1.0]),
        ))
        .with(attribute("chromaticities", "chromaticities", &f32s(&[0.64, 0.33, 0.3, 0.6, 0.15, 0.06, 0.3127, 0.329])))
        .with(build::string("cameraName", "shotCam"))
        .with(build::string("project", "exrscan"));
    parse_complete(&build::file(0, &[part])).unwrap()
}

fn similarity(a: &Header, b: &Header) -> (f32, f32) {
    let (a, b) = (embed(a), embed(b));
    (cosine(&a.metadata, &b.metadata), cosine(&a.channels, &b.channels))
}

#[test]
fn bit_identical_across_runs_and_builds() {
    for (_, bytes) in SEEDS {
        let header = parse_complete(bytes).unwrap();
        let (a, b) = (embed(&header), embed(&parse_complete(bytes).unwrap()));
        assert!(a.metadata.iter().zip(&b.metadata).all(|(x, y)| x.to_bits() == y.to_bits()));
        assert!(a.channels.iter().zip(&b.channels).all(|(x, y)| x.to_bits() == y.to_bits()));
    }
    // A golden digest pins the exact bits, so a change to the hash, the tokens or the
    // arithmetic (which would break comparisons with stored embeddings) cannot go unnoticed.
    let e = embed(&seed("beauty_aovs.1001.exr"));
    let mut digest = Sha256::new();
    for v in e.metadata.iter().chain(&e.channels) {
        digest.update(v.to_le_bytes());
    }
    let hex: String = digest.finalize().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, GOLDEN);
}

const GOLDEN: &str = "36d74a936a844a49e4c9067fb9d56ad545938ede461afc3d2ac9e8d91871340c";

#[test]
fn unit_norm_and_dimensions() {
    for (name, bytes) in SEEDS {
        let e = embed(&parse_complete(bytes).unwrap());
        for v in [&e.metadata[..], &e.channels[..]].into_iter().chain(e.part_channels.iter().map(|p| &p[..])) {
            let norm: f64 = v.iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>().sqrt();
            assert!((norm - 1.0).abs() < 1e-5, "{name}: norm {norm}");
        }
        assert_eq!(e.part_channels.len(), parse_complete(bytes).unwrap().parts.len());
    }
}

#[test]
fn frames_of_one_sequence_are_near() {
    let a = render(AOVS, 1001, "seq010 shot0040 lighting v012");
    for frame in [1002, 1024, 1100] {
        let (metadata, channels) = similarity(&a, &render(AOVS, frame, "seq010 shot0040 lighting v012"));
        eprintln!("frame 1001 vs {frame}: metadata {metadata:.4}, channels {channels:.4}");
        assert!(metadata >= 0.95, "frame {frame}: {metadata}");
        assert!(channels >= 0.999, "frame {frame}: {channels}");
    }
}

#[test]
fn a_changed_free_text_attribute_stays_near() {
    let a = render(AOVS, 1001, "seq010 shot0040 lighting v012");
    let b = render(AOVS, 1001, "fixed the flicker on the left wall, approved by sup");
    let (metadata, channels) = similarity(&a, &b);
    eprintln!("free text: metadata {metadata:.4}, channels {channels:.4}");
    assert!(metadata >= 0.95, "{metadata}");
    assert!(channels >= 0.999, "{channels}");
}

#[test]
fn different_aov_layouts_are_far() {
    let beauty = render(AOVS, 1001, "c");
    let rgba = render(RGBA, 1001, "c");
    let utility = render(UTILITY, 1001, "c");
    let (m_rgba, c_rgba) = similarity(&beauty, &rgba);
    let (m_util, c_util) = similarity(&beauty, &utility);
    let (m_ru, c_ru) = similarity(&rgba, &utility);
    eprintln!("24-AOV beauty vs RGBA: metadata {m_rgba:.4}, channels {c_rgba:.4}");
    eprintln!("24-AOV beauty vs utility passes: metadata {m_util:.4}, channels {c_util:.4}");
    eprintln!("RGBA vs utility passes: metadata {m_ru:.4}, channels {c_ru:.4}");
    assert!(m_rgba < 0.7 && c_rgba < 0.5, "{m_rgba} {c_rgba}");
    assert!(m_util < 0.6 && c_util < 0.3, "{m_util} {c_util}");
    assert!(m_ru < 0.6 && c_ru < 0.2, "{m_ru} {c_ru}");
}

#[test]
fn multipart_fingerprints_per_part() {
    let header = seed("multipart_views.exr");
    let e = embed(&header);
    assert_eq!(e.part_channels.len(), 3);
    // The two views have the same channels; the depth part does not.
    assert!(cosine(&e.part_channels[0], &e.part_channels[1]) > 0.9999);
    assert!(cosine(&e.part_channels[0], &e.part_channels[2]) < 0.3);
}

#[test]
fn token_hash_separates_pieces() {
    let h = |t: Token| t.finish();
    assert_ne!(h(Token::new("a").text("bc")), h(Token::new("ab").text("c")));
    assert_ne!(h(Token::new("x").text("")), h(Token::new("x")));
    assert_ne!(h(Token::new("x").int(1)), h(Token::new("x").int(2)));
    assert_eq!(h(Token::new("layer").text("diffuse")), h(Token::new("layer").text("diffuse")));
    assert_eq!(h(Token::new("layer").text("diffuse")), 16_396_678_373_106_599_250, "pinned");
}
