//! The facade's features compile what its documentation says (issue 14 point 3): the embedded
//! default, the `server` library and a self-managed OpenSearch cluster (`opensearch`) pull no
//! AWS SDK crate; `opensearch-aws` adds the SigV4 stack but not the Bedrock or S3 SDK.
//!
//! Each test asks `cargo tree` (offline, from `Cargo.lock`) for the crates that `crossmodal`
//! with those features builds for this host: normal and build dependencies, no dev-dependencies.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// The crates `crossmodal` builds with `--no-default-features --features <features>`.
fn crates_built(features: &[&str]) -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let output = Command::new(cargo)
        .current_dir(workspace)
        .args([
            "tree",
            "--offline",
            "-p",
            "crossmodal",
            "--no-default-features",
        ])
        .args(["--features", &features.join(",")])
        .args(["-e", "normal,build", "--prefix", "none", "--format", "{p}"])
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let crates: BTreeSet<String> = stdout
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_string)
        .collect();
    assert!(crates.contains("crossmodal-core"), "{crates:?}");
    crates
}

/// The AWS SDK crates among `crates` (`aws-lc-rs` / `aws-lc-sys` are rustls's crypto provider,
/// not the SDK).
fn aws_sdk_crates(crates: &BTreeSet<String>) -> Vec<&str> {
    crates
        .iter()
        .map(String::as_str)
        .filter(|c| c.starts_with("aws-") && !c.starts_with("aws-lc-"))
        .collect()
}

#[test]
fn the_embedded_default_builds_no_aws_crate_and_no_other_backend() {
    let crates = crates_built(&["hnsw"]);
    assert!(crates.contains("crossmodal-hnsw"));
    let aws: Vec<_> = crates.iter().filter(|c| c.starts_with("aws-")).collect();
    assert!(aws.is_empty(), "the embedded default builds {aws:?}");
    for other in [
        "crossmodal-bedrock",
        "crossmodal-s3",
        "crossmodal-opensearch",
        "crossmodal-server",
        "opensearch",
        "reqwest",
        "hyper",
        "rustls",
    ] {
        assert!(
            !crates.contains(other),
            "the embedded default builds {other}"
        );
    }
}

#[test]
fn opensearch_for_a_self_managed_cluster_builds_no_aws_sdk_crate() {
    let crates = crates_built(&["opensearch"]);
    assert!(crates.contains("crossmodal-opensearch"));
    assert!(crates.contains("opensearch"));
    let aws = aws_sdk_crates(&crates);
    assert!(aws.is_empty(), "`opensearch` builds {aws:?}");
}

#[test]
fn opensearch_aws_adds_sigv4_but_not_the_bedrock_or_s3_sdk() {
    let crates = crates_built(&["opensearch-aws"]);
    for needed in ["crossmodal-opensearch", "aws-config", "aws-sigv4"] {
        assert!(crates.contains(needed), "`opensearch-aws` lacks {needed}");
    }
    for absent in ["aws-sdk-bedrockruntime", "aws-sdk-s3", "crossmodal-bedrock"] {
        assert!(!crates.contains(absent), "`opensearch-aws` builds {absent}");
    }
}

#[test]
fn the_server_library_builds_no_aws_crate() {
    let crates = crates_built(&["hnsw", "server"]);
    assert!(crates.contains("crossmodal-server"));
    assert!(crates.contains("axum"));
    let aws: Vec<_> = crates.iter().filter(|c| c.starts_with("aws-")).collect();
    assert!(aws.is_empty(), "the `server` feature builds {aws:?}");
    // The binary's dependencies stay out of the library.
    for absent in ["crossmodal-bedrock", "clap", "tracing-subscriber", "toml"] {
        assert!(
            !crates.contains(absent),
            "the `server` feature builds {absent}"
        );
    }
}
