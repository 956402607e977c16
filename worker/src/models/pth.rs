//! Reads PyTorch checkpoint files (`torch.save` of a state dict) without Python: the zip format every
//! PyTorch since 1.6 writes (torchvision's weights) and the older "legacy" format, a sequence of
//! pickles followed by raw storages, in which older published weights were saved (pretrainedmodels'
//! `bn_inception-52deb4733.pth` is one, written by Python 2).
//!
//! A state dict is a pickled (ordered) dict from names to tensors; a tensor is pickled as a call to
//! `torch._utils._rebuild_tensor[_v2](storage, offset, size, stride, ...)` whose storage is a
//! "persistent id" pointing at raw little-endian bytes elsewhere in the file. The pickle machine
//! below implements the opcodes those files use and nothing else; anything unexpected is an error
//! naming the file, never a panic.

use anyhow::{anyhow, bail, Context, Result};
use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::rc::Rc;
use tch::{Kind, Tensor};

/// A pickled value, as far as state dicts need them.
#[derive(Clone, Debug)]
enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// A float (state dicts carry none that matter).
    Float,
    /// An integer too large for i64 (the legacy format's magic number), as little-endian bytes.
    Long(Vec<u8>),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Value>),
    List(Rc<RefCell<Vec<Value>>>),
    Dict(Rc<RefCell<Vec<(Value, Value)>>>),
    /// A `module.name` reference (classes and functions).
    Global(String),
    /// A typed storage: element kind, key of its bytes, element count, and for the legacy format's
    /// storage views, the element offset into the root storage.
    Storage {
        kind: Kind,
        key: String,
        offset: usize,
    },
    Tensor(TensorRef),
    /// Any other object: kept so the stack stays aligned, never looked into.
    Opaque,
}

/// A tensor in the file: a strided view of a storage.
#[derive(Clone, Debug)]
struct TensorRef {
    kind: Kind,
    key: String,
    offset: i64,
    size: Vec<i64>,
    stride: Vec<i64>,
}

fn storage_kind(class: &str) -> Option<Kind> {
    let name = class.rsplit('.').next().unwrap_or(class);
    Some(match name {
        "FloatStorage" => Kind::Float,
        "DoubleStorage" => Kind::Double,
        "HalfStorage" => Kind::Half,
        "BFloat16Storage" => Kind::BFloat16,
        "LongStorage" => Kind::Int64,
        "IntStorage" => Kind::Int,
        "ShortStorage" => Kind::Int16,
        "CharStorage" => Kind::Int8,
        "ByteStorage" => Kind::Uint8,
        "BoolStorage" => Kind::Bool,
        _ => return None,
    })
}

fn element_size(kind: Kind) -> usize {
    match kind {
        Kind::Double | Kind::Int64 => 8,
        Kind::Float | Kind::Int => 4,
        Kind::Half | Kind::BFloat16 | Kind::Int16 => 2,
        _ => 1,
    }
}

fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::Bool(b) => Some(i64::from(*b)),
        _ => None,
    }
}

fn as_str(v: &Value) -> Option<String> {
    match v {
        Value::Str(s) => Some(s.clone()),
        Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

fn int_list(v: &Value) -> Option<Vec<i64>> {
    match v {
        Value::Tuple(items) => items.iter().map(as_int).collect(),
        Value::List(items) => items.borrow().iter().map(as_int).collect(),
        // `torch.Size` is pickled as a tuple subclass in some versions: REDUCE of torch.Size(tuple).
        _ => None,
    }
}

/// The pickle virtual machine, for one pickle.
struct Unpickler<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    /// Turns a persistent id (a tuple) into a storage value.
    persistent: &'a dyn Fn(&Value) -> Result<Value>,
}

impl<'a> Unpickler<'a> {
    fn new(data: &'a [u8], persistent: &'a dyn Fn(&Value) -> Result<Value>) -> Self {
        Unpickler {
            data,
            pos: 0,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            persistent,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let Some(end) = end else {
            bail!(
                "the pickle ends early (at byte {} of {})",
                self.pos,
                self.data.len()
            );
        };
        let out = &self.data[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into()?))
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into()?))
    }

    fn line(&mut self) -> Result<String> {
        let rest = &self.data[self.pos..];
        let Some(n) = rest.iter().position(|&b| b == b'\n') else {
            bail!("the pickle ends inside a text line");
        };
        let s = String::from_utf8_lossy(&rest[..n]).into_owned();
        self.pos += n + 1;
        Ok(s)
    }

    fn pop(&mut self) -> Result<Value> {
        self.stack
            .pop()
            .ok_or_else(|| anyhow!("malformed pickle: pop from an empty stack"))
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>> {
        let mark = self
            .marks
            .pop()
            .ok_or_else(|| anyhow!("malformed pickle: no MARK"))?;
        if mark > self.stack.len() {
            bail!("malformed pickle: MARK above the stack");
        }
        Ok(self.stack.split_off(mark))
    }

    fn top(&mut self) -> Result<&mut Value> {
        self.stack
            .last_mut()
            .ok_or_else(|| anyhow!("malformed pickle: empty stack"))
    }

    fn string(&mut self, n: usize) -> Result<Value> {
        Ok(Value::Str(
            String::from_utf8_lossy(self.take(n)?).into_owned(),
        ))
    }

    fn bytes(&mut self, n: usize) -> Result<Value> {
        Ok(Value::Bytes(self.take(n)?.to_vec()))
    }

    fn memo_get(&self, key: u32) -> Result<Value> {
        self.memo
            .get(&key)
            .cloned()
            .ok_or_else(|| anyhow!("malformed pickle: memo entry {key} is missing"))
    }

    fn add_items(&mut self, items: Vec<Value>) -> Result<()> {
        // Appends to an object we do not model are ignored.
        if let Value::List(l) = self.top()? {
            l.borrow_mut().extend(items);
        }
        Ok(())
    }

    fn set_items(&mut self, items: Vec<Value>) -> Result<()> {
        if !items.len().is_multiple_of(2) {
            bail!("malformed pickle: SETITEMS with an odd number of values");
        }
        if let Value::Dict(d) = self.top()? {
            let mut d = d.borrow_mut();
            let mut it = items.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                d.push((k, v));
            }
        }
        Ok(())
    }

    /// `callable(*args)`, for the callables state dicts contain.
    fn reduce(&self, callable: Value, args: Value) -> Result<Value> {
        let Value::Global(name) = callable else {
            return Ok(Value::Opaque);
        };
        let args = match args {
            Value::Tuple(a) => a,
            _ => return Ok(Value::Opaque),
        };
        Ok(match name.as_str() {
            "collections.OrderedDict" | "builtins.dict" | "__builtin__.dict" => {
                Value::Dict(Rc::new(RefCell::new(Vec::new())))
            }
            "torch._utils._rebuild_tensor_v2"
            | "torch._utils._rebuild_tensor"
            | "torch._utils._rebuild_parameter" => {
                if name == "torch._utils._rebuild_parameter" {
                    // (tensor, requires_grad, backward_hooks)
                    return Ok(args.into_iter().next().unwrap_or(Value::Opaque));
                }
                let [storage, offset, size, stride, ..] = args.as_slice() else {
                    bail!("{name} called with {} arguments", args.len());
                };
                let Value::Storage {
                    kind,
                    key,
                    offset: base,
                } = storage
                else {
                    bail!("{name} called without a storage");
                };
                let (Some(offset), Some(size), Some(stride)) =
                    (as_int(offset), int_list(size), int_list(stride))
                else {
                    bail!("{name} called with a malformed offset, size or stride");
                };
                Value::Tensor(TensorRef {
                    kind: *kind,
                    key: key.clone(),
                    offset: offset + *base as i64,
                    size,
                    stride,
                })
            }
            "torch.Size" => args.into_iter().next().unwrap_or(Value::Tuple(Vec::new())),
            _ => Value::Opaque,
        })
    }

    fn run(&mut self) -> Result<Value> {
        loop {
            let op = self.u8()?;
            match op {
                0x80 => {
                    self.u8()?; // PROTO n
                }
                0x95 => {
                    self.take(8)?; // FRAME len
                }
                b'.' => return self.pop(), // STOP
                b'(' => self.marks.push(self.stack.len()),
                b'N' => self.stack.push(Value::None),
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                b'J' => {
                    let v = i32::from_le_bytes(self.take(4)?.try_into()?);
                    self.stack.push(Value::Int(v as i64));
                }
                b'K' => {
                    let v = self.u8()?;
                    self.stack.push(Value::Int(v as i64));
                }
                b'M' => {
                    let v = self.u16()?;
                    self.stack.push(Value::Int(v as i64));
                }
                0x8a => {
                    // LONG1: little-endian two's complement of n bytes
                    let n = self.u8()? as usize;
                    let bytes = self.take(n)?;
                    if n > 8 {
                        self.stack.push(Value::Long(bytes.to_vec()));
                    } else {
                        let mut v: i64 = 0;
                        for (i, &b) in bytes.iter().enumerate() {
                            v |= (b as i64) << (8 * i);
                        }
                        if n > 0 && n < 8 && bytes[n - 1] & 0x80 != 0 {
                            v -= 1i64 << (8 * n);
                        }
                        self.stack.push(Value::Int(v));
                    }
                }
                b'I' => {
                    let l = self.line()?;
                    let v = match l.as_str() {
                        "00" => Value::Bool(false),
                        "01" => Value::Bool(true),
                        s => Value::Int(s.parse().context("malformed INT in pickle")?),
                    };
                    self.stack.push(v);
                }
                b'L' => {
                    let l = self.line()?;
                    let v = l.trim_end_matches('L').parse().unwrap_or(0);
                    self.stack.push(Value::Int(v));
                }
                b'G' => {
                    self.take(8)?;
                    self.stack.push(Value::Float);
                }
                b'F' => {
                    self.line()?;
                    self.stack.push(Value::Float);
                }
                b'X' => {
                    let n = self.u32()? as usize;
                    let v = self.string(n)?;
                    self.stack.push(v);
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    let v = self.string(n)?;
                    self.stack.push(v);
                }
                0x8d => {
                    let n = u64::from_le_bytes(self.take(8)?.try_into()?) as usize;
                    let v = self.string(n)?;
                    self.stack.push(v);
                }
                b'T' => {
                    let n = self.u32()? as usize;
                    let v = self.bytes(n)?;
                    self.stack.push(v);
                }
                b'U' => {
                    let n = self.u8()? as usize;
                    let v = self.bytes(n)?;
                    self.stack.push(v);
                }
                b'B' => {
                    let n = self.u32()? as usize;
                    let v = self.bytes(n)?;
                    self.stack.push(v);
                }
                b'C' => {
                    let n = self.u8()? as usize;
                    let v = self.bytes(n)?;
                    self.stack.push(v);
                }
                b'V' => {
                    let l = self.line()?;
                    self.stack.push(Value::Str(l));
                }
                b'S' => {
                    let l = self.line()?;
                    self.stack
                        .push(Value::Str(l.trim_matches(|c| c == '\'' || c == '"').into()));
                }
                b')' => self.stack.push(Value::Tuple(Vec::new())),
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Tuple(items));
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n {
                        bail!("malformed pickle: TUPLE{n} on a short stack");
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.stack.push(Value::Tuple(items));
                }
                b']' => self
                    .stack
                    .push(Value::List(Rc::new(RefCell::new(Vec::new())))),
                b'l' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::List(Rc::new(RefCell::new(items))));
                }
                b'}' => self
                    .stack
                    .push(Value::Dict(Rc::new(RefCell::new(Vec::new())))),
                b'd' => {
                    let items = self.pop_mark()?;
                    self.stack
                        .push(Value::Dict(Rc::new(RefCell::new(Vec::new()))));
                    self.set_items(items)?;
                }
                0x8f => self.stack.push(Value::Opaque), // EMPTY_SET
                0x90 => {
                    // ADDITEMS
                    self.pop_mark()?;
                }
                0x91 => {
                    // FROZENSET
                    self.pop_mark()?;
                    self.stack.push(Value::Opaque);
                }
                b'a' => {
                    let v = self.pop()?;
                    self.add_items(vec![v])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.add_items(items)?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![k, v])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.set_items(items)?;
                }
                b'p' => {
                    let l = self.line()?;
                    let key = l.parse().context("malformed PUT in pickle")?;
                    let v = self.top()?.clone();
                    self.memo.insert(key, v);
                }
                b'q' => {
                    let key = self.u8()? as u32;
                    let v = self.top()?.clone();
                    self.memo.insert(key, v);
                }
                b'r' => {
                    let key = self.u32()?;
                    let v = self.top()?.clone();
                    self.memo.insert(key, v);
                }
                0x94 => {
                    let key = self.memo.len() as u32;
                    let v = self.top()?.clone();
                    self.memo.insert(key, v);
                }
                b'g' => {
                    let l = self.line()?;
                    let v = self.memo_get(l.parse().context("malformed GET in pickle")?)?;
                    self.stack.push(v);
                }
                b'h' => {
                    let key = self.u8()? as u32;
                    let v = self.memo_get(key)?;
                    self.stack.push(v);
                }
                b'j' => {
                    let key = self.u32()?;
                    let v = self.memo_get(key)?;
                    self.stack.push(v);
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.stack.push(Value::Global(format!("{module}.{name}")));
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Some(m), Some(n)) = (as_str(&module), as_str(&name)) else {
                        bail!("malformed pickle: STACK_GLOBAL without names");
                    };
                    self.stack.push(Value::Global(format!("{m}.{n}")));
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let v = self.reduce(callable, args)?;
                    self.stack.push(v);
                }
                0x81 => {
                    // NEWOBJ cls args
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let v = self.reduce(cls, args)?;
                    self.stack.push(v);
                }
                b'b' => {
                    // BUILD: object state (a state dict's `_metadata`); not needed
                    self.pop()?;
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = (self.persistent)(&pid)?;
                    self.stack.push(v);
                }
                b'0' => {
                    self.pop()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.stack.push(v);
                }
                b'1' => {
                    self.pop_mark()?;
                }
                other => bail!(
                    "unsupported pickle opcode 0x{other:02x} at byte {}",
                    self.pos - 1
                ),
            }
        }
    }
}

/// `('storage', StorageClass, key, location, numel[, view_metadata])` to a storage value.
fn storage_from_pid(pid: &Value) -> Result<Value> {
    let Value::Tuple(items) = pid else {
        bail!("unexpected persistent id {pid:?}");
    };
    let (Some(tag), Some(class), Some(key)) = (
        items.first().and_then(as_str),
        items.get(1),
        items.get(2).and_then(as_str),
    ) else {
        bail!("unexpected persistent id {pid:?}");
    };
    if tag != "storage" {
        bail!("unexpected persistent id kind `{tag}`");
    }
    let class_name = match class {
        Value::Global(n) => n.clone(),
        other => as_str(other).unwrap_or_default(),
    };
    let kind = storage_kind(&class_name)
        .ok_or_else(|| anyhow!("unsupported storage type `{class_name}`"))?;
    // Legacy storage views: (view_key, offset, size) into the root storage `key`.
    let offset = match items.get(5) {
        Some(Value::Tuple(view)) => view.get(1).and_then(as_int).unwrap_or(0) as usize,
        _ => 0,
    };
    Ok(Value::Storage { kind, key, offset })
}

/// The named tensors of the pickled state dict `root`. Accepts a bare state dict and the usual
/// wrappers (`{"state_dict": ...}`, `{"model": ...}`).
fn named_refs(root: Value) -> Result<Vec<(String, TensorRef)>> {
    let Value::Dict(entries) = root else {
        bail!("the file does not hold a state dict (a mapping from names to tensors)");
    };
    let entries = entries.borrow();
    let mut out = Vec::new();
    for (k, v) in entries.iter() {
        if let (Some(name), Value::Tensor(t)) = (as_str(k), v) {
            out.push((name, t.clone()));
        }
    }
    if out.is_empty() {
        for wrapper in ["state_dict", "model", "model_state_dict"] {
            if let Some((_, v)) = entries
                .iter()
                .find(|(k, _)| as_str(k).as_deref() == Some(wrapper))
            {
                return named_refs(v.clone());
            }
        }
        bail!("the file's mapping holds no tensors");
    }
    Ok(out)
}

fn build_tensor(name: &str, t: &TensorRef, bytes: &[u8]) -> Result<Tensor> {
    let es = element_size(t.kind);
    // The highest element the view reaches must lie inside the storage.
    let mut last = t.offset;
    for (&s, &st) in t.size.iter().zip(&t.stride) {
        if s == 0 {
            last = -1;
            break;
        }
        last += (s - 1) * st;
    }
    let numel = (bytes.len() / es) as i64;
    if t.size.len() != t.stride.len() || t.offset < 0 || last >= numel {
        bail!(
            "tensor `{name}` (size {:?}) reaches past its storage of {numel} elements; \
             is the file truncated?",
            t.size
        );
    }
    let storage = Tensor::from_data_size(&bytes[..numel as usize * es], &[numel], t.kind);
    Ok(storage
        .as_strided(&t.size, &t.stride, Some(t.offset))
        .contiguous())
}

/// The named tensors of a PyTorch checkpoint, in file order, on the CPU.
pub fn read(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let data = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let result = if data.starts_with(b"PK") {
        read_zip(&data)
    } else {
        read_legacy(&data)
    };
    result.with_context(|| {
        format!(
            "cannot read {} as a PyTorch checkpoint (a state dict saved with torch.save)",
            path.display()
        )
    })
}

fn read_zip(data: &[u8]) -> Result<Vec<(String, Tensor)>> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(data))
        .context("the zip directory is unreadable (truncated or not a torch.save file)")?;
    let names: Vec<String> = archive
        .file_names()
        .map(|name| name.map(|n| n.into_owned()))
        .collect::<Result<_, _>>()
        .context("the zip directory has an unreadable entry name")?;
    let pkl = names
        .iter()
        .find(|n| n.ends_with("/data.pkl") && n.matches('/').count() == 1)
        .or_else(|| names.iter().find(|n| n.as_str() == "data.pkl"))
        .ok_or_else(|| anyhow!("the archive has no data.pkl"))?
        .clone();
    let prefix = pkl.trim_end_matches("data.pkl").to_string();
    let mut pickle = Vec::new();
    archive
        .by_name(&pkl)?
        .read_to_end(&mut pickle)
        .context("cannot read data.pkl")?;
    let persistent = |pid: &Value| storage_from_pid(pid);
    let root = Unpickler::new(&pickle, &persistent).run()?;
    let refs = named_refs(root)?;
    let mut storages: HashMap<String, Vec<u8>> = HashMap::new();
    let mut out = Vec::with_capacity(refs.len());
    for (name, t) in refs {
        if !storages.contains_key(&t.key) {
            let entry = format!("{prefix}data/{}", t.key);
            let mut buf = Vec::new();
            archive
                .by_name(&entry)
                .with_context(|| format!("the archive has no storage {entry} for `{name}`"))?
                .read_to_end(&mut buf)
                .with_context(|| format!("cannot read storage {entry} (truncated file?)"))?;
            storages.insert(t.key.clone(), buf);
        }
        let tensor = build_tensor(&name, &t, &storages[&t.key])?;
        out.push((name, tensor));
    }
    Ok(out)
}

fn read_legacy(data: &[u8]) -> Result<Vec<(String, Tensor)>> {
    let no_pid = |_: &Value| -> Result<Value> { bail!("unexpected persistent id in the header") };
    let mut pos = 0;
    let mut next = |persistent: &dyn Fn(&Value) -> Result<Value>| -> Result<Value> {
        let mut u = Unpickler::new(&data[pos..], persistent);
        let v = u.run()?;
        pos += u.pos;
        Ok(v)
    };
    let magic = next(&no_pid).context("not a PyTorch file (no pickle header)")?;
    const MAGIC: u128 = 0x1950a86a20f9469cfc6c;
    match magic {
        Value::Long(bytes) if bytes[..] == MAGIC.to_le_bytes()[..10] => {}
        _ => bail!("not a PyTorch file (wrong magic number)"),
    }
    next(&no_pid)?; // protocol version
    next(&no_pid)?; // sys info
    let root = next(&storage_from_pid)?;
    let keys = next(&no_pid)?;
    let keys: Vec<String> = match keys {
        Value::List(l) => l.borrow().iter().filter_map(as_str).collect(),
        _ => bail!("malformed storage key list"),
    };
    let refs = named_refs(root)?;
    let kinds: HashMap<&str, Kind> = refs.iter().map(|(_, t)| (t.key.as_str(), t.kind)).collect();
    let mut storages: HashMap<String, &[u8]> = HashMap::new();
    let mut at = pos;
    for key in &keys {
        let Some(head) = data.get(at..at + 8) else {
            bail!("the file ends before storage {key} (truncated?)");
        };
        let numel = u64::from_le_bytes(head.try_into()?) as usize;
        let es = kinds.get(key.as_str()).map_or(4, |k| element_size(*k));
        let len = numel
            .checked_mul(es)
            .ok_or_else(|| anyhow!("storage {key} is impossibly large"))?;
        let Some(bytes) = data.get(at + 8..at + 8 + len) else {
            bail!("the file ends inside storage {key} (truncated?)");
        };
        storages.insert(key.clone(), bytes);
        at += 8 + len;
    }
    refs.into_iter()
        .map(|(name, t)| {
            let bytes = storages
                .get(&t.key)
                .ok_or_else(|| anyhow!("storage {} of `{name}` is missing", t.key))?;
            Ok((name.clone(), build_tensor(&name, &t, bytes)?))
        })
        .collect()
}
