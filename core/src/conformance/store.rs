//! The [`MediaStore`] behaviour suite.
//!
//! Every check writes under its own random key prefix (`conformance/<16 hex digits>/…`) and
//! deletes what it wrote, so the suite can run against a shared bucket, concurrently with other
//! runs.

use bytes::Bytes;
use std::time::Duration;

use sha2::Digest;

use crate::error::ErrorKind;
use crate::media::MediaFormat;
use crate::store::{MediaKey, MediaStore};

/// Runs every [`MediaStore`] check below against `store`; panics with a message naming the
/// broken rule on the first failure.
///
/// A backend's tests call it as `crossmodal_core::conformance::media_store_suite(&store).await`
/// (with the `conformance` feature enabled).
pub async fn media_store_suite(store: &dyn MediaStore) {
    store_round_trips_every_format(store).await;
    store_put_file_round_trips(store).await;
    store_overwrite_replaces(store).await;
    store_exists_follows_put_and_delete(store).await;
    store_delete_is_idempotent(store).await;
    store_get_missing_is_not_found(store).await;
    store_list_paginates(store).await;
    store_media_ref_matches_put(store).await;
    store_preview_url(store).await;
    store_concurrent_puts_leave_one_whole_value(store).await;
    store_get_range_reads_only_the_range(store).await;
    store_get_range_refuses_bad_ranges(store).await;
    store_staged_write_commits_under_its_key(store).await;
    store_put_file_checked_round_trips(store).await;
}

/// A fresh `conformance/<random>/` prefix.
fn fresh_prefix() -> String {
    format!("conformance/{:016x}/", rand::random::<u64>())
}

fn key(prefix: &str, rest: &str) -> MediaKey {
    let s = format!("{prefix}{rest}");
    match MediaKey::parse(&s) {
        Ok(k) => k,
        Err(e) => panic!("conformance suite built an invalid key {s:?}: {e}"),
    }
}

/// Deletes `keys`, panicking if the store fails.
async fn cleanup(store: &dyn MediaStore, keys: &[MediaKey]) {
    for k in keys {
        if let Err(e) = store.delete(k).await {
            panic!("delete({k}) during clean-up failed: {e}");
        }
    }
}

/// Small made-up bytes for `format` (stores do not validate content).
fn sample(format: MediaFormat, salt: u8) -> Bytes {
    let mut v = format!("conformance sample {} {salt}:", format.extension()).into_bytes();
    v.extend((0..=255u8).map(|b| b ^ salt));
    Bytes::from(v)
}

/// `put` then `get` returns the same bytes, for every [`MediaFormat`], including an empty object.
pub async fn store_round_trips_every_format(store: &dyn MediaStore) {
    let prefix = fresh_prefix();
    let mut written = Vec::new();
    for (i, format) in MediaFormat::ALL.into_iter().enumerate() {
        let k = key(&prefix, &format!("rt/{i}.{}", format.extension()));
        let bytes = sample(format, i as u8);
        let stored = store
            .put(&k, bytes.clone(), format)
            .await
            .unwrap_or_else(|e| panic!("put({k}) as {format} failed: {e}"));
        assert_eq!(
            stored.key, k,
            "put({k}) returned a MediaRef for another key"
        );
        let got = store
            .get(&k)
            .await
            .unwrap_or_else(|e| panic!("get({k}) after put failed: {e}"));
        assert_eq!(
            got, bytes,
            "get({k}) did not return the bytes put as {format}"
        );
        written.push(k);
    }
    let k = key(&prefix, "rt/empty.png");
    store
        .put(&k, Bytes::new(), MediaFormat::Png)
        .await
        .unwrap_or_else(|e| panic!("put of an empty object {k} failed: {e}"));
    let got = store
        .get(&k)
        .await
        .unwrap_or_else(|e| panic!("get of an empty object {k} failed: {e}"));
    assert!(
        got.is_empty(),
        "get({k}) of an empty object returned {} bytes",
        got.len()
    );
    written.push(k);
    cleanup(store, &written).await;
}

/// [`MediaStore::put_file`] stores a file's content under the key.
pub async fn store_put_file_round_trips(store: &dyn MediaStore) {
    let prefix = fresh_prefix();
    let k = key(&prefix, "file/clip.mp4");
    let bytes = sample(MediaFormat::Mp4, 7);
    let path = std::env::temp_dir().join(format!(
        "crossmodal-conformance-{:016x}.mp4",
        rand::random::<u64>()
    ));
    if let Err(e) = tokio::fs::write(&path, &bytes).await {
        panic!("could not write temporary file {}: {e}", path.display());
    }
    let result = store.put_file(&k, &path, MediaFormat::Mp4).await;
    let _ = tokio::fs::remove_file(&path).await;
    let stored = result.unwrap_or_else(|e| panic!("put_file({k}) failed: {e}"));
    assert_eq!(
        stored,
        store.media_ref(&k),
        "put_file({k}) returned another MediaRef"
    );
    let got = store
        .get(&k)
        .await
        .unwrap_or_else(|e| panic!("get({k}) after put_file failed: {e}"));
    assert_eq!(got, bytes, "get({k}) did not return the file's bytes");
    cleanup(store, &[k]).await;
}

/// A second `put` of a key replaces the first value entirely (also when it is shorter).
pub async fn store_overwrite_replaces(store: &dyn MediaStore) {
    let prefix = fresh_prefix();
    let k = key(&prefix, "over/a.jpg");
    let long = Bytes::from(vec![b'L'; 4096]);
    let short = Bytes::from_static(b"short replacement");
    for (what, bytes) in [("first", long), ("second", short.clone())] {
        store
            .put(&k, bytes, MediaFormat::Jpeg)
            .await
            .unwrap_or_else(|e| panic!("{what} put({k}) failed: {e}"));
    }
    let got = store
        .get(&k)
        .await
        .unwrap_or_else(|e| panic!("get({k}) after overwrite failed: {e}"));
    assert_eq!(got, short, "overwriting {k} did not replace the old value");
    cleanup(store, &[k]).await;
}

/// `exists` is false before `put`, true after, false after `delete`.
pub async fn store_exists_follows_put_and_delete(store: &dyn MediaStore) {
    let prefix = fresh_prefix();
    let k = key(&prefix, "exists/x.webp");
    let exists = |when: &'static str| {
        let k = k.clone();
        async move {
            store
                .exists(&k)
                .await
                .unwrap_or_else(|e| panic!("exists({k}) {when} failed: {e}"))
        }
    };
    assert!(
        !exists("before put").await,
        "exists({k}) is true before any put"
    );
    store
        .put(&k, sample(MediaFormat::Webp, 1), MediaFormat::Webp)
        .await
        .unwrap_or_else(|e| panic!("put({k}) failed: {e}"));
    assert!(exists("after put").await, "exists({k}) is false after put");
    cleanup(store, std::slice::from_ref(&k)).await;
    assert!(
        !exists("after delete").await,
        "exists({k}) is true after delete"
    );
}

/// `delete` returns `true` for an existing object, then `false`; deleting a never-written key is
/// `Ok(false)`.
pub async fn store_delete_is_idempotent(store: &dyn MediaStore) {
    let prefix = fresh_prefix();
    let k = key(&prefix, "del/x.mov");
    store
        .put(&k, sample(MediaFormat::Mov, 2), MediaFormat::Mov)
        .await
        .unwrap_or_else(|e| panic!("put({k}) failed: {e}"));
    let first = store
        .delete(&k)
        .await
        .unwrap_or_else(|e| panic!("first delete({k}) failed: {e}"));
    assert!(first, "delete({k}) of an existing object returned false");
    let second = store
        .delete(&k)
        .await
        .unwrap_or_else(|e| panic!("second delete({k}) failed: {e}"));
    assert!(!second, "a second delete({k}) returned true");
    let never = key(&prefix, "del/never-written.mov");
    let r = store
        .delete(&never)
        .await
        .unwrap_or_else(|e| panic!("delete({never}) of a never-written key failed: {e}"));
    assert!(!r, "delete({never}) of a never-written key returned true");
}

/// `get` of a missing key fails with [`ErrorKind::NotFound`].
pub async fn store_get_missing_is_not_found(store: &dyn MediaStore) {
    let prefix = fresh_prefix();
    let k = key(&prefix, "missing/nothing.mp3");
    match store.get(&k).await {
        Ok(b) => panic!("get({k}) of a missing key returned {} bytes", b.len()),
        Err(e) => assert_eq!(
            e.kind(),
            ErrorKind::NotFound,
            "get({k}) of a missing key must be NotFound, got {e}"
        ),
    }
}

/// `list` honours `prefix`, `after` and `limit`, returns keys in ascending byte order and sets
/// `next_after` exactly when more keys remain.
pub async fn store_list_paginates(store: &dyn MediaStore) {
    let prefix = fresh_prefix();
    let items = format!("{prefix}items/");
    // 25 keys under `items/`, mixing separators that sort around '/' ('-' < '.' < '/' < '0').
    let mut rests: Vec<String> = (0..20).map(|i| format!("items/k{i:02}")).collect();
    rests.extend(
        [
            "items/k05-a",
            "items/k05.b",
            "items/k05x/n1",
            "items/k05x/n2",
            "items/sub/deep/z",
        ]
        .map(String::from),
    );
    // Keys outside `items/` that share part of its name.
    let outside = ["items-x", "item", "itemsz/a", "other/k00"];
    let mut expected: Vec<MediaKey> = rests.iter().map(|r| key(&prefix, r)).collect();
    let others: Vec<MediaKey> = outside.iter().map(|r| key(&prefix, r)).collect();
    for k in expected.iter().chain(&others) {
        store
            .put(k, Bytes::from(k.to_string()), MediaFormat::Png)
            .await
            .unwrap_or_else(|e| panic!("put({k}) failed: {e}"));
    }
    expected.sort();

    let list = |pfx: String, after: Option<MediaKey>, limit: usize| async move {
        store
            .list(&pfx, after.clone(), limit)
            .await
            .unwrap_or_else(|e| panic!("list({pfx:?}, after {after:?}, limit {limit}) failed: {e}"))
    };

    // Whole listing, page by page.
    for limit in [1, 7, 25, 100] {
        let mut seen: Vec<MediaKey> = Vec::new();
        let mut after: Option<MediaKey> = None;
        let mut pages = 0;
        loop {
            let page = list(items.clone(), after.clone(), limit).await;
            pages += 1;
            assert!(
                pages <= 26,
                "list({items:?}, limit {limit}) did not finish after 26 pages"
            );
            assert!(
                page.keys.len() <= limit,
                "list(limit {limit}) returned {} keys",
                page.keys.len()
            );
            assert!(
                !page.keys.is_empty(),
                "list({items:?}, after {after:?}, limit {limit}) returned an empty page though \
                 the previous page said more keys remain"
            );
            seen.extend(page.keys.iter().cloned());
            match page.next_after {
                Some(next) => {
                    assert_eq!(
                        page.keys.len(),
                        limit,
                        "list(limit {limit}) set next_after on a short page"
                    );
                    assert_eq!(
                        Some(&next),
                        page.keys.last(),
                        "next_after must be the last key of the page"
                    );
                    after = Some(next);
                }
                None => break,
            }
        }
        assert_eq!(
            seen, expected,
            "paging through list({items:?}) with limit {limit} must yield every key under the \
             prefix once, in ascending byte order"
        );
        assert_eq!(
            pages,
            expected.len().div_ceil(limit),
            "page count with limit {limit}"
        );
    }

    // `after` need not be a stored key.
    let between = key(&prefix, "items/k10a");
    let page = list(items.clone(), Some(between.clone()), 3).await;
    let want: Vec<MediaKey> = expected
        .iter()
        .filter(|k| **k > between)
        .take(3)
        .cloned()
        .collect();
    assert_eq!(page.keys, want, "list after a key that is not stored");
    assert_eq!(
        page.next_after.as_ref(),
        want.last(),
        "next_after after {between}"
    );

    // `after` the last key: an empty last page.
    let last = expected.last().cloned();
    let page = list(items.clone(), last, 5).await;
    assert!(
        page.keys.is_empty() && page.next_after.is_none(),
        "list after the last key must be empty, got {page:?}"
    );

    // A prefix that ends inside a segment.
    let partial = format!("{prefix}items/k0");
    let page = list(partial.clone(), None, 100).await;
    let want: Vec<MediaKey> = expected
        .iter()
        .filter(|k| k.as_str().starts_with(&partial))
        .cloned()
        .collect();
    assert_eq!(want.len(), 14, "suite self-check");
    assert_eq!(
        page.keys, want,
        "list({partial:?}) must match on a partial segment"
    );
    assert!(
        page.next_after.is_none(),
        "list({partial:?}) is a single page"
    );

    // The bare prefix sees the outside keys too.
    let page = list(prefix.clone(), None, 1000).await;
    let mut all: Vec<MediaKey> = expected.iter().chain(&others).cloned().collect();
    all.sort();
    assert_eq!(
        page.keys, all,
        "list({prefix:?}) must list every key written by the suite"
    );

    // A prefix nothing matches.
    let none = format!("{prefix}nothing-here/");
    let page = list(none.clone(), None, 10).await;
    assert!(
        page.keys.is_empty() && page.next_after.is_none(),
        "list({none:?}) must be empty, got {page:?}"
    );

    cleanup(store, &all).await;
}

/// `media_ref(key)` equals the [`MediaRef`](crate::MediaRef) `put` returned.
pub async fn store_media_ref_matches_put(store: &dyn MediaStore) {
    let prefix = fresh_prefix();
    let k = key(&prefix, "ref/a_b-c.m4a");
    let before = store.media_ref(&k);
    let stored = store
        .put(&k, sample(MediaFormat::M4a, 3), MediaFormat::M4a)
        .await
        .unwrap_or_else(|e| panic!("put({k}) failed: {e}"));
    assert_eq!(
        stored.key, k,
        "put({k}) returned a MediaRef for another key"
    );
    assert_eq!(
        store.media_ref(&k),
        stored,
        "media_ref({k}) differs from put's MediaRef"
    );
    assert_eq!(
        before, stored,
        "media_ref({k}) must not depend on the object existing"
    );
    cleanup(store, &[k]).await;
}

/// `preview_url` works for an existing object and is [`ErrorKind::NotFound`] for a missing one.
pub async fn store_preview_url(store: &dyn MediaStore) {
    let prefix = fresh_prefix();
    let ttl = Duration::from_secs(300);
    let missing = key(&prefix, "preview/missing.png");
    match store.preview_url(&missing, ttl).await {
        Ok(url) => panic!("preview_url({missing}) of a missing key returned {url}"),
        Err(e) => assert_eq!(
            e.kind(),
            ErrorKind::NotFound,
            "preview_url({missing}) of a missing key must be NotFound, got {e}"
        ),
    }
    let k = key(&prefix, "preview/present.png");
    store
        .put(&k, sample(MediaFormat::Png, 4), MediaFormat::Png)
        .await
        .unwrap_or_else(|e| panic!("put({k}) failed: {e}"));
    store
        .preview_url(&k, ttl)
        .await
        .unwrap_or_else(|e| panic!("preview_url({k}) of an existing object failed: {e}"));
    cleanup(store, &[k]).await;
}

/// 16 concurrent `put`s of one key leave exactly one of the written values, whole.
pub async fn store_concurrent_puts_leave_one_whole_value(store: &dyn MediaStore) {
    let prefix = fresh_prefix();
    let k = key(&prefix, "race/one.wav");
    let values: Vec<Bytes> = (0..16u8)
        .map(|i| {
            let mut v = vec![i; 64 * 1024 + usize::from(i) * 1000];
            v[..8].copy_from_slice(b"RIFFrace");
            Bytes::from(v)
        })
        .collect();
    let puts = values
        .iter()
        .map(|v| store.put(&k, v.clone(), MediaFormat::Wav));
    for (i, r) in futures::future::join_all(puts)
        .await
        .into_iter()
        .enumerate()
    {
        if let Err(e) = r {
            panic!("concurrent put #{i} of {k} failed: {e}");
        }
    }
    let got = store
        .get(&k)
        .await
        .unwrap_or_else(|e| panic!("get({k}) after concurrent puts failed: {e}"));
    assert!(
        values.contains(&got),
        "after 16 concurrent puts, get({k}) returned {} bytes that are none of the written \
         values (a torn or mixed write)",
        got.len()
    );
    let page = store
        .list(&prefix, None, 100)
        .await
        .unwrap_or_else(|e| panic!("list({prefix:?}) failed: {e}"));
    assert_eq!(
        page.keys,
        vec![k.clone()],
        "concurrent puts must leave exactly one listed object"
    );
    cleanup(store, &[k]).await;
}

/// Deterministic bytes whose value at offset `i` is known (so a range read is checkable).
fn patterned(len: usize) -> Bytes {
    Bytes::from(
        (0..len)
            .map(|i| (i % 251) as u8 ^ (i >> 16) as u8)
            .collect::<Vec<u8>>(),
    )
}

/// `get_range` returns exactly the bytes of the range, the end clamped to the object's length:
/// the head, the tail, a range deep in a 3 MiB object, one past the end, an empty range at the
/// end.
pub async fn store_get_range_reads_only_the_range(store: &dyn MediaStore) {
    let prefix = fresh_prefix();
    let k = key(&prefix, "range/big.mp4");
    let len = 3 * 1024 * 1024 + 17;
    let bytes = patterned(len);
    store
        .put(&k, bytes.clone(), MediaFormat::Mp4)
        .await
        .unwrap_or_else(|e| panic!("put({k}) failed: {e}"));
    let len = len as u64;
    let cases: [(u64, u64); 7] = [
        (0, 1),
        (0, 4096),
        (len - 10, len),
        (2 * 1024 * 1024 + 5, 2 * 1024 * 1024 + 70_000),
        (len - 3, len + 1000),
        (len, len),
        (100, 100),
    ];
    for (start, end) in cases {
        let got = store
            .get_range(&k, start..end)
            .await
            .unwrap_or_else(|e| panic!("get_range({k}, {start}..{end}) failed: {e}"));
        let want = bytes.slice(start as usize..end.min(len) as usize);
        assert_eq!(
            got.len(),
            want.len(),
            "get_range({k}, {start}..{end}) of a {len}-byte object returned {} bytes",
            got.len()
        );
        assert!(
            got == want,
            "get_range({k}, {start}..{end}) returned other bytes than the range"
        );
    }
    cleanup(store, &[k]).await;
}

/// `get_range` refuses a range that starts past the end or ends before it starts
/// (`InvalidInput`) and is `NotFound` for a missing key.
pub async fn store_get_range_refuses_bad_ranges(store: &dyn MediaStore) {
    let prefix = fresh_prefix();
    let k = key(&prefix, "range/small.wav");
    store
        .put(&k, patterned(100), MediaFormat::Wav)
        .await
        .unwrap_or_else(|e| panic!("put({k}) failed: {e}"));
    for (start, end) in [(101u64, 200u64), (50, 10), (1000, 1000)] {
        match store.get_range(&k, start..end).await {
            Ok(b) => panic!(
                "get_range({k}, {start}..{end}) of a 100-byte object returned {} bytes instead \
                 of InvalidInput",
                b.len()
            ),
            Err(e) => assert_eq!(
                e.kind(),
                ErrorKind::InvalidInput,
                "get_range({k}, {start}..{end}) must be InvalidInput, got {e}"
            ),
        }
    }
    let missing = key(&prefix, "range/missing.wav");
    for range in [0..10u64, 0..0] {
        match store.get_range(&missing, range.clone()).await {
            Ok(b) => panic!(
                "get_range({missing}, {range:?}) of a missing key returned {} bytes",
                b.len()
            ),
            Err(e) => assert_eq!(
                e.kind(),
                ErrorKind::NotFound,
                "get_range({missing}, {range:?}) of a missing key must be NotFound, got {e}"
            ),
        }
    }
    cleanup(store, &[k]).await;
}

/// A staged write (for stores that offer one) commits the chunks written, in order, under the
/// key given at the commit; an aborted one leaves nothing behind. Stores without staged writes
/// pass trivially.
pub async fn store_staged_write_commits_under_its_key(store: &dyn MediaStore) {
    let prefix = fresh_prefix();
    let Some(mut staged) = store
        .stage(MediaFormat::Mov)
        .await
        .unwrap_or_else(|e| panic!("stage() failed: {e}"))
    else {
        return;
    };
    let whole = patterned(300_000);
    for chunk in whole.chunks(64 * 1024) {
        staged
            .write(Bytes::copy_from_slice(chunk))
            .await
            .unwrap_or_else(|e| panic!("a staged write failed: {e}"));
    }
    assert_eq!(
        staged.written(),
        whole.len() as u64,
        "a staged write counts the bytes written"
    );
    let k = key(&prefix, "staged/clip.mov");
    let stored = staged
        .commit(&k)
        .await
        .unwrap_or_else(|e| panic!("commit of a staged write as {k} failed: {e}"));
    assert_eq!(
        stored,
        store.media_ref(&k),
        "commit returned another MediaRef"
    );
    let got = store
        .get(&k)
        .await
        .unwrap_or_else(|e| panic!("get({k}) after a staged commit failed: {e}"));
    assert!(got == whole, "get({k}) did not return the staged bytes");

    let mut aborted = store
        .stage(MediaFormat::Mov)
        .await
        .unwrap_or_else(|e| panic!("stage() failed: {e}"))
        .unwrap_or_else(|| panic!("stage() offered a staged write once, then none"));
    aborted
        .write(Bytes::from_static(b"never stored"))
        .await
        .unwrap_or_else(|e| panic!("a staged write failed: {e}"));
    aborted.abort().await;
    let page = store
        .list(&prefix, None, 100)
        .await
        .unwrap_or_else(|e| panic!("list({prefix:?}) failed: {e}"));
    assert_eq!(
        page.keys,
        vec![k.clone()],
        "an aborted staged write must leave no object"
    );
    cleanup(store, &[k]).await;
}

/// [`MediaStore::put_file_checked`] stores a file whose SHA-256 the caller gives.
pub async fn store_put_file_checked_round_trips(store: &dyn MediaStore) {
    let prefix = fresh_prefix();
    let bytes = patterned(20_000);
    let k = key(&prefix, "checked/clip.m4a");
    let path = std::env::temp_dir().join(format!(
        "crossmodal-conformance-{:016x}.m4a",
        rand::random::<u64>()
    ));
    if let Err(e) = tokio::fs::write(&path, &bytes).await {
        panic!("could not write temporary file {}: {e}", path.display());
    }
    let digest: [u8; 32] = sha2::Sha256::digest(&bytes).into();
    let result = store
        .put_file_checked(&k, &path, MediaFormat::M4a, &digest)
        .await;
    let _ = tokio::fs::remove_file(&path).await;
    result.unwrap_or_else(|e| panic!("put_file_checked({k}) with the file's hash failed: {e}"));
    let got = store
        .get(&k)
        .await
        .unwrap_or_else(|e| panic!("get({k}) after put_file_checked failed: {e}"));
    assert!(got == bytes, "get({k}) did not return the file's bytes");
    cleanup(store, &[k]).await;
}
