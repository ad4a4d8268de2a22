//! A real filesystem that fills: a small tmpfs the test mounts (which needs root, as CI has).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

/// A tmpfs of `mib` MiB mounted at a new temporary directory, unmounted on drop.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    pub fn mount(mib: u64) -> Tmpfs {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "this test mounts a tmpfs to fill it, which needs root: run the suite as root (CI does)"
        );
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount(8) from util-linux");
        assert!(status.success(), "mount -t tmpfs failed");
        Tmpfs { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

pub fn available_bytes(path: &Path) -> u64 {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: statvfs writes into the struct we pass; the path is a valid C string.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut stat) }, 0);
    stat.f_bavail * stat.f_frsize
}

/// Fills `dir`'s filesystem with a file `name` until `leave` bytes are free (or fewer); returns
/// its path.
pub fn fill(dir: &Path, name: &str, leave: u64) -> std::path::PathBuf {
    use std::io::Write;
    let path = dir.join(name);
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![0x5a_u8; 64 * 1024];
    while available_bytes(dir) > leave {
        let room = usize::try_from(available_bytes(dir) - leave).unwrap_or(usize::MAX);
        if file.write_all(&chunk[..room.min(chunk.len())]).is_err() {
            break;
        }
        file.sync_all().unwrap();
    }
    path
}
