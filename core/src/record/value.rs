//! Attribute values in the record's JSON, and the per-attribute forms a catalog stores
//! (`value_json`, `value_text`, `value_int`, `value_float`).

use std::fmt::Display;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::json::JsonOut;
use crate::header::{AttributeValue, Box2i, Channel, TileDescription};

/// A code with an OpenEXR name: the name when it has one, else its `unknown(N)` text.
pub(super) fn named(j: &mut JsonOut<'_>, name: Option<&'static str>, code: &impl Display) {
    match name {
        Some(name) => j.string(name),
        None => j.string(&code.to_string()),
    }
}

/// A `box2i` as `[xmin, ymin, xmax, ymax]` (the record's window form).
pub(super) fn window(j: &mut JsonOut<'_>, b: &Box2i) {
    j.array([b.min[0], b.min[1], b.max[0], b.max[1]], |j, v| j.int(v));
}

/// A `tiledesc` as `{x_size, y_size, level_mode, rounding_mode}`.
pub(super) fn tiles(j: &mut JsonOut<'_>, t: &TileDescription) {
    j.raw(b"{\"x_size\":");
    j.uint(t.x_size);
    j.raw(b",\"y_size\":");
    j.uint(t.y_size);
    j.raw(b",\"level_mode\":");
    named(j, t.level_mode.name(), &t.level_mode);
    j.raw(b",\"rounding_mode\":");
    named(j, t.rounding_mode.name(), &t.rounding_mode);
    j.raw(b"}");
}

/// A part's channel as `{name, layer, component, type, x_sampling, y_sampling, p_linear}`.
pub(super) fn channel(j: &mut JsonOut<'_>, c: &Channel) {
    let (layer, component) = c.split();
    j.raw(b"{\"name\":");
    j.string(&c.name);
    j.raw(b",\"layer\":");
    j.string(layer);
    j.raw(b",\"component\":");
    j.string(component);
    channel_fields(j, c);
}

/// A `chlist` entry as the file holds it: `{name, type, x_sampling, y_sampling, p_linear}`
/// (the part's channels add the derived layer and component).
fn channel_entry(j: &mut JsonOut<'_>, c: &Channel) {
    j.raw(b"{\"name\":");
    j.string(&c.name);
    channel_fields(j, c);
}

fn channel_fields(j: &mut JsonOut<'_>, c: &Channel) {
    j.raw(b",\"type\":");
    named(j, c.pixel_type.name(), &c.pixel_type);
    j.raw(b",\"x_sampling\":");
    j.int(c.x_sampling);
    j.raw(b",\"y_sampling\":");
    j.int(c.y_sampling);
    j.raw(b",\"p_linear\":");
    j.bool(c.p_linear);
    j.raw(b"}");
}

fn f32s(j: &mut JsonOut<'_>, values: &[f32]) {
    j.array(values, |j, v| j.f32(*v));
}

fn f64s(j: &mut JsonOut<'_>, values: &[f64]) {
    j.array(values, |j, v| j.f64(*v));
}

fn ints(j: &mut JsonOut<'_>, values: &[i32]) {
    j.array(values, |j, v| j.int(*v));
}

/// `{"min": [x, y], "max": [x, y]}` with the corners written by `corner`.
fn corners<T>(j: &mut JsonOut<'_>, min: &[T], max: &[T], corner: fn(&mut JsonOut<'_>, &[T])) {
    j.raw(b"{\"min\":");
    corner(j, min);
    j.raw(b",\"max\":");
    corner(j, max);
    j.raw(b"}");
}

/// The typed JSON value of an attribute (the `value` next to `type` in the record).
pub(super) fn value(j: &mut JsonOut<'_>, value: &AttributeValue) {
    use AttributeValue as V;
    match value {
        V::Box2i(b) => corners(j, &b.min, &b.max, ints),
        V::Box2f(b) => corners(j, &b.min, &b.max, f32s),
        V::ChannelList(channels) => j.array(channels, channel_entry),
        V::Chromaticities(c) => {
            j.raw(b"{\"red\":");
            f32s(j, &c.red);
            j.raw(b",\"green\":");
            f32s(j, &c.green);
            j.raw(b",\"blue\":");
            f32s(j, &c.blue);
            j.raw(b",\"white\":");
            f32s(j, &c.white);
            j.raw(b"}");
        }
        V::Compression(c) => named(j, c.name(), c),
        V::Double(v) => j.f64(*v),
        V::Envmap(e) => named(j, e.name(), e),
        V::Float(v) => j.f32(*v),
        V::FloatVector(values) => f32s(j, values),
        V::Int(v) => j.int(*v),
        V::KeyCode(k) => {
            for (i, (key, v)) in [
                ("film_mfc_code", k.film_mfc_code),
                ("film_type", k.film_type),
                ("prefix", k.prefix),
                ("count", k.count),
                ("perf_offset", k.perf_offset),
                ("perfs_per_frame", k.perfs_per_frame),
                ("perfs_per_count", k.perfs_per_count),
            ]
            .into_iter()
            .enumerate()
            {
                j.raw(if i == 0 { b"{" } else { b"," });
                j.string(key);
                j.raw(b":");
                j.int(v);
            }
            j.raw(b"}");
        }
        V::LineOrder(l) => named(j, l.name(), l),
        V::M33f(rows) => j.array(rows.iter(), |j, r| f32s(j, r)),
        V::M33d(rows) => j.array(rows.iter(), |j, r| f64s(j, r)),
        V::M44f(rows) => j.array(rows.iter(), |j, r| f32s(j, r)),
        V::M44d(rows) => j.array(rows.iter(), |j, r| f64s(j, r)),
        V::Preview(p) => {
            j.raw(b"{\"width\":");
            j.uint(p.width);
            j.raw(b",\"height\":");
            j.uint(p.height);
            j.raw(b",\"sha256\":");
            j.hex(&p.sha256);
            j.raw(b"}");
        }
        V::Rational(r) => {
            j.raw(b"{\"n\":");
            j.int(r.n);
            j.raw(b",\"d\":");
            j.uint(r.d);
            j.raw(b"}");
        }
        V::String(text) => j.string(text),
        V::StringVector(items) => j.array(items, |j, s| j.string(s)),
        V::TileDescription(t) => tiles(j, t),
        V::TimeCode(t) => {
            let time = format!("{:02}:{:02}:{:02}:{:02}", t.hours(), t.minutes(), t.seconds(), t.frame());
            let [bgf0, bgf1, bgf2] = t.bgf();
            j.raw(b"{\"time\":");
            j.string(&time);
            for (key, flag) in [
                (&b",\"drop_frame\":"[..], t.drop_frame()),
                (b",\"color_frame\":", t.color_frame()),
                (b",\"field_phase\":", t.field_phase()),
                (b",\"bgf0\":", bgf0),
                (b",\"bgf1\":", bgf1),
                (b",\"bgf2\":", bgf2),
            ] {
                j.raw(key);
                j.bool(flag);
            }
            j.raw(b",\"user_data\":");
            j.uint(t.user_data);
            j.raw(b",\"time_and_flags\":");
            j.uint(t.time_and_flags);
            j.raw(b"}");
        }
        V::V2i(v) => ints(j, v),
        V::V2f(v) => f32s(j, v),
        V::V2d(v) => f64s(j, v),
        V::V3i(v) => ints(j, v),
        V::V3f(v) => f32s(j, v),
        V::V3d(v) => f64s(j, v),
        V::DeepImageState(d) => named(j, d.name(), d),
        V::Bytes { type_hint, data } => {
            j.raw(b"{\"type_hint\":");
            j.string(type_hint);
            j.raw(b",\"base64\":");
            j.string(&BASE64.encode(data));
            j.raw(b"}");
        }
        V::Raw { data, .. } => j.string(&BASE64.encode(data)),
    }
}

impl AttributeValue {
    /// The value as compact JSON text, exactly as in the record (`value_json`). Floats keep
    /// their shortest `f32` form (`0.1`, not `0.10000000149011612`).
    pub fn to_json_string(&self) -> String {
        let mut buf = Vec::new();
        value(&mut JsonOut::new(&mut buf), self);
        String::from_utf8(buf).unwrap_or_default()
    }

    /// The value as text (`value_text`): strings as they are, string vectors one item per
    /// line, enums by name, numbers in shortest round-trip form, rationals as `n/d`, custom
    /// types as base64, anything else as compact JSON.
    pub fn to_text(&self) -> String {
        use AttributeValue as V;
        match self {
            V::String(s) => s.clone(),
            V::StringVector(items) => items.join("\n"),
            V::Compression(c) => c.to_string(),
            V::LineOrder(l) => l.to_string(),
            V::Envmap(e) => e.to_string(),
            V::DeepImageState(d) => d.to_string(),
            V::Int(v) => v.to_string(),
            V::Float(v) => v.to_string(),
            V::Double(v) => v.to_string(),
            V::Rational(r) => format!("{}/{}", r.n, r.d),
            V::Raw { data, .. } => BASE64.encode(data),
            other => other.to_json_string(),
        }
    }

    /// The value as an integer (`value_int`) for integer-like types: `int`, and the codes of
    /// `compression`, `lineOrder`, `envmap` and `deepImageState`.
    pub fn as_int(&self) -> Option<i64> {
        use AttributeValue as V;
        match self {
            V::Int(v) => Some(i64::from(*v)),
            V::Compression(c) => Some(i64::from(c.0)),
            V::LineOrder(l) => Some(i64::from(l.0)),
            V::Envmap(e) => Some(i64::from(e.0)),
            V::DeepImageState(d) => Some(i64::from(d.0)),
            _ => None,
        }
    }

    /// The value as a float (`value_float`) for float-like types: `float`, `double`, and
    /// `rational` with a non-zero denominator.
    pub fn as_float(&self) -> Option<f64> {
        use AttributeValue as V;
        match self {
            V::Float(v) => Some(f64::from(*v)),
            V::Double(v) => Some(*v),
            V::Rational(r) if r.d != 0 => Some(f64::from(r.n) / f64::from(r.d)),
            _ => None,
        }
    }
}
