//! Asynchronous jobs that outlive a call (the job ledger), output cleanup, output shapes the
//! documentation differs on, and `ModelErrorException` retries.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use crossmodal_bedrock::MarengoModel;
use crossmodal_core::{
    EmbeddingProvider, EmbeddingSpace, ErrorKind, JobLedger, MediaFormat, SqliteCatalog,
    SqliteJobLedger,
};

fn never() -> JobBehaviour {
    JobBehaviour {
        never: true,
        ..JobBehaviour::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Point 7: a job that outlives the poll time-out is picked up, not paid for again

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_job_is_picked_up_by_the_next_call_without_a_second_start() {
    let endpoint =
        s3_or_skip!("a_timed_out_job_is_picked_up_by_the_next_call_without_a_second_start");
    let env = Env::with_s3(&endpoint, "pickup").await;
    env.server.set_jobs(never());
    let p = env.provider(fast_config(MarengoModel::V3_0).job_timeout(Duration::from_millis(200)));
    let bytes = fake_media(MediaFormat::Wav, 9_000, 30);
    let m = media(MediaFormat::Wav, bytes.clone(), None);

    let err = p.embed_media(&m).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(!err.is_temporary());
    let arn = err.context_value("invocation").unwrap().to_string();
    assert!(err.to_string().contains("job ledger"), "{err}");
    let recorded = p.job_ledger().list().await.unwrap();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].invocation, arn);
    assert_eq!(recorded[0].key.content, m.asset_id);

    // Still running: a retry waits for the same job (and times out again), no second start.
    let err = p.embed_media(&m).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert_eq!(err.context_value("invocation"), Some(arn.as_str()));
    assert_eq!(env.server.calls(Op::StartAsyncInvoke), 1);

    // The job finishes on Bedrock; the next call reads its output.
    env.server.complete_jobs().await;
    let e = p.embed_media(&m).await.unwrap();
    assert!(!e.is_empty());
    assert_eq!(
        e[0].vector,
        server::media_vector(common::schema::Version::V30, &bytes, "audio", 0)
    );
    assert_eq!(env.server.calls(Op::StartAsyncInvoke), 1, "paid twice");
    assert_eq!(env.server.jobs_created(), 1);
    let stats = p.stats();
    assert_eq!((stats.jobs_started, stats.jobs_resumed), (1, 1));
    assert!(p.job_ledger().list().await.unwrap().is_empty(), "consumed");
    env.server.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_run_with_the_sqlite_ledger_in_catalog_db_picks_the_job_up() {
    let endpoint = s3_or_skip!("a_later_run_with_the_sqlite_ledger_in_catalog_db_picks_the_job_up");
    let env = Env::with_s3(&endpoint, "sqlitejobs").await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("catalog.db");
    let _catalog = SqliteCatalog::open(&db).unwrap();
    env.server.set_jobs(never());
    let bytes = fake_media(MediaFormat::Mp4, 12_000, 32);
    let uri = put_s3(&env.s3, &env.bucket, "in/long.mp4", bytes.clone()).await;
    let m = media(MediaFormat::Mp4, bytes, Some(&uri));

    // First run: the job outlives the time-out; the process ends.
    {
        let ledger = Arc::new(SqliteJobLedger::open(&db).unwrap());
        let p = env
            .provider_builder(
                fast_config(MarengoModel::V3_0).job_timeout(Duration::from_millis(150)),
            )
            .job_ledger(ledger)
            .build()
            .unwrap();
        let err = p.embed_media(&m).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    }
    env.server.complete_jobs().await;

    // A later run, a new provider on the same file.
    let ledger = Arc::new(SqliteJobLedger::open(&db).unwrap());
    assert_eq!(ledger.list().await.unwrap().len(), 1);
    let p = env
        .provider_builder(fast_config(MarengoModel::V3_0))
        .job_ledger(ledger.clone())
        .build()
        .unwrap();
    let e = p.embed_media(&m).await.unwrap();
    assert!(!e.is_empty());
    assert_eq!(env.server.calls(Op::StartAsyncInvoke), 1, "paid twice");
    assert_eq!(p.stats().jobs_resumed, 1);
    assert!(ledger.list().await.unwrap().is_empty());
    env.server.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_job_that_is_gone_or_failed_is_replaced_by_a_new_one() {
    let endpoint = s3_or_skip!("a_recorded_job_that_is_gone_or_failed_is_replaced_by_a_new_one");
    let env = Env::with_s3(&endpoint, "gonejobs").await;
    // `short` leaves jobs recorded (its time-out passes); `next` is the later call on the same
    // ledger, with a time-out no loaded machine reaches, so only the ledger decides what it does.
    let short =
        env.provider(fast_config(MarengoModel::V3_0).job_timeout(Duration::from_millis(150)));
    let next = env
        .provider_builder(fast_config(MarengoModel::V3_0))
        .job_ledger(short.job_ledger().clone())
        .build()
        .unwrap();
    let m = media(
        MediaFormat::Wav,
        fake_media(MediaFormat::Wav, 4_000, 34),
        None,
    );

    // Bedrock no longer knows the invocation.
    env.server.set_jobs(never());
    short.embed_media(&m).await.unwrap_err();
    assert_eq!(short.job_ledger().list().await.unwrap().len(), 1);
    env.server.forget_jobs();
    env.server.set_jobs(JobBehaviour::default());
    assert!(!next.embed_media(&m).await.unwrap().is_empty());
    assert_eq!(env.server.calls(Op::StartAsyncInvoke), 2);

    // The recorded job failed after the caller stopped waiting.
    env.server.set_jobs(JobBehaviour {
        never: true,
        fail: Some("transient decoder failure".into()),
        ..JobBehaviour::default()
    });
    let m2 = media(
        MediaFormat::Wav,
        fake_media(MediaFormat::Wav, 4_000, 36),
        None,
    );
    short.embed_media(&m2).await.unwrap_err();
    env.server.complete_jobs().await; // it fails
    env.server.set_jobs(JobBehaviour::default());
    assert!(!next.embed_media(&m2).await.unwrap().is_empty());
    assert_eq!(env.server.calls(Op::StartAsyncInvoke), 4);
    assert!(next.job_ledger().list().await.unwrap().is_empty());
    assert_eq!(next.stats().jobs_resumed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staged_upload_outlives_a_timed_out_job_and_goes_once_it_is_read() {
    let endpoint = s3_or_skip!("a_staged_upload_outlives_a_timed_out_job_and_goes_once_it_is_read");
    let env = Env::with_s3(&endpoint, "stagedjob").await;
    env.server.set_jobs(never());
    let p = env.provider(
        fast_config(MarengoModel::V3_0)
            .staging_s3_uri(env.uri("staging/"))
            .media_source(crossmodal_bedrock::MediaSourcePolicy::S3Only)
            .spaces([EmbeddingSpace::Audio])
            .job_timeout(Duration::from_millis(150)),
    );
    let m = media(
        MediaFormat::Mp4,
        fake_media(MediaFormat::Mp4, 5_000, 38),
        None,
    );
    p.embed_media(&m).await.unwrap_err();
    // The job still reads its staged input: it must stay.
    assert_eq!(list_keys(&env.s3, &env.bucket, "staging/").await.len(), 1);
    env.server.complete_jobs().await;
    p.embed_media(&m).await.unwrap();
    assert!(list_keys(&env.s3, &env.bucket, "staging/").await.is_empty());
    assert_eq!(env.server.calls(Op::StartAsyncInvoke), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_files_are_deleted_after_a_read_when_asked() {
    let endpoint = s3_or_skip!("output_files_are_deleted_after_a_read_when_asked");
    let env = Env::with_s3(&endpoint, "cleanup").await;
    let m = media(
        MediaFormat::Wav,
        fake_media(MediaFormat::Wav, 3_000, 40),
        None,
    );
    let keep = env.provider(fast_config(MarengoModel::V3_0));
    keep.embed_media(&m).await.unwrap();
    assert_eq!(list_keys(&env.s3, &env.bucket, "out/").await.len(), 2);
    assert_eq!(keep.stats().output_objects_deleted, 0);

    let clean = env.provider(fast_config(MarengoModel::V3_0).delete_output_after_read(true));
    let m2 = media(
        MediaFormat::Wav,
        fake_media(MediaFormat::Wav, 3_000, 42),
        None,
    );
    clean.embed_media(&m2).await.unwrap();
    // Only the first job's files are left.
    let keys = list_keys(&env.s3, &env.bucket, "out/").await;
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_eq!(clean.stats().output_objects_deleted, 2);
}

// ---------------------------------------------------------------------------------------------
// Point 6: both documented output shapes, unknown items skipped and counted

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_output_shapes_are_read_and_unknown_items_are_skipped_and_counted() {
    let endpoint =
        s3_or_skip!("both_output_shapes_are_read_and_unknown_items_are_skipped_and_counted");
    let env = Env::with_s3(&endpoint, "shapes").await;
    let p = env.provider(fast_config(MarengoModel::V3_0).spaces([EmbeddingSpace::Visual]));

    // `data` as one object, options and scope as lists (one short clip).
    env.server.set_jobs(JobBehaviour {
        malformed: Some(Malformed::DataAsObject),
        ..JobBehaviour::default()
    });
    let bytes = fake_media(MediaFormat::Mp4, 2_000, 44);
    let e = p
        .embed_media(&media(MediaFormat::Mp4, bytes.clone(), None))
        .await
        .unwrap();
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].space, EmbeddingSpace::Visual);
    assert_eq!(
        e[0].vector,
        server::media_vector(common::schema::Version::V30, &bytes, "visual", 0)
    );

    // A `fused` item and one of an unknown space: skipped, counted, the rest kept.
    env.server.set_jobs(JobBehaviour {
        malformed: Some(Malformed::ExtraItems),
        ..JobBehaviour::default()
    });
    let bytes = fake_media(MediaFormat::Mp4, 12_000, 46);
    let e = p
        .embed_media(&media(MediaFormat::Mp4, bytes.clone(), None))
        .await
        .unwrap();
    let segs = server::segments(
        common::schema::Version::V30,
        "video",
        common::schema::Seg::Default,
        server::media_duration(&bytes),
    );
    assert_eq!(e.len(), segs.len());
    assert_eq!(p.stats().output_items_skipped, 2);

    // Malformed output names the invocation and the output's URI.
    env.server.set_jobs(JobBehaviour {
        malformed: Some(Malformed::WrongDimension),
        ..JobBehaviour::default()
    });
    let err = p
        .embed_media(&media(
            MediaFormat::Mp4,
            fake_media(MediaFormat::Mp4, 2_000, 48),
            None,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ModelFailed);
    let output = err.context_value("output").unwrap();
    assert!(
        output.starts_with(&env.uri("out/")) && output.ends_with("/output.json"),
        "{err}"
    );
    assert!(err.to_string().contains(output), "{err}");
    env.server.assert_no_violations();
}

// ---------------------------------------------------------------------------------------------
// Point 8: ModelErrorException is retried

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_error_exception_is_retried_like_internal_server_errors() {
    let env = Env::sync_only().await;
    let p = env.provider(fast_config(MarengoModel::V3_0));
    env.server.inject(
        Op::InvokeModel,
        2,
        "ModelErrorException",
        "The model encountered an error processing the request",
    );
    let v = p.embed_text("retry the model").await.unwrap();
    assert_eq!(
        v,
        server::text_vector(common::schema::Version::V30, "retry the model")
    );
    assert_eq!(env.server.calls(Op::InvokeModel), 3);

    // Persistent: ModelFailed after the policy's attempts, with the service's message.
    env.server.reset_counters();
    let p = env.provider(fast_config(MarengoModel::V3_0).retry(fast_retry().max_attempts(3)));
    env.server
        .inject(Op::InvokeModel, 100, "ModelErrorException", "still failing");
    let err = p.embed_text("x").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ModelFailed, "{err}");
    assert!(err.to_string().contains("still failing"), "{err}");
    assert!(err.to_string().contains("HTTP 424"), "{err}");
    assert_eq!(env.server.calls(Op::InvokeModel), 3);
}
