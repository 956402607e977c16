//! TensorBoard event files (`events.out.tfevents.*`), readable by the real TensorBoard, shared by
//! the worker (per-fold scalars) and the coordinator (a study's trials and HParams summaries): the
//! file format is part of what a study folder promises, like the protocol itself.
//!
//! Record framing (TFRecord): u64 LE length, u32 LE masked CRC-32C of the length bytes, the
//! serialised `Event`, u32 LE masked CRC-32C of the event bytes. The protobuf messages involved are
//! few and small, so they are encoded by hand with [`proto`] (no protobuf compiler at build time).

use anyhow::{Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// TFRecord's CRC: CRC-32C rotated and offset, so a CRC of data that holds CRCs stays strong.
pub fn masked_crc(data: &[u8]) -> u32 {
    let c = crc32c::crc32c(data);
    c.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Protobuf wire-format encoding of single fields (proto3: defaults may be left out).
pub mod proto {
    pub fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    pub fn key(out: &mut Vec<u8>, field: u32, wire: u8) {
        varint(out, (u64::from(field) << 3) | u64::from(wire));
    }

    /// A length-delimited field: bytes, a string or an embedded message.
    pub fn bytes(out: &mut Vec<u8>, field: u32, data: &[u8]) {
        key(out, field, 2);
        varint(out, data.len() as u64);
        out.extend_from_slice(data);
    }

    pub fn double(out: &mut Vec<u8>, field: u32, v: f64) {
        key(out, field, 1);
        out.extend_from_slice(&v.to_le_bytes());
    }

    pub fn float(out: &mut Vec<u8>, field: u32, v: f32) {
        key(out, field, 5);
        out.extend_from_slice(&v.to_le_bytes());
    }

    /// int32/int64/enum/bool (negative values take ten bytes, as protobuf specifies).
    pub fn int(out: &mut Vec<u8>, field: u32, v: i64) {
        key(out, field, 0);
        varint(out, v as u64);
    }
}

pub fn wall_time() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// `Event { wall_time = 1; step = 2; file_version = 3 | summary = 5 }`.
pub fn event(
    wall_time: f64,
    step: i64,
    file_version: Option<&str>,
    summary: Option<&[u8]>,
) -> Vec<u8> {
    let mut out = Vec::new();
    proto::double(&mut out, 1, wall_time);
    proto::int(&mut out, 2, step);
    if let Some(v) = file_version {
        proto::bytes(&mut out, 3, v.as_bytes());
    }
    if let Some(s) = summary {
        proto::bytes(&mut out, 5, s);
    }
    out
}

/// `Summary { repeated Value value = 1 }` of scalars: `Value { tag = 1; simple_value = 2 }`.
pub fn scalar_summary(scalars: &[(String, f64)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (tag, v) in scalars {
        let mut value = Vec::new();
        proto::bytes(&mut value, 1, tag.as_bytes());
        proto::float(&mut value, 2, *v as f32);
        proto::bytes(&mut out, 1, &value);
    }
    out
}

/// One event file being written.
pub struct EventWriter {
    file: std::io::BufWriter<std::fs::File>,
    path: PathBuf,
}

static FILE_COUNTER: AtomicU64 = AtomicU64::new(0);

impl EventWriter {
    /// Starts a new event file in `folder` (each run, and each resume, writes its own file, as
    /// TensorBoard's own writers do).
    pub fn create(folder: &Path) -> Result<EventWriter> {
        std::fs::create_dir_all(folder)
            .with_context(|| format!("cannot create {}", folder.display()))?;
        let host = std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty() && !h.contains('/'))
            .unwrap_or_else(|| "localhost".to_string());
        let name = format!(
            "events.out.tfevents.{:010}.{host}.{}.{}",
            wall_time() as u64,
            std::process::id(),
            FILE_COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let path = folder.join(name);
        let file = std::fs::File::create(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        let mut w = EventWriter {
            file: std::io::BufWriter::new(file),
            path,
        };
        w.record(&event(wall_time(), 0, Some("brain.Event:2"), None))?;
        Ok(w)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one framed record (a serialised `Event`).
    pub fn record(&mut self, data: &[u8]) -> Result<()> {
        let len = (data.len() as u64).to_le_bytes();
        self.file.write_all(&len)?;
        self.file.write_all(&masked_crc(&len).to_le_bytes())?;
        self.file.write_all(data)?;
        self.file.write_all(&masked_crc(data).to_le_bytes())?;
        Ok(())
    }

    /// Scalars `tag -> value` at one step (NaN and infinities are skipped: TensorBoard cannot plot
    /// them meaningfully).
    pub fn scalars(&mut self, step: i64, scalars: &[(String, f64)]) -> Result<()> {
        self.scalars_at(wall_time(), step, scalars)
    }

    /// As [`EventWriter::scalars`], with the wall time given (e.g. when the values were recorded).
    pub fn scalars_at(
        &mut self,
        wall_time: f64,
        step: i64,
        scalars: &[(String, f64)],
    ) -> Result<()> {
        let finite: Vec<(String, f64)> = scalars
            .iter()
            .filter(|(_, v)| v.is_finite())
            .cloned()
            .collect();
        if finite.is_empty() {
            return Ok(());
        }
        let summary = scalar_summary(&finite);
        self.record(&event(wall_time, step, None, Some(&summary)))
    }

    /// A serialised `Summary` at one step.
    pub fn summary(&mut self, wall_time: f64, step: i64, summary: &[u8]) -> Result<()> {
        self.record(&event(wall_time, step, None, Some(summary)))
    }

    pub fn flush(&mut self) -> Result<()> {
        self.file.flush()?;
        Ok(())
    }
}

/// Reading records back (tests and tools): the framed payloads of a file, stopping at the first
/// record that is cut short or fails its CRC, as TensorBoard does.
pub fn read_records(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 12 <= data.len() {
        let len_bytes = &data[pos..pos + 8];
        let len = u64::from_le_bytes(len_bytes.try_into().unwrap_or([0; 8])) as usize;
        let crc = u32::from_le_bytes(data[pos + 8..pos + 12].try_into().unwrap_or([0; 4]));
        if crc != masked_crc(len_bytes) || pos + 16 + len > data.len() {
            break;
        }
        let body = &data[pos + 12..pos + 12 + len];
        let crc = u32::from_le_bytes(
            data[pos + 12 + len..pos + 16 + len]
                .try_into()
                .unwrap_or([0; 4]),
        );
        if crc != masked_crc(body) {
            break;
        }
        out.push(body);
        pos += 16 + len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(d: &[u8], p: &mut usize) -> u64 {
        let (mut v, mut shift) = (0u64, 0);
        loop {
            let b = d[*p];
            *p += 1;
            v |= u64::from(b & 0x7f) << shift;
            shift += 7;
            if b < 0x80 {
                return v;
            }
        }
    }

    /// Decodes (step, tag, value) of the scalar events of a file.
    fn read(path: &Path) -> Vec<(i64, String, f32)> {
        let data = std::fs::read(path).unwrap();
        let mut out = Vec::new();
        for body in read_records(&data) {
            let mut p = 0;
            let mut step = 0;
            while p < body.len() {
                let k = varint(body, &mut p);
                match (k >> 3, k & 7) {
                    (1, 1) => p += 8,
                    (2, 0) => step = varint(body, &mut p) as i64,
                    (3, 2) => {
                        let l = varint(body, &mut p) as usize;
                        assert_eq!(&body[p..p + l], b"brain.Event:2");
                        p += l;
                    }
                    (5, 2) => {
                        let l = varint(body, &mut p) as usize;
                        let summary = &body[p..p + l];
                        p += l;
                        let mut q = 0;
                        while q < summary.len() {
                            assert_eq!(varint(summary, &mut q), (1 << 3) | 2);
                            let vl = varint(summary, &mut q) as usize;
                            let value = &summary[q..q + vl];
                            q += vl;
                            let mut r = 0;
                            assert_eq!(varint(value, &mut r), (1 << 3) | 2);
                            let tl = varint(value, &mut r) as usize;
                            let tag = String::from_utf8(value[r..r + tl].to_vec()).unwrap();
                            r += tl;
                            assert_eq!(varint(value, &mut r), (2 << 3) | 5);
                            let v = f32::from_le_bytes(value[r..r + 4].try_into().unwrap());
                            out.push((step, tag, v));
                        }
                    }
                    other => panic!("unexpected field {other:?}"),
                }
            }
        }
        out
    }

    #[test]
    fn scalars_round_trip_with_valid_crcs() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = EventWriter::create(dir.path()).unwrap();
        w.scalars(3, &[("loss/total".into(), 0.5), ("skip".into(), f64::NAN)])
            .unwrap();
        w.scalars(300, &[("acc/map".into(), 0.25)]).unwrap();
        w.flush().unwrap();
        let name = w.path().file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("events.out.tfevents."), "{name}");
        assert_eq!(
            read(w.path()),
            vec![
                (3, "loss/total".to_string(), 0.5),
                (300, "acc/map".to_string(), 0.25)
            ]
        );
    }

    #[test]
    fn reading_stops_at_a_corrupted_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = EventWriter::create(dir.path()).unwrap();
        w.scalars(1, &[("a".into(), 1.0)]).unwrap();
        w.scalars(2, &[("a".into(), 2.0)]).unwrap();
        w.flush().unwrap();
        let mut data = std::fs::read(w.path()).unwrap();
        assert_eq!(read_records(&data).len(), 3);
        let n = data.len();
        data[n - 6] ^= 0xff;
        assert_eq!(read_records(&data).len(), 2);
        data.truncate(n - 3);
        assert_eq!(read_records(&data).len(), 2);
    }

    #[test]
    fn negative_steps_use_ten_bytes() {
        let mut out = Vec::new();
        proto::int(&mut out, 2, -1);
        assert_eq!(out.len(), 11);
    }
}
