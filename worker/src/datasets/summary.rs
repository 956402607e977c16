//! The lines logged when an image dataset opens: what was found (images, classes, the smallest and
//! largest class) and, for the published datasets, a warning when the image count differs from the
//! published one. A different count is not an error: partial downloads and subsets must still run.

use super::listing::ImageListing;
use std::collections::BTreeMap;

/// Image counts of the published datasets, by config name.
pub const PUBLISHED_IMAGES: [(&str, usize); 3] = [
    ("CUB200", 11_788),
    ("Cars196", 16_185),
    ("StanfordOnlineProducts", 120_053),
];

/// `12345` as `12,345`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// One line describing the dataset, e.g. `CUB200: 11,788 images, 200 classes (smallest: label 5
/// with 41 images, largest: label 0 with 60 images), 2 label levels (level 1: 12 classes)`.
pub fn summary(listing: &ImageListing) -> String {
    let images = listing.files.len();
    let mut text = format!("{}: {} images", listing.name, thousands(images));
    if let Some(level0) = listing.labels.first() {
        let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
        for &label in level0 {
            *counts.entry(label).or_default() += 1;
        }
        text.push_str(&format!(", {} classes", thousands(counts.len())));
        // Ties go to the lowest label, so the line is stable.
        let smallest = counts.iter().min_by_key(|(l, c)| (**c, **l));
        let largest = counts.iter().max_by_key(|(l, c)| (**c, -**l));
        if let (Some((sl, sc)), Some((ll, lc))) = (smallest, largest) {
            text.push_str(&format!(
                " (smallest: label {sl} with {} images, largest: label {ll} with {} images)",
                thousands(*sc),
                thousands(*lc)
            ));
        }
    }
    for (level, labels) in listing.labels.iter().enumerate().skip(1) {
        let distinct: std::collections::BTreeSet<i64> = labels.iter().copied().collect();
        text.push_str(&format!(
            ", label level {level}: {} classes",
            thousands(distinct.len())
        ));
    }
    if let Some(splits) = &listing.predefined_splits {
        let parts: Vec<String> = splits
            .iter()
            .map(|(name, idx)| format!("{name} {}", thousands(idx.len())))
            .collect();
        text.push_str(&format!(", predefined split: {}", parts.join(", ")));
    }
    text
}

/// A warning when a published dataset has a different number of images than published.
pub fn count_warning(listing: &ImageListing) -> Option<String> {
    let (_, published) = PUBLISHED_IMAGES
        .iter()
        .find(|(name, _)| *name == listing.name)?;
    let found = listing.files.len();
    (found != *published).then(|| {
        format!(
            "warning: {} has {} images, the published dataset has {}; \
             running on what was found (a partial download or a subset?)",
            listing.name,
            thousands(found),
            thousands(*published)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn listing(name: &str, labels: Vec<Vec<i64>>) -> ImageListing {
        ImageListing {
            name: name.into(),
            files: (0..labels[0].len())
                .map(|i| PathBuf::from(format!("{i}.jpg")))
                .collect(),
            labels,
            predefined_splits: None,
        }
    }

    #[test]
    fn describes_classes_and_levels() {
        let mut l = listing(
            "StanfordOnlineProducts",
            vec![vec![3, 3, 1, 1, 1, 0, 0], vec![0, 0, 1, 1, 1, 1, 1]],
        );
        l.predefined_splits = Some(vec![
            ("train".into(), vec![0, 1, 2]),
            ("test".into(), vec![3, 4, 5, 6]),
        ]);
        assert_eq!(
            summary(&l),
            "StanfordOnlineProducts: 7 images, 3 classes (smallest: label 0 with 2 images, \
             largest: label 1 with 3 images), label level 1: 2 classes, predefined split: train 3, test 4"
        );
        assert_eq!(thousands(120_053), "120,053");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }

    #[test]
    fn warns_on_a_count_other_than_the_published_one() {
        let l = listing("CUB200", vec![vec![0, 1, 1]]);
        let w = count_warning(&l).unwrap();
        assert!(
            w.contains("CUB200 has 3 images") && w.contains("11,788"),
            "{w}"
        );
        let full = listing("Cars196", vec![vec![1; 16_185]]);
        assert_eq!(count_warning(&full), None);
        assert_eq!(count_warning(&listing("MyFolder", vec![vec![0]])), None);
    }
}
