//! File writes that never leave a half-written file behind: write a temporary file in the same
//! folder, flush it to disk, then rename it over the target (rename is atomic on POSIX filesystems).

use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;

fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Writes `contents` to a flushed temporary file beside `path`, ready to be renamed over it.
fn stage(path: &Path, contents: &[u8]) -> Result<tempfile::NamedTempFile> {
    let parent = parent_of(path);
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create folder {}", parent.display()))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(parent)
        .with_context(|| format!("cannot create a temporary file in {}", parent.display()))?;
    tmp.write_all(contents)
        .and_then(|_| tmp.as_file().sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(tmp)
}

/// Persists directory entries (renames) so a power cut cannot undo them.
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Atomically replaces `path` with `contents`, creating parent folders as needed.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = stage(path, contents)?;
    tmp.persist(path)
        .with_context(|| format!("cannot move the new file into place at {}", path.display()))?;
    sync_dir(parent_of(path));
    Ok(())
}

/// Atomically replaces several files. Each file is still written to a temporary file, flushed and
/// renamed, but the flushes run concurrently (the filesystem journal commits them together) and each
/// folder is synced once: a trial's configs cost about one disk flush instead of one per file.
pub fn write_atomic_all(files: &[(std::path::PathBuf, Vec<u8>)]) -> Result<()> {
    let staged: Vec<Result<tempfile::NamedTempFile>> = std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .iter()
            .map(|(path, contents)| scope.spawn(move || stage(path, contents)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a file writer panicked")))
            })
            .collect()
    });
    let mut dirs: Vec<&Path> = Vec::new();
    for ((path, _), tmp) in files.iter().zip(staged) {
        tmp?.persist(path).with_context(|| {
            format!("cannot move the new file into place at {}", path.display())
        })?;
        let dir = parent_of(path);
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    for dir in dirs {
        sync_dir(dir);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn writes_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b/c.txt");
        super::write_atomic(&p, b"one").unwrap();
        super::write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "two");
        let leftovers: Vec<_> = std::fs::read_dir(p.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary files left behind");
        let many: Vec<_> = (0..5)
            .map(|i| (dir.path().join(format!("m/{i}.txt")), vec![b'0' + i as u8]))
            .collect();
        super::write_atomic_all(&many).unwrap();
        super::write_atomic_all(&many).unwrap();
        for (path, contents) in &many {
            assert_eq!(&std::fs::read(path).unwrap(), contents);
        }
        assert_eq!(std::fs::read_dir(dir.path().join("m")).unwrap().count(), 5);
    }
}
