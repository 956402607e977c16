//! `ImageFolder`: `<root>/<class>/...`, one folder per class (sorted names give labels 0, 1, ...),
//! image files (`.jpg`, `.jpeg`, `.png`, any case) at any depth below their class folder, in the
//! order of torchvision's `ImageFolder` (folders, then file names, sorted).

use super::ImageListing;
use crate::errors::data_error;
use anyhow::Result;
use std::path::{Path, PathBuf};

pub const EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

/// Every image file below `dir` as (folder, file name), following symbolic links.
fn walk(dir: &Path, out: &mut Vec<(String, String)>) -> Result<()> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| data_error(format!("cannot list {}: {e}", dir.display())))?;
    for entry in entries {
        let entry = entry.map_err(|e| data_error(format!("cannot list {}: {e}", dir.display())))?;
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if is_image(&path) {
            out.push((
                dir.to_string_lossy().into_owned(),
                entry.file_name().to_string_lossy().into_owned(),
            ));
        }
    }
    Ok(())
}

/// Lists `root` as an image folder named `name` in messages.
pub fn list(name: &str, root: &Path) -> Result<ImageListing> {
    let layout = "<root>/<class name>/<image files, at any depth>";
    if !root.is_dir() {
        return Err(data_error(format!(
            "dataset {name}: folder {} does not exist; expected the layout {layout}",
            root.display()
        )));
    }
    let mut classes: Vec<(String, PathBuf)> = std::fs::read_dir(root)
        .map_err(|e| data_error(format!("cannot list {}: {e}", root.display())))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .map(|p| {
            (
                p.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
                p,
            )
        })
        .collect();
    classes.sort();
    if classes.is_empty() {
        return Err(data_error(format!(
            "dataset {name}: {} has no class folders; expected the layout {layout}",
            root.display()
        )));
    }
    let mut files = Vec::new();
    let mut labels = Vec::new();
    for (label, (_, dir)) in classes.iter().enumerate() {
        let mut found = Vec::new();
        walk(dir, &mut found)?;
        if found.is_empty() {
            return Err(data_error(format!(
                "dataset {name}: class folder {} holds no image files ({}); remove it or add \
                 images",
                dir.display(),
                EXTENSIONS.join(", ")
            )));
        }
        found.sort();
        for (folder, file) in found {
            files.push(Path::new(&folder).join(file));
            labels.push(label as i64);
        }
    }
    Ok(ImageListing {
        name: name.to_string(),
        files,
        labels: vec![labels],
        predefined_splits: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"x").unwrap();
    }

    #[test]
    fn classes_sorted_files_at_any_depth() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        touch(&r.join("zebra/b.JPG"));
        touch(&r.join("zebra/a.png"));
        touch(&r.join("ant/deep/er/x.jpeg"));
        touch(&r.join("ant/y.jpg"));
        touch(&r.join("ant/notes.txt"));
        let l = list("ImageFolder", r).unwrap();
        let rel: Vec<String> = l
            .files
            .iter()
            .map(|f| f.strip_prefix(r).unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            rel,
            [
                "ant/y.jpg",
                "ant/deep/er/x.jpeg",
                "zebra/a.png",
                "zebra/b.JPG"
            ]
        );
        assert_eq!(l.labels, vec![vec![0, 0, 1, 1]]);
    }

    #[test]
    fn missing_root_and_empty_class_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let e = list("ImageFolder", &dir.path().join("nope"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope") && e.contains("<class name>"), "{e}");
        touch(&dir.path().join("a/1.jpg"));
        std::fs::create_dir_all(dir.path().join("b")).unwrap();
        let e = list("ImageFolder", dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("holds no image files") && e.contains("/b"),
            "{e}"
        );
    }
}
