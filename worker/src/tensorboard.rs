//! TensorBoard event files (`<fold>/tensorboard_logs/events.out.tfevents.*`) with scalar
//! summaries, readable by the real TensorBoard. The protobuf messages are tiny (Event, Summary,
//! Value), so they are encoded by hand: no protobuf compiler at build time.
//!
//! Record framing: u64 LE length, u32 LE masked CRC-32C of the length bytes, the serialised Event,
//! u32 LE masked CRC-32C of the event bytes.

use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

fn masked_crc(data: &[u8]) -> u32 {
    let c = crc32c::crc32c(data);
    c.rotate_right(15).wrapping_add(0xa282_ead8)
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, (u64::from(field) << 3) | u64::from(wire));
}

fn bytes_field(out: &mut Vec<u8>, field: u32, data: &[u8]) {
    key(out, field, 2);
    varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

fn wall_time() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// `Event { wall_time = 1; step = 2; file_version = 3 | summary = 5 }`.
fn event(step: i64, file_version: Option<&str>, summary: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    key(&mut out, 1, 1);
    out.extend_from_slice(&wall_time().to_le_bytes());
    key(&mut out, 2, 0);
    varint(&mut out, step as u64);
    if let Some(v) = file_version {
        bytes_field(&mut out, 3, v.as_bytes());
    }
    if let Some(s) = summary {
        bytes_field(&mut out, 5, s);
    }
    out
}

/// `Summary { repeated Value value = 1 }`, `Value { tag = 1; simple_value = 2 }`.
fn scalar_summary(scalars: &[(String, f64)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (tag, v) in scalars {
        let mut value = Vec::new();
        bytes_field(&mut value, 1, tag.as_bytes());
        key(&mut value, 2, 5);
        value.extend_from_slice(&(*v as f32).to_le_bytes());
        bytes_field(&mut out, 1, &value);
    }
    out
}

pub struct EventWriter {
    file: std::io::BufWriter<std::fs::File>,
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
        };
        w.record(&event(0, Some("brain.Event:2"), None))?;
        Ok(w)
    }

    fn record(&mut self, data: &[u8]) -> Result<()> {
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
        let finite: Vec<(String, f64)> = scalars
            .iter()
            .filter(|(_, v)| v.is_finite())
            .cloned()
            .collect();
        if finite.is_empty() {
            return Ok(());
        }
        let summary = scalar_summary(&finite);
        self.record(&event(step, None, Some(&summary)))
    }

    pub fn flush(&mut self) -> Result<()> {
        self.file.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads records back, checking both CRCs, and decodes (step, tag, value) of scalar events.
    fn read(path: &Path) -> Vec<(i64, String, f32)> {
        let data = std::fs::read(path).unwrap();
        let mut pos = 0;
        let mut out = Vec::new();
        let varint = |d: &[u8], p: &mut usize| {
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
        };
        while pos < data.len() {
            let len_bytes = &data[pos..pos + 8];
            let len = u64::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
            let crc = u32::from_le_bytes(data[pos + 8..pos + 12].try_into().unwrap());
            assert_eq!(crc, masked_crc(len_bytes));
            let body = &data[pos + 12..pos + 12 + len];
            let crc = u32::from_le_bytes(data[pos + 12 + len..pos + 16 + len].try_into().unwrap());
            assert_eq!(crc, masked_crc(body));
            pos += 16 + len;
            // Event fields.
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
        let file = std::fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        let name = file.file_name().to_string_lossy().into_owned();
        assert!(name.starts_with("events.out.tfevents."), "{name}");
        assert_eq!(
            read(&file.path()),
            vec![
                (3, "loss/total".to_string(), 0.5),
                (300, "acc/map".to_string(), 0.25)
            ]
        );
    }
}
