//! The values a scenario's generators make, and how they are written as JSON.

use std::fmt::Write as _;
use std::rc::Rc;

/// A generated value.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// JSON null.
    Null,
    /// true or false.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A number with a fraction (written with `decimals` places when given).
    Float(f64, Option<u8>),
    /// A string (shared: pool ids are cloned into many records).
    Str(Rc<str>),
    /// A position, written as `{"lat":…,"lon":…}` unless a field asks for another shape.
    Pos(f64, f64),
    /// A list.
    List(Vec<Val>),
    /// An object, fields in order.
    Obj(Vec<(Rc<str>, Val)>),
}

impl Val {
    /// A string value.
    pub fn str(s: &str) -> Val {
        Val::Str(Rc::from(s))
    }

    /// A number with `decimals` places: rounded now, so that what refers to it reads
    /// what is written.
    pub fn float(f: f64, decimals: Option<u8>) -> Val {
        Val::Float(decimals.map_or(f, |d| round(f, d)), decimals)
    }

    /// The value as a number, when it is one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Val::Int(i) => Some(*i as f64),
            Val::Float(f, _) => Some(*f),
            _ => None,
        }
    }

    /// The value as an integer, when it is a whole number.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Val::Int(i) => Some(*i),
            Val::Float(f, _) if f.fract() == 0.0 && f.abs() < 9e15 => Some(*f as i64),
            _ => None,
        }
    }

    /// A part of the value: `lat` or `lon` of a position, a field of an object.
    pub fn part(&self, name: &str) -> Option<Val> {
        match (self, name) {
            (Val::Pos(lat, _), "lat") => Some(Val::Float(*lat, Some(6))),
            (Val::Pos(_, lon), "lon") => Some(Val::Float(*lon, Some(6))),
            (Val::Obj(fields), _) => fields
                .iter()
                .find(|(k, _)| &**k == name)
                .map(|(_, v)| v.clone()),
            _ => None,
        }
    }

    /// Appends the value as text: strings bare, everything else as JSON. For keys and
    /// for strings assembled from parts.
    pub fn write_text(&self, out: &mut String) {
        match self {
            Val::Str(s) => out.push_str(s),
            Val::Int(i) => out.push_str(itoa::Buffer::new().format(*i)),
            Val::Null => {}
            other => {
                let mut bytes = Vec::new();
                other.write_json(&mut bytes);
                out.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
    }

    /// Appends the value as JSON.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Val::Null => out.extend_from_slice(b"null"),
            Val::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Val::Int(i) => out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes()),
            Val::Float(f, decimals) => write_float(out, *f, *decimals),
            Val::Str(s) => write_str(out, s),
            Val::Pos(lat, lon) => {
                out.extend_from_slice(b"{\"lat\":");
                write_float(out, *lat, Some(6));
                out.extend_from_slice(b",\"lon\":");
                write_float(out, *lon, Some(6));
                out.push(b'}');
            }
            Val::List(items) => {
                out.push(b'[');
                for (k, item) in items.iter().enumerate() {
                    if k > 0 {
                        out.push(b',');
                    }
                    item.write_json(out);
                }
                out.push(b']');
            }
            Val::Obj(fields) => write_object(out, fields.iter().map(|(k, v)| (&**k, v))),
        }
    }
}

/// Writes `{"k":v,…}`.
pub fn write_object<'a>(out: &mut Vec<u8>, fields: impl Iterator<Item = (&'a str, &'a Val)>) {
    out.push(b'{');
    for (k, (name, value)) in fields.enumerate() {
        if k > 0 {
            out.push(b',');
        }
        write_str(out, name);
        out.push(b':');
        value.write_json(out);
    }
    out.push(b'}');
}

/// A JSON string, escaped.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    // Most strings need no escape: copied whole.
    if !bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\') {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (k, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..k]);
        if escape.is_empty() {
            let mut hex = String::new();
            let _ = write!(hex, "\\u{b:04x}");
            out.extend_from_slice(hex.as_bytes());
        } else {
            out.extend_from_slice(escape);
        }
        start = k + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// A number: rounded to `decimals` places when given (trailing zeros dropped, as
/// Python's `round` prints), the shortest form that reads back otherwise; never NaN
/// or infinite (JSON has neither: they are written as null).
pub fn write_float(out: &mut Vec<u8>, f: f64, decimals: Option<u8>) {
    if !f.is_finite() {
        out.extend_from_slice(b"null");
        return;
    }
    let f = match decimals {
        Some(d) => round(f, d),
        None => f,
    };
    if f.fract() == 0.0 && f.abs() < 1e15 {
        // 45.0 is written 45.0, as Python writes a float, so its type stays a float.
        out.extend_from_slice(itoa::Buffer::new().format(f as i64).as_bytes());
        out.extend_from_slice(b".0");
        return;
    }
    out.extend_from_slice(ryu::Buffer::new().format_finite(f).as_bytes());
}

/// `f` rounded to `decimals` places.
pub fn round(f: f64, decimals: u8) -> f64 {
    let scale = 10f64.powi(i32::from(decimals.min(12)));
    let r = (f * scale).round() / scale;
    if r.is_finite() { r } else { f }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(v: &Val) -> String {
        let mut out = Vec::new();
        v.write_json(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn values_write_as_json_that_parses_back() {
        let v = Val::Obj(vec![
            (Rc::from("id"), Val::str("a\"b\\c\n\u{1}é")),
            (Rc::from("n"), Val::Int(-42)),
            (Rc::from("price"), Val::Float(45.98999, Some(2))),
            (Rc::from("whole"), Val::Float(3.0, None)),
            (Rc::from("nan"), Val::Float(f64::NAN, None)),
            (Rc::from("at"), Val::Pos(40.712_812_3, -74.006)),
            (Rc::from("l"), Val::List(vec![Val::Bool(true), Val::Null])),
        ]);
        let text = json(&v);
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["id"], "a\"b\\c\n\u{1}é");
        assert_eq!(back["n"], -42);
        assert_eq!(back["price"], 45.99);
        assert!(back["whole"].is_f64(), "{text}");
        assert!(back["nan"].is_null());
        assert_eq!(back["at"]["lat"], 40.712812);
        assert_eq!(back["l"], serde_json::json!([true, null]));
    }
}
