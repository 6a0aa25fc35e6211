//! Fuzzes the mapping of request targets to files: `translate_path` (translate, then
//! resolve symlinks) and what the file handler opens, with `openat2` and in user space,
//! under a directory made once with files, a subdirectory and symlinks in and out of it.
//! Whatever the target, nothing outside the directory is named or opened, and the three
//! ways agree.
#![no_main]

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use socketserver::http::fuzz::{open_path, translate_path};

const PREFIX: &str = "socketserver-fuzz-path-";

/// The served directory (canonical), made once per process.
fn root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let tmp = std::env::temp_dir();
        remove_stale(&tmp);
        let base = tmp.join(format!("{PREFIX}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let root = base.join("root");
        for dir in ["root/sub/deep", "root/empty", "outside"] {
            std::fs::create_dir_all(base.join(dir)).unwrap();
        }
        for file in [
            "root/index.html",
            "root/a.txt",
            "root/a b.txt",
            "root/中.txt",
            "root/sub/b.txt",
            "root/sub/deep/c.txt",
            "secret",
            "outside/x.txt",
        ] {
            std::fs::write(base.join(file), file).unwrap();
        }
        let links: [(&Path, &str); 13] = [
            (Path::new("../secret"), "root/out"),
            (&base.join("secret"), "root/out_abs"),
            (Path::new("../outside"), "root/outdir"),
            (Path::new("../../outside/x.txt"), "root/sub/out"),
            (Path::new("sub/b.txt"), "root/in"),
            (&root.join("sub"), "root/in_abs"),
            (Path::new(".."), "root/up"),
            (Path::new("../.."), "root/sub/up"),
            (Path::new("."), "root/self"),
            (Path::new("loop"), "root/loop"),
            (Path::new("missing"), "root/dangling"),
            (Path::new("/"), "root/fs"),
            (Path::new("/proc/self/cwd"), "root/cwd"),
        ];
        for (to, from) in links {
            symlink(to, base.join(from)).unwrap();
        }
        std::fs::canonicalize(root).unwrap()
    })
}

/// Removes the directories of earlier runs whose process is gone.
fn remove_stale(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let root = root();
    let target = String::from_utf8_lossy(data);
    let translated = translate_path(root, &target);
    let kernel = open_path(root, &target, false);
    let user_space = open_path(root, &target, true);
    for (how, result) in [
        ("translate_path", &translated),
        ("openat2", &kernel),
        ("user space", &user_space),
    ] {
        match result {
            Ok(path) => assert!(
                path.starts_with(root),
                "{how} of {target:?} left the root: {}",
                path.display()
            ),
            Err(status) => assert!(
                [400, 403, 404].contains(status),
                "{how} of {target:?}: {status}"
            ),
        }
    }
    assert_eq!(
        kernel, user_space,
        "openat2 and user space differ on {target:?}"
    );
    if let (Ok(named), Ok(opened)) = (&translated, &kernel) {
        assert_eq!(
            named, opened,
            "translate_path and open differ on {target:?}"
        );
    }
});
