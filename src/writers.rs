//! Whether another process still holds a file open for writing.
//!
//! A producer that pauses longer than `settle` looks finished; deleting or moving
//! its file then would send its later writes to an unlinked inode, lost. So before
//! the post-action deletes or moves a file, the engine asks here and postpones while
//! a writer holds it. And a file renamed into the outbox by someone else than its
//! writer (logrotate's `olddir`, while the service still logs into it until its
//! postrotate reopen) is not finished yet: the watcher asks here too.
//!
//! The kernel knows best: a read lease (`F_SETLEASE` with `F_RDLCK`) can be taken
//! only while no process has the file open for writing, and is released at once.
//! Leases need the file's owner or `CAP_LEASE` and a filesystem that supports them;
//! where the kernel refuses for such a reason, the fallback scans `/proc/*/fd` for a
//! descriptor of the same inode opened for writing (seeing only the processes this
//! one may inspect: the same user, or all of them as root).

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::sync::Once;

/// `Some(who)` if a process holds `path` open for writing (or writably mapped).
pub fn holding(path: &Path) -> io::Result<Option<String>> {
    let file = File::open(path)?;
    match try_read_lease(&file) {
        Ok(()) => Ok(None),
        // A writer has it open (or mapped): name it if the scan can.
        Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => Ok(Some(
            scan_proc(&file)?.unwrap_or_else(|| "another process".into()),
        )),
        // Not the owner, no CAP_LEASE, leases disabled or unsupported here.
        Err(_) => scan_proc(&file),
    }
}

/// Takes a read lease and gives it back at once.
fn try_read_lease(file: &File) -> io::Result<()> {
    // A lease break (a writer opening the file in the microseconds we hold it) is
    // signalled with SIGIO, whose default action ends the process. Handle it.
    static SIGIO_HANDLED: Once = Once::new();
    SIGIO_HANDLED.call_once(|| {
        let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let _ = signal_hook::flag::register(signal_hook::consts::SIGIO, flag);
    });
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own, with integer arguments only.
    let rc = unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_RDLCK) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    let rc = unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_UNLCK) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The fallback: a descriptor of the same inode, open for writing, in `/proc`.
fn scan_proc(file: &File) -> io::Result<Option<String>> {
    let meta = file.metadata()?;
    let (dev, ino) = (meta.dev(), meta.ino());
    let me = std::process::id();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Ok(None); // no /proc: nothing more can be known
    };
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        // Other users' processes are hidden from us; skip what cannot be read.
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            // `metadata` follows the magic link to the open file itself, even if
            // it was renamed or unlinked since.
            let same = std::fs::metadata(fd.path()).is_ok_and(|m| m.dev() == dev && m.ino() == ino);
            if same && opened_for_writing(pid, &fd.file_name()) {
                let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
                return Ok(Some(format!("process {pid} ({})", comm.trim())));
            }
        }
    }
    Ok(None)
}

/// Reads the `flags:` line of `/proc/<pid>/fdinfo/<fd>` (octal `open(2)` flags).
fn opened_for_writing(pid: u32, fd: &std::ffi::OsStr) -> bool {
    let path = Path::new("/proc")
        .join(pid.to_string())
        .join("fdinfo")
        .join(fd);
    let Ok(info) = std::fs::read_to_string(path) else {
        return false;
    };
    info.lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .and_then(|v| i64::from_str_radix(v.trim(), 8).ok())
        .is_some_and(|flags| flags & i64::from(libc::O_ACCMODE) != i64::from(libc::O_RDONLY))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_write_descriptor_is_seen_and_its_closing_too() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log");
        std::fs::write(&path, b"first").expect("write");
        assert_eq!(holding(&path).expect("check"), None);
        let reader = File::open(&path).expect("open for reading");
        assert_eq!(holding(&path).expect("check"), None, "readers do not count");
        let mut writer = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open for writing");
        writer.write_all(b", more").expect("write");
        assert!(holding(&path).expect("check").is_some());
        drop(writer);
        drop(reader);
        // Another test of this process may fork a child while `writer` is open; the
        // child holds a copy until its exec closes it (O_CLOEXEC), so the closing is
        // seen within moments, not always at once.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while holding(&path).expect("check").is_some() {
            assert!(
                std::time::Instant::now() < deadline,
                "the closing was never seen"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    #[test]
    fn the_proc_scan_finds_another_process_writing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log");
        std::fs::write(&path, b"x").expect("write");
        // A child holding the file open for appending on descriptor 3.
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg("exec 3>>\"$1\"; echo ready; exec sleep 30")
            .arg("sh")
            .arg(&path)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn sh");
        let mut ready = String::new();
        let stdout = child.stdout.take().expect("stdout");
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut ready)
            .expect("ready line");
        let file = File::open(&path).expect("open");
        let found = scan_proc(&file).expect("scan");
        let _ = child.kill();
        let _ = child.wait();
        let who = found.expect("the child is writing");
        assert!(who.contains(&child.id().to_string()), "{who}");
        assert_eq!(scan_proc(&file).expect("scan"), None, "gone with the child");
    }
}
