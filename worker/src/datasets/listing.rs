//! The files of an image dataset as its on-disk layout lists them, with labels at every hierarchy
//! level. Reading a layout (CUB-200-2011's folders, Cars196's `.mat` annotations, Stanford Online
//! Products' text files, a plain image folder) ends here; turning the files into training batches is
//! the image pipeline's job (`crate::images`), so every layout gets the same decoding, transforms and
//! prefetching.

use std::path::PathBuf;

/// Image files with their labels, as read from disk.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageListing {
    /// The dataset's config name (`CUB200`, ...), for messages.
    pub name: String,
    /// One path per sample.
    pub files: Vec<PathBuf>,
    /// `labels[level][sample]`: level 0 is the class, level 1 (when present) its parent class.
    pub labels: Vec<Vec<i64>>,
    /// The dataset's own split (`special_split_scheme_name: predefined`), as named index lists.
    pub predefined_splits: Option<Vec<(String, Vec<usize>)>>,
}
