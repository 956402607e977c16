//! Checkpoint files of a fold: `<fold>/saved_models/<object>_<epoch>.safetensors` (the latest only)
//! and `<object>_best<epoch>.safetensors` (the best only), for every model, optimizer and loss with
//! parameters. Every file is written to a temporary name and renamed into place, and the trunk is
//! written last, so the trunk file's epoch always names a complete checkpoint.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use tch::Tensor;

pub const EXTENSION: &str = "safetensors";

/// Which checkpoint of a fold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suffix {
    Epoch(i64),
    Best(i64),
}

impl Suffix {
    fn text(self) -> String {
        match self {
            Suffix::Epoch(e) => e.to_string(),
            Suffix::Best(e) => format!("best{e}"),
        }
    }

    pub fn epoch(self) -> i64 {
        match self {
            Suffix::Epoch(e) | Suffix::Best(e) => e,
        }
    }
}

pub fn file(folder: &Path, object: &str, suffix: Suffix) -> PathBuf {
    folder.join(format!("{object}_{}.{EXTENSION}", suffix.text()))
}

/// A temporary sibling of `path` that keeps its extension (tch picks the format from it) and starts
/// with a dot, so it is never mistaken for a checkpoint.
pub fn temporary_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".tmp-{}-{name}", std::process::id()))
}

/// Renames a finished temporary file into place and makes the rename durable.
pub fn commit(tmp: &Path, path: &Path) -> Result<()> {
    std::fs::rename(tmp, path)
        .with_context(|| format!("cannot move {} to {}", tmp.display(), path.display()))?;
    if let Some(dir) = path.parent().and_then(|p| std::fs::File::open(p).ok()) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Writes named tensors (optimizer state) as one safetensors file, atomically.
pub fn save_tensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let tmp = temporary_path(path);
    let named: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    Tensor::write_safetensors(&named, &tmp)
        .with_context(|| format!("cannot write checkpoint {}", tmp.display()))?;
    commit(&tmp, path)
}

pub fn load_tensors(path: &Path) -> Result<Vec<(String, Tensor)>> {
    Tensor::read_safetensors(path)
        .with_context(|| format!("cannot read checkpoint {}", path.display()))
}

/// Every `(object, suffix)` checkpoint in a folder.
fn list(folder: &Path) -> Vec<(String, Suffix)> {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let Some(stem) = name.strip_suffix(&format!(".{EXTENSION}")) else {
            continue;
        };
        let Some((object, suffix)) = stem.rsplit_once('_') else {
            continue;
        };
        let parsed = match suffix.strip_prefix("best") {
            Some(n) => n.parse().ok().map(Suffix::Best),
            None => suffix.parse().ok().map(Suffix::Epoch),
        };
        if let Some(s) = parsed {
            out.push((object.to_string(), s));
        }
    }
    out
}

/// Epoch of the newest complete latest-checkpoint (by the trunk file, written last).
pub fn latest_epoch(folder: &Path) -> Option<i64> {
    list(folder)
        .into_iter()
        .filter_map(|(o, s)| match s {
            Suffix::Epoch(e) if o == "trunk" => Some(e),
            _ => None,
        })
        .max()
}

/// Epoch of the best checkpoint.
pub fn best_epoch(folder: &Path) -> Option<i64> {
    list(folder)
        .into_iter()
        .filter_map(|(o, s)| match s {
            Suffix::Best(e) if o == "trunk" => Some(e),
            _ => None,
        })
        .max()
}

/// Deletes the checkpoints of one kind (latest or best) other than `keep`.
pub fn delete_others(folder: &Path, keep: Suffix) -> Result<()> {
    for (object, suffix) in list(folder) {
        let same_kind = matches!(
            (suffix, keep),
            (Suffix::Epoch(_), Suffix::Epoch(_)) | (Suffix::Best(_), Suffix::Best(_))
        );
        if same_kind && suffix != keep {
            let path = file(folder, &object, suffix);
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot delete old checkpoint {}", path.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_latest_and_best_and_prunes() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for name in [
            "trunk_2.safetensors",
            "trunk_4.safetensors",
            "embedder_4.safetensors",
            "trunk_best2.safetensors",
            "trunk_optimizer_4.safetensors",
            ".tmp-1-trunk_6.safetensors",
            "notes.txt",
        ] {
            std::fs::write(d.join(name), b"x").unwrap();
        }
        assert_eq!(latest_epoch(d), Some(4));
        assert_eq!(best_epoch(d), Some(2));
        delete_others(d, Suffix::Epoch(4)).unwrap();
        assert!(!d.join("trunk_2.safetensors").exists());
        assert!(d.join("trunk_best2.safetensors").exists());
        assert!(d.join("trunk_optimizer_4.safetensors").exists());
        assert_eq!(
            file(d, "trunk_optimizer", Suffix::Best(3)),
            d.join("trunk_optimizer_best3.safetensors")
        );
    }
}
