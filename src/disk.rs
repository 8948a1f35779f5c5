//! The filesystem under a path: free space and whether it is mounted read-only.
//! `status` reports the journal's (a daemon that cannot write its journal cannot
//! say so in it), and a read-only journal is opened as immutable.

use std::path::Path;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Disk {
    pub free_bytes: u64,
    /// The filesystem's whole size.
    pub size_bytes: u64,
    pub read_only: bool,
}

impl Disk {
    /// `statvfs` of the folder that holds `file`; `None` if it cannot be read.
    pub fn of(file: &Path) -> Option<Disk> {
        use std::os::unix::ffi::OsStrExt;
        let dir = match file.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
        let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
        // SAFETY: a NUL-terminated path and a buffer of the right type; `st` is
        // read only when the call succeeded.
        let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
        if rc != 0 {
            return None;
        }
        // SAFETY: statvfs returned 0, so it filled `st`.
        let st = unsafe { st.assume_init() };
        Some(Disk {
            #[allow(clippy::unnecessary_cast)] // the field types differ by platform
            free_bytes: (st.f_bavail as u64).saturating_mul(st.f_frsize as u64),
            #[allow(clippy::unnecessary_cast)]
            size_bytes: (st.f_blocks as u64).saturating_mul(st.f_frsize as u64),
            read_only: st.f_flag & libc::ST_RDONLY != 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_temp_folder_has_space_and_is_writable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = Disk::of(&dir.path().join("journal.db")).expect("statvfs");
        assert!(!d.read_only);
        assert!(d.free_bytes > 0);
        assert_eq!(Disk::of(Path::new("/no/such/folder/x")), None);
    }
}
