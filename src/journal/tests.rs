//! The journal's invariants, on real SQLite (in memory and on disk).

use super::*;
use crate::backend::Receipt;

fn new_file(path: &str, size: u64, mtime_ns: i64) -> NewFile {
    NewFile {
        path: PathBuf::from(path),
        key: Ok(path.trim_start_matches('/').to_string()),
        size,
        mtime_ns,
        inode: 7,
        rule: None,
        priority: 0,
        compress: None,
    }
}

fn receipt(index: u32, offset: u64, length: u64) -> Receipt {
    Receipt {
        index,
        offset,
        length,
        digest: None,
        extra: serde_json::json!({"etag": format!("e{index}")}),
    }
}

fn session() -> Session {
    Session {
        id: "s1".into(),
        part_size: None,
        extra: serde_json::Value::Null,
    }
}

/// Claims the file and gives it a two-part plan.
fn claimed_with_plan(j: &mut Journal) -> FileId {
    let Enqueued::Added(id) = j.enqueue(&new_file("/o/a", 10, 1)).expect("enqueue") else {
        panic!("expected a new row")
    };
    let row = j.claim_next(now_ms(), &[]).expect("claim").expect("a row");
    assert_eq!(
        (row.id, row.state, row.attempts),
        (id, FileState::Uploading, 1)
    );
    j.start_session(id, Some(&session()), 6, &[(0, 6), (6, 4)])
        .expect("session");
    id
}

#[test]
fn migrations_apply_to_an_empty_database() {
    let j = Journal::open_in_memory().expect("open");
    assert_eq!(j.user_version().expect("version"), SCHEMA_VERSION);
}

#[test]
fn every_migration_file_is_embedded_in_order() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("migrations folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".sql"))
        .collect();
    names.sort();
    let embedded: Vec<String> = MIGRATIONS.iter().map(|(n, _)| format!("{n}.sql")).collect();
    assert_eq!(names, embedded);
}

#[test]
fn same_content_is_queued_once() {
    let mut j = Journal::open_in_memory().expect("open");
    let f = new_file("/o/a", 10, 1);
    let Enqueued::Added(id) = j.enqueue(&f).expect("first") else {
        panic!("first enqueue adds")
    };
    assert_eq!(j.enqueue(&f).expect("again"), Enqueued::Unchanged(id));
    // Still the same after it is done: the startup scan sees kept files again.
    j.claim_next(now_ms(), &[]).expect("claim");
    j.start_session(id, None, 10, &[(0, 10)]).expect("plan");
    j.to_verifying(
        id,
        &RemoteObject {
            key: "o/a".into(),
            id: None,
            extra: serde_json::Value::Null,
        },
        &FileDigests::default(),
        None,
    )
    .expect("verifying");
    j.to_done(id, None, false).expect("done");
    assert_eq!(j.enqueue(&f).expect("after done"), Enqueued::Unchanged(id));
    // New content at the same path is a new row.
    let g = new_file("/o/a", 11, 2);
    assert!(matches!(j.enqueue(&g).expect("changed"), Enqueued::Added(n) if n != id));
}

#[test]
fn changed_content_supersedes_the_active_row() {
    let mut j = Journal::open_in_memory().expect("open");
    let id = claimed_with_plan(&mut j);
    let res = j.enqueue(&new_file("/o/a", 20, 2)).expect("changed");
    let Enqueued::Replaced { old, new } = res else {
        panic!("expected Replaced, got {res:?}")
    };
    assert_eq!(old, id);
    assert_eq!(
        j.file(old).expect("row").expect("exists").state,
        FileState::Superseded
    );
    assert_eq!(
        j.file(new).expect("row").expect("exists").state,
        FileState::Queued
    );
    // The worker holding the old row finds out at its next step.
    let err = j.part_start(id, 0, None).expect_err("superseded");
    assert!(err.is_stale(), "{err}");
    let err = j
        .to_completing(id, &FileDigests::default())
        .expect_err("superseded");
    assert!(err.is_stale(), "{err}");
    // Its session is an orphan to abort.
    let orphans = j.orphan_sessions().expect("orphans");
    assert_eq!(orphans, vec![(id, session())]);
    j.forget_session(id).expect("forget");
    assert!(j.orphan_sessions().expect("orphans").is_empty());
}

#[test]
fn parts_move_only_along_legal_edges_and_count_bytes() {
    let mut j = Journal::open_in_memory().expect("open");
    let id = claimed_with_plan(&mut j);
    // Not started: cannot be acknowledged.
    assert!(
        j.part_uploaded(id, 0, &receipt(0, 0, 6))
            .expect_err("not started")
            .is_stale()
    );
    j.part_start(id, 0, None).expect("start 0");
    assert!(j.part_start(id, 0, None).expect_err("twice").is_stale());
    j.part_start(id, 1, None).expect("start 1");
    assert_eq!(j.file(id).expect("row").expect("exists").bytes_sent, 10);
    // Part 1 fails after 1 of its 4 bytes left.
    j.part_failed(id, 1, 3).expect("failed");
    assert_eq!(j.file(id).expect("row").expect("exists").bytes_sent, 7);
    j.part_uploaded(id, 0, &receipt(0, 0, 6)).expect("ack 0");
    let parts = j.parts(id).expect("parts");
    assert_eq!(parts[0].state, PartState::Uploaded);
    assert_eq!(parts[0].receipt, Some(receipt(0, 0, 6)));
    assert_eq!(parts[1].state, PartState::Pending);
    // The server's list decides: it holds part 1 and lost part 0.
    j.part_held(id, 1, &receipt(1, 6, 4)).expect("held");
    j.part_lost(id, 0).expect("lost");
    let parts = j.parts(id).expect("parts");
    assert_eq!(
        (parts[0].state, parts[1].state),
        (PartState::Pending, PartState::Uploaded)
    );
    assert_eq!(parts[0].receipt, None);
}

#[test]
fn uploaded_without_receipt_is_impossible() {
    let mut j = Journal::open_in_memory().expect("open");
    let id = claimed_with_plan(&mut j);
    let r = j.conn.execute(
        "UPDATE parts SET state = 'uploaded' WHERE file_id = ?1 AND idx = 0",
        params![id],
    );
    assert!(r.is_err(), "the CHECK constraint must refuse it");
}

#[test]
fn recover_resumes_what_was_in_flight() {
    let mut j = Journal::open_in_memory().expect("open");
    let id = claimed_with_plan(&mut j);
    j.part_start(id, 0, None).expect("start");
    j.part_start(id, 1, None).expect("start");
    j.part_uploaded(id, 1, &receipt(1, 6, 4)).expect("ack");
    // SIGKILL here; next start:
    assert_eq!(j.recover().expect("recover"), 1);
    let row = j.file(id).expect("row").expect("exists");
    assert_eq!(row.state, FileState::Queued);
    assert_eq!(row.session, Some(session()), "the session survives");
    let parts = j.parts(id).expect("parts");
    assert_eq!(
        (parts[0].state, parts[1].state),
        (PartState::Pending, PartState::Uploaded)
    );
    // Claimable again, and the plan cannot be replaced while a session exists.
    assert_eq!(
        j.claim_next(now_ms(), &[])
            .expect("claim")
            .map(|r| r.attempts),
        Some(2)
    );
    assert!(
        j.start_session(id, Some(&session()), 6, &[(0, 10)])
            .is_err()
    );
}

#[test]
fn retrying_waits_until_due_and_failed_needs_a_person() {
    let mut j = Journal::open_in_memory().expect("open");
    let id = claimed_with_plan(&mut j);
    let now = now_ms();
    j.retry_later(id, now + 60_000, 1, "503 from server")
        .expect("retry later");
    assert_eq!(j.claim_next(now, &[]).expect("claim"), None);
    assert_eq!(j.next_due().expect("due"), Some(now + 60_000));
    assert_eq!(
        j.claim_next(now + 60_000, &[])
            .expect("claim")
            .map(|r| r.id),
        Some(id)
    );
    j.fail(id, "401 credentials refused").expect("fail");
    assert_eq!(j.claim_next(now + 120_000, &[]).expect("claim"), None);
    let st = j.status().expect("status");
    assert_eq!(st.counts["failed"], 1);
    assert_eq!(
        st.files[0].last_error.as_deref(),
        Some("401 credentials refused")
    );
    assert_eq!(j.retry(RetrySelector::AllFailed).expect("retry"), vec![id]);
    assert_eq!(
        j.file(id).expect("row").expect("exists").state,
        FileState::Queued
    );
    assert!(matches!(
        j.retry(RetrySelector::One(id)),
        Err(JournalError::Refused { .. })
    ));
}

#[test]
fn retry_of_a_failed_row_with_newer_content_supersedes_it() {
    let mut j = Journal::open_in_memory().expect("open");
    let id = claimed_with_plan(&mut j);
    j.fail(id, "refused").expect("fail");
    let Enqueued::Added(newer) = j.enqueue(&new_file("/o/a", 99, 9)).expect("new") else {
        panic!("a failed row is not active: the new content is added")
    };
    assert!(j.retry(RetrySelector::One(id)).expect("retry").is_empty());
    assert_eq!(
        j.file(id).expect("row").expect("exists").state,
        FileState::Superseded
    );
    assert_eq!(
        j.file(newer).expect("row").expect("exists").state,
        FileState::Queued
    );
}

#[test]
fn a_file_without_a_key_is_failed_with_the_reason() {
    let mut j = Journal::open_in_memory().expect("open");
    let mut f = new_file("/o/x", 1, 1);
    f.key = Err("the file name is not valid UTF-8; no backend can name it".into());
    let Enqueued::Added(id) = j.enqueue(&f).expect("enqueue") else {
        panic!("added")
    };
    let row = j.file(id).expect("row").expect("exists");
    assert_eq!(row.state, FileState::Failed);
    assert!(row.last_error.expect("reason").contains("UTF-8"));
}

#[test]
fn newer_journal_is_refused_and_damage_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("j.db");
    drop(Journal::open(&path).expect("create"));
    {
        let c = Connection::open(&path).expect("raw");
        c.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .expect("bump");
    }
    let err = Journal::open(&path).expect_err("too new");
    assert!(
        matches!(err, JournalError::TooNew { found, .. } if found == SCHEMA_VERSION + 1),
        "{err}"
    );
    assert!(err.to_string().contains("newer dropship"));
    assert!(matches!(
        Journal::open_read_only(&path),
        Err(JournalError::TooNew { .. })
    ));

    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![0x5a; 8192]).expect("junk");
    let err = Journal::open(&junk).expect_err("damaged");
    assert!(matches!(err, JournalError::Damaged { .. }), "{err}");
    assert_eq!(
        std::fs::read(&junk).expect("still there"),
        vec![0x5a; 8192],
        "left untouched"
    );
}

#[test]
fn read_only_status_sees_the_writer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("j.db");
    let mut w = Journal::open(&path).expect("writer");
    w.enqueue(&new_file("/o/a", 1, 1)).expect("enqueue");
    let r = Journal::open_read_only(&path).expect("reader");
    assert_eq!(r.status().expect("status").counts["queued"], 1);
    w.enqueue(&new_file("/o/b", 1, 1)).expect("enqueue");
    assert_eq!(r.status().expect("status").counts["queued"], 2);
}

#[test]
fn retry_starts_a_failed_multi_part_file_afresh() {
    let mut j = Journal::open_in_memory().expect("open");
    let id = claimed_with_plan(&mut j);
    j.part_start(id, 0, None).expect("start");
    j.part_uploaded(id, 0, &receipt(0, 0, 6)).expect("ack");
    j.fail(id, "credentials refused").expect("fail");
    j.forget_session(id).expect("aborted");
    assert_eq!(j.retry(RetrySelector::One(id)).expect("retry"), vec![id]);
    assert!(j.parts(id).expect("parts").is_empty(), "old parts dropped");
    let row = j.claim_next(now_ms(), &[]).expect("claim").expect("row");
    assert_eq!((row.session, row.digests, row.remote), (None, None, None));
    // A new session can be recorded (it used to be refused: parts were left over).
    j.start_session(id, Some(&session()), 10, &[(0, 10)])
        .expect("new session");
}

#[test]
fn only_the_newest_failed_row_of_a_path_is_retried() {
    let mut j = Journal::open_in_memory().expect("open");
    let id = claimed_with_plan(&mut j);
    j.fail(id, "refused").expect("fail");
    let Enqueued::Added(newer) = j.enqueue(&new_file("/o/a", 99, 9)).expect("new") else {
        panic!("added")
    };
    j.claim_next(now_ms(), &[]).expect("claim");
    j.fail(newer, "refused too").expect("fail");
    assert_eq!(
        j.retry(RetrySelector::AllFailed).expect("retry"),
        vec![newer]
    );
    assert_eq!(
        j.file(id).expect("row").expect("exists").state,
        FileState::Superseded
    );
    // New content then supersedes the re-queued row; one active row per path.
    let res = j.enqueue(&new_file("/o/a", 100, 10)).expect("newest");
    assert!(
        matches!(res, Enqueued::Replaced { old, .. } if old == newer),
        "{res:?}"
    );
}

#[test]
fn claim_skips_paths_a_worker_holds() {
    let mut j = Journal::open_in_memory().expect("open");
    j.enqueue(&new_file("/o/a", 1, 1)).expect("a");
    let Enqueued::Added(b) = j.enqueue(&new_file("/o/b", 1, 1)).expect("b") else {
        panic!("added")
    };
    let busy = [PathBuf::from("/o/a")];
    assert_eq!(
        j.claim_next(now_ms(), &busy).expect("claim").map(|r| r.id),
        Some(b)
    );
    assert_eq!(j.claim_next(now_ms(), &busy).expect("claim"), None);
}

#[test]
fn release_puts_a_held_row_back_and_its_parts_to_pending() {
    let mut j = Journal::open_in_memory().expect("open");
    let id = claimed_with_plan(&mut j);
    j.part_start(id, 0, None).expect("start");
    assert!(j.release(id, 123).expect("release"));
    let row = j.file(id).expect("row").expect("exists");
    assert_eq!((row.state, row.next_attempt_at), (FileState::Retrying, 123));
    assert_eq!(j.parts(id).expect("parts")[0].state, PartState::Pending);
    assert!(
        !j.release(id, 456).expect("again"),
        "a row at rest is left alone"
    );
}

#[test]
fn an_unreadable_row_is_failed_when_claimed() {
    let mut j = Journal::open_in_memory().expect("open");
    let Enqueued::Added(id) = j.enqueue(&new_file("/o/a", 1, 1)).expect("a") else {
        panic!("added")
    };
    j.conn
        .execute(
            "UPDATE files SET session = 'not json' WHERE id = ?1",
            params![id],
        )
        .expect("damage");
    assert!(matches!(
        j.claim_next(now_ms(), &[]),
        Err(JournalError::BadRow { .. })
    ));
    let st = j.status().expect("status");
    assert_eq!(st.counts["failed"], 1);
    assert!(
        st.files[0]
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("unreadable")
    );
}

#[test]
fn a_single_request_is_recorded_with_its_receipt_in_one_step() {
    let mut j = Journal::open_in_memory().expect("open");
    let Enqueued::Added(id) = j.enqueue(&new_file("/o/a", 5, 1)).expect("a") else {
        panic!("added")
    };
    j.claim_next(now_ms(), &[]).expect("claim");
    j.start_session(id, None, 5, &[(0, 5)]).expect("plan");
    j.part_start(id, 0, None).expect("start");
    let remote = RemoteObject {
        key: "o/a".into(),
        id: None,
        extra: serde_json::Value::Null,
    };
    j.to_verifying(
        id,
        &remote,
        &FileDigests::default(),
        Some(&receipt(0, 0, 5)),
    )
    .expect("verifying");
    let p = &j.parts(id).expect("parts")[0];
    assert_eq!(
        (p.state, p.receipt.clone()),
        (PartState::Uploaded, Some(receipt(0, 0, 5)))
    );
    assert_eq!(
        j.file(id).expect("row").expect("exists").state,
        FileState::Verifying
    );
}

#[test]
fn a_begin_intent_lasts_until_the_session_is_recorded() {
    let mut j = Journal::open_in_memory().expect("open");
    let Enqueued::Added(id) = j.enqueue(&new_file("/o/a", 10, 1)).expect("enqueue") else {
        panic!("expected a new row")
    };
    j.claim_next(now_ms(), &[]).expect("claim").expect("a row");
    assert_eq!(j.unrecorded_begins().expect("list"), Vec::<String>::new());
    j.note_begin(id).expect("intent");
    // A crash here: the next start asks the backend about this key.
    assert_eq!(
        j.unrecorded_begins().expect("list"),
        vec!["o/a".to_string()]
    );
    j.clear_begin_intents().expect("clear");
    assert!(j.unrecorded_begins().expect("list").is_empty());
    j.note_begin(id).expect("intent again");
    j.start_session(id, Some(&session()), 6, &[(0, 6), (6, 4)])
        .expect("session");
    assert!(j.unrecorded_begins().expect("list").is_empty(), "recorded");
    assert_eq!(j.known_sessions().expect("sessions"), vec![session()]);
    // No intent on a row that has its session already.
    assert!(j.note_begin(id).expect_err("has a session").is_stale());
}

#[test]
fn the_hash_checkpoint_travels_with_part_start_and_goes_with_the_session() {
    let mut j = Journal::open_in_memory().expect("open");
    let id = claimed_with_plan(&mut j);
    let mut h = crate::digest::Hasher::new(crate::digest::DigestKind::Sha1);
    h.update(b"abcdef");
    let cp = h.checkpoint(6, Some(1));
    j.part_start(id, 0, Some(&cp)).expect("start 0");
    assert_eq!(
        j.file(id).expect("row").expect("exists").hash_state,
        Some(cp.clone())
    );
    // A start without a checkpoint (a retry) keeps the last one.
    j.part_failed(id, 0, 6).expect("failed");
    j.part_start(id, 0, None).expect("again");
    assert_eq!(
        j.file(id).expect("row").expect("exists").hash_state,
        Some(cp)
    );
    j.discard_session(id).expect("discard");
    assert_eq!(j.file(id).expect("row").expect("exists").hash_state, None);
}

#[test]
fn waiting_for_credentials_keeps_the_session_and_the_failure_streak() {
    let mut j = Journal::open_in_memory().expect("open");
    let id = claimed_with_plan(&mut j);
    j.part_start(id, 0, None).expect("start");
    j.part_failed(id, 0, 6).expect("failed");
    j.wait_credentials(id, 1234, "waiting for credentials: 401")
        .expect("wait");
    let row = j.file(id).expect("row").expect("exists");
    assert_eq!(
        (row.state, row.failures, row.next_attempt_at),
        (FileState::Retrying, 0, 1234)
    );
    assert_eq!(row.session, Some(session()), "the session is kept");
    assert_eq!(j.parts(id).expect("parts").len(), 2, "and its parts");
}

#[test]
fn notices_keep_their_start_until_their_state_changes() {
    let mut j = Journal::open_in_memory().expect("open");
    assert_eq!(j.status().expect("status").backend, BackendHealth::ok());
    j.set_notice(BACKEND_TOPIC, "auth_refused", "401")
        .expect("set");
    let since = j.notices().expect("notices")[0].since;
    std::thread::sleep(std::time::Duration::from_millis(5));
    j.set_notice(BACKEND_TOPIC, "auth_refused", "401 again")
        .expect("again");
    let st = j.status().expect("status");
    assert_eq!(st.backend.state, "auth_refused");
    assert_eq!(st.backend.since, Some(since), "the same condition goes on");
    assert_eq!(st.backend.reason.as_deref(), Some("401 again"));
    j.set_notice("watch:/o/x", "unreadable", "denied")
        .expect("set");
    j.set_notice("watch:/o/y", "unreadable", "denied")
        .expect("set");
    assert_eq!(j.notices().expect("notices").len(), 3);
    j.clear_notices("watch:").expect("clear");
    assert!(j.clear_notice(BACKEND_TOPIC).expect("clear"));
    assert!(j.notices().expect("notices").is_empty());
    assert_eq!(j.status().expect("status").backend, BackendHealth::ok());
}

#[test]
fn a_part_left_uploading_by_a_dead_task_is_pending_when_the_row_is_claimed_again() {
    let mut j = Journal::open_in_memory().expect("open");
    let id = claimed_with_plan(&mut j);
    j.part_start(id, 0, None).expect("start");
    // The part task panicked: its end was never recorded; the attempt settled.
    j.retry_later(id, 0, 1, "interrupted").expect("retry later");
    j.claim_next(now_ms(), &[]).expect("claim").expect("row");
    assert_eq!(j.parts(id).expect("parts")[0].state, PartState::Pending);
    j.part_start(id, 0, None).expect("can start again");
}

#[test]
fn a_joining_row_rests_until_due_and_is_claimed_to_poll_never_to_send() {
    let mut j = Journal::open_in_memory().expect("open");
    let id = claimed_with_plan(&mut j);
    for (i, (o, l)) in [(0u32, (0u64, 6u64)), (1, (6, 4))] {
        j.part_start(id, i, None).expect("start");
        j.part_uploaded(id, i, &receipt(i, o, l)).expect("done");
    }
    j.to_completing(id, &FileDigests::default())
        .expect("completing");
    let due = now_ms() + 60_000;
    j.to_joining(id, due, None).expect("joining");
    let row = j.file(id).expect("read").expect("row");
    assert_eq!(row.state, FileState::Joining);
    let began = row.join_started.expect("join start recorded");
    // Resting: nothing to claim before it is due, and a restart leaves it alone.
    assert_eq!(j.claim_next(now_ms(), &[]).expect("claim"), None);
    assert_eq!(j.recover().expect("recover"), 0);
    assert_eq!(j.next_due().expect("due"), Some(due));
    // Due: claimed to poll (completing), its parts untouched.
    let row = j.claim_next(due, &[]).expect("claim").expect("due row");
    assert_eq!((row.id, row.state), (id, FileState::Completing));
    assert!(
        j.parts(id)
            .expect("parts")
            .iter()
            .all(|p| p.state == PartState::Uploaded)
    );
    // Still joining: back to rest; the join keeps its first start.
    j.to_joining(id, due + 1, None).expect("joining again");
    assert_eq!(
        j.file(id).expect("read").expect("row").join_started,
        Some(began)
    );
    // A restart of the join counts once; a new session forgets the join.
    let row = j.claim_next(due + 1, &[]).expect("claim").expect("row");
    assert_eq!(row.state, FileState::Completing);
    j.join_restarted(id).expect("restarted");
    assert_eq!(j.file(id).expect("read").expect("row").join_restarts, 1);
    j.discard_session(id).expect("discard");
    let row = j.file(id).expect("read").expect("row");
    assert_eq!((row.join_started, row.join_restarts), (None, 0));
}

#[test]
fn a_join_superseded_before_it_settles_is_kept_for_the_next_upload_to_wait_on() {
    let mut j = Journal::open_in_memory().expect("open");
    let id = claimed_with_plan(&mut j);
    j.to_completing(id, &FileDigests::default())
        .expect("completing");
    j.to_joining(id, now_ms() + 60_000, None).expect("joining");
    // New content of the same path while the service joins the old one.
    let Enqueued::Replaced { old, new } = j.enqueue(&new_file("/o/a", 11, 2)).expect("enqueue")
    else {
        panic!("expected the joining row to be superseded")
    };
    assert_eq!(old, id);
    // Not an orphan to abort, and its session is not forgotten.
    assert!(j.orphan_sessions().expect("orphans").is_empty());
    j.forget_session(id).expect("forget");
    let waits = j.unsettled_joins(Path::new("/o/a")).expect("unsettled");
    assert_eq!(waits.len(), 1);
    assert_eq!(waits[0].0, id);
    assert!(
        j.unsettled_joins(Path::new("/o/b"))
            .expect("other path")
            .is_empty()
    );
    j.join_settled(id).expect("settled");
    assert!(
        j.unsettled_joins(Path::new("/o/a"))
            .expect("unsettled")
            .is_empty()
    );
    let row = j.file(id).expect("read").expect("row");
    assert_eq!((row.session, row.join_started), (None, None));
    assert_eq!(
        j.file(new).expect("read").expect("row").state,
        FileState::Queued
    );
}

#[test]
fn a_completion_noted_before_it_is_sent_makes_a_superseded_row_wait_not_abort() {
    let mut j = Journal::open_in_memory().expect("open");
    let id = claimed_with_plan(&mut j);
    j.to_completing(id, &FileDigests::default())
        .expect("completing");
    j.note_completion(id).expect("noted");
    // The daemon dies before the answer is recorded; the file is rewritten.
    assert_eq!(j.recover().expect("recover"), 1);
    let Enqueued::Replaced { old, .. } = j.enqueue(&new_file("/o/a", 11, 2)).expect("enqueue")
    else {
        panic!("expected the row to be superseded")
    };
    assert_eq!(old, id);
    assert!(j.orphan_sessions().expect("orphans").is_empty());
    let waits = j.unsettled_joins(Path::new("/o/a")).expect("unsettled");
    assert_eq!(waits.iter().map(|w| w.0).collect::<Vec<_>>(), vec![id]);
}

#[test]
fn a_completion_never_received_is_unnoted_and_may_be_noted_again() {
    let mut j = Journal::open_in_memory().expect("open");
    let id = claimed_with_plan(&mut j);
    // Only a completing row notes its completion.
    assert!(j.note_completion(id).is_err());
    j.to_completing(id, &FileDigests::default())
        .expect("completing");
    j.note_completion(id).expect("noted");
    j.retry_later(id, 0, 1, "refused").expect("retry later");
    let row = j.claim_next(now_ms(), &[]).expect("claim").expect("row");
    assert!(row.join_started.is_some(), "the next attempt polls first");
    j.completion_unrequested(id).expect("unrequested");
    assert_eq!(j.file(id).expect("read").expect("row").join_started, None);
    j.to_completing(id, &FileDigests::default())
        .expect("completing again");
    j.note_completion(id).expect("noted again");
}

#[test]
fn a_file_waiting_for_an_unreachable_service_keeps_its_place_and_its_streak() {
    let mut j = Journal::open_in_memory().expect("open");
    let older = claimed_with_plan(&mut j);
    j.retry_later(older, 0, 2, "503").expect("retry later");
    j.enqueue(&new_file("/o/b", 5, 1)).expect("enqueue");
    let row = j.claim_next(now_ms(), &[]).expect("claim").expect("row");
    assert_eq!(row.id, older);
    j.wait_service(older, "waiting for the service: refused")
        .expect("wait");
    let row = j.file(older).expect("read").expect("row");
    assert_eq!(row.state, FileState::Queued);
    assert_eq!(row.failures, 2, "no failure counted");
    assert!(row.session.is_some(), "its session kept");
    // Back in its place: claimed before the younger file.
    let next = j.claim_next(now_ms(), &[]).expect("claim").expect("row");
    assert_eq!(next.id, older);
}

#[test]
fn the_backend_plan_is_kept_with_its_notice_and_goes_with_it() {
    let mut j = Journal::open_in_memory().expect("open");
    j.set_backend_plan(5, 1).expect("no notice: a no-op");
    assert_eq!(j.backend_plan().expect("plan"), None);
    j.set_notice(BACKEND_TOPIC, "unreachable", "refused")
        .expect("notice");
    j.set_backend_plan(123_456, 7).expect("plan");
    let plan = j.backend_plan().expect("plan").expect("kept");
    assert_eq!(
        (plan.state.as_str(), plan.retry_at, plan.tries),
        ("unreachable", 123_456, 7)
    );
    let st = j.status().expect("status");
    assert_eq!(
        (st.backend.retry_at, st.backend.tries),
        (Some(123_456), Some(7))
    );
    j.clear_notice(BACKEND_TOPIC).expect("clear");
    assert_eq!(j.backend_plan().expect("plan"), None);
    assert_eq!(j.status().expect("status").backend.tries, None);
}

#[test]
fn a_row_scheduled_beyond_the_horizon_is_due_after_the_clock_jumped_back() {
    let mut j = Journal::open_in_memory().expect("open");
    j.set_horizon(Duration::from_secs(360));
    let id = claimed_with_plan(&mut j);
    // Scheduled 5 minutes ahead by a clock that was a day fast.
    let day = 86_400_000;
    let now = now_ms();
    j.retry_later(id, now + 300_000, 1, "503")
        .expect("retry later");
    // The same clock, 4 minutes on: not due yet.
    assert_eq!(j.claim_next(now + 240_000, &[]).expect("claim"), None);
    // NTP set the clock back a day: 5 minutes ahead became a day and 5 minutes,
    // far beyond any wait the engine schedules, so it is due now, not tomorrow.
    let row = j.claim_next(now - day, &[]).expect("claim").expect("due");
    assert_eq!(row.id, id);
}

#[test]
fn an_immutable_uri_escapes_what_a_uri_would_read_otherwise() {
    assert_eq!(
        immutable_uri(Path::new("/var/lib/dropship/journal.db")),
        "file:/var/lib/dropship/journal.db?immutable=1"
    );
    assert_eq!(
        immutable_uri(Path::new("/a b/j?#%.db")),
        "file:/a%20b/j%3F%23%25.db?immutable=1"
    );
}

#[test]
fn every_unsettled_join_is_listed_with_what_the_backend_asks_about() {
    let mut j = Journal::open_in_memory().expect("open");
    let id = claimed_with_plan(&mut j);
    j.to_completing(id, &FileDigests::default())
        .expect("completing");
    j.note_completion(id).expect("noted");
    j.recover().expect("recover");
    j.enqueue(&new_file("/o/a", 11, 2)).expect("enqueue");
    let left = j.all_unsettled_joins().expect("list");
    assert_eq!(left.len(), 1);
    let (found, _, file) = &left[0];
    assert_eq!(*found, id);
    assert_eq!(
        file.key,
        j.file(id).expect("read").expect("row").key.expect("key")
    );
    j.join_settled(id).expect("settled");
    assert!(j.all_unsettled_joins().expect("list").is_empty());
}

#[test]
fn damage_reported_by_sqlite_mid_run_is_told_apart_from_other_failures() {
    let corrupt = rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
        None,
    );
    let full =
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL), None);
    assert!(JournalError::Sql(corrupt).is_damage());
    assert!(!JournalError::Sql(full).is_damage(), "a full disk heals");
    assert!(!JournalError::NoSuchFile(1).is_damage());
}

#[test]
fn backlog_counts_what_is_not_yet_delivered() {
    let mut j = Journal::open_in_memory().expect("open");
    assert_eq!(j.backlog().expect("empty"), Backlog::default());
    let id = claimed_with_plan(&mut j); // /o/a, 10 bytes, uploading
    j.enqueue(&new_file("/o/b", 5, 1)).expect("queued");
    let before = j.backlog().expect("two waiting");
    assert_eq!(before.bytes, 15);
    assert_eq!(before.files, 2);
    assert!(before.oldest_queued_at.is_some_and(|t| t <= now_ms()));
    j.fail(id, "test").expect("failed");
    assert_eq!(j.backlog().expect("one waiting").bytes, 5);
    j.ping().expect("the journal answers");
}

#[test]
fn a_delivered_row_keeps_its_part_count_but_no_resume_state() {
    let mut j = Journal::open_in_memory().expect("open");
    let id = claimed_with_plan(&mut j); // two parts, a session
    for (index, offset, length) in [(0, 0, 6), (1, 6, 4)] {
        j.part_start(id, index, None).expect("start");
        j.part_uploaded(id, index, &receipt(index, offset, length))
            .expect("uploaded");
    }
    j.to_completing(id, &FileDigests::default())
        .expect("completing");
    let remote = RemoteObject {
        key: "o/a".into(),
        id: None,
        extra: serde_json::Value::Null,
    };
    j.to_verifying(id, &remote, &FileDigests::default(), None)
        .expect("verifying");
    assert_eq!(j.known_sessions().expect("sessions").len(), 1);
    j.to_done(id, None, false).expect("done");
    assert!(j.parts(id).expect("parts").is_empty(), "parts dropped");
    assert!(
        j.known_sessions().expect("sessions").is_empty(),
        "session dropped"
    );
    let st = j.status().expect("status");
    let row = st.files.iter().find(|f| f.id == id).expect("row");
    assert_eq!((row.parts_total, row.parts_uploaded), (2, 2));
    // Still the memory that the content was delivered.
    assert_eq!(
        j.enqueue(&new_file("/o/a", 10, 1)).expect("again"),
        Enqueued::Unchanged(id)
    );
}

#[test]
fn a_higher_priority_is_claimed_first_then_the_oldest() {
    let mut j = Journal::open_in_memory().expect("open");
    let mut ids = Vec::new();
    for (path, priority) in [
        ("/o/bulk1", 0),
        ("/o/bulk2", 0),
        ("/o/alarm", 5),
        ("/o/bulk3", 0),
    ] {
        let mut f = new_file(path, 1, 1);
        f.priority = priority;
        f.rule = (priority > 0).then(|| "alarms/*".to_string());
        let Enqueued::Added(id) = j.enqueue(&f).expect("enqueue") else {
            panic!("added")
        };
        ids.push(id);
    }
    let order: Vec<FileId> = (0..4)
        .map(|_| {
            j.claim_next(now_ms(), &[])
                .expect("claim")
                .expect("a row")
                .id
        })
        .collect();
    assert_eq!(order, [ids[2], ids[0], ids[1], ids[3]]);
    let alarm = j.file(ids[2]).expect("row").expect("exists");
    assert_eq!(
        (alarm.priority, alarm.rule.as_deref()),
        (5, Some("alarms/*"))
    );
}

#[test]
fn a_claim_walks_its_index_instead_of_sorting_every_claimable_row() {
    let j = Journal::open_in_memory().expect("open");
    let plan: Vec<String> = j
        .conn
        .prepare(&format!("EXPLAIN QUERY PLAN {}", super::files::CLAIM_SQL))
        .expect("explain")
        .query_map(params![0i64, i64::MAX, None::<String>], |r| {
            r.get::<_, String>(3)
        })
        .expect("plan")
        .collect::<rusqlite::Result<_>>()
        .expect("rows");
    let plan = plan.join("\n");
    assert!(plan.contains("files_claim"), "{plan}");
    assert!(!plan.contains("TEMP B-TREE"), "{plan}");
}

/// A single request's bookkeeping in one transaction: the name check, the plan of
/// one part (kept when it is already there), and the part's start.
#[test]
fn a_single_request_is_planned_and_started_in_one_call() {
    let mut j = Journal::open_in_memory().expect("open");
    let Enqueued::Added(id) = j.enqueue(&new_file("/o/a", 10, 1)).expect("enqueue") else {
        panic!("expected a new row")
    };
    // Not claimed: nothing is recorded, not even the name check.
    let err = j
        .start_single(id, 10, true, true)
        .expect_err("not uploading");
    assert!(matches!(err, JournalError::StaleState { .. }), "{err}");
    let row = j.file(id).expect("row").expect("exists");
    assert!(!row.clash_checked);
    assert!(j.parts(id).expect("parts").is_empty());

    j.claim_next(now_ms(), &[]).expect("claim").expect("a row");
    // A retry's look for an earlier delivery: planned, not started.
    j.start_single(id, 10, false, false).expect("planned");
    assert_eq!(only_part(&j, id), (0, 10, PartState::Pending));
    assert!(!j.file(id).expect("row").expect("exists").clash_checked);

    j.start_single(id, 10, true, true).expect("started");
    assert_eq!(only_part(&j, id), (0, 10, PartState::Uploading));
    let row = j.file(id).expect("row").expect("exists");
    assert!(row.clash_checked);
    assert_eq!(row.bytes_sent, 10);
    assert!(row.session.is_none());

    // A plan an interrupted attempt left pending (its part failed, the row claimed
    // again) is kept and started again.
    j.part_failed(id, 0, 10).expect("failed");
    j.release(id, 0).expect("released");
    j.claim_next(now_ms() + 1, &[])
        .expect("claim")
        .expect("a row");
    j.start_single(id, 10, false, true).expect("started again");
    assert_eq!(only_part(&j, id), (0, 10, PartState::Uploading));

    // A plan of another shape (two parts, say, left under other settings) is made
    // afresh, as `start_session` would.
    j.part_failed(id, 0, 10).expect("failed");
    j.release(id, 0).expect("released");
    j.claim_next(now_ms() + 2, &[])
        .expect("claim")
        .expect("a row");
    j.start_session(id, None, 5, &[(0, 5), (5, 5)])
        .expect("two parts");
    j.start_single(id, 10, false, true).expect("planned afresh");
    assert_eq!(only_part(&j, id), (0, 10, PartState::Uploading));
}

/// The one part of row `id`: offset, length, state (fails if there is not exactly one).
fn only_part(j: &Journal, id: FileId) -> (u64, u64, PartState) {
    let parts = j.parts(id).expect("parts");
    assert_eq!(parts.len(), 1, "one part, not {parts:?}");
    (parts[0].offset, parts[0].length, parts[0].state)
}

/// The WAL is checkpointed every 1000 pages, but on a small filesystem every
/// sixteenth of it, down to 100 pages (a full one could never be checkpointed).
#[test]
fn the_checkpoint_threshold_follows_the_journal_filesystem() {
    assert_eq!(checkpoint_pages(None), 1000);
    assert_eq!(checkpoint_pages(Some(1 << 40)), 1000);
    assert_eq!(checkpoint_pages(Some(64 << 20)), 1000);
    assert_eq!(checkpoint_pages(Some(32 << 20)), 512);
    assert_eq!(checkpoint_pages(Some(2 << 20)), 100, "a 2 MiB tmpfs");
    assert_eq!(wal_size_limit(1000), 4000 * 1024);
    assert_eq!(wal_size_limit(100), 1 << 20);
    let dir = tempfile::tempdir().expect("tempdir");
    let j = Journal::open(&dir.path().join("j.db")).expect("open");
    let size = crate::disk::Disk::of(&dir.path().join("j.db")).map(|d| d.size_bytes);
    let pages: i64 = j
        .conn
        .row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
        .expect("pragma");
    assert_eq!(pages as u64, checkpoint_pages(size));
    let limit: i64 = j
        .conn
        .row("PRAGMA journal_size_limit", [], |r| r.get(0))
        .expect("pragma");
    assert_eq!(limit as u64, wal_size_limit(checkpoint_pages(size)));
}
