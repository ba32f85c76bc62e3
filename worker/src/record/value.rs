//! Attribute values in the record's JSON, and the per-attribute forms a catalog stores
//! (`value_json`, `value_text`, `value_int`, `value_float`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::Serialize;

use crate::header::{AttributeValue, Box2i, Channel, TileDescription};

/// Serialises an `f32` as a JSON number, or as the string `"nan"`, `"inf"` or `"-inf"`
/// (JSON has no non-finite numbers and `null` would lose the value).
pub(super) struct F32(pub f32);

impl Serialize for F32 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        F64(f64::from(self.0)).serialize_as(s, |s| s.serialize_f32(self.0))
    }
}

/// Serialises an `f64` like [`F32`].
pub(super) struct F64(pub f64);

impl F64 {
    fn serialize_as<S: Serializer>(&self, s: S, finite: impl FnOnce(S) -> Result<S::Ok, S::Error>) -> Result<S::Ok, S::Error> {
        if self.0.is_finite() {
            finite(s)
        } else if self.0.is_nan() {
            s.serialize_str("nan")
        } else if self.0 > 0.0 {
            s.serialize_str("inf")
        } else {
            s.serialize_str("-inf")
        }
    }
}

impl Serialize for F64 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.serialize_as(s, |s| s.serialize_f64(self.0))
    }
}

fn f32s<S: Serializer, const N: usize>(s: S, values: &[f32; N]) -> Result<S::Ok, S::Error> {
    s.collect_seq(values.iter().map(|v| F32(*v)))
}

fn f64s<S: Serializer, const N: usize>(s: S, values: &[f64; N]) -> Result<S::Ok, S::Error> {
    s.collect_seq(values.iter().map(|v| F64(*v)))
}

/// A row of a matrix or a vector of floats.
struct Row32<'a, const N: usize>(&'a [f32; N]);

impl<const N: usize> Serialize for Row32<'_, N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        f32s(s, self.0)
    }
}

struct Row64<'a, const N: usize>(&'a [f64; N]);

impl<const N: usize> Serialize for Row64<'_, N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        f64s(s, self.0)
    }
}

/// A `box2i` as `[xmin, ymin, xmax, ymax]` (the record's window form).
pub(super) struct Window<'a>(pub &'a Box2i);

impl Serialize for Window<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        [self.0.min[0], self.0.min[1], self.0.max[0], self.0.max[1]].serialize(s)
    }
}

/// A `tiledesc` as `{x_size, y_size, level_mode, rounding_mode}`.
pub(super) struct Tiles<'a>(pub &'a TileDescription);

impl Serialize for Tiles<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(4))?;
        m.serialize_entry("x_size", &self.0.x_size)?;
        m.serialize_entry("y_size", &self.0.y_size)?;
        m.serialize_entry("level_mode", &self.0.level_mode.to_string())?;
        m.serialize_entry("rounding_mode", &self.0.rounding_mode.to_string())?;
        m.end()
    }
}

/// A channel as `{name, layer, component, type, x_sampling, y_sampling, p_linear}`.
pub(super) struct ChannelJson<'a>(pub &'a Channel);

impl Serialize for ChannelJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let c = self.0;
        let mut m = s.serialize_map(Some(7))?;
        m.serialize_entry("name", &c.name)?;
        m.serialize_entry("layer", c.layer())?;
        m.serialize_entry("component", c.component())?;
        m.serialize_entry("type", &c.pixel_type.to_string())?;
        m.serialize_entry("x_sampling", &c.x_sampling)?;
        m.serialize_entry("y_sampling", &c.y_sampling)?;
        m.serialize_entry("p_linear", &c.p_linear)?;
        m.end()
    }
}

/// The typed JSON value of an attribute (the `value` next to `type` in the record).
pub struct ValueJson<'a>(pub &'a AttributeValue);

impl Serialize for ValueJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use AttributeValue as V;
        match self.0 {
            V::Box2i(b) => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("min", &b.min)?;
                m.serialize_entry("max", &b.max)?;
                m.end()
            }
            V::Box2f(b) => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("min", &Row32(&b.min))?;
                m.serialize_entry("max", &Row32(&b.max))?;
                m.end()
            }
            V::ChannelList(channels) => s.collect_seq(channels.iter().map(ChannelJson)),
            V::Chromaticities(c) => {
                let mut m = s.serialize_map(Some(4))?;
                m.serialize_entry("red", &Row32(&c.red))?;
                m.serialize_entry("green", &Row32(&c.green))?;
                m.serialize_entry("blue", &Row32(&c.blue))?;
                m.serialize_entry("white", &Row32(&c.white))?;
                m.end()
            }
            V::Compression(c) => s.collect_str(c),
            V::Double(v) => F64(*v).serialize(s),
            V::Envmap(e) => s.collect_str(e),
            V::Float(v) => F32(*v).serialize(s),
            V::FloatVector(values) => s.collect_seq(values.iter().map(|v| F32(*v))),
            V::Int(v) => s.serialize_i32(*v),
            V::KeyCode(k) => {
                let mut m = s.serialize_map(Some(7))?;
                m.serialize_entry("film_mfc_code", &k.film_mfc_code)?;
                m.serialize_entry("film_type", &k.film_type)?;
                m.serialize_entry("prefix", &k.prefix)?;
                m.serialize_entry("count", &k.count)?;
                m.serialize_entry("perf_offset", &k.perf_offset)?;
                m.serialize_entry("perfs_per_frame", &k.perfs_per_frame)?;
                m.serialize_entry("perfs_per_count", &k.perfs_per_count)?;
                m.end()
            }
            V::LineOrder(l) => s.collect_str(l),
            V::M33f(rows) => s.collect_seq(rows.iter().map(Row32)),
            V::M33d(rows) => s.collect_seq(rows.iter().map(Row64)),
            V::M44f(rows) => s.collect_seq(rows.iter().map(Row32)),
            V::M44d(rows) => s.collect_seq(rows.iter().map(Row64)),
            V::Preview(p) => {
                let mut m = s.serialize_map(Some(3))?;
                m.serialize_entry("width", &p.width)?;
                m.serialize_entry("height", &p.height)?;
                m.serialize_entry("sha256", &super::Hex(&p.sha256))?;
                m.end()
            }
            V::Rational(r) => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("n", &r.n)?;
                m.serialize_entry("d", &r.d)?;
                m.end()
            }
            V::String(text) => s.serialize_str(text),
            V::StringVector(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            V::TileDescription(t) => Tiles(t).serialize(s),
            V::TimeCode(t) => {
                let mut m = s.serialize_map(Some(10))?;
                let time = format!("{:02}:{:02}:{:02}:{:02}", t.hours(), t.minutes(), t.seconds(), t.frame());
                m.serialize_entry("time", &time)?;
                m.serialize_entry("drop_frame", &t.drop_frame())?;
                m.serialize_entry("color_frame", &t.color_frame())?;
                m.serialize_entry("field_phase", &t.field_phase())?;
                let [bgf0, bgf1, bgf2] = t.bgf();
                m.serialize_entry("bgf0", &bgf0)?;
                m.serialize_entry("bgf1", &bgf1)?;
                m.serialize_entry("bgf2", &bgf2)?;
                m.serialize_entry("user_data", &t.user_data)?;
                m.serialize_entry("time_and_flags", &t.time_and_flags)?;
                m.end()
            }
            V::V2i(v) => v.serialize(s),
            V::V2f(v) => f32s(s, v),
            V::V2d(v) => f64s(s, v),
            V::V3i(v) => v.serialize(s),
            V::V3f(v) => f32s(s, v),
            V::V3d(v) => f64s(s, v),
            V::DeepImageState(d) => s.collect_str(d),
            V::Bytes { type_hint, data } => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("type_hint", type_hint)?;
                m.serialize_entry("base64", &BASE64.encode(data))?;
                m.end()
            }
            V::Raw { data, .. } => s.serialize_str(&BASE64.encode(data)),
        }
    }
}

impl AttributeValue {
    /// The value as compact JSON text, exactly as in the record (`value_json`). Floats keep
    /// their shortest `f32` form (`0.1`, not `0.10000000149011612`).
    pub fn to_json_string(&self) -> String {
        serde_json::to_string(&ValueJson(self)).unwrap_or_default()
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
