//! A small reader for NumPy `.npy` files (format versions 1-3): little-endian float32, float64,
//! int32 and int64 arrays in C order. Anything else is a clear error, not a guess.

use crate::errors::data_error;
use anyhow::{Context, Result};
use std::path::Path;

/// Values of an array, kept in their stored type.
#[derive(Debug, Clone, PartialEq)]
pub enum NpyData {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I32(Vec<i32>),
    I64(Vec<i64>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub data: NpyData,
}

impl NpyArray {
    /// The values as f32 (embeddings).
    pub fn to_f32(&self) -> Vec<f32> {
        match &self.data {
            NpyData::F32(v) => v.clone(),
            NpyData::F64(v) => v.iter().map(|&x| x as f32).collect(),
            NpyData::I32(v) => v.iter().map(|&x| x as f32).collect(),
            NpyData::I64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }

    /// The values as integer labels; floats must be whole numbers.
    pub fn to_labels(&self, what: &str) -> Result<Vec<i64>> {
        let whole = |x: f64| -> Result<i64> {
            if x.fract() == 0.0 && x.is_finite() && x.abs() < 9.0e15 {
                Ok(x as i64)
            } else {
                Err(data_error(format!(
                    "{what}: labels must be integers, found {x}"
                )))
            }
        };
        match &self.data {
            NpyData::I32(v) => Ok(v.iter().map(|&x| i64::from(x)).collect()),
            NpyData::I64(v) => Ok(v.clone()),
            NpyData::F32(v) => v.iter().map(|&x| whole(f64::from(x))).collect(),
            NpyData::F64(v) => v.iter().map(|&x| whole(x)).collect(),
        }
    }
}

/// Value of `'key': value` in the header dict (the text up to the next top-level comma or brace).
fn header_field<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let pos = header.find(&format!("'{key}'"))?;
    let rest = header[pos + key.len() + 2..]
        .trim_start()
        .strip_prefix(':')?;
    let rest = rest.trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')')? + 1
    } else {
        rest.find([',', '}']).unwrap_or(rest.len())
    };
    Some(rest[..end].trim())
}

pub fn parse(bytes: &[u8], what: &str) -> Result<NpyArray> {
    let bad = |msg: String| data_error(format!("{what}: {msg}"));
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("not a .npy file (missing the \\x93NUMPY magic)".into()));
    }
    let major = bytes[6];
    let (header_len, header_start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(bad("truncated header".into()));
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        v => return Err(bad(format!("unsupported .npy format version {v}"))),
    };
    let data_start = header_start + header_len;
    if bytes.len() < data_start {
        return Err(bad("truncated header".into()));
    }
    let header = std::str::from_utf8(&bytes[header_start..data_start])
        .map_err(|_| bad("header is not text".into()))?;
    let descr = header_field(header, "descr")
        .ok_or_else(|| bad("header has no descr".into()))?
        .trim_matches(|c| c == '\'' || c == '"');
    if header_field(header, "fortran_order") != Some("False") {
        return Err(bad(
            "Fortran-order arrays are not supported; save with np.ascontiguousarray".into(),
        ));
    }
    let shape_text =
        header_field(header, "shape").ok_or_else(|| bad("header has no shape".into()))?;
    let shape: Vec<usize> = shape_text
        .trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| bad(format!("bad shape {shape_text}")))
        })
        .collect::<Result<_>>()?;
    let count: usize = shape.iter().product();
    let payload = &bytes[data_start..];
    let (width, data): (usize, fn(&[u8]) -> NpyData) = match descr {
        "<f4" => (4, |b| {
            NpyData::F32(
                b.chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
            )
        }),
        "<f8" => (8, |b| {
            NpyData::F64(
                b.chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
            )
        }),
        "<i4" => (4, |b| {
            NpyData::I32(
                b.chunks_exact(4)
                    .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
            )
        }),
        "<i8" => (8, |b| {
            NpyData::I64(
                b.chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
            )
        }),
        other => {
            return Err(bad(format!(
            "dtype `{other}` is not supported; use little-endian float32, float64, int32 or int64"
        )))
        }
    };
    if payload.len() != count * width {
        return Err(bad(format!(
            "shape {shape:?} needs {} bytes of data, the file has {}",
            count * width,
            payload.len()
        )));
    }
    Ok(NpyArray {
        shape,
        data: data(payload),
    })
}

pub fn read(path: &Path) -> Result<NpyArray> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(&bytes, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(descr: &str, shape: &str, fortran: bool, payload: &[u8]) -> Vec<u8> {
        let mut header = format!(
            "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
            if fortran { "True" } else { "False" }
        );
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend((header.len() as u16).to_le_bytes());
        out.extend(header.as_bytes());
        out.extend(payload);
        out
    }

    #[test]
    fn reads_supported_types() {
        let p: Vec<u8> = [1.5f32, -2.0, 3.0, 4.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let a = parse(&npy("<f4", "(2, 2)", false, &p), "x").unwrap();
        assert_eq!(a.shape, vec![2, 2]);
        assert_eq!(a.to_f32(), vec![1.5, -2.0, 3.0, 4.0]);
        let p: Vec<u8> = [7i64, -1, 3].iter().flat_map(|x| x.to_le_bytes()).collect();
        let a = parse(&npy("<i8", "(3,)", false, &p), "x").unwrap();
        assert_eq!(a.shape, vec![3]);
        assert_eq!(a.to_labels("x").unwrap(), vec![7, -1, 3]);
        let p: Vec<u8> = [2i32, 5].iter().flat_map(|x| x.to_le_bytes()).collect();
        assert_eq!(
            parse(&npy("<i4", "(2,)", false, &p), "x")
                .unwrap()
                .to_labels("x")
                .unwrap(),
            vec![2, 5]
        );
        let p: Vec<u8> = [0.25f64, 1.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let a = parse(&npy("<f8", "(2,)", false, &p), "x").unwrap();
        assert_eq!(a.to_f32(), vec![0.25, 1.0]);
        assert!(a.to_labels("x").is_err());
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        let p = [0u8; 16];
        assert!(parse(&npy(">f4", "(4,)", false, &p), "x").is_err());
        assert!(parse(&npy("<f4", "(2, 2)", true, &p), "x").is_err());
        assert!(parse(&npy("<u2", "(8,)", false, &p), "x").is_err());
        assert!(parse(&npy("<f4", "(5,)", false, &p), "x").is_err());
        assert!(parse(b"not numpy at all", "x").is_err());
        assert!(parse(&npy("<f4", "(4,)", false, &p)[..20], "x").is_err());
    }
}
