//! `download: true`: fetching a dataset's published archives and unpacking them into its layout.
//!
//! Each file is downloaded to `<name>.part` beside its destination; an interrupted download is
//! resumed with an HTTP Range request on the next run. A finished download is checked against the
//! published md5 sum before it is renamed to its real name, so a file under its real name is always
//! complete and correct. A mismatch deletes the `.part` (resuming a corrupt prefix could never
//! succeed) and fails naming both sums. Archives are unpacked into a temporary folder beside the
//! destination and their top-level entries renamed into place only when everything is out, so an
//! interrupted extraction leaves no half-filled dataset folder behind.
//!
//! The published hosts can be replaced by a mirror (the dataset's `mirror` kwarg, or the
//! `METRICBENCH_DATASET_MIRROR` environment variable): the file name is appended to the mirror's
//! base URL.

use crate::errors::data_error;
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use md5::{Digest, Md5};
use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Environment variable naming a mirror for every dataset download.
pub const MIRROR_ENV: &str = "METRICBENCH_DATASET_MIRROR";

/// A published file: where it comes from and its md5 sum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    pub url: &'static str,
    pub md5: &'static str,
}

impl Source {
    /// The file's name (the last segment of its URL).
    pub fn file_name(&self) -> &'static str {
        url_file_name(self.url)
    }

    /// The URL to fetch: the published one, or the file name under the mirror when one is set.
    pub fn url_with(&self, mirror: Option<&str>) -> String {
        match mirror.filter(|m| !m.is_empty()) {
            Some(m) => format!("{}/{}", m.trim_end_matches('/'), self.file_name()),
            None => self.url.to_string(),
        }
    }
}

/// The last path segment of a URL.
fn url_file_name(url: &str) -> &str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    path.rsplit('/').next().unwrap_or(path)
}

/// The mirror to use: the kwarg, else the environment variable, else none.
pub fn mirror(kwarg: Option<&str>) -> Option<String> {
    kwarg
        .map(str::to_string)
        .or_else(|| std::env::var(MIRROR_ENV).ok())
        .filter(|m| !m.is_empty())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The md5 sum of a file, as lowercase hex.
pub fn md5_file(path: &Path) -> Result<String> {
    let mut reader = BufReader::with_capacity(
        1 << 20,
        File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
    );
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

fn part_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    dest.with_file_name(name)
}

/// `start` of a `Content-Range: bytes start-end/total` header.
fn content_range_start(value: &str) -> Option<u64> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    rest.split('-').next()?.trim().parse().ok()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        // Statuses are handled here: 206 (resume), 416 (nothing left to fetch), the rest errors.
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(120)))
        .build()
        .into()
}

/// Downloads `url` to `dest` unless `dest` is already there with the right sum: through
/// `dest.part`, resuming what an earlier run left there, checking the md5 sum before renaming.
pub fn fetch(url: &str, dest: &Path, md5: &str) -> Result<()> {
    if dest.is_file() {
        let sum = md5_file(dest)?;
        if sum == md5 {
            return Ok(());
        }
        return Err(data_error(format!(
            "{} exists but its md5 is {sum}, not the published {md5}; delete it to download it again",
            dest.display()
        )));
    }
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let part = part_path(dest);
    let mut offset = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    let mut request = agent().get(url);
    if offset > 0 {
        request = request.header("Range", format!("bytes={offset}-"));
    }
    let response = request
        .call()
        .map_err(|e| data_error(format!("cannot download {url}: {e}")))?;
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let length: Option<u64> = header("content-length").and_then(|v| v.parse().ok());
    let append = match status {
        206 => {
            let start = header("content-range").and_then(|v| content_range_start(&v));
            if start != Some(offset) {
                return Err(data_error(format!(
                    "cannot resume {url}: asked for bytes from {offset}, the server sent a range starting at {start:?}"
                )));
            }
            true
        }
        200 => {
            // The server ignored the Range header: start over.
            offset = 0;
            false
        }
        // Nothing after `offset`: the earlier run got everything; the sum decides.
        416 if offset > 0 => {
            return finish(&part, dest, url, md5);
        }
        _ => {
            return Err(data_error(format!(
                "cannot download {url}: the server answered HTTP {status}"
            )))
        }
    };
    let file = OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(&part)
        .with_context(|| format!("cannot write {}", part.display()))?;
    let mut writer = BufWriter::with_capacity(1 << 20, file);
    let bar =
        ProgressBar::with_draw_target(length.map(|l| l + offset), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} {bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(format!("downloading {}", url_file_name(url)));
    bar.set_position(offset);
    let mut reader = response.into_body().into_reader();
    let mut buf = vec![0u8; 1 << 16];
    let mut received = 0u64;
    let outcome: std::io::Result<()> = loop {
        match reader.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                if let Err(e) = writer.write_all(&buf[..n]) {
                    break Err(e);
                }
                received += n as u64;
                bar.inc(n as u64);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => break Err(e),
        }
    };
    // What arrived is kept in the .part file for the next run to resume from.
    let flushed = writer.flush();
    bar.finish_and_clear();
    flushed.with_context(|| format!("cannot write {}", part.display()))?;
    if let Err(e) = outcome {
        return Err(data_error(format!(
            "download of {url} stopped after {} bytes ({e}); run again to resume from {}",
            offset + received,
            part.display()
        )));
    }
    if let Some(l) = length {
        if received != l {
            return Err(data_error(format!(
                "download of {url} ended after {received} of {l} bytes; run again to resume from {}",
                part.display()
            )));
        }
    }
    finish(&part, dest, url, md5)
}

/// Checks the downloaded `.part` against the published sum and gives it its real name.
fn finish(part: &Path, dest: &Path, url: &str, md5: &str) -> Result<()> {
    let sum = md5_file(part)?;
    if sum != md5 {
        // A corrupt prefix would make every resume fail again: drop it.
        std::fs::remove_file(part).with_context(|| format!("cannot remove {}", part.display()))?;
        return Err(data_error(format!(
            "checksum mismatch for {url}: md5 {sum}, expected the published {md5}; \
             the download was deleted (check the URL or mirror, then run again)"
        )));
    }
    std::fs::rename(part, dest)
        .with_context(|| format!("cannot rename {} to {}", part.display(), dest.display()))
}

/// Unpacks a `.tgz`/`.tar.gz` or `.zip` archive into `into`: everything goes to a temporary folder
/// beside it first, then each top-level entry is renamed into place. Entries already present in
/// `into` are left as they are (an earlier extraction put them there whole).
pub fn extract(archive: &Path, into: &Path) -> Result<()> {
    let name = archive
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    std::fs::create_dir_all(into).with_context(|| format!("cannot create {}", into.display()))?;
    let prefix = format!(".{name}.extracting");
    // Leftovers of an extraction that was killed.
    for entry in std::fs::read_dir(into)
        .with_context(|| format!("cannot list {}", into.display()))?
        .flatten()
    {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            std::fs::remove_dir_all(entry.path())
                .with_context(|| format!("cannot remove {}", entry.path().display()))?;
        }
    }
    let temp = tempfile::Builder::new()
        .prefix(&prefix)
        .tempdir_in(into)
        .with_context(|| format!("cannot create a temporary folder in {}", into.display()))?;
    let file = File::open(archive).with_context(|| format!("cannot open {}", archive.display()))?;
    let lower = name.to_ascii_lowercase();
    let broken = |e: &dyn std::fmt::Display| {
        data_error(format!("cannot extract {}: {e}", archive.display()))
    };
    if lower.ends_with(".tgz") || lower.ends_with(".tar.gz") {
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(BufReader::new(file)));
        tar.set_preserve_permissions(false);
        // `unpack` refuses entries that would land outside the folder.
        tar.unpack(temp.path()).map_err(|e| broken(&e))?;
    } else if lower.ends_with(".zip") {
        let mut zip = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| broken(&e))?;
        zip.extract(temp.path()).map_err(|e| broken(&e))?;
    } else {
        return Err(data_error(format!(
            "cannot extract {}: not a .tgz, .tar.gz or .zip archive",
            archive.display()
        )));
    }
    for entry in std::fs::read_dir(temp.path())
        .with_context(|| format!("cannot list {}", temp.path().display()))?
    {
        let entry = entry?;
        let target = into.join(entry.file_name());
        if target.exists() {
            continue;
        }
        std::fs::rename(entry.path(), &target).with_context(|| {
            format!(
                "cannot move {} to {}",
                entry.path().display(),
                target.display()
            )
        })?;
    }
    Ok(())
}

/// What a dataset downloads: files into a folder, archives among them unpacked there.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub source: Source,
    /// Unpack the file after downloading it.
    pub unpack: bool,
    /// Present when this part of the dataset is already in place (skip the download).
    pub done_when: &'static str,
}

/// Fetches and unpacks every file of a plan into `dir`, skipping parts already in place.
pub fn run(dataset: &str, dir: &Path, plans: &[Plan], mirror: Option<&str>) -> Result<()> {
    for plan in plans {
        if dir.join(plan.done_when).exists() {
            continue;
        }
        let url = plan.source.url_with(mirror);
        let dest = dir.join(plan.source.file_name());
        eprintln!("{dataset}: downloading {url} to {}", dest.display());
        fetch(&url, &dest, plan.source.md5)?;
        if plan.unpack {
            eprintln!(
                "{dataset}: extracting {} into {}",
                dest.display(),
                dir.display()
            );
            extract(&dest, dir)?;
            if !dir.join(plan.done_when).exists() {
                return Err(data_error(format!(
                    "{dataset}: {} did not contain {} after extraction",
                    dest.display(),
                    plan.done_when
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::{BufRead, Write};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    /// A tiny HTTP/1.1 file server on 127.0.0.1 that honours `Range: bytes=N-`. The first
    /// `cut` responses promise the whole body but close the connection after `cut_at` bytes, as a
    /// dropped connection would. It records the Range header of every request.
    pub struct Server {
        pub base: String,
        pub ranges: Arc<Mutex<Vec<Option<String>>>>,
    }

    pub fn serve(files: Vec<(&'static str, Vec<u8>)>, cut: usize, cut_at: usize) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let ranges = Arc::new(Mutex::new(Vec::new()));
        let seen = ranges.clone();
        std::thread::spawn(move || {
            let mut served = 0;
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                let mut range = None;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if request.is_empty() {
                        request = line.clone();
                    } else if let Some((k, v)) = line.split_once(':') {
                        if k.eq_ignore_ascii_case("range") {
                            range = Some(v.trim().to_string());
                        }
                    }
                }
                seen.lock().unwrap().push(range.clone());
                let path = request.split_whitespace().nth(1).unwrap_or("/");
                let Some((_, body)) = files.iter().find(|(n, _)| path == format!("/{n}")) else {
                    let _ = stream.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                    continue;
                };
                let start: usize = range
                    .as_deref()
                    .and_then(|r| r.strip_prefix("bytes="))
                    .and_then(|r| r.trim_end_matches('-').parse().ok())
                    .unwrap_or(0);
                let total = body.len();
                let head = if start >= total && start > 0 {
                    let _ = stream.write_all(
                        format!("HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{total}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
                    );
                    continue;
                } else if start > 0 {
                    format!(
                        "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{}/{total}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        total - 1,
                        total - start
                    )
                } else {
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {total}\r\nConnection: close\r\n\r\n"
                    )
                };
                let _ = stream.write_all(head.as_bytes());
                let end = if served < cut {
                    (start + cut_at).min(total)
                } else {
                    total
                };
                served += 1;
                let _ = stream.write_all(&body[start..end]);
                let _ = stream.flush();
                let _ = stream.shutdown(std::net::Shutdown::Both);
            }
        });
        Server { base, ranges }
    }

    /// A gzipped tar archive of (path, contents).
    pub fn tgz(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        for (path, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, path, *data).unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap()
    }

    pub fn md5_of(bytes: &[u8]) -> String {
        hex(&Md5::digest(bytes))
    }

    /// Archive bytes that do not compress away, so a cut lands mid-stream.
    fn noise(n: usize) -> Vec<u8> {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn an_interrupted_download_resumes_with_a_range_request() {
        let noise = noise(300_000);
        let archive = tgz(&[
            ("pack/a.bin", &noise),
            ("pack/sub/b.txt", b"hello"),
            ("top.txt", b"t"),
        ]);
        let sum = md5_of(&archive);
        let server = serve(vec![("pack.tgz", archive.clone())], 1, 100_000);
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("pack.tgz");
        let url = format!("{}/pack.tgz", server.base);
        let e = fetch(&url, &dest, &sum).unwrap_err().to_string();
        assert!(e.contains("run again to resume"), "{e}");
        assert!(!dest.exists());
        let part = dir.path().join("pack.tgz.part");
        assert_eq!(std::fs::read(&part).unwrap(), archive[..100_000]);
        fetch(&url, &dest, &sum).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), archive);
        assert!(!part.exists());
        assert_eq!(
            *server.ranges.lock().unwrap(),
            vec![None, Some("bytes=100000-".to_string())]
        );
        // Already there with the right sum: nothing is fetched.
        fetch(&url, &dest, &sum).unwrap();
        assert_eq!(server.ranges.lock().unwrap().len(), 2);

        let into = dir.path().join("data");
        extract(&dest, &into).unwrap();
        assert_eq!(std::fs::read(into.join("pack/a.bin")).unwrap(), noise);
        assert_eq!(
            std::fs::read(into.join("pack/sub/b.txt")).unwrap(),
            b"hello"
        );
        assert_eq!(std::fs::read(into.join("top.txt")).unwrap(), b"t");
        let names: Vec<String> = std::fs::read_dir(&into)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "no temporary folder is left: {names:?}");
    }

    #[test]
    fn a_complete_part_file_is_finished_on_416() {
        let body = noise(1000);
        let sum = md5_of(&body);
        let server = serve(vec![("f.mat", body.clone())], 0, 0);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f.mat.part"), &body).unwrap();
        fetch(
            &format!("{}/f.mat", server.base),
            &dir.path().join("f.mat"),
            &sum,
        )
        .unwrap();
        assert_eq!(std::fs::read(dir.path().join("f.mat")).unwrap(), body);
    }

    #[test]
    fn sources_name_their_files_and_mirrors_replace_the_host() {
        let s = Source {
            url: "http://imagenet.stanford.edu/internal/car196/cars_annos.mat",
            md5: "b407c6086d669747186bd1d764ff9dbc",
        };
        assert_eq!(s.file_name(), "cars_annos.mat");
        assert_eq!(
            s.url_with(Some("http://127.0.0.1:9/data/")),
            "http://127.0.0.1:9/data/cars_annos.mat"
        );
        assert_eq!(s.url_with(None), s.url);
        assert_eq!(content_range_start("bytes 100-199/200"), Some(100));
        assert_eq!(content_range_start("items 1-2"), None);
    }
}
