use super::*;
use std::sync::Arc;

/// A zip of `(name, content)` entries, with `symlinks` as `(name, target)` link entries.
fn zip_of(files: &[(&str, &[u8])], symlinks: &[(&str, &str)]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, content) in files {
        writer.start_file(*name, options).unwrap();
        writer.write_all(content).unwrap();
    }
    for (name, target) in symlinks {
        writer.add_symlink(*name, *target, options).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

#[test]
fn a_zip_becomes_its_files_with_directories_and_symlinks_inside_it() {
    let data = zip_of(
        &[
            ("index.js", b"exports.handler = 1"),
            ("node_modules/lib/package.json", b"{\"main\": \"main.js\"}"),
            ("node_modules/lib/main.js", b"module.exports = 2"),
        ],
        &[
            ("node_modules/.bin/lib", "../lib/main.js"),
            ("alias", "node_modules/lib"),
        ],
    );
    let package = Package::from_zip(&data, Limits::ORIGIN).unwrap();
    assert_eq!(package.file("index.js").unwrap().as_ref(), b"exports.handler = 1");
    assert_eq!(
        package.file("node_modules/.bin/lib").unwrap().as_ref(),
        b"module.exports = 2"
    );
    assert_eq!(package.file("alias/main.js").unwrap().as_ref(), b"module.exports = 2");
    assert!(package.is_dir("node_modules/lib"));
    assert!(!package.is_dir("node_modules/li"));
    assert_eq!(package.read_dir("node_modules").unwrap(), vec![".bin", "lib"]);
    assert_eq!(package.read_dir("").unwrap(), vec!["alias", "index.js", "node_modules"]);
    assert_eq!(package.zipped_size(), data.len() as u64);
}

#[test]
fn zips_escaping_the_package_are_refused() {
    for name in ["../evil.js", "a/../../evil.js", "/etc/passwd", "..\\evil.js"] {
        let data = zip_of(&[(name, b"x"), ("index.js", b"y")], &[]);
        let refused = Package::from_zip(&data, Limits::ORIGIN);
        assert!(
            matches!(refused, Err(PackageError::Escapes(_)) | Err(PackageError::Zip(_))),
            "{name}: {refused:?}"
        );
    }
    for target in ["../../etc/passwd", "/etc/passwd", "a/../../x"] {
        let data = zip_of(&[("index.js", b"y")], &[("link", target)]);
        assert!(
            matches!(
                Package::from_zip(&data, Limits::ORIGIN),
                Err(PackageError::SymlinkEscapes { .. })
            ),
            "{target}"
        );
    }
}

#[test]
fn zip_bombs_stop_at_the_unzipped_limit_whatever_the_headers_say() {
    // 64 MiB of zeros deflates to about 64 KiB.
    let zeros = vec![0u8; 64 << 20];
    let data = zip_of(&[("bomb.bin", &zeros)], &[]);
    assert!(data.len() < 1 << 20);
    let small = Limits {
        unzipped: 16 << 20,
        ..Limits::ORIGIN
    };
    assert_eq!(
        Package::from_zip(&data, small),
        Err(PackageError::UnzippedTooLarge { limit: 16 << 20 })
    );
    let few = Limits {
        files: 2,
        ..Limits::ORIGIN
    };
    let many = zip_of(&[("a", b"1"), ("b", b"2"), ("c", b"3")], &[]);
    assert_eq!(
        Package::from_zip(&many, few),
        Err(PackageError::TooManyFiles { limit: 2 })
    );
}

#[test]
fn viewer_events_take_packages_up_to_one_megabyte_zipped() {
    // Random bytes do not compress: 1.5 MiB of them make a zip over the viewer limit.
    let noise: Vec<u8> = (0..(3 << 19)).map(|_| rand::random::<u8>()).collect();
    let data = zip_of(&[("index.js", b"exports.handler = 1"), ("data.bin", &noise)], &[]);
    let refused = Package::from_zip(&data, Limits::VIEWER).unwrap_err();
    assert!(
        matches!(refused, PackageError::ZippedTooLarge { limit, .. } if limit == 1 << 20),
        "{refused}"
    );
    let package = Package::from_zip(&data, Limits::ORIGIN).unwrap();
    assert!(package.check_zipped(Limits::VIEWER, "for viewer events").is_err());
    assert!(Package::from_zip(b"PK\x03\x04 not really", Limits::ORIGIN).is_err());
}

/// A directory is deflated to check its zipped size only when it might not fit: the bound
/// used instead must never be below the real archive's size.
#[test]
fn the_zipped_size_bound_is_never_below_the_archive() {
    let noise: Vec<u8> = (0..(1 << 20) + 7).map(|_| rand::random::<u8>()).collect();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.js"), "exports.handler = 1").unwrap();
    std::fs::write(dir.path().join("noise.bin"), &noise).unwrap();
    for n in 0..200 {
        std::fs::write(dir.path().join(format!("tiny-file-with-a-long-name-{n}.txt")), "x").unwrap();
    }
    let package = Package::from_dir(dir.path(), Limits::ORIGIN).unwrap();
    assert!(package.stored_zip_bound() >= package.to_zip().len() as u64);
    // 1 MiB of noise does not fit the viewer's 1 MiB zipped, bound or not.
    assert!(Package::from_dir(dir.path(), Limits::VIEWER).is_err());
    std::fs::remove_file(dir.path().join("noise.bin")).unwrap();
    assert!(Package::from_dir(dir.path(), Limits::VIEWER).is_ok());
}

#[test]
fn a_directory_is_read_whole_and_its_symlinks_may_not_leave_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("lib")).unwrap();
    std::fs::write(dir.path().join("index.mjs"), "export const handler = 1").unwrap();
    std::fs::write(dir.path().join("lib/data.json"), "{}").unwrap();
    std::os::unix::fs::symlink("../lib/data.json", dir.path().join("lib/again.json")).unwrap();
    let package = Package::from_dir(dir.path(), Limits::ORIGIN).unwrap();
    assert_eq!(
        package.paths().collect::<Vec<_>>(),
        vec!["index.mjs", "lib/again.json", "lib/data.json"]
    );
    assert_eq!(package.file("lib/again.json").unwrap().as_ref(), b"{}");
    // The same files make the same digest, read from a directory or from its zip.
    let rezipped = Package::from_zip(&package.to_zip(), Limits::ORIGIN).unwrap();
    assert_eq!(rezipped.digest(), package.digest());

    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "s").unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("leak")).unwrap();
    assert!(matches!(
        Package::from_dir(dir.path(), Limits::ORIGIN),
        Err(PackageError::SymlinkEscapes { .. })
    ));
}

#[test]
fn the_handler_names_the_entry_module_as_lambda_finds_it() {
    let data = zip_of(
        &[
            ("dist/app.mjs", b"export const handler = 1"),
            ("index.cjs", b""),
            ("index.js", b""),
        ],
        &[],
    );
    let package = Package::from_zip(&data, Limits::ORIGIN).unwrap();
    assert_eq!(package.entry("dist/app.handler").unwrap(), "dist/app.mjs");
    assert_eq!(package.entry("index.handler").unwrap(), "index.js");
    assert!(package.entry("handler").unwrap_err().contains("file.export"));
    assert!(package
        .entry("main.handler")
        .unwrap_err()
        .contains("Cannot find module 'main'"));
    // One file is the module whatever the handler's file part says.
    assert_eq!(Package::single("f.mjs", "").entry("index.handler").unwrap(), "f.mjs");
}

#[test]
fn the_code_tree_puts_the_package_at_var_task_and_layers_at_opt() {
    let package = Arc::new(Package::single("index.js", "x"));
    let first = Arc::new(
        Package::from_zip(
            &zip_of(
                &[("nodejs/node_modules/a/index.js", b"1"), ("shared.txt", b"first")],
                &[],
            ),
            Limits::ORIGIN,
        )
        .unwrap(),
    );
    let second = Arc::new(Package::from_zip(&zip_of(&[("shared.txt", b"second")], &[]), Limits::ORIGIN).unwrap());
    let tree = CodeTree::new(package, vec![first, second]);
    assert_eq!(tree.file("/var/task/index.js").unwrap().as_ref(), b"x");
    assert_eq!(tree.file("/var/task/./x/../index.js").unwrap().as_ref(), b"x");
    assert_eq!(tree.file("/opt/nodejs/node_modules/a/index.js").unwrap().as_ref(), b"1");
    assert_eq!(
        tree.file("/opt/shared.txt").unwrap().as_ref(),
        b"second",
        "a later layer wins"
    );
    assert_eq!(tree.entry("/opt/nodejs"), Some(Entry::Dir));
    assert_eq!(tree.entry("/etc/passwd"), None);
    assert_eq!(tree.entry("/var/task/../../etc/passwd"), None);
    assert_eq!(tree.read_dir("/opt").unwrap(), vec!["nodejs", "shared.txt"]);
    assert_eq!(tree.read_dir("/").unwrap(), vec!["opt", "var"]);
}
