//! A reader for MATLAB level-5 `.mat` files, the format of Cars196's `cars_annos.mat`.
//!
//! A file is a 128-byte header (text, then a version and an endian indicator) followed by tagged data
//! elements. Each variable is an `miMATRIX` element, possibly wrapped in an `miCOMPRESSED` (zlib)
//! element. A matrix holds array flags (class), dimensions, a name, and then class-specific data:
//! numbers (stored in any numeric type, converted to the array's class, as MATLAB shrinks storage),
//! characters (UTF-16 code units or UTF-8/UTF-32), cells (nested matrices) or structs (field names,
//! then one nested matrix per element and field). Both byte orders are read. Sparse, object and
//! function-handle arrays are reported as unsupported rather than guessed at.
//!
//! Every error names the file, and once inside a variable, the path to the offending value
//! (`annotations(3).class`).

use crate::errors::data_error;
use anyhow::{Context, Result};
use flate2::read::ZlibDecoder;
use std::io::Read;
use std::path::{Path, PathBuf};

// Data element types.
const MI_INT8: u32 = 1;
const MI_UINT8: u32 = 2;
const MI_INT16: u32 = 3;
const MI_UINT16: u32 = 4;
const MI_INT32: u32 = 5;
const MI_UINT32: u32 = 6;
const MI_SINGLE: u32 = 7;
const MI_DOUBLE: u32 = 9;
const MI_INT64: u32 = 12;
const MI_UINT64: u32 = 13;
const MI_MATRIX: u32 = 14;
const MI_COMPRESSED: u32 = 15;
const MI_UTF8: u32 = 16;
const MI_UTF16: u32 = 17;
const MI_UTF32: u32 = 18;

// Array classes (low byte of the array flags).
const MX_CELL: u8 = 1;
const MX_STRUCT: u8 = 2;
const MX_OBJECT: u8 = 3;
const MX_CHAR: u8 = 4;
const MX_SPARSE: u8 = 5;
const MX_DOUBLE: u8 = 6;
const MX_SINGLE: u8 = 7;
const MX_INT8: u8 = 8;
const MX_UINT64: u8 = 15;

/// Numbers of a numeric array, in column-major order, in the widest type of their kind: floating
/// classes (double, single) as f64, signed integer classes as i64, unsigned ones as u64, so no
/// stored value is rounded.
#[derive(Debug, Clone, PartialEq)]
pub enum Numbers {
    Float(Vec<f64>),
    Signed(Vec<i64>),
    Unsigned(Vec<u64>),
}

impl Numbers {
    fn len(&self) -> usize {
        match self {
            Numbers::Float(v) => v.len(),
            Numbers::Signed(v) => v.len(),
            Numbers::Unsigned(v) => v.len(),
        }
    }
}

/// The contents of one array.
#[derive(Debug, Clone, PartialEq)]
pub enum MatData {
    /// `class` is MATLAB's class name (`double`, `uint8`, ...); `logical` arrays are uint8 with the
    /// logical flag.
    Numeric {
        class: &'static str,
        logical: bool,
        real: Numbers,
        imag: Option<Numbers>,
    },
    /// Characters in column-major order (a `1xN` array is one string).
    Char(Vec<char>),
    Cell(Vec<MatArray>),
    /// `values[element][field]`, elements in column-major order.
    Struct {
        fields: Vec<String>,
        values: Vec<Vec<MatArray>>,
    },
}

/// One array: its name (empty inside cells and structs), dimensions and data.
#[derive(Debug, Clone, PartialEq)]
pub struct MatArray {
    pub name: String,
    pub dims: Vec<usize>,
    pub data: MatData,
}

impl MatArray {
    /// Number of elements (product of the dimensions).
    // Part of the reader's API (class_names is a cell array); Cars196 reads only struct fields.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn numel(&self) -> usize {
        self.dims.iter().product()
    }

    /// MATLAB's name of the array's class, for messages.
    pub fn class_name(&self) -> &'static str {
        match &self.data {
            MatData::Numeric { class, logical, .. } => {
                if *logical {
                    "logical"
                } else {
                    class
                }
            }
            MatData::Char(_) => "char",
            MatData::Cell(_) => "cell",
            MatData::Struct { .. } => "struct",
        }
    }
}

/// A parsed `.mat` file: its variables in file order.
#[derive(Debug, Clone)]
pub struct MatFile {
    pub path: PathBuf,
    pub variables: Vec<MatArray>,
}

impl MatFile {
    pub fn read(path: &Path) -> Result<MatFile> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let variables = parse(&bytes).map_err(|e| {
            data_error(format!(
                "{}: not a readable MATLAB v5 .mat file: {e}",
                path.display()
            ))
        })?;
        Ok(MatFile {
            path: path.to_path_buf(),
            variables,
        })
    }

    /// The variable `name`, as a [`Value`] whose accessors report errors against this file.
    pub fn variable(&self, name: &str) -> Result<Value<'_>> {
        match self.variables.iter().find(|v| v.name == name) {
            Some(array) => Ok(Value {
                file: &self.path,
                path: name.to_string(),
                array,
            }),
            None => {
                let names: Vec<&str> = self.variables.iter().map(|v| v.name.as_str()).collect();
                Err(data_error(format!(
                    "{}: has no variable `{name}`; its variables are: {}",
                    self.path.display(),
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                )))
            }
        }
    }
}

/// An array found at a path inside a file; its accessors check the class and shape they expect
/// and name the file and path when it is something else.
#[derive(Debug, Clone)]
pub struct Value<'a> {
    file: &'a Path,
    path: String,
    array: &'a MatArray,
}

impl<'a> Value<'a> {
    // Part of the reader's API (class_names is a cell array); Cars196 reads only struct fields.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn array(&self) -> &'a MatArray {
        self.array
    }

    fn error(&self, expected: &str) -> anyhow::Error {
        data_error(format!(
            "{}: `{}` must be {expected}, found a {} {} array",
            self.file.display(),
            self.path,
            dims_text(&self.array.dims),
            self.array.class_name()
        ))
    }

    /// The elements of a struct array, each with access to its fields.
    pub fn struct_elements(&self) -> Result<Vec<StructElement<'a>>> {
        match &self.array.data {
            MatData::Struct { fields, values } => Ok(values
                .iter()
                .enumerate()
                .map(|(i, v)| StructElement {
                    file: self.file,
                    path: if values.len() == 1 {
                        self.path.clone()
                    } else {
                        format!("{}({})", self.path, i + 1)
                    },
                    fields,
                    values: v,
                })
                .collect()),
            _ => Err(self.error("a struct array")),
        }
    }

    /// The text of a char array with one row.
    pub fn string(&self) -> Result<String> {
        match &self.array.data {
            MatData::Char(chars) if self.array.dims.iter().filter(|&&d| d != 1).count() <= 1 => {
                Ok(chars.iter().collect())
            }
            _ => Err(self.error("a character string (a 1xN char array)")),
        }
    }

    /// The value of a real numeric scalar that must be a whole number.
    pub fn integer(&self) -> Result<i64> {
        match &self.array.data {
            MatData::Numeric {
                real, imag: None, ..
            } if real.len() == 1 => match real {
                Numbers::Signed(v) => Ok(v[0]),
                Numbers::Unsigned(v) => {
                    i64::try_from(v[0]).map_err(|_| self.error("an integer that fits in int64"))
                }
                Numbers::Float(v) => {
                    let x = v[0];
                    if x.is_finite() && x.fract() == 0.0 && x.abs() < 9.0e15 {
                        Ok(x as i64)
                    } else {
                        Err(data_error(format!(
                            "{}: `{}` must be a whole number, found {x}",
                            self.file.display(),
                            self.path
                        )))
                    }
                }
            },
            _ => Err(self.error("a real numeric scalar")),
        }
    }

    /// The cells of a cell array.
    // Part of the reader's API (class_names is a cell array); Cars196 reads only struct fields.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn cells(&self) -> Result<Vec<Value<'a>>> {
        match &self.array.data {
            MatData::Cell(items) => Ok(items
                .iter()
                .enumerate()
                .map(|(i, a)| Value {
                    file: self.file,
                    path: format!("{}{{{}}}", self.path, i + 1),
                    array: a,
                })
                .collect()),
            _ => Err(self.error("a cell array")),
        }
    }
}

/// One element of a struct array.
#[derive(Debug, Clone)]
pub struct StructElement<'a> {
    file: &'a Path,
    path: String,
    fields: &'a [String],
    values: &'a [MatArray],
}

impl<'a> StructElement<'a> {
    pub fn field(&self, name: &str) -> Result<Value<'a>> {
        match self.fields.iter().position(|f| f == name) {
            Some(i) => Ok(Value {
                file: self.file,
                path: format!("{}.{name}", self.path),
                array: &self.values[i],
            }),
            None => Err(data_error(format!(
                "{}: `{}` has no field `{name}`; its fields are: {}",
                self.file.display(),
                self.path,
                if self.fields.is_empty() {
                    "none".to_string()
                } else {
                    self.fields.join(", ")
                }
            ))),
        }
    }
}

fn dims_text(dims: &[usize]) -> String {
    dims.iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join("x")
}

/// Parses a whole file (header and every variable).
pub fn parse(bytes: &[u8]) -> Result<Vec<MatArray>, String> {
    if bytes.len() < 128 {
        return Err(format!(
            "the file has {} bytes, shorter than the 128-byte header",
            bytes.len()
        ));
    }
    if bytes[..4].contains(&0) {
        // Level-4 files start with a binary matrix header, v5 with descriptive text.
        return Err("the header has no descriptive text (a MATLAB level-4 file?); save with -v7 or scipy.io.savemat(format='5')".into());
    }
    let big_endian = match &bytes[126..128] {
        b"IM" => false,
        b"MI" => true,
        other => {
            return Err(format!(
                "the endian indicator is {other:?}, not \"IM\" or \"MI\" (a MATLAB v7.3 HDF5 file? save with -v7)"
            ))
        }
    };
    let reader = Reader { big_endian };
    let version = reader.u16(&bytes[124..126]);
    if version != 0x0100 {
        return Err(format!(
            "unsupported version {version:#06x} (expected 0x0100)"
        ));
    }
    let mut variables = Vec::new();
    let mut pos = 128;
    while pos < bytes.len() {
        if bytes.len() - pos < 8 {
            // Trailing padding shorter than a tag.
            if bytes[pos..].iter().all(|&b| b == 0) {
                break;
            }
            return Err(format!("truncated data element at byte {pos}"));
        }
        let (tag, data, next) = reader.element(bytes, pos)?;
        match tag {
            MI_MATRIX => variables.push(reader.matrix(data)?),
            MI_COMPRESSED => {
                let mut inflated = Vec::new();
                ZlibDecoder::new(data)
                    .read_to_end(&mut inflated)
                    .map_err(|e| format!("compressed element at byte {pos} is corrupt: {e}"))?;
                let (tag, inner, _) = reader.element(&inflated, 0)?;
                if tag != MI_MATRIX {
                    return Err(format!(
                        "compressed element at byte {pos} holds data type {tag}, not a matrix"
                    ));
                }
                variables.push(reader.matrix(inner)?);
            }
            other => {
                return Err(format!(
                    "top-level data element at byte {pos} has type {other}, expected a matrix (14) or compressed data (15)"
                ))
            }
        }
        pos = next;
    }
    Ok(variables)
}

struct Reader {
    big_endian: bool,
}

impl Reader {
    fn u16(&self, b: &[u8]) -> u16 {
        let a = [b[0], b[1]];
        if self.big_endian {
            u16::from_be_bytes(a)
        } else {
            u16::from_le_bytes(a)
        }
    }

    fn u32(&self, b: &[u8]) -> u32 {
        let a = [b[0], b[1], b[2], b[3]];
        if self.big_endian {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        }
    }

    fn u64(&self, b: &[u8]) -> u64 {
        let a: [u8; 8] = b[..8].try_into().expect("8 bytes");
        if self.big_endian {
            u64::from_be_bytes(a)
        } else {
            u64::from_le_bytes(a)
        }
    }

    /// The data element at `pos`: (type, its data, offset of the next element). Small elements
    /// (size and type packed into the first four bytes, data in the next four) and the 8-byte
    /// alignment of ordinary elements are handled here. Compressed elements are not padded.
    fn element<'b>(&self, bytes: &'b [u8], pos: usize) -> Result<(u32, &'b [u8], usize), String> {
        if bytes.len() < pos + 8 {
            return Err(format!("truncated data element tag at byte {pos}"));
        }
        let first = self.u32(&bytes[pos..]);
        if first >> 16 != 0 {
            let size = (first >> 16) as usize;
            if size > 4 {
                return Err(format!(
                    "small data element at byte {pos} claims {size} bytes (at most 4)"
                ));
            }
            return Ok((first & 0xffff, &bytes[pos + 4..pos + 4 + size], pos + 8));
        }
        let size = self.u32(&bytes[pos + 4..]) as usize;
        let start = pos + 8;
        let end = start
            .checked_add(size)
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| {
                format!(
                    "data element at byte {pos} claims {size} bytes, only {} remain",
                    bytes.len() - start
                )
            })?;
        let next = if first == MI_COMPRESSED {
            end
        } else {
            end.div_ceil(8) * 8
        };
        Ok((first, &bytes[start..end], next.min(bytes.len()).max(end)))
    }

    /// The elements inside a matrix's data, in order.
    fn sub_elements<'b>(&self, data: &'b [u8]) -> Result<Vec<(u32, &'b [u8])>, String> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos + 8 <= data.len() {
            let (tag, d, next) = self.element(data, pos)?;
            out.push((tag, d));
            pos = next;
        }
        Ok(out)
    }

    fn matrix(&self, data: &[u8]) -> Result<MatArray, String> {
        // An empty element stands for an empty array (MATLAB writes `[]` cells this way).
        if data.is_empty() {
            return Ok(MatArray {
                name: String::new(),
                dims: vec![0, 0],
                data: MatData::Numeric {
                    class: "double",
                    logical: false,
                    real: Numbers::Float(Vec::new()),
                    imag: None,
                },
            });
        }
        let parts = self.sub_elements(data)?;
        let mut it = parts.into_iter();
        let (flags_type, flags) = it.next().ok_or("matrix without array flags")?;
        if flags_type != MI_UINT32 || flags.len() < 8 {
            return Err(format!(
                "matrix array flags have type {flags_type} and {} bytes (expected uint32, 8 bytes)",
                flags.len()
            ));
        }
        let word = self.u32(flags);
        let class = (word & 0xff) as u8;
        let complex = word & 0x0800 != 0;
        let logical = word & 0x0200 != 0;
        let (dims_type, dims_data) = it.next().ok_or("matrix without dimensions")?;
        let dims: Vec<usize> = self
            .numbers(dims_type, dims_data)?
            .into_iter_i64()
            .map(|d| usize::try_from(d).map_err(|_| format!("negative dimension {d}")))
            .collect::<Result<_, _>>()?;
        let numel: usize = dims.iter().product();
        let (name_type, name_data) = it.next().ok_or("matrix without a name")?;
        let name = match name_type {
            MI_INT8 | MI_UINT8 | MI_UTF8 => String::from_utf8_lossy(name_data).into_owned(),
            other => return Err(format!("matrix name has data type {other}, expected int8")),
        };
        let with_name = |e: String| {
            if name.is_empty() {
                e
            } else {
                format!("variable `{name}`: {e}")
            }
        };
        let data = match class {
            MX_DOUBLE..=MX_UINT64 => {
                let class_name = numeric_class_name(class);
                let (t, d) = it
                    .next()
                    .ok_or_else(|| with_name("numeric array without data".into()))?;
                let real = convert(class, self.numbers(t, d).map_err(with_name)?);
                let imag = if complex {
                    let (t, d) = it
                        .next()
                        .ok_or_else(|| with_name("complex array without imaginary part".into()))?;
                    Some(convert(class, self.numbers(t, d).map_err(with_name)?))
                } else {
                    None
                };
                if real.len() != numel {
                    return Err(with_name(format!(
                        "{} array holds {} values",
                        dims_text(&dims),
                        real.len()
                    )));
                }
                MatData::Numeric {
                    class: class_name,
                    logical,
                    real,
                    imag,
                }
            }
            MX_CHAR => {
                let chars = match it.next() {
                    None => Vec::new(),
                    Some((t, d)) => self.chars(t, d).map_err(with_name)?,
                };
                if chars.len() != numel {
                    return Err(with_name(format!(
                        "{} char array holds {} characters",
                        dims_text(&dims),
                        chars.len()
                    )));
                }
                MatData::Char(chars)
            }
            MX_CELL => {
                let mut items = Vec::with_capacity(numel);
                for _ in 0..numel {
                    let (t, d) = it.next().ok_or_else(|| {
                        with_name(format!("cell array has fewer than {numel} cells"))
                    })?;
                    if t != MI_MATRIX {
                        return Err(with_name(format!("cell holds data type {t}, not a matrix")));
                    }
                    items.push(self.matrix(d).map_err(with_name)?);
                }
                MatData::Cell(items)
            }
            MX_STRUCT => {
                let (t, d) = it
                    .next()
                    .ok_or_else(|| with_name("struct without field name length".into()))?;
                let width = self
                    .numbers(t, d)
                    .map_err(with_name)?
                    .into_iter_i64()
                    .next();
                let width = match width {
                    Some(w) if w > 0 => w as usize,
                    _ => return Err(with_name("struct field name length is not positive".into())),
                };
                let (t, d) = it
                    .next()
                    .ok_or_else(|| with_name("struct without field names".into()))?;
                if t != MI_INT8 && t != MI_UINT8 {
                    return Err(with_name(format!("struct field names have data type {t}")));
                }
                let fields: Vec<String> = d
                    .chunks(width)
                    .map(|c| {
                        let end = c.iter().position(|&b| b == 0).unwrap_or(c.len());
                        String::from_utf8_lossy(&c[..end]).into_owned()
                    })
                    .collect();
                let mut values = Vec::with_capacity(numel);
                for element in 0..numel {
                    let mut row = Vec::with_capacity(fields.len());
                    for field in &fields {
                        let (t, d) = it.next().ok_or_else(|| {
                            with_name(format!(
                                "struct element {} has no value for field `{field}`",
                                element + 1
                            ))
                        })?;
                        if t != MI_MATRIX {
                            return Err(with_name(format!(
                                "field `{field}` holds data type {t}, not a matrix"
                            )));
                        }
                        row.push(self.matrix(d).map_err(|e| {
                            with_name(format!("element {} field `{field}`: {e}", element + 1))
                        })?);
                    }
                    values.push(row);
                }
                MatData::Struct { fields, values }
            }
            MX_OBJECT => return Err(with_name("MATLAB objects are not supported".into())),
            MX_SPARSE => return Err(with_name("sparse arrays are not supported".into())),
            other => return Err(with_name(format!("unsupported array class {other}"))),
        };
        Ok(MatArray { name, dims, data })
    }

    /// Numbers stored with data type `t`.
    fn numbers(&self, t: u32, d: &[u8]) -> Result<Numbers, String> {
        let width = match t {
            MI_INT8 | MI_UINT8 => 1,
            MI_INT16 | MI_UINT16 => 2,
            MI_INT32 | MI_UINT32 | MI_SINGLE => 4,
            MI_DOUBLE | MI_INT64 | MI_UINT64 => 8,
            other => return Err(format!("data type {other} is not numeric")),
        };
        if !d.len().is_multiple_of(width) {
            return Err(format!(
                "{} bytes of data type {t} is not a whole number of {width}-byte values",
                d.len()
            ));
        }
        let chunks = d.chunks_exact(width);
        Ok(match t {
            MI_INT8 => Numbers::Signed(chunks.map(|c| i64::from(c[0] as i8)).collect()),
            MI_UINT8 => Numbers::Unsigned(chunks.map(|c| u64::from(c[0])).collect()),
            MI_INT16 => Numbers::Signed(chunks.map(|c| i64::from(self.u16(c) as i16)).collect()),
            MI_UINT16 => Numbers::Unsigned(chunks.map(|c| u64::from(self.u16(c))).collect()),
            MI_INT32 => Numbers::Signed(chunks.map(|c| i64::from(self.u32(c) as i32)).collect()),
            MI_UINT32 => Numbers::Unsigned(chunks.map(|c| u64::from(self.u32(c))).collect()),
            MI_INT64 => Numbers::Signed(chunks.map(|c| self.u64(c) as i64).collect()),
            MI_UINT64 => Numbers::Unsigned(chunks.map(|c| self.u64(c)).collect()),
            MI_SINGLE => Numbers::Float(
                chunks
                    .map(|c| f64::from(f32::from_bits(self.u32(c))))
                    .collect(),
            ),
            _ => Numbers::Float(chunks.map(|c| f64::from_bits(self.u64(c))).collect()),
        })
    }

    /// Characters of a char array stored with data type `t`.
    fn chars(&self, t: u32, d: &[u8]) -> Result<Vec<char>, String> {
        match t {
            MI_UTF8 | MI_UINT8 | MI_INT8 => std::str::from_utf8(d)
                .map(|s| s.chars().collect())
                .map_err(|_| "char data is not valid UTF-8".to_string()),
            MI_UINT16 | MI_UTF16 => {
                let units: Vec<u16> = d.chunks_exact(2).map(|c| self.u16(c)).collect();
                // MATLAB chars are UTF-16 code units; one unit per character (lone surrogates
                // become U+FFFD so the count still matches the dimensions).
                Ok(units
                    .iter()
                    .map(|&u| char::from_u32(u32::from(u)).unwrap_or('\u{fffd}'))
                    .collect())
            }
            MI_UTF32 | MI_UINT32 | MI_INT32 => Ok(d
                .chunks_exact(4)
                .map(|c| char::from_u32(self.u32(c)).unwrap_or('\u{fffd}'))
                .collect()),
            other => Err(format!("char data has data type {other}")),
        }
    }
}

impl Numbers {
    fn into_iter_i64(self) -> Box<dyn Iterator<Item = i64>> {
        match self {
            Numbers::Float(v) => Box::new(v.into_iter().map(|x| x as i64)),
            Numbers::Signed(v) => Box::new(v.into_iter()),
            Numbers::Unsigned(v) => Box::new(v.into_iter().map(|x| x as i64)),
        }
    }
}

fn numeric_class_name(class: u8) -> &'static str {
    match class {
        MX_DOUBLE => "double",
        MX_SINGLE => "single",
        MX_INT8 => "int8",
        9 => "uint8",
        10 => "int16",
        11 => "uint16",
        12 => "int32",
        13 => "uint32",
        14 => "int64",
        _ => "uint64",
    }
}

/// Stored numbers converted to the kind of the array's class (MATLAB stores e.g. a double array of
/// small whole numbers as uint8).
fn convert(class: u8, n: Numbers) -> Numbers {
    let float = matches!(class, MX_DOUBLE | MX_SINGLE);
    let signed = matches!(class, MX_INT8 | 10 | 12 | 14);
    match n {
        Numbers::Float(v) if float => Numbers::Float(v),
        Numbers::Float(v) if signed => Numbers::Signed(v.into_iter().map(|x| x as i64).collect()),
        Numbers::Float(v) => Numbers::Unsigned(v.into_iter().map(|x| x as u64).collect()),
        Numbers::Signed(v) if float => Numbers::Float(v.into_iter().map(|x| x as f64).collect()),
        Numbers::Signed(v) if signed => Numbers::Signed(v),
        Numbers::Signed(v) => Numbers::Unsigned(v.into_iter().map(|x| x as u64).collect()),
        Numbers::Unsigned(v) if float => Numbers::Float(v.into_iter().map(|x| x as f64).collect()),
        Numbers::Unsigned(v) if signed => {
            Numbers::Signed(v.into_iter().map(|x| x as i64).collect())
        }
        Numbers::Unsigned(v) => Numbers::Unsigned(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::test_python;

    /// Writes, with scipy, a struct array shaped like cars_annos.mat's `annotations` (MATLAB's
    /// own file stores the numbers as uint8/uint16 and the class as a double), a cell array of
    /// names, and one variable of every other kind the reader claims to handle.
    const WRITER: &str = r#"
import sys
import numpy as np
from scipy.io import savemat
out, compress = sys.argv[1], sys.argv[2] == "1"
rows = [("car_ims/000001.jpg", 112, 7, 1, 13, 1, 0),
        ("car_ims/000002.jpg", 48, 24, 3, 196, 2, 1),
        ("car_ims/000003.jpg", 7, 4, 100, 57, 3, 0)]
dt = [("relative_im_path", "O"), ("bbox_x1", "O"), ("bbox_y1", "O"), ("bbox_x2", "O"),
      ("bbox_y2", "O"), ("class", "O"), ("test", "O")]
ann = np.empty((1, len(rows)), dtype=dt)
for i, (p, x1, y1, x2, y2, c, t) in enumerate(rows):
    ann[0, i] = (p, np.uint8(x1), np.uint8(y1), np.uint16(x2), np.uint16(y2), float(c), np.uint8(t))
names = np.empty((1, 3), dtype=object)
names[0, :] = ["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "naïve €"]
savemat(out, {
    "annotations": ann,
    "class_names": names,
    "matrix": np.array([[1.5, -2.0, 3.25], [4.0, 5.0, 6.0]]),
    "big": np.array([2**62 + 1, -5], dtype=np.int64),
    "flag": np.array([True, False, True]),
    "z": np.array([1 + 2j, 3 - 4j]),
    "single": np.float32(0.5),
    "empty": np.zeros((0, 0)),
}, do_compression=compress, oned_as="row")
"#;

    fn strings(v: &Value) -> Vec<String> {
        v.cells()
            .unwrap()
            .iter()
            .map(|c| c.string().unwrap())
            .collect()
    }

    #[test]
    fn reads_what_scipy_writes_compressed_and_not() {
        let Some(py) = test_python::python() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        for compress in ["0", "1"] {
            let path = dir.path().join(format!("annos{compress}.mat"));
            test_python::run(&py, WRITER, &[&path, Path::new(compress)]);
            let mat = MatFile::read(&path).unwrap();
            let names: Vec<&str> = mat.variables.iter().map(|v| v.name.as_str()).collect();
            assert_eq!(
                names,
                [
                    "annotations",
                    "class_names",
                    "matrix",
                    "big",
                    "flag",
                    "z",
                    "single",
                    "empty"
                ]
            );
            let ann = mat.variable("annotations").unwrap();
            assert_eq!(ann.array().dims, vec![1, 3]);
            let elements = ann.struct_elements().unwrap();
            let paths: Vec<String> = elements
                .iter()
                .map(|e| e.field("relative_im_path").unwrap().string().unwrap())
                .collect();
            assert_eq!(
                paths,
                [
                    "car_ims/000001.jpg",
                    "car_ims/000002.jpg",
                    "car_ims/000003.jpg"
                ]
            );
            let classes: Vec<i64> = elements
                .iter()
                .map(|e| e.field("class").unwrap().integer().unwrap())
                .collect();
            assert_eq!(classes, [1, 2, 3]);
            assert_eq!(
                elements[1].field("bbox_y2").unwrap().integer().unwrap(),
                196
            );
            assert_eq!(elements[1].field("test").unwrap().integer().unwrap(), 1);
            assert_eq!(
                elements[2].field("bbox_x2").unwrap().array().class_name(),
                "uint16"
            );
            assert_eq!(
                strings(&mat.variable("class_names").unwrap()),
                [
                    "AM General Hummer SUV 2000",
                    "Acura RL Sedan 2012",
                    "naïve €"
                ]
            );
            let matrix = mat.variable("matrix").unwrap();
            assert_eq!(matrix.array().dims, vec![2, 3]);
            // Column-major, as MATLAB stores it.
            assert_eq!(
                matrix.array().data,
                MatData::Numeric {
                    class: "double",
                    logical: false,
                    real: Numbers::Float(vec![1.5, 4.0, -2.0, 5.0, 3.25, 6.0]),
                    imag: None,
                }
            );
            match &mat.variable("big").unwrap().array().data {
                MatData::Numeric { class, real, .. } => {
                    assert_eq!(*class, "int64");
                    assert_eq!(real, &Numbers::Signed(vec![(1 << 62) + 1, -5]));
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(
                mat.variable("flag").unwrap().array().class_name(),
                "logical"
            );
            match &mat.variable("z").unwrap().array().data {
                MatData::Numeric { real, imag, .. } => {
                    assert_eq!(real, &Numbers::Float(vec![1.0, 3.0]));
                    assert_eq!(imag, &Some(Numbers::Float(vec![2.0, -4.0])));
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(
                mat.variable("single").unwrap().array().class_name(),
                "single"
            );
            assert_eq!(mat.variable("empty").unwrap().array().numel(), 0);
        }
    }

    #[test]
    fn errors_name_the_file_and_the_path() {
        let Some(py) = test_python::python() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("annos.mat");
        test_python::run(&py, WRITER, &[&path, Path::new("1")]);
        let mat = MatFile::read(&path).unwrap();
        let file = path.display().to_string();
        let e = mat.variable("annotation").unwrap_err().to_string();
        assert!(e.contains(&file) && e.contains("`annotation`"), "{e}");
        assert!(e.contains("annotations, class_names"), "{e}");
        let elements = mat
            .variable("annotations")
            .unwrap()
            .struct_elements()
            .unwrap();
        let e = elements[1].field("label").unwrap_err().to_string();
        assert!(e.contains("`annotations(2)` has no field `label`"), "{e}");
        assert!(e.contains("relative_im_path, bbox_x1"), "{e}");
        let e = elements[2]
            .field("relative_im_path")
            .unwrap()
            .integer()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`annotations(3).relative_im_path` must be a real numeric scalar")
                && e.contains("char"),
            "{e}"
        );
        let e = mat
            .variable("matrix")
            .unwrap()
            .struct_elements()
            .unwrap_err()
            .to_string();
        assert!(e.contains("found a 2x3 double array"), "{e}");
        // A truncated file is an error naming the file, not a panic.
        let bytes = std::fs::read(&path).unwrap();
        for cut in [0, 100, 131, 140, bytes.len() / 2, bytes.len() - 3] {
            let short = dir.path().join(format!("cut{cut}.mat"));
            std::fs::write(&short, &bytes[..cut]).unwrap();
            let e = MatFile::read(&short).unwrap_err().to_string();
            assert!(e.contains("cut") && e.contains("MATLAB"), "{e}");
        }
    }

    /// Builds one data element (tag, data, padding) in little-endian order.
    fn element(t: u32, data: &[u8]) -> Vec<u8> {
        let mut out = t.to_le_bytes().to_vec();
        out.extend((data.len() as u32).to_le_bytes());
        out.extend(data);
        while !out.len().is_multiple_of(8) {
            out.push(0);
        }
        out
    }

    fn small(t: u32, data: &[u8]) -> Vec<u8> {
        let mut out = ((data.len() as u32) << 16 | t).to_le_bytes().to_vec();
        out.extend(data);
        out.resize(8, 0);
        out
    }

    #[test]
    fn reads_matlab_storage_tricks_and_big_endian() {
        // MATLAB itself stores a double array of small whole numbers as uint8, and writes names in
        // the small element format: the value keeps its class (double).
        let mut m = element(MI_UINT32, &[MX_DOUBLE, 0, 0, 0, 0, 0, 0, 0]);
        m.extend(element(MI_INT32, &[1, 0, 0, 0, 3, 0, 0, 0]));
        m.extend(small(MI_INT8, b"cls"));
        m.extend(small(MI_UINT8, &[1, 196, 7]));
        let mut file = vec![b' '; 116];
        file[..6].copy_from_slice(b"MATLAB");
        file.extend([0u8; 8]);
        file.extend([0x00, 0x01]);
        file.extend(b"IM");
        file.extend(element(MI_MATRIX, &m));
        let vars = parse(&file).unwrap();
        assert_eq!(vars[0].name, "cls");
        assert_eq!(
            vars[0].data,
            MatData::Numeric {
                class: "double",
                logical: false,
                real: Numbers::Float(vec![1.0, 196.0, 7.0]),
                imag: None
            }
        );
        // The same variable written big-endian.
        let be = |t: u32, data: &[u8]| {
            let mut out = t.to_be_bytes().to_vec();
            out.extend((data.len() as u32).to_be_bytes());
            out.extend(data);
            while !out.len().is_multiple_of(8) {
                out.push(0);
            }
            out
        };
        let mut m = be(MI_UINT32, &[0, 0, 0, MX_CHAR, 0, 0, 0, 0]);
        m.extend(be(MI_INT32, &[0, 0, 0, 1, 0, 0, 0, 2]));
        m.extend(be(MI_INT8, b"s"));
        m.extend(be(MI_UINT16, &[0, b'o', 0, b'k']));
        let mut file = vec![b' '; 124];
        file.extend([0x01, 0x00]);
        file.extend(b"MI");
        file.extend(be(MI_MATRIX, &m));
        let vars = parse(&file).unwrap();
        assert_eq!(vars[0].data, MatData::Char(vec!['o', 'k']));
        // A v7.3 (HDF5) file is refused with a hint.
        let mut h5 = vec![b' '; 126];
        h5.extend([0, 0]);
        assert!(parse(&h5).unwrap_err().contains("v7.3"));
    }
}
