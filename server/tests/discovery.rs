//! Search the way designers work, over HTTP: every matching clip, pages with a cursor,
//! keywords marked, metadata edited and filtered, near-duplicates with their segment pairs.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::HashSet;
use support::*;

async fn patch(s: &Server, id: &str, body: Value) -> (StatusCode, Value) {
    let r = s
        .http
        .patch(s.url(&format!("/api/assets/{id}")))
        .json(&body)
        .send()
        .await
        .unwrap();
    json_of(r).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clips_pages_keywords_metadata_and_duplicates() {
    let s = Server::start(|_| {}).await;
    s.upload_all().await;
    let mp4 = asset_of("video.mp4").to_string();
    let webp = asset_of("image.webp").to_string();

    // Metadata edited in place: rename, a field, a tag.
    let (status, body) = patch(
        &s,
        &mp4,
        json!({"name": "castle_siege_v3.mp4", "set_fields": {"campaign": "autumn", "budget": 12000},
               "add_tags": ["approved"]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    assert_eq!(body["name"], "castle_siege_v3.mp4");
    assert_eq!(body["fields"]["campaign"], "autumn");
    assert!(
        body["tags"]
            .as_array()
            .unwrap()
            .contains(&json!("approved"))
    );
    let (status, body) = patch(&s, &mp4, json!({})).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_input");
    let (status, body) = patch(&s, &mp4, json!({"add_tags": [""]})).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_input");
    let (status, body) = patch(&s, &mp4, json!({"set_fields": {"bad name!": 1}})).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_input");
    let (status, body) = patch(
        &s,
        crossmodal_core::AssetId::from_content(b"nothing").as_str(),
        json!({"add_tags": ["x"]}),
    )
    .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");

    // Filtered inside the search by the new field.
    let (status, body) = s
        .search(json!({"text": "sunset", "filter": {"fields": [
            {"key": "campaign", "test": {"eq": "autumn"}}]}}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    assert_eq!(body["hits"].as_array().unwrap().len(), 1, "{body:#}");
    assert_eq!(body["hits"][0]["asset_id"], mp4.as_str());

    // Keywords: found by its new name, the words marked; the clip view plays each clip.
    let (status, body) = s
        .search(json!({"text": "castle siege", "keywords": true, "group": "clips", "k": 3}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    let hit = &body["hits"][0];
    assert_eq!(hit["asset_id"], mp4.as_str(), "{body:#}");
    let marks = hit["keywords"]["matches"].as_array().unwrap();
    assert!(marks.iter().any(|m| m["field"] == "name"), "{hit:#}");
    let clips = hit["clips"].as_array().unwrap();
    assert!(clips.len() >= 2, "{hit:#}");
    assert!(
        clips[0]["preview_url"]
            .as_str()
            .unwrap()
            .contains("/media#t=")
    );
    assert!(hit["clip_count"].as_u64().unwrap() >= 2);
    let (status, body) = s.search(json!({"text": "x", "group": "frames"})).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_input");

    // Pages: one order, no repeats, a cursor belongs to its query.
    let mut seen = Vec::new();
    let mut request = json!({"text": "sunset", "k": 2});
    let mut pages = 0;
    loop {
        let (status, body) = s.search(request.clone()).await;
        assert_eq!(status, StatusCode::OK, "{body:#}");
        pages += 1;
        seen.extend(
            body["hits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["asset_id"].as_str().unwrap().to_string()),
        );
        match body["next_cursor"].as_str() {
            Some(c) => request["cursor"] = json!(c),
            None => break,
        }
        assert!(pages < 20, "pages end");
    }
    assert!(pages >= 3, "{pages} pages");
    let distinct: HashSet<&String> = seen.iter().collect();
    assert_eq!(
        distinct.len(),
        seen.len(),
        "no asset on two pages: {seen:?}"
    );
    let (_, first) = s.search(json!({"text": "sunset", "k": 2})).await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let (status, body) = s
        .search(json!({"text": "forest", "k": 2, "cursor": cursor}))
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_input");

    // Near-duplicates: the castle image is the video's first second, a shared part (the video
    // has more), with the pair of segments.
    let (status, body) = s.get(&format!("/api/assets/{webp}/duplicates")).await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    let dups = body["duplicates"].as_array().unwrap();
    let video = dups
        .iter()
        .find(|d| d["asset_id"] == mp4.as_str())
        .expect("the video shares the image's picture");
    assert_eq!(video["kind"], "shared_part", "{video:#}");
    assert_eq!(video["pairs"][0]["other_segment"]["start_sec"], 0.0);
    let (status, body) = s.get("/api/duplicates?min_cosine=0.99&limit=50").await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    assert!(!body["pairs"].as_array().unwrap().is_empty());
    let (status, body) = s.get("/api/duplicates?limit=0").await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_input");
    let (status, body) = s
        .get(&format!("/api/assets/{webp}/duplicates?min_cosine=3"))
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_input");
}
