//! `Cars196` (Stanford Cars): `<root>/cars196/cars_annos.mat`, a MATLAB file whose `annotations`
//! struct array gives each image's path (`relative_im_path`, relative to `<root>/cars196/`) and
//! class. Labels are the file's classes, 1-196, not shifted to start at 0 (as the original).

use super::download::{self, Plan, Source};
use super::layout;
use super::listing::ImageListing;
use super::matfile::MatFile;
use anyhow::Result;
use std::path::Path;

pub const NAME: &str = "Cars196";
const LAYOUT: &str = "cars196/cars_annos.mat and the images it lists, cars196/car_ims/*.jpg \
                      (as car_ims.tgz unpacks)";

/// The published image archive and annotation file.
pub const IMAGES: Source = Source {
    url: "http://imagenet.stanford.edu/internal/car196/car_ims.tgz",
    md5: "d5c8f0aa497503f355e17dc7886c3f14",
};
pub const ANNOTATIONS: Source = Source {
    url: "http://imagenet.stanford.edu/internal/car196/cars_annos.mat",
    md5: "b407c6086d669747186bd1d764ff9dbc",
};

const PLAN: [Plan; 2] = [
    Plan {
        source: IMAGES,
        unpack: true,
        done_when: "car_ims",
    },
    Plan {
        source: ANNOTATIONS,
        unpack: false,
        done_when: "cars_annos.mat",
    },
];

/// The images and labels under the dataset root.
pub fn list(root: &Path) -> Result<ImageListing> {
    let folder = root.join("cars196");
    let annos = layout::require(NAME, folder.join("cars_annos.mat"), LAYOUT)?;
    let mat = MatFile::read(&annos)?;
    let elements = mat.variable("annotations")?.struct_elements()?;
    let mut files = Vec::with_capacity(elements.len());
    let mut labels = Vec::with_capacity(elements.len());
    for element in &elements {
        files.push(folder.join(element.field("relative_im_path")?.string()?));
        labels.push(element.field("class")?.integer()?);
    }
    layout::check_images_exist(NAME, &annos.display().to_string(), &files)?;
    Ok(ImageListing {
        name: NAME.into(),
        files,
        labels: vec![labels],
        predefined_splits: None,
    })
}

/// Fetches car_ims.tgz (unpacked into `<root>/cars196`) and cars_annos.mat unless present.
pub fn download(root: &Path, mirror: Option<&str>) -> Result<()> {
    let mirror = download::mirror(mirror);
    download::run(NAME, &root.join("cars196"), &PLAN, mirror.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::test_python;

    /// cars_annos.mat as the published one is shaped: `annotations` (1xN struct: path, bbox,
    /// class, test) and `class_names` (1xK cell), written by scipy.
    const WRITER: &str = r#"
import sys
import numpy as np
from scipy.io import savemat
out, spec = sys.argv[1], sys.argv[2]
rows = [(p, int(c)) for p, c in (r.split(":") for r in spec.split(","))]
dt = [("relative_im_path", "O"), ("bbox_x1", "O"), ("bbox_y1", "O"), ("bbox_x2", "O"),
      ("bbox_y2", "O"), ("class", "O"), ("test", "O")]
ann = np.empty((1, len(rows)), dtype=dt)
for i, (p, c) in enumerate(rows):
    ann[0, i] = (p, np.uint8(5), np.uint8(6), np.uint16(300), np.uint16(200), np.uint8(c), np.uint8(i % 2))
names = np.empty((1, 196), dtype=object)
names[0, :] = ["class %d" % k for k in range(1, 197)]
savemat(out, {"annotations": ann, "class_names": names}, do_compression=True)
"#;

    fn write_annos(py: &Path, root: &Path, spec: &str) {
        let folder = root.join("cars196");
        std::fs::create_dir_all(folder.join("car_ims")).unwrap();
        test_python::run(
            py,
            WRITER,
            &[&folder.join("cars_annos.mat"), Path::new(spec)],
        );
    }

    #[test]
    fn reads_paths_and_one_based_classes_from_the_mat_file() {
        let Some(py) = test_python::python() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        write_annos(
            &py,
            dir.path(),
            "car_ims/000001.jpg:1,car_ims/000002.jpg:196,car_ims/000003.jpg:14,car_ims/000004.jpg:1",
        );
        for i in 1..=4 {
            std::fs::write(
                dir.path().join(format!("cars196/car_ims/00000{i}.jpg")),
                b"x",
            )
            .unwrap();
        }
        let listing = list(dir.path()).unwrap();
        assert_eq!(listing.labels, vec![vec![1, 196, 14, 1]]);
        assert_eq!(
            listing.files[2],
            dir.path().join("cars196/car_ims/000003.jpg")
        );
        assert_eq!(listing.name, "Cars196");
        assert!(
            super::super::summary::summary(&listing).starts_with("Cars196: 4 images, 3 classes")
        );
    }

    #[test]
    fn annotations_pointing_at_missing_images_are_an_error() {
        let Some(py) = test_python::python() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        write_annos(&py, dir.path(), "car_ims/000001.jpg:1,car_ims/000002.jpg:2");
        std::fs::write(dir.path().join("cars196/car_ims/000001.jpg"), b"x").unwrap();
        let text = list(dir.path()).unwrap_err().to_string();
        assert!(
            text.contains("1 image(s) that do not exist (of 2)")
                && text.contains("000002.jpg")
                && text.contains("cars_annos.mat"),
            "{text}"
        );
    }

    #[test]
    fn a_wrong_mat_structure_names_the_file_and_the_field() {
        let Some(py) = test_python::python() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("cars196");
        std::fs::create_dir_all(&folder).unwrap();
        let annos = folder.join("cars_annos.mat");
        // `class` missing from the struct; then `annotations` not a struct at all; then absent.
        let cases = [
            (
                "import sys, numpy as np; from scipy.io import savemat\n\
                 a = np.empty((1, 1), dtype=[('relative_im_path', 'O'), ('label', 'O')])\n\
                 a[0, 0] = ('car_ims/1.jpg', 3)\n\
                 savemat(sys.argv[1], {'annotations': a})",
                "`annotations` has no field `class`; its fields are: relative_im_path, label",
            ),
            (
                "import sys, numpy as np; from scipy.io import savemat\n\
                 savemat(sys.argv[1], {'annotations': np.zeros((2, 3))})",
                "`annotations` must be a struct array, found a 2x3 double array",
            ),
            (
                "import sys, numpy as np; from scipy.io import savemat\n\
                 savemat(sys.argv[1], {'annos': np.zeros(1)})",
                "has no variable `annotations`; its variables are: annos",
            ),
        ];
        for (code, expected) in cases {
            test_python::run(&py, code, &[&annos]);
            let text = list(dir.path()).unwrap_err().to_string();
            assert!(
                text.contains(expected) && text.contains(&annos.display().to_string()),
                "{text}"
            );
        }
        std::fs::write(&annos, [b'x'; 200]).unwrap();
        let text = list(dir.path()).unwrap_err().to_string();
        assert!(
            text.contains("not a readable MATLAB v5 .mat file"),
            "{text}"
        );
    }

    #[test]
    fn missing_annotations_show_the_expected_path() {
        let dir = tempfile::tempdir().unwrap();
        let text = list(dir.path()).unwrap_err().to_string();
        assert!(
            text.contains(
                &dir.path()
                    .join("cars196/cars_annos.mat")
                    .display()
                    .to_string()
            ) && text.contains("car_ims/*.jpg"),
            "{text}"
        );
    }
}
