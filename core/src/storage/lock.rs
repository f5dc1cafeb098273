//! [`DirLock`]: one writer per directory, said clearly.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorKind, Result};

/// Name of the lock file in a locked directory.
pub const LOCK_FILE: &str = "LOCK";

/// An exclusive advisory lock on a directory (`std::fs::File::try_lock` on `<dir>/LOCK`, which
/// also records the holder's pid). Held until dropped; the operating system releases it when
/// the process exits, however it exits (`kill -9` included), so a stale lock never blocks.
///
/// A second holder (another process, or another open in the same process) gets
/// [`ErrorKind::Conflict`] naming the directory and the holder's pid:
///
/// ```
/// use crossmodal_core::{ErrorKind, storage::DirLock};
/// let dir = tempfile::tempdir().unwrap();
/// let first = DirLock::acquire(dir.path()).unwrap();
/// let err = DirLock::acquire(dir.path()).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Conflict);
/// assert!(err.to_string().contains(&std::process::id().to_string()));
/// drop(first);
/// assert!(DirLock::acquire(dir.path()).is_ok());
/// ```
#[derive(Debug)]
pub struct DirLock {
    file: File,
    dir: PathBuf,
}

impl DirLock {
    /// Creates `dir` if needed and locks it.
    pub fn acquire(dir: &Path) -> Result<DirLock> {
        let ctx = |e: std::io::Error| Error::from(e).with_context("path", dir.display());
        std::fs::create_dir_all(dir).map_err(ctx)?;
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(ctx)?;
        match file.try_lock() {
            Ok(()) => {
                // Best effort: the pid only makes a conflict message more useful.
                let _ = file
                    .set_len(0)
                    .and_then(|()| file.seek(SeekFrom::Start(0)))
                    .and_then(|_| writeln!(file, "pid {}", std::process::id()));
                Ok(DirLock {
                    file,
                    dir: dir.to_path_buf(),
                })
            }
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = text
                    .trim()
                    .strip_prefix("pid ")
                    .and_then(|p| p.parse::<u32>().ok())
                    .map(|p| format!("process {p}"))
                    .unwrap_or_else(|| "another process".to_string());
                Err(Error::new(
                    ErrorKind::Conflict,
                    format!(
                        "{} is in use by {holder}: one process writes a data directory at a \
                         time (to add files while a server runs, upload them through its API)",
                        dir.display()
                    ),
                )
                .with_context("path", dir.display()))
            }
            Err(TryLockError::Error(e)) => Err(Error::from(e)
                .with_context("path", path.display())
                .with_context("operation", "lock the directory")),
        }
    }

    /// The locked directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}
