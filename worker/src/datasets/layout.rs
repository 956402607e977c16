//! What the published dataset layouts share: finding their files (with an error that shows the
//! layout expected when they are missing), walking class folders the way torchvision's
//! `ImageFolder` does, and checking that annotation files point at images that exist.

use crate::errors::data_error;
use anyhow::Result;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// File extensions torchvision's `ImageFolder` accepts (compared case-insensitively).
pub const IMAGE_EXTENSIONS: [&str; 9] = [
    "jpg", "jpeg", "png", "ppm", "bmp", "pgm", "tif", "tiff", "webp",
];

/// The error for a dataset whose files are not where its layout puts them: the exact path looked
/// for, the layout, and the ways to fix it.
pub fn missing(dataset: &str, expected: &Path, layout: &str) -> anyhow::Error {
    data_error(format!(
        "{dataset}: {} does not exist. Expected layout under the dataset root: {layout}. \
         Point `--dataset_root` (or the dataset's `root` kwarg) at the folder that holds it, \
         or set `download: true` to fetch the published archives",
        expected.display()
    ))
}

/// `path` when it exists (following links), else the [`missing`] error.
pub fn require(dataset: &str, path: PathBuf, layout: &str) -> Result<PathBuf> {
    if path.exists() {
        Ok(path)
    } else {
        Err(missing(dataset, &path, layout))
    }
}

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

fn read_dir(dir: &Path) -> Result<Vec<(PathBuf, bool)>> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| data_error(format!("cannot list {}: {e}", dir.display())))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| data_error(format!("cannot list {}: {e}", dir.display())))?;
        let path = entry.path();
        // Links are followed, as torchvision does.
        let is_dir = std::fs::metadata(&path).is_ok_and(|m| m.is_dir());
        out.push((path, is_dir));
    }
    Ok(out)
}

/// The sub-folders of `dir`, sorted by name (code point order, as Python's `sorted`).
pub fn sorted_subfolders(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut dirs: Vec<PathBuf> = read_dir(dir)?
        .into_iter()
        .filter(|(_, d)| *d)
        .map(|(p, _)| p)
        .collect();
    dirs.sort_by(|a, b| {
        a.as_os_str()
            .as_encoded_bytes()
            .cmp(b.as_os_str().as_encoded_bytes())
    });
    Ok(dirs)
}

/// The image files at any depth below `dir`, in torchvision's order: folders sorted by their full
/// path, files sorted by name within each. Linked folders are followed once (a link loop ends).
pub fn images_below(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut folders: Vec<(PathBuf, Vec<PathBuf>)> = Vec::new();
    let mut seen = HashSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        let real = std::fs::canonicalize(&folder).unwrap_or_else(|_| folder.clone());
        if !seen.insert(real) {
            continue;
        }
        let mut files = Vec::new();
        for (path, is_dir) in read_dir(&folder)? {
            if is_dir {
                stack.push(path);
            } else if is_image(&path) {
                files.push(path);
            }
        }
        files.sort_by(|a, b| {
            a.as_os_str()
                .as_encoded_bytes()
                .cmp(b.as_os_str().as_encoded_bytes())
        });
        folders.push((folder, files));
    }
    folders.sort_by(|a, b| {
        a.0.as_os_str()
            .as_encoded_bytes()
            .cmp(b.0.as_os_str().as_encoded_bytes())
    });
    Ok(folders.into_iter().flat_map(|(_, f)| f).collect())
}

/// Fails when annotation rows name images that are not on disk: how many, and the first few with
/// the annotation file that lists them.
pub fn check_images_exist(dataset: &str, annotations: &str, files: &[PathBuf]) -> Result<()> {
    let missing: Vec<&PathBuf> = files.iter().filter(|f| !f.is_file()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let shown: Vec<String> = missing
        .iter()
        .take(5)
        .map(|p| p.display().to_string())
        .collect();
    Err(data_error(format!(
        "{dataset}: {annotations} lists {} image(s) that do not exist (of {}), e.g. {}; \
         the image archive is missing or only partly extracted",
        missing.len(),
        files.len(),
        shown.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_like_torchvision_image_folder() {
        let dir = tempfile::tempdir().unwrap();
        let class = dir.path().join("c");
        for f in [
            "b.JPG",
            "a.png",
            "z/y.jpg",
            "z/notes.txt",
            "a b/x.jpeg",
            "a/x.bmp",
        ] {
            let p = class.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"x").unwrap();
        }
        let got: Vec<String> = images_below(&class)
            .unwrap()
            .iter()
            .map(|p| p.strip_prefix(&class).unwrap().display().to_string())
            .collect();
        // sorted(os.walk(...)): "c" < "c/a" < "c/a b" < "c/z".
        assert_eq!(got, ["a.png", "b.JPG", "a/x.bmp", "a b/x.jpeg", "z/y.jpg"]);
    }
}
