//! Crafted archives, one per attack: each must be refused before it writes anything
//! outside the staging directory, and a plain one must unpack with safe modes.

use super::*;
use std::io::Write;
use std::os::unix::fs::MetadataExt;

const SECRET: &[u8] = b"the agent's private key: 0123456789abcdef";

/// A state directory with a secret in it, and an empty staging directory.
struct Scene {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    state: PathBuf,
    staging: PathBuf,
}

fn scene() -> Scene {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().to_owned();
    let state = root.join("state");
    fs::create_dir_all(&state).expect("state");
    fs::write(state.join("agent.key"), SECRET).expect("key");
    let staging = root.join("staging");
    fs::create_dir_all(&staging).expect("staging");
    Scene {
        _tmp: tmp,
        root,
        state,
        staging,
    }
}

impl Scene {
    /// No file anywhere under the scene, except the key itself, holds the secret, and
    /// the state directory holds just the key.
    fn assert_secret_stayed(&self) {
        fn walk(dir: &Path, key: &Path) {
            for e in fs::read_dir(dir).expect("read_dir").flatten() {
                let p = e.path();
                let m = fs::symlink_metadata(&p).expect("meta");
                if m.is_dir() {
                    walk(&p, key);
                } else if m.is_file() && p != key {
                    let bytes = fs::read(&p).expect("read");
                    assert!(
                        !bytes.windows(SECRET.len()).any(|w| w == SECRET),
                        "the secret was copied to {}",
                        p.display()
                    );
                }
            }
        }
        walk(&self.root, &self.state.join("agent.key"));
        let names: Vec<_> = fs::read_dir(&self.state)
            .expect("state")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("agent.key")]);
    }
}

/// A gzipped tar built from raw headers, so that names and types a well-behaved
/// builder refuses (absolute, `..`) can be written.
fn tar_gz(path: &Path, entries: &[(&str, tar::EntryType, &[u8], &str)]) {
    let gz = flate2::write::GzEncoder::new(
        File::create(path).expect("create"),
        flate2::Compression::fast(),
    );
    let mut b = tar::Builder::new(gz);
    for (name, kind, data, link) in entries {
        let mut h = tar::Header::new_old();
        let raw = &mut h.as_old_mut().name;
        raw[..name.len()].copy_from_slice(name.as_bytes());
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        if !link.is_empty() {
            h.set_link_name(link).expect("link name");
        }
        h.set_cksum();
        b.append(&h, *data).expect("append");
    }
    b.into_inner().expect("tar").finish().expect("gz");
}

fn zip_file(path: &Path, build: impl FnOnce(&mut zip::ZipWriter<File>)) {
    let mut z = zip::ZipWriter::new(File::create(path).expect("create"));
    build(&mut z);
    z.finish().expect("finish");
}

fn opts() -> zip::write::SimpleFileOptions {
    zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated)
}

fn refused_as(r: Result<u64, UnpackError>, want: &str) {
    match r {
        Err(UnpackError::Refused { why, .. }) => assert!(why.contains(want), "{why}"),
        other => panic!("expected a refusal ({want}), got {other:?}"),
    }
}

#[test]
fn a_plain_archive_unpacks_with_safe_modes_whatever_it_says() {
    let s = scene();
    let a = s.root.join("model.tar.gz");
    tar_gz(
        &a,
        &[
            ("model/", tar::EntryType::Directory, b"", ""),
            (
                "model/am/final.mdl",
                tar::EntryType::Regular,
                b"weights",
                "",
            ),
            (
                "./model/conf/model.conf",
                tar::EntryType::Regular,
                b"--x\n",
                "",
            ),
        ],
    );
    assert_eq!(
        archive(&a, &s.staging, Limits::default()).expect("unpack"),
        11
    );
    let f = s.staging.join("model/am/final.mdl");
    assert_eq!(fs::read(&f).expect("read"), b"weights");
    assert_eq!(fs::metadata(&f).expect("meta").mode() & 0o7777, 0o644);
    let d = s.staging.join("model/conf");
    assert_eq!(fs::metadata(&d).expect("meta").mode() & 0o7777, 0o755);

    let z = s.root.join("model.zip");
    zip_file(&z, |z| {
        z.start_file("m/conf/model.conf", opts().unix_permissions(0o4777))
            .expect("start");
        z.write_all(b"--y\n").expect("write");
    });
    let into = s.root.join("zip-staging");
    fs::create_dir(&into).expect("dir");
    archive(&z, &into, Limits::default()).expect("unzip");
    let f = into.join("m/conf/model.conf");
    assert_eq!(
        fs::metadata(&f).expect("meta").mode() & 0o7777,
        0o644,
        "no setuid or world-writable file, whatever the archive asks"
    );
}

#[test]
fn links_in_a_tar_are_refused_and_nothing_is_copied_through_them() {
    let s = scene();
    let key = s.state.join("agent.key");
    let key = key.to_str().expect("utf-8");
    for (kind, why) in [
        (tar::EntryType::Symlink, "symbolic link"),
        (tar::EntryType::Link, "hard link"),
    ] {
        let a = s.root.join("links.tar.gz");
        tar_gz(
            &a,
            &[
                ("model/am/final.mdl", tar::EntryType::Regular, b"w", ""),
                ("model/conf/leak", kind, b"", key),
                ("model/state", kind, b"", s.state.to_str().expect("utf-8")),
            ],
        );
        refused_as(archive(&a, &s.staging, Limits::default()), why);
        assert!(!s.staging.join("model/conf/leak").exists());
        s.assert_secret_stayed();
        fs::remove_dir_all(&s.staging).expect("clean");
        fs::create_dir(&s.staging).expect("again");
    }
}

#[test]
fn devices_pipes_absolute_paths_and_dot_dots_are_refused() {
    let s = scene();
    let outside = s.root.join("outside");
    let absolute = format!("{}/evil", s.state.display());
    for (name, kind, why) in [
        ("model/dev", tar::EntryType::Char, "device"),
        ("model/disk", tar::EntryType::Block, "device"),
        ("model/pipe", tar::EntryType::Fifo, "pipe"),
        (absolute.as_str(), tar::EntryType::Regular, "absolute"),
        ("../outside", tar::EntryType::Regular, ".."),
        ("model/../../outside", tar::EntryType::Regular, ".."),
    ] {
        let a = s.root.join("bad.tar.gz");
        tar_gz(&a, &[(name, kind, b"x", "")]);
        refused_as(archive(&a, &s.staging, Limits::default()), why);
        assert!(!outside.exists(), "{name} escaped");
        assert!(
            !s.state.join("evil").exists(),
            "{name} wrote into the state"
        );
    }
    s.assert_secret_stayed();
}

#[test]
fn zip_slip_zip_links_and_duplicates_are_refused() {
    let s = scene();
    let z = s.root.join("slip.zip");
    zip_file(&z, |z| {
        z.start_file("../outside", opts()).expect("start");
        z.write_all(b"x").expect("write");
    });
    refused_as(archive(&z, &s.staging, Limits::default()), "..");
    assert!(!s.root.join("outside").exists());

    let z = s.root.join("link.zip");
    let key = s.state.join("agent.key");
    zip_file(&z, |z| {
        z.add_symlink("model/conf/leak", key.to_str().expect("utf-8"), opts())
            .expect("symlink");
    });
    refused_as(archive(&z, &s.staging, Limits::default()), "symbolic link");

    let a = s.root.join("twice.tar.gz");
    tar_gz(
        &a,
        &[
            ("model/x", tar::EntryType::Regular, b"first", ""),
            ("model/x", tar::EntryType::Regular, b"second", ""),
        ],
    );
    let into = s.root.join("twice");
    fs::create_dir(&into).expect("dir");
    refused_as(archive(&a, &into, Limits::default()), "twice");
    assert_eq!(fs::read(into.join("model/x")).expect("read"), b"first");
    s.assert_secret_stayed();
}

#[test]
fn bombs_stop_at_the_limit_without_filling_the_disk() {
    let s = scene();
    // 8 MiB of zeros compress to a few kilobytes.
    let zeros = vec![0u8; 8 << 20];
    let a = s.root.join("bomb.tar.gz");
    tar_gz(&a, &[("model/zeros", tar::EntryType::Regular, &zeros, "")]);
    assert!(fs::metadata(&a).expect("meta").len() < 100_000);
    let limits = Limits {
        max_bytes: 1 << 20,
        max_entries: 100,
    };
    assert!(matches!(
        archive(&a, &s.staging, limits),
        Err(UnpackError::TooLarge { limit }) if limit == 1 << 20
    ));
    let written = fs::metadata(s.staging.join("model/zeros"))
        .expect("meta")
        .len();
    assert!(written <= (1 << 20) + 1, "wrote {written} bytes");

    let z = s.root.join("many.zip");
    zip_file(&z, |z| {
        for i in 0..101 {
            z.start_file(format!("m/{i}"), opts()).expect("start");
        }
    });
    let into = s.root.join("many");
    fs::create_dir(&into).expect("dir");
    assert!(matches!(
        archive(&z, &into, limits),
        Err(UnpackError::TooManyEntries { limit: 100 })
    ));
    assert_eq!(
        fs::read_dir(&into).expect("read").count(),
        0,
        "checked first"
    );
}

#[test]
fn a_directory_source_with_a_link_is_refused_not_followed() {
    let s = scene();
    let src = s.root.join("src/model");
    fs::create_dir_all(src.join("conf")).expect("dirs");
    fs::write(src.join("conf/model.conf"), b"--x\n").expect("conf");
    std::os::unix::fs::symlink(s.state.join("agent.key"), src.join("conf/leak")).expect("link");
    refused_as(
        directory(&src, &s.staging, Limits::default()),
        "symbolic link",
    );
    s.assert_secret_stayed();
    fs::remove_file(src.join("conf/leak")).expect("rm");
    // A hard link is the key itself under another name: refused too.
    fs::hard_link(s.state.join("agent.key"), src.join("conf/leak")).expect("hard link");
    fs::remove_dir_all(&s.staging).expect("clean");
    fs::create_dir(&s.staging).expect("again");
    refused_as(directory(&src, &s.staging, Limits::default()), "hard link");
    fs::remove_file(src.join("conf/leak")).expect("rm");
    s.assert_secret_stayed();
    fs::remove_dir_all(&s.staging).expect("clean");
    fs::create_dir(&s.staging).expect("again");
    assert_eq!(
        directory(&src, &s.staging, Limits::default()).expect("copy"),
        4
    );
}

#[test]
fn files_that_are_no_archive_are_named_as_such() {
    let s = scene();
    let t = s.root.join("model.tar.gz");
    fs::write(&t, b"hello").expect("write");
    assert!(matches!(
        archive(&t, &s.staging, Limits::default()),
        Err(UnpackError::UnknownKind)
    ));
    let gz = s.root.join("cut.tar.gz");
    tar_gz(&gz, &[("m/x", tar::EntryType::Regular, &[7u8; 5000], "")]);
    let bytes = fs::read(&gz).expect("read");
    fs::write(&gz, &bytes[..bytes.len() / 2]).expect("cut");
    let into = s.root.join("cut");
    fs::create_dir(&into).expect("dir");
    assert!(matches!(
        archive(&gz, &into, Limits::default()),
        Err(UnpackError::Format { .. } | UnpackError::Io { .. })
    ));
}

#[test]
fn ownership_follows_the_destination_when_root_installs() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root to give files away");
        return;
    }
    let s = scene();
    fs::write(s.staging.join("f"), b"x").expect("write");
    chown_tree(&s.staging, 65534, 65534).expect("chown");
    let m = fs::metadata(s.staging.join("f")).expect("meta");
    assert_eq!((m.uid(), m.gid()), (65534, 65534));
}

#[test]
fn zip_absolute_paths_devices_and_bombs_are_refused_like_tar_ones() {
    let s = scene();
    let absolute = format!("{}/evil", s.state.display());
    let z = s.root.join("absolute.zip");
    zip_file(&z, |z| {
        z.start_file(absolute.as_str(), opts()).expect("start");
        z.write_all(b"x").expect("write");
    });
    refused_as(archive(&z, &s.staging, Limits::default()), "absolute");
    assert!(!s.state.join("evil").exists());

    let z = s.root.join("device.zip");
    zip_file(&z, |z| {
        // A character device's mode, as Unix zip tools record it.
        let device = opts().external_attributes(0o020_644 << 16);
        z.start_file("model/tty", device).expect("start");
    });
    refused_as(archive(&z, &s.staging, Limits::default()), "device");

    let limits = Limits {
        max_bytes: 1 << 20,
        max_entries: 100,
    };
    let z = s.root.join("bomb.zip");
    zip_file(&z, |z| {
        z.start_file("model/zeros", opts()).expect("start");
        z.write_all(&vec![0u8; 8 << 20]).expect("write");
    });
    assert!(fs::metadata(&z).expect("meta").len() < 100_000);
    let into = s.root.join("bomb");
    fs::create_dir(&into).expect("dir");
    assert!(matches!(
        archive(&z, &into, limits),
        Err(UnpackError::TooLarge { limit }) if limit == 1 << 20
    ));
    let written = fs::metadata(into.join("model/zeros")).map_or(0, |m| m.len());
    assert!(written <= (1 << 20) + 1, "wrote {written} bytes");

    // Entry counts bound tar archives too (a tar has no directory to count first).
    let names: Vec<String> = (0..101).map(|i| format!("m/{i}")).collect();
    let entries: Vec<_> = names
        .iter()
        .map(|n| (n.as_str(), tar::EntryType::Regular, &b""[..], ""))
        .collect();
    let a = s.root.join("many.tar.gz");
    tar_gz(&a, &entries);
    let into = s.root.join("many");
    fs::create_dir(&into).expect("dir");
    assert!(matches!(
        archive(&a, &into, limits),
        Err(UnpackError::TooManyEntries { limit: 100 })
    ));
    s.assert_secret_stayed();
}
