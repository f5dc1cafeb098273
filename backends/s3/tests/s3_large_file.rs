//! A 200 MB file through `put_file` as a multipart upload, with the process's peak memory
//! measured. In its own test binary so no other test's allocations share the process.
//!
//! Needs `CROSSMODAL_S3_ENDPOINT` (see `tests/s3_store.rs`).
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use std::io::Write;
use std::time::Instant;

use crossmodal_core::{AssetId, MediaFormat, MediaKey, MediaStore};
use sha2::{Digest, Sha256};

const MB: u64 = 1_000_000;
const MIB: u64 = 1024 * 1024;
const FILE_SIZE: u64 = 200 * MB;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_file_of_200_mb_streams_with_flat_memory() {
    let endpoint = endpoint_or_skip!("put_file_of_200_mb_streams_with_flat_memory");
    let (store, client, bucket) = common::fresh_store(&endpoint, "large").await;

    // Write the file in 1 MiB chunks, hashing as we go (the test never holds it whole).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long-take.mp4");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut noise = common::Noise::new(200);
    let mut hasher = Sha256::new();
    let mut chunk = vec![0u8; MIB as usize];
    let mut written = 0u64;
    while written < FILE_SIZE {
        let n = (FILE_SIZE - written).min(MIB) as usize;
        noise.fill(&mut chunk[..n]);
        hasher.update(&chunk[..n]);
        file.write_all(&chunk[..n]).unwrap();
        written += n as u64;
    }
    file.into_inner().unwrap().sync_all().unwrap();
    drop(chunk);
    let id = AssetId::from_digest(hasher.finalize().into());
    let key = MediaKey::for_asset(&id, MediaFormat::Mp4);

    let reset = common::reset_peak_rss();
    let rss_before = common::current_rss();
    let peak_before = common::peak_rss();
    let started = Instant::now();
    let stored = store.put_file(&key, &path, MediaFormat::Mp4).await.unwrap();
    let upload_time = started.elapsed();
    let peak_after = common::peak_rss();
    let growth = peak_after.saturating_sub(peak_before.max(rss_before));
    eprintln!(
        "200 MB put_file: {upload_time:?}; RSS before {:.1} MiB, peak before {:.1} MiB, peak \
         after {:.1} MiB, peak growth {:.1} MiB (peak reset: {reset})",
        rss_before as f64 / MIB as f64,
        peak_before as f64 / MIB as f64,
        peak_after as f64 / MIB as f64,
        growth as f64 / MIB as f64,
    );
    assert!(
        growth < 100 * MIB,
        "peak RSS grew by {growth} bytes while uploading a {FILE_SIZE}-byte file"
    );
    assert_eq!(stored, store.media_ref(&key));

    // The object is whole: size, hash metadata, and the content hashed from a stream.
    let info = store.head(&key).await.unwrap();
    assert_eq!(info.size, FILE_SIZE);
    assert_eq!(info.sha256.as_deref(), Some(id.as_str()));
    assert_eq!(info.content_type.as_deref(), Some("video/mp4"));
    // Multipart ETags end in `-<parts>`: 200 MB in 8 MiB parts is 24 parts.
    assert!(
        info.etag
            .as_deref()
            .is_some_and(|e| e.trim_matches('"').ends_with("-24")),
        "{:?}",
        info.etag
    );
    let mut body = store.get_stream(&key).await.unwrap();
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.unwrap();
        total += chunk.len() as u64;
        hasher.update(&chunk);
    }
    assert_eq!(total, FILE_SIZE);
    assert_eq!(hex::encode(hasher.finalize()), id.as_str());
    let open = client
        .list_multipart_uploads()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert!(open.uploads().is_empty(), "no multipart upload left open");
    assert!(store.delete(&key).await.unwrap());
    common::remove_bucket(&client, &bucket).await;
}
