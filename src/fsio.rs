//! Writing output files without clobbering what the path names.
//!
//! - A regular file (or a path that does not exist yet) is replaced atomically: the data goes
//!   to a temporary file in the same folder, is flushed to disk, and the temporary file is
//!   renamed over the path; on an error it is removed, so readers never see half a file.
//! - A symbolic link is followed: its target is written (atomically when it is a regular file)
//!   and the link stays a link.
//! - A FIFO, a character device or a socket (`/dev/stdout`, `/dev/null`, a named pipe) is
//!   opened and written in place, streamed.
//! - `-` is standard output.
//! - A folder is refused.
//!
//! Programs that want their temporary files removed when the user presses Ctrl-C call
//! [`remove_temporaries_on_interrupt`] once (the `stego` CLI does; a library never installs
//! signal handlers by itself).

use crate::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where an output path leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Standard output (`-`).
    Stdout,
    /// A regular file, existing or not (after following symbolic links): replaced atomically.
    File(PathBuf),
    /// A FIFO, character device or socket (after following symbolic links): written in place.
    Stream(PathBuf),
}

fn io_err(path: &Path, kind: std::io::ErrorKind, msg: String) -> Error {
    Error::Io { path: path.to_path_buf(), error: std::io::Error::new(kind, msg) }
}

/// Follows symbolic links from `path` to the final target (which may not exist yet).
fn follow_links(path: &Path) -> Result<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let link = std::fs::read_link(&p).map_err(|e| Error::Io { path: p.clone(), error: e })?;
                p = match p.parent() {
                    Some(dir) if link.is_relative() => dir.join(link),
                    _ => link,
                };
            }
            _ => return Ok(p),
        }
    }
    Err(io_err(path, std::io::ErrorKind::InvalidInput, "too many levels of symbolic links: point the path at a file".into()))
}

/// Resolves where writing `path` goes, and checks that it can go there: the folder exists and
/// the path is not a folder. Call it before long work so that a bad output path fails first.
pub fn output_target(path: &Path) -> Result<Target> {
    if path.as_os_str() == "-" {
        return Ok(Target::Stdout);
    }
    let target = follow_links(path)?;
    match std::fs::metadata(&target) {
        Ok(m) if m.is_dir() => Err(io_err(path, std::io::ErrorKind::IsADirectory, "is a folder: give a file name inside it".into())),
        Ok(m) if m.is_file() => Ok(Target::File(target)),
        Ok(_) => Ok(Target::Stream(target)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let dir = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            if !dir.is_dir() {
                return Err(io_err(path, std::io::ErrorKind::NotFound, format!("folder {} does not exist: create it first", dir.display())));
            }
            Ok(Target::File(target))
        }
        Err(e) => Err(Error::Io { path: path.to_path_buf(), error: e }),
    }
}

/// Writes an output file through `write` (see the module docs for what each kind of path gets).
pub fn write_output(path: &Path, write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<()> {
    let io = |e: std::io::Error| Error::Io { path: path.to_path_buf(), error: e };
    match output_target(path)? {
        Target::Stdout => {
            let mut out = std::io::stdout().lock();
            write(&mut out).and_then(|_| out.flush()).map_err(io)
        }
        Target::Stream(p) => {
            let file = std::fs::OpenOptions::new().write(true).open(&p).map_err(io)?;
            let mut w = std::io::BufWriter::new(file);
            write(&mut w).and_then(|_| w.flush()).map_err(io)
        }
        Target::File(p) => replace_file(&p, |tmp| {
            let file = std::fs::File::create(tmp).map_err(io)?;
            let mut w = std::io::BufWriter::new(file);
            write(&mut w).and_then(|_| w.flush()).map_err(io)
        }),
    }
}

/// Replaces the regular file `path` (following symbolic links; created if missing) atomically
/// with what `write` writes to the temporary path it is given: the temporary file is flushed to
/// disk and renamed over the target, keeping the old file's permissions; on any error (or a
/// Ctrl-C, see [`remove_temporaries_on_interrupt`]) it is removed and the old file is left as
/// it was. For writers that only take a path (checkpoint savers); others use [`write_output`].
pub fn replace_file<E: From<Error>>(path: &Path, write: impl FnOnce(&Path) -> std::result::Result<(), E>) -> std::result::Result<(), E> {
    let target = match output_target(path)? {
        Target::File(p) => p,
        _ => return Err(io_err(path, std::io::ErrorKind::InvalidInput, "is not a regular file: give a file path".into()).into()),
    };
    let io = |e: std::io::Error| Error::Io { path: target.clone(), error: e };
    let dir = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "out".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let guard = interrupt::Registered::new(&tmp);
    let res = write(&tmp).and_then(|()| {
        let file = std::fs::OpenOptions::new().write(true).open(&tmp).map_err(io)?;
        if let Ok(old) = std::fs::metadata(&target) {
            file.set_permissions(old.permissions()).map_err(io)?;
        }
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &target).map_err(io)?;
        // Make the rename itself durable (best effort: not every file system syncs folders).
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    });
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    drop(guard);
    res
}

/// Installs handlers for SIGINT, SIGTERM and SIGHUP that remove the temporary files of writes
/// in progress ([`write_output`], [`replace_file`]) and then end the process as the signal
/// would have. Call once, from a program's `main` (not from a library or a plugin).
pub fn remove_temporaries_on_interrupt() {
    interrupt::install();
}

mod interrupt {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;
    use std::sync::atomic::{AtomicPtr, Ordering};

    /// Temporary files being written, as C strings a signal handler can pass to `unlink`.
    const SLOTS: usize = 64;
    static PENDING: [AtomicPtr<libc::c_char>; SLOTS] = [const { AtomicPtr::new(std::ptr::null_mut()) }; SLOTS];

    /// A temporary file registered for removal on a signal while this lives.
    pub(super) struct Registered(Option<usize>);

    impl Registered {
        pub(super) fn new(path: &Path) -> Self {
            let Ok(c) = CString::new(path.as_os_str().as_bytes()) else { return Registered(None) };
            let ptr = c.into_raw();
            for (i, slot) in PENDING.iter().enumerate() {
                if slot.compare_exchange(std::ptr::null_mut(), ptr, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                    return Registered(Some(i));
                }
            }
            // SAFETY: `ptr` came from `CString::into_raw` just above and was not stored.
            drop(unsafe { CString::from_raw(ptr) });
            Registered(None)
        }
    }

    impl Drop for Registered {
        fn drop(&mut self) {
            if let Some(i) = self.0 {
                let ptr = PENDING[i].swap(std::ptr::null_mut(), Ordering::AcqRel);
                if !ptr.is_null() {
                    // SAFETY: the slot held a pointer from `CString::into_raw`, now taken out.
                    drop(unsafe { CString::from_raw(ptr) });
                }
            }
        }
    }

    extern "C" fn on_signal(sig: libc::c_int) {
        for slot in &PENDING {
            let ptr = slot.load(Ordering::Acquire);
            if !ptr.is_null() {
                // SAFETY: `unlink` is async-signal-safe; `ptr` is a NUL-terminated path.
                unsafe { libc::unlink(ptr) };
            }
        }
        // SAFETY: restoring the default action and re-raising are async-signal-safe.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
    }

    pub(super) fn install() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                // SAFETY: `on_signal` only calls async-signal-safe functions.
                unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_text(path: &Path, text: &str) -> Result<()> {
        write_output(path, |w| w.write_all(text.as_bytes()))
    }

    #[test]
    fn a_symlink_writes_its_target_and_stays_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("t.txt");
        std::fs::write(&target, "old").unwrap();
        let link = dir.path().join("link.txt");
        std::os::unix::fs::symlink("t.txt", &link).unwrap();
        write_text(&link, "new").unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
        // A dangling link creates its target.
        let dangling = dir.path().join("dangling.txt");
        std::os::unix::fs::symlink("made.txt", &dangling).unwrap();
        write_text(&dangling, "made").unwrap();
        assert!(std::fs::symlink_metadata(&dangling).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read_to_string(dir.path().join("made.txt")).unwrap(), "made");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 4, "no temporary file left");
    }

    #[test]
    fn a_fifo_is_streamed_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read(fifo).unwrap())
        };
        write_text(&fifo, "streamed").unwrap();
        assert_eq!(reader.join().unwrap(), b"streamed");
        assert!(!std::fs::metadata(&fifo).unwrap().is_file(), "still a FIFO");
    }

    #[test]
    fn a_character_device_is_written_in_place() {
        let null = Path::new("/dev/null");
        let before = std::fs::metadata(null).unwrap();
        assert_eq!(output_target(null).unwrap(), Target::Stream(null.into()));
        write_text(null, "discarded").unwrap();
        let after = std::fs::metadata(null).unwrap();
        assert!(!after.is_file());
        assert_eq!(std::os::unix::fs::MetadataExt::ino(&before), std::os::unix::fs::MetadataExt::ino(&after));
        // A link to a device is followed to the device.
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("null.png");
        std::os::unix::fs::symlink(null, &link).unwrap();
        write_text(&link, "discarded").unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    }

    #[test]
    fn a_regular_file_is_replaced_atomically_keeping_its_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f.txt");
        std::fs::write(&f, "old").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
        // A failing writer leaves the old file and no temporary file.
        let e = write_output(&f, |w| {
            w.write_all(b"half")?;
            Err(std::io::Error::other("disk on fire"))
        })
        .unwrap_err();
        assert!(e.to_string().contains("disk on fire"), "{e}");
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        write_text(&f, "new").unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "new");
        assert_eq!(std::fs::metadata(&f).unwrap().permissions().mode() & 0o777, 0o640);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn folders_and_missing_folders_are_refused_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let e = output_target(dir.path()).unwrap_err().to_string();
        assert!(e.contains("is a folder") && !e.contains("os error"), "{e}");
        let e = output_target(&dir.path().join("nodir/f.png")).unwrap_err().to_string();
        assert!(e.contains("nodir") && e.contains("does not exist") && e.contains("create it"), "{e}");
        assert_eq!(output_target(Path::new("-")).unwrap(), Target::Stdout);
    }
}
