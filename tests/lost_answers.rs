//! Completions whose answer was lost (a crash or a timeout after the service acted,
//! before the journal heard of it). The engine must find the delivered object by
//! `stat` instead of sending the file again. Real journal file, the real local
//! backend and the real Insights Hub backend against the testbed, the engine
//! in-process; the lost answer is staged by doing the service's side of the work
//! through the backend directly.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dropship::backend::{
    Backend, BackendConfig, FileDigests, FileSpec, FinalPart, Meter, PartBody, PartSpec,
};
use dropship::digest::{DigestKind, digest_of};
use dropship::engine::{Backoff, Engine, EngineSettings};
use dropship::identity::Identity;
use dropship::journal::{Enqueued, FileState, Journal, JournalHandle, NewFile, now_ms};
use tokio_util::sync::CancellationToken;

const PART: u64 = 64 << 10;

struct Staged {
    _dir: tempfile::TempDir,
    journal_path: std::path::PathBuf,
    backend: Arc<dyn Backend>,
    data: Vec<u8>,
    id: i64,
}

/// A 5-part file whose upload was completed at the service, while the journal
/// still says `completing` (it never heard the answer). With `torn_cleanup`, the
/// service's own cleanup after publishing was cut short too (the local backend's
/// receipts outlive its data after a power cut between rename and cleanup).
async fn completed_but_unrecorded(torn_cleanup: bool) -> Staged {
    let dir = tempfile::tempdir().expect("tempdir");
    let outbox = dir.path().join("outbox");
    std::fs::create_dir_all(&outbox).expect("outbox");
    let data: Vec<u8> = (0..5 * PART as usize - 100)
        .map(|i| (i % 251) as u8)
        .collect();
    let path = outbox.join("x.bin");
    std::fs::write(&path, &data).expect("file");
    let identity = Identity::of(&std::fs::metadata(&path).expect("meta"));

    let cfg: BackendConfig = toml::from_str(&format!(
        "type = \"local\"\npath = \"{}\"",
        dir.path().join("remote").display()
    ))
    .expect("backend config");
    let backend = cfg.build(Default::default()).expect("backend");
    let spec = FileSpec {
        key: "x.bin".into(),
        size: data.len() as u64,
        mtime: 0,
        content_type: None,
    };
    let session = backend.begin(&spec).await.expect("begin");
    let plan = dropship_cut(data.len() as u64);
    let mut receipts = Vec::new();
    for (i, (offset, length)) in plan.iter().enumerate() {
        let part = PartSpec {
            index: i as u32,
            offset: *offset,
            length: *length,
            total: data.len() as u64,
            digest: None,
            last: i + 1 == plan.len(),
        };
        let body = Bytes::copy_from_slice(&data[*offset as usize..(*offset + *length) as usize]);
        receipts.push(
            backend
                .put_part(&session, &part, PartBody::new(body, Meter::new(None)))
                .await
                .expect("part"),
        );
    }
    let digests = FileDigests {
        object: Some(digest_of(DigestKind::Sha256, &data)),
        part: None,
    };
    let staging = dir
        .path()
        .join("remote/.dropship-staging")
        .join(&session.id);
    let kept: Vec<(std::path::PathBuf, Vec<u8>)> = std::fs::read_dir(&staging)
        .expect("staging")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| (p.clone(), std::fs::read(&p).expect("receipt")))
        .collect();
    backend
        .complete(&session, &spec, &receipts, None, &digests)
        .await
        .expect("complete at the service");
    if torn_cleanup {
        std::fs::create_dir_all(&staging).expect("staging again");
        for (p, bytes) in kept {
            std::fs::write(p, bytes).expect("receipt again");
        }
    }

    // The journal's view: every part acknowledged, completion asked, no answer.
    let journal_path = dir.path().join("journal.db");
    let mut j = Journal::open(&journal_path).expect("journal");
    let Enqueued::Added(id) = j
        .enqueue(&NewFile {
            path: path.clone(),
            key: Ok("x.bin".into()),
            size: identity.size,
            mtime_ns: identity.mtime_ns,
            inode: identity.inode,
            rule: None,
            priority: 0,
            compress: None,
        })
        .expect("enqueue")
    else {
        panic!("added")
    };
    j.claim_next(now_ms(), &[]).expect("claim").expect("row");
    j.start_session(id, Some(&session), PART, &plan)
        .expect("session");
    for r in &receipts {
        j.part_start(id, r.index, None).expect("start");
        j.part_uploaded(id, r.index, r).expect("ack");
    }
    j.to_completing(id, &digests).expect("completing");
    drop(j);
    Staged {
        _dir: dir,
        journal_path,
        backend,
        data,
        id,
    }
}

fn dropship_cut(size: u64) -> Vec<(u64, u64)> {
    (0..size.div_ceil(PART))
        .map(|i| (i * PART, PART.min(size - i * PART)))
        .collect()
}

/// Runs the engine until the row comes to rest; returns it.
async fn resume(st: &Staged) -> dropship::journal::FileRow {
    let mut j = Journal::open(&st.journal_path).expect("journal");
    j.recover().expect("recover, as the next start does");
    let journal = JournalHandle::new(j);
    let settings = EngineSettings {
        workers: 1,
        parts_in_flight: 2,
        part_size: PART,
        after: dropship::config::After::Keep,
        backoff: Backoff {
            base: Duration::from_millis(50),
            max: Duration::from_millis(200),
        },
        verify_attempts: 2,
        bandwidth_limit: None,
        root: st.journal_path.parent().expect("folder").join("outbox"),
        verify: dropship::config::VerifyMode::Auto,
        verify_samples: 4,
        on_exists: dropship::config::OnExists::Overwrite,
        rule_after: Vec::new(),
        content_type: None,
        rule_content_type: Vec::new(),
        spool: st.journal_path.parent().expect("folder").join("spool"),
        spool_max: 1 << 30,
    };
    let engine = Engine::new(
        settings,
        journal.clone(),
        st.backend.clone(),
        Arc::default(),
        Arc::new(dropship::metrics::Metrics::new()),
    );
    let cancel = CancellationToken::new();
    let run = tokio::spawn(engine.run(cancel.clone()));
    let id = st.id;
    let mut row = None;
    for _ in 0..200 {
        let r = journal
            .call(move |j| j.file(id))
            .await
            .expect("read")
            .expect("row");
        if !r.state.is_active() {
            row = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cancel.cancel();
    run.await.expect("engine task").expect("engine");
    row.expect("the row came to rest")
}

async fn check_found_not_resent(torn_cleanup: bool) {
    let st = completed_but_unrecorded(torn_cleanup).await;
    let sent_before = Journal::open(&st.journal_path)
        .expect("journal")
        .file(st.id)
        .expect("row")
        .expect("exists")
        .bytes_sent;
    let row = resume(&st).await;
    assert_eq!(row.state, FileState::Done, "{row:?}");
    assert_eq!(row.bytes_sent, sent_before, "nothing was sent again");
    let stat = st
        .backend
        .stat("x.bin", None)
        .await
        .expect("stat")
        .expect("stored");
    assert_eq!(stat.size, st.data.len() as u64);
    assert_eq!(stat.digest, Some(digest_of(DigestKind::Sha256, &st.data)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_whose_answer_was_lost_is_found_not_resent() {
    check_found_not_resent(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_whose_cleanup_was_cut_short_is_found_not_resent() {
    check_found_not_resent(true).await;
}

/// Insights Hub: the last part rides on the completion, and the service has no
/// checksum: the lost answer is recognised by the file's ETag having moved past the
/// one the upload began over (here: the file appeared), then verified by reading
/// sampled ranges back. Nothing is sent again and the file is written once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insights_hub_completion_whose_answer_was_lost_is_recognised() {
    const IH_PART: u64 = 5 << 20;
    const ENTITY: &str = "00189ab4c65243bb9d77f17332dd570a";
    let dir = tempfile::tempdir().expect("tempdir");
    let tb = dropship_testbed::Testbed::start(dropship_testbed::Options::loopback(
        dir.path().join("store"),
    ))
    .await
    .expect("testbed");
    let outbox = dir.path().join("outbox");
    std::fs::create_dir_all(&outbox).expect("outbox");
    let data: Vec<u8> = (0..IH_PART as usize + 100_000)
        .map(|i| (i % 251) as u8)
        .collect();
    let path = outbox.join("x.bin");
    std::fs::write(&path, &data).expect("file");
    let identity = Identity::of(&std::fs::metadata(&path).expect("meta"));
    std::fs::write(dir.path().join("token"), dropship_testbed::DEFAULT_SECRET).expect("token");
    let cfg: BackendConfig = toml::from_str(&format!(
        "type = \"insights-hub\"\ngateway_url = \"{}\"\nentity_id = \"{ENTITY}\"\ntoken_file = \"{}\"",
        tb.emulator_url("insights-hub"),
        dir.path().join("token").display()
    ))
    .expect("backend config");
    let backend = cfg.build(Default::default()).expect("backend");
    let spec = FileSpec {
        key: "x.bin".into(),
        size: data.len() as u64,
        mtime: 0,
        content_type: None,
    };
    let plan = vec![(0, IH_PART), (IH_PART, data.len() as u64 - IH_PART)];
    let mut session = backend.begin(&spec).await.expect("begin");
    session.part_size = Some(IH_PART); // as the engine records it
    let parts: Vec<PartSpec> = plan
        .iter()
        .enumerate()
        .map(|(i, &(offset, length))| PartSpec {
            index: i as u32,
            offset,
            length,
            total: data.len() as u64,
            digest: None,
            last: i + 1 == plan.len(),
        })
        .collect();
    let body = |p: &PartSpec| {
        PartBody::new(
            Bytes::copy_from_slice(&data[p.offset as usize..(p.offset + p.length) as usize]),
            Meter::new(None),
        )
    };
    let first = backend
        .put_part(&session, &parts[0], body(&parts[0]))
        .await
        .expect("part 1");
    let digests = FileDigests::default();
    backend
        .complete(
            &session,
            &spec,
            std::slice::from_ref(&first),
            Some(FinalPart {
                spec: parts[1].clone(),
                body: body(&parts[1]),
            }),
            &digests,
        )
        .await
        .expect("complete at the service");

    // The journal's view: part 1 acknowledged, the last part on its way with the
    // completion, no answer.
    let journal_path = dir.path().join("journal.db");
    let mut j = Journal::open(&journal_path).expect("journal");
    let Enqueued::Added(id) = j
        .enqueue(&NewFile {
            path: path.clone(),
            key: Ok("x.bin".into()),
            size: identity.size,
            mtime_ns: identity.mtime_ns,
            inode: identity.inode,
            rule: None,
            priority: 0,
            compress: None,
        })
        .expect("enqueue")
    else {
        panic!("added")
    };
    j.claim_next(now_ms(), &[]).expect("claim").expect("row");
    j.clash_checked(id).expect("checked");
    j.start_session(id, Some(&session), IH_PART, &plan)
        .expect("session");
    j.part_start(id, 0, None).expect("start");
    j.part_uploaded(id, 0, &first).expect("ack");
    j.part_start(id, 1, None).expect("start the carried part");
    j.to_completing(id, &digests).expect("completing");
    drop(j);

    let received = tb.stats().bytes_received;
    let st = Staged {
        _dir: dir,
        journal_path,
        backend,
        data,
        id,
    };
    let row = resume(&st).await;
    assert_eq!(row.state, FileState::Done, "{row:?}");
    assert_eq!(
        tb.stats().bytes_received,
        received,
        "bytes were sent again for a completed upload"
    );
    assert_eq!(
        tb.object_bytes("insights-hub", &format!("{ENTITY}/x.bin"))
            .expect("stored"),
        st.data
    );
    let objects = tb.objects();
    assert_eq!(objects.len(), 1, "{objects:?}");
}
