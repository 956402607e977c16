//! `Features`: precomputed vectors with labels, for tuning heads (embedder, loss, miner) on frozen
//! features without touching images.
//!
//! Vectors come from a `.npy` file (`[n, d]`, float or integer) or a `.csv` file (one sample a row,
//! comma-separated, an optional header row). Labels come from their own `.npy`/`.csv` file (`[n]`,
//! or `[n, 2]` for class and parent class), or from named columns of the features CSV. A second label
//! level (for `WithSameParentLabelTester`) and the dataset's own split (one name per sample, for
//! `special_split_scheme_name: predefined`) are optional. Relative paths are under `root`
//! (default: the run's `--dataset_root`).

use crate::errors::{config_error, data_error};
use crate::npy;
use crate::spec::Spec;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use tch::Tensor;

pub struct Features {
    values: Vec<f32>,
    dim: usize,
    /// `labels[level][sample]`.
    labels: Vec<Vec<i64>>,
    splits: Option<Vec<(String, Vec<usize>)>>,
}

/// A table read from a `.npy` or `.csv` file: rows of text cells (CSV) or numbers (npy).
struct Table {
    path: PathBuf,
    header: Option<Vec<String>>,
    rows: usize,
    cols: usize,
    cells: Cells,
}

enum Cells {
    Text(Vec<Vec<String>>),
    Numbers(npy::NpyArray),
}

fn extension(path: &Path) -> String {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
}

fn read_table(path: &Path) -> Result<Table> {
    if !path.is_file() {
        return Err(data_error(format!(
            "Features: {} does not exist (relative paths are under the dataset's `root`, \
             default --dataset_root)",
            path.display()
        )));
    }
    match extension(path).as_str() {
        "npy" => {
            let array = npy::read(path)?;
            let (rows, cols) = match array.shape.as_slice() {
                [n] => (*n, 1),
                [n, d] => (*n, *d),
                other => {
                    return Err(data_error(format!(
                        "{}: expected a 1-D or 2-D array, found shape {other:?}",
                        path.display()
                    )))
                }
            };
            Ok(Table {
                path: path.to_path_buf(),
                header: None,
                rows,
                cols,
                cells: Cells::Numbers(array),
            })
        }
        "csv" | "txt" | "tsv" => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let separator = if extension(path) == "tsv" { '\t' } else { ',' };
            let mut rows: Vec<Vec<String>> = text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| l.split(separator).map(|c| c.trim().to_string()).collect())
                .collect();
            // A first row with a cell that is not a number is a header.
            let header = match rows.first() {
                Some(first) if first.iter().any(|c| c.parse::<f64>().is_err()) => {
                    Some(rows.remove(0))
                }
                _ => None,
            };
            let cols = header
                .as_ref()
                .map(Vec::len)
                .or_else(|| rows.first().map(Vec::len))
                .unwrap_or(0);
            for (i, row) in rows.iter().enumerate() {
                if row.len() != cols {
                    return Err(data_error(format!(
                        "{} row {}: {} columns, expected {cols}",
                        path.display(),
                        i + 1 + usize::from(header.is_some()),
                        row.len()
                    )));
                }
            }
            Ok(Table {
                path: path.to_path_buf(),
                header,
                rows: rows.len(),
                cols,
                cells: Cells::Text(rows),
            })
        }
        other => Err(config_error(format!(
            "Features: {} has extension `{other}`; expected .npy or .csv",
            path.display()
        ))),
    }
}

/// Split names, one a line (blank lines skipped); a first line `split` is a header.
fn read_names(path: &Path) -> Result<Vec<String>> {
    if !path.is_file() {
        return Err(data_error(format!(
            "Features: {} does not exist (relative paths are under the dataset's `root`, \
             default --dataset_root)",
            path.display()
        )));
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    if names.first().is_some_and(|n| n == "split") {
        names.remove(0);
    }
    Ok(names)
}

impl Table {
    /// The index of a column named in the header (or given as a 0-based number).
    fn column(&self, name: &str, kwarg: &str) -> Result<usize> {
        if let Some(h) = &self.header {
            if let Some(i) = h.iter().position(|c| c == name) {
                return Ok(i);
            }
        }
        match name.parse::<usize>() {
            Ok(i) if i < self.cols => Ok(i),
            _ => Err(config_error(format!(
                "Features/{kwarg}: {} has no column `{name}` (header: {})",
                self.path.display(),
                self.header
                    .as_ref()
                    .map(|h| h.join(", "))
                    .unwrap_or_else(|| format!("none; {} unnamed columns", self.cols))
            ))),
        }
    }

    fn text(&self, row: usize, col: usize) -> String {
        match &self.cells {
            Cells::Text(rows) => rows[row][col].clone(),
            Cells::Numbers(a) => match &a.data {
                npy::NpyData::F32(v) => v[row * self.cols + col].to_string(),
                npy::NpyData::F64(v) => v[row * self.cols + col].to_string(),
                npy::NpyData::I32(v) => v[row * self.cols + col].to_string(),
                npy::NpyData::I64(v) => v[row * self.cols + col].to_string(),
            },
        }
    }

    fn number(&self, row: usize, col: usize) -> Result<f64> {
        let v = match &self.cells {
            Cells::Numbers(a) => match &a.data {
                npy::NpyData::F32(v) => f64::from(v[row * self.cols + col]),
                npy::NpyData::F64(v) => v[row * self.cols + col],
                npy::NpyData::I32(v) => f64::from(v[row * self.cols + col]),
                npy::NpyData::I64(v) => v[row * self.cols + col] as f64,
            },
            Cells::Text(rows) => rows[row][col].parse::<f64>().map_err(|_| {
                data_error(format!(
                    "{} row {} column {}: expected a number, found {:?}",
                    self.path.display(),
                    row + 1 + usize::from(self.header.is_some()),
                    col + 1,
                    rows[row][col]
                ))
            })?,
        };
        Ok(v)
    }

    fn label(&self, row: usize, col: usize) -> Result<i64> {
        let v = self.number(row, col)?;
        if v.is_finite() && v.fract() == 0.0 && v.abs() < 9.0e15 {
            Ok(v as i64)
        } else {
            Err(data_error(format!(
                "{} row {} column {}: labels must be integers, found {v}",
                self.path.display(),
                row + 1 + usize::from(self.header.is_some()),
                col + 1
            )))
        }
    }

    fn labels(&self, col: usize) -> Result<Vec<i64>> {
        (0..self.rows).map(|r| self.label(r, col)).collect()
    }
}

impl Features {
    pub fn from_spec(spec: &mut Spec, dataset_root: &Path) -> Result<Features> {
        let root = PathBuf::from(spec.string("root", &dataset_root.to_string_lossy())?);
        let features_file = spec.string("features", "")?;
        let labels_file = spec.string("labels", "")?;
        let parent_file = spec.string("parent_labels", "")?;
        let predefined_file = spec.string("predefined", "")?;
        let label_column = spec.string("label_column", "")?;
        let parent_column = spec.string("parent_label_column", "")?;
        let split_column = spec.string("split_column", "")?;
        if features_file.is_empty() {
            return Err(config_error(
                "dataset/Features needs `features`: a .npy ([n, d]) or .csv file of vectors",
            ));
        }
        if labels_file.is_empty() == label_column.is_empty() {
            return Err(config_error(
                "dataset/Features needs exactly one of `labels` (a .npy/.csv file) and \
                 `label_column` (a column of the features CSV)",
            ));
        }
        if !parent_file.is_empty() && !parent_column.is_empty() {
            return Err(config_error(
                "dataset/Features: give `parent_labels` or `parent_label_column`, not both",
            ));
        }
        if !predefined_file.is_empty() && !split_column.is_empty() {
            return Err(config_error(
                "dataset/Features: give `predefined` or `split_column`, not both",
            ));
        }
        let table = read_table(&root.join(&features_file))?;
        let n = table.rows;
        let mut taken = Vec::new();
        let mut column = |name: &str, kwarg: &str| -> Result<Option<usize>> {
            if name.is_empty() {
                return Ok(None);
            }
            let c = table.column(name, kwarg)?;
            taken.push(c);
            Ok(Some(c))
        };
        let label_col = column(&label_column, "label_column")?;
        let parent_col = column(&parent_column, "parent_label_column")?;
        let split_col = column(&split_column, "split_column")?;
        let feature_cols: Vec<usize> = (0..table.cols).filter(|c| !taken.contains(c)).collect();
        if feature_cols.is_empty() || n == 0 {
            return Err(data_error(format!(
                "{}: no feature values ({n} rows, {} feature columns)",
                table.path.display(),
                feature_cols.len()
            )));
        }
        let dim = feature_cols.len();
        let mut values = Vec::with_capacity(n * dim);
        for r in 0..n {
            for &c in &feature_cols {
                let v = table.number(r, c)?;
                if !v.is_finite() {
                    return Err(data_error(format!(
                        "{} row {}: feature {} is {v}",
                        table.path.display(),
                        r + 1,
                        c + 1
                    )));
                }
                values.push(v as f32);
            }
        }
        let same_rows = |other: &Table| -> Result<()> {
            if other.rows != n {
                return Err(data_error(format!(
                    "{} has {} rows, but {} has {n}: one row per sample in each",
                    other.path.display(),
                    other.rows,
                    table.path.display()
                )));
            }
            Ok(())
        };
        let mut labels = match label_col {
            Some(c) => vec![table.labels(c)?],
            None => {
                let t = read_table(&root.join(&labels_file))?;
                same_rows(&t)?;
                if t.cols > 2 {
                    return Err(data_error(format!(
                        "{}: expected 1 column (class) or 2 (class, parent class), found {}",
                        t.path.display(),
                        t.cols
                    )));
                }
                (0..t.cols).map(|c| t.labels(c)).collect::<Result<_>>()?
            }
        };
        let parent = match (parent_col, parent_file.is_empty()) {
            (Some(c), _) => Some(table.labels(c)?),
            (None, false) => {
                let t = read_table(&root.join(&parent_file))?;
                same_rows(&t)?;
                if t.cols != 1 {
                    return Err(data_error(format!(
                        "{}: expected one column of parent labels, found {}",
                        t.path.display(),
                        t.cols
                    )));
                }
                Some(t.labels(0)?)
            }
            (None, true) => None,
        };
        if let Some(p) = parent {
            if labels.len() > 1 {
                return Err(config_error(
                    "dataset/Features: the labels file already has a parent column; drop `parent_labels`",
                ));
            }
            labels.push(p);
        }
        let names: Option<Vec<String>> = match (split_col, predefined_file.is_empty()) {
            (Some(c), _) => Some((0..n).map(|r| table.text(r, c)).collect()),
            (None, false) => {
                let path = root.join(&predefined_file);
                let names = if extension(&path) == "npy" {
                    let t = read_table(&path)?;
                    same_rows(&t)?;
                    (0..n).map(|r| t.text(r, 0)).collect()
                } else {
                    read_names(&path)?
                };
                if names.len() != n {
                    return Err(data_error(format!(
                        "{} has {} split names, but {} has {n} rows: one per sample",
                        path.display(),
                        names.len(),
                        table.path.display()
                    )));
                }
                Some(names)
            }
            (None, true) => None,
        };
        let splits = names.map(|names| {
            let mut splits: Vec<(String, Vec<usize>)> = Vec::new();
            for (i, name) in names.into_iter().enumerate() {
                match splits.iter_mut().find(|(s, _)| *s == name) {
                    Some((_, idx)) => idx.push(i),
                    None => splits.push((name, vec![i])),
                }
            }
            splits
        });
        Ok(Features {
            values,
            dim,
            labels,
            splits,
        })
    }
}

impl super::Dataset for Features {
    fn len(&self) -> usize {
        self.labels[0].len()
    }

    fn label_levels(&self) -> usize {
        self.labels.len()
    }

    fn labels(&self, level: usize) -> &[i64] {
        &self.labels[level.min(self.labels.len() - 1)]
    }

    fn sample_shape(&self) -> Vec<i64> {
        vec![self.dim as i64]
    }

    fn batch(&self, indices: &[usize], _train: bool) -> Result<Tensor> {
        let d = self.dim;
        let mut out = Vec::with_capacity(indices.len() * d);
        for &i in indices {
            out.extend_from_slice(&self.values[i * d..(i + 1) * d]);
        }
        Ok(Tensor::from_slice(&out).view([indices.len() as i64, d as i64]))
    }

    fn predefined_splits(&self) -> Option<Vec<(String, Vec<usize>)>> {
        self.splits.clone()
    }
}

#[cfg(test)]
mod tests {
    use crate::datasets::{BuildOptions, Dataset};

    /// `datasets::build` with `root` as the dataset root.
    fn build(value: &serde_json::Value, root: &Path) -> anyhow::Result<Box<dyn Dataset>> {
        let options = BuildOptions {
            dataset_root: root.to_path_buf(),
            ..BuildOptions::features_only()
        };
        crate::datasets::build(value, &options)
    }
    use serde_json::json;
    use std::path::Path;

    /// A version-1 .npy file of little-endian values.
    fn npy(path: &Path, descr: &str, shape: &str, payload: &[u8]) {
        let mut header =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while !(10 + header.len() + 1).is_multiple_of(64) {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend((header.len() as u16).to_le_bytes());
        out.extend(header.as_bytes());
        out.extend(payload);
        std::fs::write(path, out).unwrap();
    }

    fn values(t: &tch::Tensor) -> Vec<f32> {
        Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()
    }

    #[test]
    fn npy_vectors_with_two_label_levels_and_a_predefined_split() {
        let dir = tempfile::tempdir().unwrap();
        let feats: Vec<u8> = (0..12)
            .flat_map(|i| (i as f32 * 0.5).to_le_bytes())
            .collect();
        npy(&dir.path().join("x.npy"), "<f4", "(4, 3)", &feats);
        let labels: Vec<u8> = [7i64, 70, 8, 70, 7, 71, 9, 71]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        npy(&dir.path().join("y.npy"), "<i8", "(4, 2)", &labels);
        std::fs::write(dir.path().join("split.txt"), "train\ntest\ntrain\nval\n").unwrap();
        // Relative paths are under the dataset root.
        let d = build(
            &json!({"Features": {"features": "x.npy", "labels": "y.npy", "predefined": "split.txt"}}),
            dir.path(),
        )
        .unwrap();
        assert_eq!(d.len(), 4);
        assert_eq!(d.sample_shape(), vec![3]);
        assert_eq!(d.label_levels(), 2);
        assert_eq!(d.labels(0), [7, 8, 7, 9]);
        assert_eq!(d.labels(1), [70, 70, 71, 71]);
        assert_eq!(
            d.predefined_splits(),
            Some(vec![
                ("train".to_string(), vec![0, 2]),
                ("test".to_string(), vec![1]),
                ("val".to_string(), vec![3])
            ])
        );
        let b = d.batch(&[3, 0], true).unwrap();
        assert_eq!(b.size(), vec![2, 3]);
        assert_eq!(values(&b), vec![4.5, 5.0, 5.5, 0.0, 0.5, 1.0]);
        // An absolute path ignores the root; `root` replaces the dataset root.
        let abs = dir.path().join("x.npy");
        let d = build(
            &json!({"Features": {"features": abs, "labels": "y.npy",
                                  "root": dir.path()}}),
            Path::new("/nonexistent"),
        )
        .unwrap();
        assert_eq!(d.predefined_splits(), None);
    }

    #[test]
    fn csv_with_label_parent_and_split_columns() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("emb.csv"),
            "f0,label,f1,super,split\n0.5,3,-1,0,train\n1.5,4,2e-1,0,test\n-2,3,7,1,train\n",
        )
        .unwrap();
        let d = build(
            &json!({"Features": {"features": "emb.csv", "label_column": "label",
                                  "parent_label_column": "super", "split_column": "split"}}),
            dir.path(),
        )
        .unwrap();
        assert_eq!(d.sample_shape(), vec![2]);
        assert_eq!(d.labels(0), [3, 4, 3]);
        assert_eq!(d.labels(1), [0, 0, 1]);
        assert_eq!(
            values(&d.batch(&[1, 2], false).unwrap()),
            vec![1.5, 0.2, -2.0, 7.0]
        );
        assert_eq!(
            d.predefined_splits().unwrap()[1],
            ("test".to_string(), vec![1])
        );
        // Headerless CSVs of vectors and labels.
        std::fs::write(dir.path().join("v.csv"), "1,2\n3,4\n").unwrap();
        std::fs::write(dir.path().join("l.csv"), "5\n6\n").unwrap();
        let d = build(
            &json!({"Features": {"features": "v.csv", "labels": "l.csv"}}),
            dir.path(),
        )
        .unwrap();
        assert_eq!(
            (d.len(), d.label_levels(), d.labels(0)),
            (2, 1, &[5i64, 6][..])
        );
    }

    #[test]
    fn bad_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("v.csv"), "1,2\n3,4\n5,6\n").unwrap();
        std::fs::write(root.join("l.csv"), "5\n6\n").unwrap();
        std::fs::write(root.join("bad.csv"), "1,2\n3,x\n").unwrap();
        std::fs::write(root.join("frac.csv"), "1.5\n2\n3\n").unwrap();
        let err = |kwargs: serde_json::Value| {
            build(&json!({ "Features": kwargs }), root)
                .err()
                .expect("an error")
                .to_string()
        };
        let e = err(json!({"features": "v.csv", "labels": "l.csv"}));
        assert!(
            e.contains("l.csv has 2 rows") && e.contains("v.csv has 3"),
            "{e}"
        );
        let e = err(json!({"features": "nope.npy", "labels": "l.csv"}));
        assert!(
            e.contains(&root.join("nope.npy").display().to_string()),
            "{e}"
        );
        let e = err(json!({"features": "bad.csv", "labels": "l.csv"}));
        assert!(
            e.contains("bad.csv row 2 column 2: expected a number, found \"x\""),
            "{e}"
        );
        let e = err(json!({"features": "v.csv", "labels": "frac.csv"}));
        assert!(e.contains("labels must be integers, found 1.5"), "{e}");
        let e = err(json!({"features": "v.csv"}));
        assert!(e.contains("exactly one of `labels`"), "{e}");
        let e = err(json!({"features": "v.csv", "label_column": "cls"}));
        assert!(e.contains("has no column `cls`"), "{e}");
        let e = err(json!({"features": "v.csv", "labels": "frac.csv", "colour": 1}));
        assert!(e.contains("labels must be integers"), "{e}");
        std::fs::write(root.join("l3.csv"), "label\n1\n2\n2\n").unwrap();
        let e = err(json!({"features": "v.csv", "labels": "l3.csv", "colour": 1}));
        assert!(e.contains("has no kwarg `colour`"), "{e}");
    }
}
