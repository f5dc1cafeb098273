//! Ingest + search end to end over the embedded default (`Engine::open_local`: HnswIndex,
//! LocalDirStore, SQLite catalog, keyword index and cache), with a deterministic test provider defined here.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use async_trait::async_trait;
use crossmodal::{
    AssetQuery, AssetState, Embedding, EmbeddingProvider, EmbeddingSpace, Engine, ErrorKind,
    IngestItem, IngestOutcome, MediaInput, MediaKind, ModelInfo, Query, Result, SearchMode,
    Segment,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A test provider: each fixture file gets a fixed "topic" direction; text queries naming a topic
/// word map to that direction. Deterministic, and obviously not a model.
struct TopicProvider {
    model: ModelInfo,
    topics: HashMap<String, usize>,
    calls: AtomicUsize,
}

const DIM: usize = 8;

fn topic_vector(topic: usize, jitter: f32) -> Vec<f32> {
    let mut v = vec![0.05; DIM];
    v[topic % DIM] = 1.0;
    v[(topic + 1) % DIM] += jitter;
    v
}

impl TopicProvider {
    fn new(files: &[(PathBuf, usize)]) -> Self {
        let topics = files
            .iter()
            .map(|(p, t)| {
                (
                    crossmodal::AssetId::from_content(&std::fs::read(p).unwrap()).to_string(),
                    *t,
                )
            })
            .collect();
        TopicProvider {
            model: ModelInfo {
                id: "test/topic-provider".into(),
                dimension: DIM,
                ..ModelInfo::marengo_3_0()
            },
            topics,
            calls: AtomicUsize::new(0),
        }
    }
}

#[async_trait]
impl EmbeddingProvider for TopicProvider {
    fn model(&self) -> &ModelInfo {
        &self.model
    }

    async fn embed_text(&self, text: &str) -> Result<Vec<f32>> {
        let topic = [
            "sunset", "forest", "castle", "drums", "rain", "cheer", "city", "ocean",
        ]
        .iter()
        .position(|w| text.contains(w))
        .unwrap_or(0);
        Ok(topic_vector(topic, 0.0))
    }

    async fn embed_media(&self, media: &MediaInput) -> Result<Vec<Embedding>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let topic = *self
            .topics
            .get(media.asset_id.as_str())
            .ok_or_else(|| crossmodal::Error::unsupported("unknown test file"))?;
        let n = match media.kind() {
            MediaKind::Image => 1,
            _ => 2,
        };
        let mut out = Vec::new();
        for space in self.model.spaces_for(media.kind()) {
            for i in 0..n {
                out.push(Embedding {
                    space: *space,
                    segment: (n > 1).then(|| Segment::new(i as f64, i as f64 + 1.0).unwrap()),
                    // Segment 1 matches its topic best.
                    vector: topic_vector(topic, if i == 1 { 0.0 } else { 0.6 }),
                });
            }
        }
        Ok(out)
    }
}

fn fixtures() -> PathBuf {
    crossmodal_testkit::fixtures::dir()
}

/// The eight fixtures with a topic each (0 sunset, 1 forest, 2 castle, 3 drums, ...).
fn library() -> Vec<(PathBuf, usize)> {
    [
        ("image.png", 0),
        ("image.jpg", 1),
        ("image.webp", 2),
        ("video.mp4", 2),
        ("video.mov", 6),
        ("audio.wav", 3),
        ("audio.mp3", 4),
        ("audio.m4a", 5),
    ]
    .iter()
    .map(|(n, t)| (fixtures().join(n), *t))
    .collect()
}

async fn engine(dir: &Path) -> (Engine, Arc<TopicProvider>) {
    let provider = Arc::new(TopicProvider::new(&library()));
    let engine = Engine::open_local(dir, provider.clone()).await.unwrap();
    (engine, provider)
}

#[tokio::test]
async fn ingest_then_search_every_modality() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, provider) = engine(dir.path()).await;
    let items = library()
        .into_iter()
        .map(|(p, _)| IngestItem::file(p))
        .collect();
    let report = engine.ingest_batch(items, |_, _| {}).await;
    assert_eq!(report.progress.indexed, 8, "{:?}", report.items);

    // Text -> images and videos through visual, audio through audio.
    let results = engine.search(&Query::text("a castle").k(3)).await.unwrap();
    let top: Vec<&str> = results
        .hits
        .iter()
        .map(|h| h.display_name.as_deref().unwrap())
        .collect();
    assert!(
        top[..2].contains(&"image.webp") && top[..2].contains(&"video.mp4"),
        "{top:?}"
    );
    let video = results
        .hits
        .iter()
        .find(|h| h.kind() == MediaKind::Video)
        .unwrap();
    assert_eq!(video.space, EmbeddingSpace::Visual);
    assert_eq!(
        video.best_segment,
        Some(Segment::new(1.0, 2.0).unwrap()),
        "best clip named"
    );
    assert!(video.uri().unwrap().scheme() == "file");

    // Audio mode: only audio and videos, through the audio space.
    let results = engine
        .search(&Query::text("drums").mode(SearchMode::Audio).k(3))
        .await
        .unwrap();
    assert_eq!(results.hits[0].display_name.as_deref(), Some("audio.wav"));
    assert!(
        results
            .hits
            .iter()
            .all(|h| h.space == EmbeddingSpace::Audio)
    );
    assert!(results.hits.iter().all(|h| h.kind() != MediaKind::Image));

    // Image query by example finds the video of the same topic, not itself.
    let webp = std::fs::read(fixtures().join("image.webp")).unwrap();
    let results = engine.search(&Query::media(webp).k(2)).await.unwrap();
    assert_eq!(results.hits[0].display_name.as_deref(), Some("video.mp4"));

    // Audio query searches the audio space (never the visual one).
    let wav = std::fs::read(fixtures().join("audio.wav")).unwrap();
    let results = engine.search(&Query::media(wav).k(3)).await.unwrap();
    assert!(
        results
            .routes
            .iter()
            .all(|r| r.route.target_space == EmbeddingSpace::Audio)
    );

    // Queries by known bytes reuse the cache: no extra provider call.
    assert_eq!(provider.calls.load(Ordering::SeqCst), 8);
}

#[tokio::test]
async fn everything_survives_a_restart_and_nothing_is_redone() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (engine, _) = engine(dir.path()).await;
        for (p, _) in library() {
            engine.ingest_file(&p).await.unwrap();
        }
    }
    let (engine, provider) = engine(dir.path()).await;
    assert_eq!(engine.counts().await.unwrap().indexed, 8);
    assert_eq!(engine.index_stats().await.unwrap().assets, 8);
    let r = engine
        .ingest_file(fixtures().join("video.mov"))
        .await
        .unwrap();
    assert_eq!(r.outcome, IngestOutcome::AlreadyIndexed);
    let hits = engine.search(&Query::text("city")).await.unwrap();
    assert_eq!(hits.hits[0].display_name.as_deref(), Some("video.mov"));
    assert_eq!(
        provider.calls.load(Ordering::SeqCst),
        0,
        "nothing re-embedded"
    );
}

#[tokio::test]
async fn broken_files_of_every_kind_are_rejected_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, provider) = engine(dir.path()).await;
    for (path, _) in library() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).unwrap();
        let truncated = bytes[..bytes.len() / 2].to_vec();
        // Keep the magic number (so the format is still recognised), wipe the header after it.
        let mut corrupt = bytes.clone();
        let wipe = (bytes.len() / 4).max(24);
        for b in corrupt.iter_mut().skip(12).take(wipe) {
            *b = 0xFF;
        }
        for (what, data, kinds) in [
            ("zero-byte", Vec::new(), vec![ErrorKind::InvalidInput]),
            ("truncated", truncated, vec![ErrorKind::Corrupt]),
            (
                "corrupt",
                corrupt,
                vec![ErrorKind::Corrupt, ErrorKind::Unsupported],
            ),
        ] {
            let err = engine
                .ingest(IngestItem::bytes(data, format!("{what}-{name}")))
                .await
                .expect_err(&format!("{what} {name} must be rejected"));
            assert!(kinds.contains(&err.kind()), "{what} {name}: {err}");
            assert!(
                err.to_string().contains(&name),
                "the message names the file: {err}"
            );
        }
    }
    assert_eq!(provider.calls.load(Ordering::SeqCst), 0);
    assert_eq!(engine.counts().await.unwrap().total(), 0);

    // Mislabelled: accepted by content, the mismatch recorded.
    let jpg = std::fs::read(fixtures().join("image.jpg")).unwrap();
    let r = engine
        .ingest(IngestItem::bytes(jpg, "actually-a-jpeg.mp3"))
        .await
        .unwrap();
    assert_eq!(r.kind, MediaKind::Image);
    let record = engine.asset(&r.asset_id).await.unwrap().unwrap();
    assert_eq!(
        record.extension_mismatch.as_deref(),
        Some("name says .mp3, content is jpg")
    );
}

#[tokio::test]
async fn assets_are_listed_by_kind_and_status_and_deleted_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = engine(dir.path()).await;
    let items = library()
        .into_iter()
        .map(|(p, _)| IngestItem::file(p))
        .collect();
    engine.ingest_batch(items, |_, _| {}).await;
    let audio = engine
        .assets(
            &AssetQuery::new()
                .kind(MediaKind::Audio)
                .state(AssetState::Indexed),
        )
        .await
        .unwrap();
    assert_eq!(audio.assets.len(), 3);
    let victim = audio.assets[0].clone();
    assert!(engine.delete(&victim.asset_id).await.unwrap());
    assert!(engine.asset(&victim.asset_id).await.unwrap().is_none());
    let key = victim.media.unwrap().key;
    assert!(!engine.store().exists(&key).await.unwrap());
    let results = engine
        .search(&Query::text("anything").mode(SearchMode::Audio).k(10))
        .await
        .unwrap();
    assert!(results.hits.iter().all(|h| h.asset_id != victim.asset_id));
    assert_eq!(engine.index_stats().await.unwrap().assets, 7);
}

/// Metadata edited after ingest (rename, tags, fields) is seen by filters inside the k-NN
/// search, by keyword search, and after a restart; the provider is never called again.
#[tokio::test]
async fn metadata_edited_in_place_is_filtered_found_by_keywords_and_kept() {
    use crossmodal::{FieldTest, Filter, Grouping, MetaPatch};
    let dir = tempfile::tempdir().unwrap();
    let mp4 = fixtures().join("video.mp4");
    let id = {
        let (engine, provider) = engine(dir.path()).await;
        for (p, _) in library() {
            let item = IngestItem::file(&p).field("campaign", "spring");
            engine.ingest(item).await.unwrap();
        }
        let id = crossmodal::AssetId::from_content(&std::fs::read(&mp4).unwrap());
        let calls = provider.calls.load(Ordering::SeqCst);
        // "castle siege" finds nothing by name yet; its pictures are the castle topic.
        let patch = MetaPatch::default()
            .rename("castle_siege_v3.mp4")
            .set("campaign", "autumn")
            .set("budget", 12_000.0)
            .add_tag("approved");
        let record = engine.update_asset(&id, &patch).await.unwrap();
        assert_eq!(record.display_name.as_deref(), Some("castle_siege_v3.mp4"));
        assert_eq!(
            provider.calls.load(Ordering::SeqCst),
            calls,
            "nothing re-embedded"
        );
        // A bad patch changes nothing and names the problem.
        let err = engine
            .update_asset(&id, &MetaPatch::default().add_tag(""))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        let err = engine
            .update_asset(&crossmodal::AssetId::from_content(b"nope"), &patch)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        id
    };
    // After a restart: the index's records and the catalog both carry the change.
    let (engine, _) = engine(dir.path()).await;
    let autumn = Filter::default().field("campaign", FieldTest::Eq("autumn".into()));
    let results = engine
        .search(&Query::text("anything at all").filter(autumn).k(10))
        .await
        .unwrap();
    let ids: Vec<_> = results.hits.iter().map(|h| h.asset_id.clone()).collect();
    assert_eq!(
        ids,
        vec![id.clone()],
        "the field filter runs inside the search"
    );
    assert!(results.hits[0].meta.tags.contains(&"approved".to_string()));
    let budget = Filter::default().field(
        "budget",
        FieldTest::Range {
            gte: Some(10_000.0.into()),
            lt: None,
        },
    );
    let results = engine
        .search(&Query::text("sunset").filter(budget).k(10))
        .await
        .unwrap();
    assert_eq!(results.hits.len(), 1);
    // Keywords: the new name is found by its words, marked where it matched, and the clip
    // view lists the video's matching clips.
    let results = engine
        .search(
            &Query::text("castle siege")
                .keywords(true)
                .grouping(Grouping::clips(5))
                .k(3),
        )
        .await
        .unwrap();
    let hit = &results.hits[0];
    assert_eq!(hit.asset_id, id);
    let kw = hit.keywords.as_ref().expect("matched by keywords");
    assert!(kw.matches.iter().any(|m| m.field == "name"), "{kw:?}");
    assert!(hit.clips.len() >= 2, "{:?}", hit.clips);
}

/// An index directory lost or rolled back behind the catalog's back (restored from an older
/// backup, deleted by hand) is repaired at open from the embedding cache: every asset the
/// catalog calls indexed is searchable again and the provider is not called.
#[tokio::test]
async fn an_index_directory_replaced_by_an_older_copy_is_repaired_at_open_without_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let files = library();
    let (first, rest) = files.split_at(3);
    let backup = tempfile::tempdir().unwrap();
    let calls = {
        let (engine, provider) = engine(dir.path()).await;
        for (p, _) in first {
            engine.ingest_file(p).await.unwrap();
        }
        drop(engine);
        // A backup of the index with the first three assets only.
        copy_dir(&dir.path().join("index"), backup.path());
        let (engine, _) = self::engine_with(dir.path(), provider.clone()).await;
        for (p, _) in rest {
            engine.ingest_file(p).await.unwrap();
        }
        provider.calls.load(Ordering::SeqCst)
    };
    assert_eq!(calls, 8);
    // The index goes back to the backup: five assets' vectors are gone.
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    copy_dir(backup.path(), &dir.path().join("index"));
    let provider = Arc::new(TopicProvider::new(&library()));
    let engine = Engine::open_local(dir.path(), provider.clone())
        .await
        .unwrap();
    let report = engine.open_report().reconciled;
    assert_eq!(
        (report.checked, report.missing, report.reindexed),
        (8, 5, 5),
        "{report:?}"
    );
    assert_eq!(provider.calls.load(Ordering::SeqCst), 0, "no model call");
    let results = engine.search(&Query::text("drums").k(10)).await.unwrap();
    let names: Vec<_> = results
        .hits
        .iter()
        .filter_map(|h| h.display_name.clone())
        .collect();
    for (p, _) in rest
        .iter()
        .filter(|(p, _)| !p.to_string_lossy().contains("image"))
    {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        assert!(names.contains(&name), "{name} is found again: {names:?}");
    }
    assert_eq!(engine.counts().await.unwrap().indexed, 8);
}

async fn engine_with(dir: &Path, provider: Arc<TopicProvider>) -> (Engine, Arc<TopicProvider>) {
    let engine = Engine::open_local(dir, provider.clone()).await.unwrap();
    (engine, provider)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else if entry.file_name() != "LOCK" && entry.file_name() != "lock" {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
