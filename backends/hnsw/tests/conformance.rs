//! The core `VectorIndex` behaviour suite: default planning, forced graph walks over the link
//! copy and over hnsw_rs's own search, in memory and persisted.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use crossmodal_core::VectorIndex;
use crossmodal_core::conformance::vector_index_suite;
use crossmodal_hnsw::{GraphSearch, HnswConfig, HnswIndex};

#[tokio::test]
async fn default_index_passes_the_vector_index_suite() {
    // The suite's spaces are small (32 dims, <= 6000 vectors), so the default plan scans them
    // exactly; the tests below force the graph.
    vector_index_suite(|spec| async move {
        Box::new(HnswIndex::new(spec, HnswConfig::default()).expect("index"))
            as Box<dyn VectorIndex>
    })
    .await;
}

#[tokio::test]
async fn graph_walk_passes_the_suite() {
    vector_index_suite(|spec| async move {
        let config = HnswConfig::default().always_walk_graph();
        Box::new(HnswIndex::new(spec, config).expect("index")) as Box<dyn VectorIndex>
    })
    .await;
}

#[tokio::test]
async fn hnsw_rs_search_passes_the_suite() {
    vector_index_suite(|spec| async move {
        let config = HnswConfig::default()
            .always_walk_graph()
            .graph_search(GraphSearch::HnswRs);
        Box::new(HnswIndex::new(spec, config).expect("index")) as Box<dyn VectorIndex>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persisted_graph_walk_passes_the_suite() {
    let root = tempfile::tempdir().expect("tempdir");
    let counter = std::sync::atomic::AtomicUsize::new(0);
    let root_path = root.path().to_path_buf();
    vector_index_suite(|spec| {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = root_path.join(format!("index-{n}"));
        async move {
            let config = HnswConfig::default().always_walk_graph();
            Box::new(HnswIndex::open(dir, spec, config).expect("index")) as Box<dyn VectorIndex>
        }
    })
    .await;
}
