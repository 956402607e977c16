//! `CUB200` (Caltech-UCSD Birds-200-2011): one folder of JPEGs per class under
//! `<root>/cub2011/CUB_200_2011/images/<NNN.Class_name>/`, read as torchvision's `ImageFolder`
//! reads it: class folders sorted by name give labels 0-199, files sorted within each.

use super::download::{self, Plan, Source};
use super::layout;
use super::listing::ImageListing;
use crate::errors::data_error;
use anyhow::Result;
use std::path::Path;

pub const NAME: &str = "CUB200";
const LAYOUT: &str =
    "cub2011/CUB_200_2011/images/<NNN.Class_name>/*.jpg (as CUB_200_2011.tgz unpacks)";

/// The published archive (the same bytes the original fetched; its md5 is the published one).
pub const ARCHIVE: Source = Source {
    url: "https://data.caltech.edu/records/65de6-vzc56/files/CUB_200_2011.tgz",
    md5: "97eceeb196236b17998738112f37df78",
};

const PLAN: [Plan; 1] = [Plan {
    source: ARCHIVE,
    unpack: true,
    done_when: "CUB_200_2011/images",
}];

/// The images and labels under the dataset root.
pub fn list(root: &Path) -> Result<ImageListing> {
    let images = layout::require(NAME, root.join("cub2011/CUB_200_2011/images"), LAYOUT)?;
    let classes = layout::sorted_subfolders(&images)?;
    if classes.is_empty() {
        return Err(data_error(format!(
            "{NAME}: {} has no class folders; expected layout under the dataset root: {LAYOUT}",
            images.display()
        )));
    }
    let mut files = Vec::new();
    let mut labels = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        let found = layout::images_below(class)?;
        if found.is_empty() {
            return Err(data_error(format!(
                "{NAME}: the class folder {} has no images ({})",
                class.display(),
                layout::IMAGE_EXTENSIONS.join(", ")
            )));
        }
        labels.extend(std::iter::repeat_n(label as i64, found.len()));
        files.extend(found);
    }
    Ok(ImageListing {
        name: NAME.into(),
        files,
        labels: vec![labels],
        predefined_splits: None,
    })
}

/// Fetches and unpacks CUB_200_2011.tgz into `<root>/cub2011` unless the images are there.
pub fn download(root: &Path, mirror: Option<&str>) -> Result<()> {
    let mirror = download::mirror(mirror);
    download::run(NAME, &root.join("cub2011"), &PLAN, mirror.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"jpeg").unwrap();
    }

    #[test]
    fn labels_come_from_the_sorted_class_folders() {
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("cub2011/CUB_200_2011/images");
        // Created out of order; a non-image file is ignored, as torchvision does.
        for f in [
            "002.Laysan_Albatross/b.jpg",
            "001.Black_footed_Albatross/x2.jpg",
            "002.Laysan_Albatross/a.jpg",
            "001.Black_footed_Albatross/x1.jpg",
            "001.Black_footed_Albatross/readme.txt",
            "010.Red_winged_Blackbird/r.jpg",
        ] {
            touch(&images.join(f));
        }
        let listing = list(dir.path()).unwrap();
        let names: Vec<String> = listing
            .files
            .iter()
            .map(|p| p.strip_prefix(&images).unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "001.Black_footed_Albatross/x1.jpg",
                "001.Black_footed_Albatross/x2.jpg",
                "002.Laysan_Albatross/a.jpg",
                "002.Laysan_Albatross/b.jpg",
                "010.Red_winged_Blackbird/r.jpg"
            ]
        );
        assert_eq!(listing.labels, vec![vec![0, 0, 1, 1, 2]]);
        assert_eq!(listing.predefined_splits, None);
        assert!(super::super::summary::count_warning(&listing)
            .unwrap()
            .contains("11,788"));
    }

    #[test]
    fn missing_folder_shows_the_expected_path_and_layout() {
        let dir = tempfile::tempdir().unwrap();
        let e = list(dir.path()).unwrap_err();
        let text = e.to_string();
        let expected = dir.path().join("cub2011/CUB_200_2011/images");
        assert!(text.contains(&expected.display().to_string()), "{text}");
        assert!(text.contains("<NNN.Class_name>/*.jpg"), "{text}");
        assert_eq!(
            crate::errors::kind_of(&e),
            metricbench_protocol::protocol::ErrorKind::Data
        );
    }

    #[test]
    fn an_empty_class_folder_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("cub2011/CUB_200_2011/images");
        touch(&images.join("001.A/a.jpg"));
        std::fs::create_dir_all(images.join("002.B")).unwrap();
        let text = list(dir.path()).unwrap_err().to_string();
        assert!(
            text.contains(&images.join("002.B").display().to_string())
                && text.contains("no images"),
            "{text}"
        );
    }
}
