use serde_json::{Value, json};

use super::*;
use crate::embed;
use crate::header::tests::{SEEDS, seed};
use crate::header::{AttributeValue, Compression, Rational, parse_complete};

fn record_json(name: &str) -> Value {
    let header = seed(name);
    let mut line = Vec::new();
    Record::ok(&format!("shots/{name}"), Some(1234), &header).write_line(&mut line).unwrap();
    assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1, "one line");
    assert_eq!(line.last(), Some(&b'\n'));
    serde_json::from_slice(&line).unwrap()
}

#[test]
fn frame_numbers_from_names() {
    for (path, frame) in [
        ("beauty.1001.exr", Some(1001)),
        ("beauty_1001.exr", Some(1001)),
        ("shot010_v002.1001.exr", Some(1001)),
        ("a/b/render.0042.EXR", Some(42)),
        ("1001.exr", Some(1001)),
        ("beauty.1001", Some(1001)),
        ("beauty.exr", None),
        ("shot010.exr", None),
        ("beauty-1001.exr", None),
        ("s3://bucket/x.1/beauty.exr", None),
        ("beauty.12345678901234567890.exr", None),
        ("", None),
    ] {
        assert_eq!(frame_number(path), frame, "{path}");
    }
}

#[test]
fn record_has_the_designed_shape() {
    let v = record_json("beauty_aovs.1001.exr");
    let header = seed("beauty_aovs.1001.exr");
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["path"], "shots/beauty_aovs.1001.exr");
    assert_eq!((v["ok"].clone(), v["error"].clone()), (json!(true), Value::Null));
    let file = &v["file"];
    assert_eq!(
        file,
        &json!({
            "size_bytes": 1234, "header_bytes": header.header_bytes, "header_hash": header.header_hash_hex(),
            "version": 2, "multipart": false, "deep": false, "tiled": false, "long_names": false,
            "part_count": 1, "frame_number": 1001
        })
    );
    assert_eq!(file["header_hash"].as_str().unwrap().len(), 64);
    assert!(v.get("embeddings").is_none());

    let part = &v["parts"][0];
    assert_eq!(part["index"], 0);
    assert_eq!((part["name"].clone(), part["view"].clone()), (Value::Null, Value::Null));
    assert_eq!(part["type"], "scanlineimage");
    assert_eq!(part["compression"], "dwab");
    assert_eq!(part["data_window"], json!([0, 0, 7, 7]));
    assert_eq!(part["display_window"], json!([0, 0, 7, 7]));
    assert_eq!(part["pixel_aspect_ratio"], 1.0);
    assert_eq!(part["line_order"], "increasing_y");
    assert_eq!(part["tiles"], Value::Null);
    assert_eq!(
        part["channels"][0],
        json!({"name": "A", "layer": "", "component": "A", "type": "half", "x_sampling": 1, "y_sampling": 1, "p_linear": false})
    );
    let names: Vec<_> = part["channels"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"diffuse.R") && names.contains(&"crypto.id"));
    let crypto = part["channels"].as_array().unwrap().iter().find(|c| c["name"] == "crypto.id").unwrap();
    assert_eq!((crypto["layer"].clone(), crypto["type"].clone()), (json!("crypto"), json!("uint")));

    let attributes = part["attributes"].as_object().unwrap();
    assert_eq!(attributes.len(), header.parts[0].attributes().len(), "every attribute");
    assert_eq!(attributes["dataWindow"], json!({"type": "box2i", "value": {"min": [0, 0], "max": [7, 7]}}));
    assert_eq!(attributes["framesPerSecond"], json!({"type": "rational", "value": {"n": 24, "d": 1}}));
    assert_eq!(attributes["frame"], json!({"type": "int", "value": 1001}));
    assert_eq!(attributes["compression"], json!({"type": "compression", "value": "dwab"}));
    assert_eq!(attributes["channels"]["type"], "chlist");
    // The chlist value is the file's entries; the part's channels add layer and component.
    let entries = attributes["channels"]["value"].as_array().unwrap();
    assert_eq!(entries.len(), part["channels"].as_array().unwrap().len());
    assert_eq!(entries[0], json!({"name": "A", "type": "half", "x_sampling": 1, "y_sampling": 1, "p_linear": false}));
}

#[test]
fn every_attribute_type_as_json() {
    let v = record_json("every_attribute_type.exr");
    let attributes = &v["parts"][0]["attributes"];
    let expect = [
        ("a_int", "int", json!(7)),
        ("a_float", "float", json!(1.5)),
        ("a_string", "string", json!("hello")),
        ("a_stringvector", "stringvector", json!(["x", "yy"])),
        ("a_v2i", "v2i", json!([1, 2])),
        ("a_v2f", "v2f", json!([1.5, 2.5])),
        ("a_v2d", "v2d", json!([1.25, 2.25])),
        ("a_v3i", "v3i", json!([1, 2, 3])),
        ("a_v3f", "v3f", json!([1.0, 2.0, 3.0])),
        ("a_v3d", "v3d", json!([1.0, 2.0, 3.0])),
        ("a_box2i", "box2i", json!({"min": [0, 1], "max": [3, 4]})),
        ("a_box2f", "box2f", json!({"min": [0.0, 1.0], "max": [3.0, 4.0]})),
        ("a_m33f", "m33f", json!([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]])),
        ("a_m33d", "m33d", json!([[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 3.0]])),
        ("a_floatvector", "floatvector", json!([1.0, 2.0, 3.0, 4.0, 5.0])),
        ("a_rational", "rational", json!({"n": 24000, "d": 1001})),
        (
            "a_keycode",
            "keycode",
            json!({"film_mfc_code": 1, "film_type": 2, "prefix": 3, "count": 4, "perf_offset": 5,
                   "perfs_per_frame": 4, "perfs_per_count": 64}),
        ),
        (
            "a_timecode",
            "timecode",
            json!({"time": "01:02:03:04", "drop_frame": true, "color_frame": false, "field_phase": true,
                   "bgf0": false, "bgf1": true, "bgf2": false, "user_data": 0x8765_4321u32,
                   "time_and_flags": attributes["a_timecode"]["value"]["time_and_flags"]}),
        ),
        (
            "a_chromaticities",
            "chromaticities",
            json!({"red": [0.64, 0.33], "green": [0.3, 0.6], "blue": [0.15, 0.06], "white": [0.3127, 0.329]}),
        ),
        ("a_envmap", "envmap", json!("cube")),
        ("a_lineorder", "lineOrder", json!("decreasing_y")),
        ("a_compression", "compression", json!("dwab")),
        ("a_tiledesc", "tiledesc", json!({"x_size": 32, "y_size": 16, "level_mode": "mipmap", "rounding_mode": "up"})),
        ("a_bytes", "bytes", json!({"type_hint": "", "base64": "YWJj"})),
    ];
    for (name, type_name, value) in expect {
        assert_eq!(attributes[name], json!({"type": type_name, "value": value}), "{name}");
    }
    assert_eq!(attributes["a_m44d"]["value"][3][3], 5.0);
    let preview = &attributes["a_preview"];
    assert_eq!(
        (preview["type"].clone(), preview["value"]["width"].clone(), preview["value"]["height"].clone()),
        (json!("preview"), json!(3), json!(2))
    );
    assert_eq!(preview["value"]["sha256"].as_str().unwrap().len(), 64);
}

#[test]
fn floats_keep_their_f32_form_and_non_finite_values_survive() {
    let text = |v: AttributeValue| v.to_json_string();
    assert_eq!(text(AttributeValue::Float(0.1)), "0.1");
    assert_eq!(text(AttributeValue::Float(f32::NAN)), "\"nan\"");
    assert_eq!(text(AttributeValue::V2f([f32::INFINITY, f32::NEG_INFINITY])), "[\"inf\",\"-inf\"]");
    assert_eq!(text(AttributeValue::Raw { type_name: "x".into(), data: vec![1, 2, 3].into() }), "\"AQID\"");
}

#[test]
fn catalog_forms_of_values() {
    use AttributeValue as V;
    assert_eq!(V::Int(-3).as_int(), Some(-3));
    assert_eq!(V::Compression(Compression(4)).as_int(), Some(4));
    assert_eq!(V::Float(1.5).as_int(), None);
    assert_eq!(V::Float(1.5).as_float(), Some(1.5));
    assert_eq!(V::Double(2.25).as_float(), Some(2.25));
    assert_eq!(V::Rational(Rational { n: 24000, d: 1001 }).as_float(), Some(24000.0 / 1001.0));
    assert_eq!(V::Rational(Rational { n: 1, d: 0 }).as_float(), None);
    assert_eq!(V::String("x".into()).as_float(), None);
    assert_eq!(V::String("shot".into()).to_text(), "shot");
    assert_eq!(V::StringVector(vec!["left".into(), "right".into()]).to_text(), "left\nright");
    assert_eq!(V::Compression(Compression(3)).to_text(), "zip");
    assert_eq!(V::Rational(Rational { n: 24, d: 1 }).to_text(), "24/1");
    assert_eq!(V::Float(0.1).to_text(), "0.1");
    assert_eq!(V::V2i([1, 2]).to_text(), "[1,2]");
}

#[test]
fn failed_record_keeps_the_shape() {
    let mut line = Vec::new();
    Record::failed("x/bad.0007.exr", Some(10), "not an OpenEXR file (bad magic number)")
        .with_embeddings(None)
        .write_line(&mut line)
        .unwrap();
    let v: Value = serde_json::from_slice(&line).unwrap();
    assert_eq!(
        v,
        json!({
            "schema_version": 1, "path": "x/bad.0007.exr", "ok": false,
            "error": "not an OpenEXR file (bad magic number)",
            "file": {"size_bytes": 10, "header_bytes": null, "header_hash": null, "version": null,
                     "multipart": null, "deep": null, "tiled": null, "long_names": null,
                     "part_count": null, "frame_number": 7},
            "parts": [], "embeddings": null
        })
    );
}

#[test]
fn embeddings_in_the_record() {
    let header = seed("multipart_views.exr");
    let embeddings = embed::embed(&header);
    let mut line = Vec::new();
    Record::ok("m.exr", None, &header).with_embeddings(Some(&embeddings)).write_line(&mut line).unwrap();
    let v: Value = serde_json::from_slice(&line).unwrap();
    assert_eq!(v["embeddings"]["metadata"].as_array().unwrap().len(), 384);
    assert_eq!(v["embeddings"]["channels"].as_array().unwrap().len(), 128);
    let first = v["embeddings"]["metadata"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32);
    assert!(first.zip(embeddings.metadata).all(|(a, b)| a == b), "f32 values round-trip exactly");
    assert_eq!(v["parts"].as_array().unwrap().len(), 3);
    assert_eq!(v["parts"][2]["tiles"], json!({"x_size": 2, "y_size": 2, "level_mode": "one", "rounding_mode": "down"}));
    assert_eq!(v["parts"][1]["view"], "right");
}

#[test]
fn every_seed_serialises_to_valid_json() {
    for (name, bytes) in SEEDS {
        let header = parse_complete(bytes).unwrap();
        let mut line = Vec::new();
        Record::ok(name, Some(bytes.len() as u64), &header).write_line(&mut line).unwrap();
        let v: Value = serde_json::from_slice(&line).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(v["file"]["part_count"], header.parts.len(), "{name}");
    }
}
