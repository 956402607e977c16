//! Downloads through the datasets' own plans: each dataset's archive, sum and folder, against a
//! local HTTP server. These tests sit beside `download` (not inside it) so that the download module
//! never depends on the datasets that use it.

use super::download::tests::{md5_of, serve, tgz};
use super::download::{fetch, run, Plan, Source};
use std::io::Write;

#[test]
fn a_checksum_mismatch_keeps_nothing_broken() {
    let archive = tgz(&[("CUB_200_2011/images/001.A/a.jpg", b"not the real archive")]);
    let server = serve(vec![("CUB_200_2011.tgz", archive)], 0, 0);
    let dir = tempfile::tempdir().unwrap();
    // Through the dataset's own download, pointed at the local server as a mirror.
    let e = crate::datasets::cub200::download(dir.path(), Some(&server.base))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("checksum mismatch") && e.contains("97eceeb196236b17998738112f37df78"),
        "{e}"
    );
    let folder = dir.path().join("cub2011");
    let left: Vec<_> = std::fs::read_dir(&folder).unwrap().collect();
    assert!(left.is_empty(), "nothing is left behind: {left:?}");
    assert!(crate::datasets::cub200::list(dir.path()).is_err());
    // The other datasets fetch their own files, into their own folders, with their own sums.
    let wrong = vec![
        ("car_ims.tgz", tgz(&[("car_ims/000001.jpg", b"x")])),
        ("Stanford_Online_Products.zip", b"PK not a zip".to_vec()),
    ];
    let server = serve(wrong, 0, 0);
    let e = crate::datasets::cars196::download(dir.path(), Some(&server.base))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("car_ims.tgz") && e.contains("d5c8f0aa497503f355e17dc7886c3f14"),
        "{e}"
    );
    assert!(!dir.path().join("cars196/car_ims").exists());
    let e = crate::datasets::stanford_online_products::download(dir.path(), Some(&server.base))
        .unwrap_err()
        .to_string();
    assert!(e.contains("7f73d41a2f44250d4779881525aea32e"), "{e}");
    assert!(!dir
        .path()
        .join("Stanford_Online_Products.zip.part")
        .exists());
    assert!(!dir.path().join("Stanford_Online_Products").exists());
    // An HTTP error names the URL and status.
    let e = fetch(
        &format!("{}/missing.zip", server.base),
        &dir.path().join("m.zip"),
        "0",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("/missing.zip") && e.contains("HTTP 404"), "{e}");
}

#[test]
fn a_plan_downloads_unpacks_and_then_skips() {
    // A zip archive in SOP's layout, fetched and unpacked by a plan like SOP's.
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("Stanford_Online_Products/Ebay_train.txt", options)
        .unwrap();
    zip.write_all(b"image_id class_id super_class_id path\n1 1 1 a_final/1.JPG\n")
        .unwrap();
    zip.start_file("Stanford_Online_Products/Ebay_test.txt", options)
        .unwrap();
    zip.write_all(b"image_id class_id super_class_id path\n2 2 1 a_final/2.JPG\n")
        .unwrap();
    for f in ["1", "2"] {
        zip.start_file(format!("Stanford_Online_Products/a_final/{f}.JPG"), options)
            .unwrap();
        zip.write_all(b"jpeg").unwrap();
    }
    let bytes = zip.finish().unwrap().into_inner();
    let sum: &'static str = Box::leak(md5_of(&bytes).into_boxed_str());
    let server = serve(vec![("Stanford_Online_Products.zip", bytes)], 0, 0);
    let plan = [Plan {
        source: Source {
            url: "http://unused.invalid/cs/Stanford_Online_Products.zip",
            md5: sum,
        },
        unpack: true,
        done_when: "Stanford_Online_Products/Ebay_test.txt",
    }];
    let dir = tempfile::tempdir().unwrap();
    run(
        "StanfordOnlineProducts",
        dir.path(),
        &plan,
        Some(&server.base),
    )
    .unwrap();
    let listing = crate::datasets::stanford_online_products::list(dir.path()).unwrap();
    assert_eq!(listing.labels, vec![vec![0, 1], vec![0, 0]]);
    run(
        "StanfordOnlineProducts",
        dir.path(),
        &plan,
        Some(&server.base),
    )
    .unwrap();
    assert_eq!(
        server.ranges.lock().unwrap().len(),
        1,
        "in place: not fetched again"
    );
}
