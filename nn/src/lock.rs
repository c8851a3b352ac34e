//! A lock file that says a job owns a folder (a preprocess output, a run folder): an OS
//! advisory lock on `path`, held while the value lives, and the file removed when it is
//! dropped, also when the job ends with an error. A job killed outright leaves the file
//! behind but not the lock, so the next job takes it over.

use std::fs::File;
use std::path::{Path, PathBuf};

/// A held lock file.
#[derive(Debug)]
pub struct LockFile {
    file: Option<File>,
    path: PathBuf,
}

impl LockFile {
    /// Takes the lock at `path`; `Ok(None)` when another process holds it.
    pub fn try_acquire(path: &Path) -> std::io::Result<Option<Self>> {
        let file = File::create(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Self {
                file: Some(file),
                path: path.to_path_buf(),
            })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        // Unlinked while still locked, so a job waiting on it never locks a file that is
        // gone once it gets the lock.
        std::fs::remove_file(&self.path).ok();
        drop(self.file.take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_refuses_a_second_holder_and_goes_with_its_owner() {
        let dir = std::env::temp_dir().join(format!("maetok-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(".lock");
        let a = LockFile::try_acquire(&p).unwrap().expect("free");
        // A second open file description of the same file: flock() locks conflict.
        assert!(LockFile::try_acquire(&p).unwrap().is_none());
        drop(a);
        assert!(!p.exists());
        let b = LockFile::try_acquire(&p).unwrap();
        assert!(b.is_some());
        drop(b);
        std::fs::remove_dir_all(&dir).ok();
    }
}
