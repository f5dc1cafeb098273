//! [`LocalDirStore`]: the embedded default [`MediaStore`], files under a root directory.

use async_trait::async_trait;
use bytes::Bytes;
use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use url::Url;

use super::{KeyPage, MediaKey, MediaRef, MediaStore, StagedWrite, clamp_range};
use crate::durable::{sync_dir, write_atomic};
use crate::error::{Error, ErrorKind, Result};
use crate::media::MediaFormat;

/// A [`MediaStore`] keeping each object as a file under a root directory: key `ab/abcd….mp4` is
/// the file `<root>/ab/abcd….mp4`, named `file:///<root>/ab/abcd….mp4`.
///
/// - Writes are atomic and durable ([`write_atomic`](crate::durable::write_atomic)): a reader
///   sees the old file or the new one, never a torn one, even across a crash.
/// - Keys never leave the root: [`MediaKey`] forbids `..`, absolute paths and odd characters, and
///   every operation refuses (`PermissionDenied`) a key whose path under the root passes through
///   a symbolic link. (This guards against links present in the tree, not against another process
///   racing to plant one while a call is running.)
/// - Names starting with `.` are reserved for temporary files: [`list`](MediaStore::list) skips
///   them and a key with a segment starting with `.` is refused (`InvalidInput`).
/// - Large files never pass through memory whole: [`put_file`](MediaStore::put_file) copies the
///   file into a temporary file in the root (the kernel's copy, `copy_file_range` on Linux)
///   and renames it into place; [`stage`](MediaStore::stage) writes the chunks the ingest
///   pipeline hashes into such a temporary file and renames it under the key the hash gives;
///   [`get_range`](MediaStore::get_range) seeks and reads only the range.
/// - All file-system work runs on tokio's blocking pool.
///
/// ```
/// # block_on(async {
/// use bytes::Bytes;
/// use crossmodal_core::{LocalDirStore, MediaFormat, MediaKey, MediaStore};
/// let dir = tempfile::tempdir().unwrap();
/// let store = LocalDirStore::open(dir.path().join("media")).unwrap();
/// let key = MediaKey::parse("ab/photo.png").unwrap();
/// let stored = store.put(&key, Bytes::from_static(b"pretend png"), MediaFormat::Png).await.unwrap();
/// assert_eq!(stored.uri.scheme(), "file");
/// assert_eq!(store.get(&key).await.unwrap(), Bytes::from_static(b"pretend png"));
/// assert_eq!(store.list("ab/", None, 10).await.unwrap().keys, vec![key.clone()]);
/// assert!(store.delete(&key).await.unwrap());
/// # });
/// # fn block_on(f: impl std::future::Future<Output = ()>) {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct LocalDirStore {
    root: Arc<PathBuf>,
    root_url: Url,
}

/// What a key's path holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    /// Nothing (or a missing parent directory).
    Missing,
    /// A regular file: the object.
    File,
    /// A directory or special file at the path, or a non-directory where a parent should be.
    Other,
}

impl LocalDirStore {
    /// Opens the store rooted at `root`, creating the directory (and its parents) if needed.
    ///
    /// The root is canonicalised, so object URIs are absolute and free of symbolic links. This
    /// does blocking I/O; call it at start-up or from `spawn_blocking`.
    pub fn open(root: impl AsRef<Path>) -> Result<LocalDirStore> {
        let given = root.as_ref();
        let ctx = |e: io::Error| Error::from(e).with_context("root", given.display());
        fs::create_dir_all(given).map_err(ctx)?;
        let root = fs::canonicalize(given).map_err(ctx)?;
        if !fs::metadata(&root).map_err(ctx)?.is_dir() {
            return Err(Error::invalid_input("media store root is not a directory")
                .with_context("root", root.display()));
        }
        let root_url = Url::from_directory_path(&root).map_err(|()| {
            Error::invalid_input("media store root cannot be expressed as a file:// URL")
                .with_context("root", root.display())
        })?;
        Ok(LocalDirStore {
            root: Arc::new(root),
            root_url,
        })
    }

    /// The canonical root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Runs blocking file-system work on tokio's blocking pool.
    async fn blocking<T, F>(&self, key: &MediaKey, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Path, &MediaKey) -> Result<T> + Send + 'static,
    {
        let root = Arc::clone(&self.root);
        let key = key.clone();
        tokio::task::spawn_blocking(move || f(&root, &key))
            .await
            .map_err(crate::error::join_error)?
    }
}

/// Walks `key`'s path under `root` without following symbolic links.
///
/// Refuses keys whose existing path components include a symbolic link. (Keys never have a
/// segment starting with `.`, so they cannot name the store's temporary files.)
fn inspect(root: &Path, key: &MediaKey) -> Result<(PathBuf, Found)> {
    let segments: Vec<&str> = key.as_str().split('/').collect();
    let mut path = root.to_path_buf();
    for (i, seg) in segments.iter().enumerate() {
        path.push(seg);
        let last = i + 1 == segments.len();
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(Error::new(
                    ErrorKind::PermissionDenied,
                    "refusing to follow a symbolic link inside the media store root",
                )
                .with_context("key", key)
                .with_context("link", path.display()));
            }
            Ok(meta) if last => {
                let found = if meta.is_file() {
                    Found::File
                } else {
                    Found::Other
                };
                return Ok((path, found));
            }
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                path.extend(segments.get(i + 1..).unwrap_or(&[]));
                return Ok((path, Found::Other));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                path.extend(segments.get(i + 1..).unwrap_or(&[]));
                return Ok((path, Found::Missing));
            }
            Err(e) => {
                return Err(Error::from(e)
                    .with_context("key", key)
                    .with_context("path", path.display()));
            }
        }
    }
    // Unreachable: a key has at least one segment and the last one always returns above.
    Ok((path, Found::Missing))
}

fn not_found(key: &MediaKey) -> Error {
    Error::not_found("no such object").with_context("key", key)
}

fn io_error(key: &MediaKey, path: &Path) -> impl Fn(io::Error) -> Error {
    let key = key.to_string();
    let path = path.display().to_string();
    move |e| {
        Error::from(e)
            .with_context("key", &key)
            .with_context("path", &path)
    }
}

/// A fresh temporary name in the root for an object being written (`.`-names are never keys
/// and never listed).
fn staging_path(root: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    root.join(format!(
        ".staging-{}-{}-{:08x}.tmp",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>()
    ))
}

/// Moves the finished temporary file `tmp` into place as `key`: checks the key's path (no
/// symbolic links, nothing in the way), creates the parent directories, fsyncs the file,
/// renames it, fsyncs the directory. On failure `tmp` is left for the caller to remove.
fn rename_into_place(root: &Path, key: &MediaKey, tmp: &Path) -> Result<()> {
    let (path, found) = inspect(root, key)?;
    if found == Found::Other {
        return Err(Error::new(
            ErrorKind::Conflict,
            "a directory or non-regular file is in the way of the object",
        )
        .with_context("key", key)
        .with_context("path", path.display()));
    }
    let parent = path.parent().unwrap_or(root);
    fs::create_dir_all(parent).map_err(io_error(key, parent))?;
    fs::File::open(tmp)
        .and_then(|f| f.sync_all())
        .map_err(io_error(key, tmp))?;
    fs::rename(tmp, &path).map_err(io_error(key, &path))?;
    sync_dir(parent).map_err(io_error(key, parent))
}

/// Removes a temporary file, logging (not failing) when it cannot.
fn remove_temp(tmp: &Path) {
    match fs::remove_file(tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(path = %tmp.display(), error = %e, "could not remove a temporary file")
        }
    }
}

/// A [`LocalDirStore`] object being written: a temporary file in the root, renamed into place
/// at the commit.
struct LocalStaged {
    store: LocalDirStore,
    /// The temporary file; `None` while a write holds it on the blocking pool, or once done.
    file: Option<fs::File>,
    tmp: PathBuf,
    written: u64,
    /// Set once committed or aborted: nothing left to clean up on drop.
    done: bool,
}

#[async_trait]
impl StagedWrite for LocalStaged {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        let Some(mut file) = self.file.take() else {
            return Err(Error::backend(
                "a staged write was used after a failed write",
            ));
        };
        let tmp = self.tmp.clone();
        let n = chunk.len() as u64;
        let file = tokio::task::spawn_blocking(move || {
            file.write_all(&chunk)
                .map(|()| file)
                .map_err(|e| Error::from(e).with_context("path", tmp.display()))
        })
        .await
        .map_err(crate::error::join_error)??;
        self.file = Some(file);
        self.written += n;
        Ok(())
    }

    fn written(&self) -> u64 {
        self.written
    }

    async fn commit(mut self: Box<Self>, key: &MediaKey) -> Result<MediaRef> {
        let file = self.file.take();
        let root = Arc::clone(&self.store.root);
        let tmp = self.tmp.clone();
        let k = key.clone();
        self.done = true;
        tokio::task::spawn_blocking(move || {
            drop(file);
            let result = rename_into_place(&root, &k, &tmp);
            if result.is_err() {
                remove_temp(&tmp);
            }
            result
        })
        .await
        .map_err(crate::error::join_error)??;
        Ok(self.store.media_ref(key))
    }

    async fn abort(mut self: Box<Self>) {
        let file = self.file.take();
        let tmp = self.tmp.clone();
        self.done = true;
        let _ = tokio::task::spawn_blocking(move || {
            drop(file);
            remove_temp(&tmp);
        })
        .await;
    }
}

impl Drop for LocalStaged {
    fn drop(&mut self) {
        if !self.done {
            self.file = None;
            remove_temp(&self.tmp);
        }
    }
}

/// Lists keys under `dir` (whose key prefix is `rel`, empty or ending in `/`) in ascending byte
/// order, until `out` holds `want` keys.
///
/// Entries are visited sorted by `name` for files and `name/` for directories, which yields keys
/// in ascending byte order; subtrees that cannot hold a key matching `prefix` or following
/// `after` are skipped. Symbolic links, names starting with `.` (temporary files) and names that
/// are not valid key segments are ignored.
fn walk(
    dir: &Path,
    rel: &str,
    prefix: &str,
    after: Option<&str>,
    want: usize,
    out: &mut Vec<MediaKey>,
) -> io::Result<()> {
    let read = match fs::read_dir(dir) {
        Ok(read) => read,
        // A directory removed while we walk holds nothing.
        Err(e) if e.kind() == io::ErrorKind::NotFound && !rel.is_empty() => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut entries: Vec<(String, String, bool)> = Vec::new();
    for entry in read {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let file_type = match entry.file_type() {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if file_type.is_dir() {
            entries.push((format!("{rel}{name}/"), name, true));
        } else if file_type.is_file() {
            entries.push((format!("{rel}{name}"), name, false));
        }
    }
    entries.sort_unstable();
    for (path, name, is_dir) in entries {
        if out.len() >= want {
            break;
        }
        if is_dir {
            if !(path.starts_with(prefix) || prefix.starts_with(&path)) {
                continue;
            }
            // Every key below `path` starts with it; if `after` is greater and does not start
            // with `path`, they all sort before `after`.
            if after.is_some_and(|a| !a.starts_with(&path) && a > path.as_str()) {
                continue;
            }
            walk(&dir.join(&name), &path, prefix, after, want, out)?;
        } else {
            if !path.starts_with(prefix) || after.is_some_and(|a| path.as_str() <= a) {
                continue;
            }
            if let Ok(key) = MediaKey::parse(&path) {
                out.push(key);
            }
        }
    }
    Ok(())
}

#[async_trait]
impl MediaStore for LocalDirStore {
    async fn put(&self, key: &MediaKey, bytes: Bytes, _format: MediaFormat) -> Result<MediaRef> {
        self.blocking(key, move |root, key| {
            let (path, found) = inspect(root, key)?;
            if found == Found::Other {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    "a directory or non-regular file is in the way of the object",
                )
                .with_context("key", key)
                .with_context("path", path.display()));
            }
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).map_err(io_error(key, parent))?;
            }
            write_atomic(&path, &bytes).map_err(|e| e.with_context("key", key))
        })
        .await?;
        Ok(self.media_ref(key))
    }

    /// Copies the file into a temporary file in the root (the kernel's copy, no bytes held in
    /// memory), then renames it into place as [`put`](MediaStore::put) does.
    async fn put_file(
        &self,
        key: &MediaKey,
        path: &Path,
        _format: MediaFormat,
    ) -> Result<MediaRef> {
        let source = path.to_path_buf();
        self.blocking(key, move |root, key| {
            let meta = fs::metadata(&source)
                .map_err(|e| Error::from(e).with_context("path", source.display()))?;
            if !meta.is_file() {
                return Err(Error::invalid_input("not a regular file")
                    .with_context("path", source.display()));
            }
            let tmp = staging_path(root);
            let result = fs::copy(&source, &tmp)
                .map_err(|e| {
                    Error::from(e)
                        .with_context("key", key)
                        .with_context("path", source.display())
                })
                .and_then(|_| rename_into_place(root, key, &tmp));
            if result.is_err() {
                remove_temp(&tmp);
            }
            result
        })
        .await?;
        Ok(self.media_ref(key))
    }

    async fn stage(&self, _format: MediaFormat) -> Result<Option<Box<dyn StagedWrite>>> {
        let root = Arc::clone(&self.root);
        let (file, tmp) = tokio::task::spawn_blocking(move || {
            let tmp = staging_path(&root);
            fs::File::create(&tmp)
                .map(|f| (f, tmp))
                .map_err(|e| Error::from(e).with_context("root", root.display()))
        })
        .await
        .map_err(crate::error::join_error)??;
        Ok(Some(Box::new(LocalStaged {
            store: self.clone(),
            file: Some(file),
            tmp,
            written: 0,
            done: false,
        })))
    }

    async fn get_range(&self, key: &MediaKey, range: Range<u64>) -> Result<Bytes> {
        self.blocking(key, move |root, key| {
            let (path, found) = inspect(root, key)?;
            if found != Found::File {
                return Err(not_found(key));
            }
            let mut file = match fs::File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(not_found(key)),
                Err(e) => return Err(io_error(key, &path)(e)),
            };
            let len = file.metadata().map_err(io_error(key, &path))?.len();
            let part = clamp_range(&range, len).map_err(|e| e.with_context("key", key))?;
            let want = usize::try_from(part.end - part.start).map_err(|_| {
                Error::invalid_input("byte range too large to read into memory")
                    .with_context("key", key)
            })?;
            file.seek(SeekFrom::Start(part.start))
                .map_err(io_error(key, &path))?;
            let mut buf = Vec::with_capacity(want);
            file.take(want as u64)
                .read_to_end(&mut buf)
                .map_err(io_error(key, &path))?;
            if buf.len() != want {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    "the object shrank while it was being read",
                )
                .with_context("key", key)
                .with_context("path", path.display()));
            }
            Ok(Bytes::from(buf))
        })
        .await
    }

    async fn get(&self, key: &MediaKey) -> Result<Bytes> {
        self.blocking(key, |root, key| {
            let (path, found) = inspect(root, key)?;
            if found != Found::File {
                return Err(not_found(key));
            }
            match fs::read(&path) {
                Ok(bytes) => Ok(Bytes::from(bytes)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Err(not_found(key)),
                Err(e) => Err(io_error(key, &path)(e)),
            }
        })
        .await
    }

    async fn delete(&self, key: &MediaKey) -> Result<bool> {
        self.blocking(key, |root, key| {
            let (path, found) = inspect(root, key)?;
            if found != Found::File {
                return Ok(false);
            }
            match fs::remove_file(&path) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(io_error(key, &path)(e)),
            }
        })
        .await
    }

    async fn exists(&self, key: &MediaKey) -> Result<bool> {
        self.blocking(key, |root, key| Ok(inspect(root, key)?.1 == Found::File))
            .await
    }

    async fn list(&self, prefix: &str, after: Option<MediaKey>, limit: usize) -> Result<KeyPage> {
        if limit == 0 {
            return Err(Error::invalid_input("list limit must be at least 1"));
        }
        let root = Arc::clone(&self.root);
        let prefix = prefix.to_string();
        let after = after.map(String::from);
        let want = limit.saturating_add(1);
        let mut keys = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            walk(&root, "", &prefix, after.as_deref(), want, &mut out)
                .map_err(|e| Error::from(e).with_context("root", root.display()))?;
            Ok::<_, Error>(out)
        })
        .await
        .map_err(crate::error::join_error)??;
        let next_after = if keys.len() > limit {
            keys.truncate(limit);
            keys.last().cloned()
        } else {
            None
        };
        Ok(KeyPage { keys, next_after })
    }

    fn media_ref(&self, key: &MediaKey) -> MediaRef {
        let mut uri = self.root_url.clone();
        // A file:// URL can always be a base, so `path_segments_mut` succeeds.
        if let Ok(mut segments) = uri.path_segments_mut() {
            segments.pop_if_empty().extend(key.as_str().split('/'));
        }
        MediaRef {
            key: key.clone(),
            uri,
        }
    }

    async fn preview_url(&self, key: &MediaKey, _ttl: Duration) -> Result<Url> {
        if self.exists(key).await? {
            Ok(self.media_ref(key).uri)
        } else {
            Err(not_found(key))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> MediaKey {
        MediaKey::parse(s).unwrap()
    }

    #[tokio::test]
    async fn passes_the_media_store_suite() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDirStore::open(dir.path()).unwrap();
        crate::conformance::media_store_suite(&store).await;
    }

    #[tokio::test]
    async fn open_creates_and_canonicalises_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDirStore::open(dir.path().join("x/y")).unwrap();
        assert!(store.root().is_absolute());
        assert!(store.root().is_dir());
        assert_eq!(
            store.root(),
            fs::canonicalize(dir.path().join("x/y")).unwrap()
        );
    }

    #[tokio::test]
    async fn media_ref_is_the_file_url_of_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDirStore::open(dir.path()).unwrap();
        let k = key("ab/c-d_e.mp4");
        let expected = Url::from_file_path(store.root().join("ab").join("c-d_e.mp4")).unwrap();
        assert_eq!(store.media_ref(&k).uri, expected);
        assert_eq!(
            store.media_ref(&k).uri.to_file_path().unwrap(),
            store.root().join("ab/c-d_e.mp4")
        );
    }

    #[tokio::test]
    async fn data_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let k = key("ab/keep.wav");
        {
            let store = LocalDirStore::open(dir.path()).unwrap();
            store
                .put(&k, Bytes::from_static(b"RIFF...."), MediaFormat::Wav)
                .await
                .unwrap();
        }
        let store = LocalDirStore::open(dir.path()).unwrap();
        assert_eq!(
            store.get(&k).await.unwrap(),
            Bytes::from_static(b"RIFF....")
        );
        assert_eq!(store.list("", None, 10).await.unwrap().keys, vec![k]);
    }

    #[tokio::test]
    async fn list_skips_temp_files_and_non_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDirStore::open(dir.path()).unwrap();
        let k = key("ab/real.png");
        store
            .put(&k, Bytes::from_static(b"png"), MediaFormat::Png)
            .await
            .unwrap();
        fs::write(store.root().join("ab/.real.png.tmp-1-2"), b"partial").unwrap();
        fs::create_dir_all(store.root().join(".hidden")).unwrap();
        fs::write(store.root().join(".hidden/x.png"), b"x").unwrap();
        fs::write(store.root().join("ab/has space.png"), b"x").unwrap();
        let page = store.list("", None, 100).await.unwrap();
        assert_eq!(page.keys, vec![k]);
        assert_eq!(page.next_after, None);
        assert!(
            MediaKey::parse("ab/.real.png.tmp-1-2").is_err(),
            "temporary names can never be keys"
        );
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn refuses_symlinks_inside_the_root() {
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret.png"), b"secret").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDirStore::open(dir.path().join("root")).unwrap();
        std::os::unix::fs::symlink(outside.path(), store.root().join("ln")).unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("secret.png"),
            store.root().join("file.png"),
        )
        .unwrap();

        for k in [key("ln/secret.png"), key("file.png")] {
            let denied = |e: Error| {
                assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
                assert!(e.message().contains("symbolic link"), "{e}");
            };
            denied(store.get(&k).await.unwrap_err());
            denied(store.exists(&k).await.unwrap_err());
            denied(store.delete(&k).await.unwrap_err());
            denied(
                store
                    .put(&k, Bytes::from_static(b"overwrite"), MediaFormat::Png)
                    .await
                    .unwrap_err(),
            );
            denied(
                store
                    .preview_url(&k, Duration::from_secs(60))
                    .await
                    .unwrap_err(),
            );
        }
        let denied = store
            .put(
                &key("ln/new.png"),
                Bytes::from_static(b"x"),
                MediaFormat::Png,
            )
            .await
            .unwrap_err();
        assert_eq!(denied.kind(), ErrorKind::PermissionDenied);
        assert_eq!(
            fs::read(outside.path().join("secret.png")).unwrap(),
            b"secret"
        );
        assert!(!outside.path().join("new.png").exists());
        // Links are not listed either.
        assert!(store.list("", None, 10).await.unwrap().keys.is_empty());
    }

    #[tokio::test]
    async fn a_directory_at_the_key_is_not_an_object() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDirStore::open(dir.path()).unwrap();
        store
            .put(
                &key("ab/cd/e.png"),
                Bytes::from_static(b"x"),
                MediaFormat::Png,
            )
            .await
            .unwrap();
        let k = key("ab/cd");
        assert!(!store.exists(&k).await.unwrap());
        assert_eq!(store.get(&k).await.unwrap_err().kind(), ErrorKind::NotFound);
        assert!(!store.delete(&k).await.unwrap());
        let err = store
            .put(&k, Bytes::from_static(b"x"), MediaFormat::Png)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict);
        // A file where a directory should be.
        let k = key("ab/cd/e.png/f.png");
        assert!(!store.exists(&k).await.unwrap());
        let err = store
            .put(&k, Bytes::from_static(b"x"), MediaFormat::Png)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict);
    }

    #[tokio::test]
    async fn get_of_a_missing_key_names_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDirStore::open(dir.path()).unwrap();
        let err = store.get(&key("zz/missing.mp3")).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(err.context_value("key"), Some("zz/missing.mp3"));
    }
}
