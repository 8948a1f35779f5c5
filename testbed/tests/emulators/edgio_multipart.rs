//! Multipart create, piece and complete (protocols/edgio.md rules 6–9, 14).

use dropship_testbed::SettingsPatch;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::edgio_support::{Ed, quiet, sha256_hex};
use crate::support::{TestResult, content};

#[tokio::test]
async fn rule6_create_checks_its_headers_and_starts_new() -> TestResult {
    let ed = Ed::start(quiet()).await;
    let t = ed.login().await;
    let create = |headers: Vec<(&'static str, &'static str)>| {
        let t = t.clone();
        let ed = &ed;
        async move {
            let mut h = vec![("X-Agile-Authorization", t.as_str())];
            h.extend(headers);
            ed.post("/multipart/create", &h, Vec::new()).await
        }
    };
    let a = create(vec![
        ("X-Agile-Directory", "/nope"),
        ("X-Agile-Basename", "f"),
    ])
    .await;
    assert_eq!(a.pair(), (400, -23), "missing parent");
    let a = create(vec![("X-Agile-Basename", "a/b")]).await;
    assert_eq!(a.pair(), (400, -16), "a slash in the basename");
    let a = create(vec![("X-Agile-Basename", "f"), ("X-Agile-MTime", "soon")]).await;
    assert_eq!(a.pair(), (400, -20));
    let a = create(vec![
        ("X-Agile-Basename", "f"),
        ("X-Agile-Content-Type", "text"),
    ])
    .await;
    assert_eq!(a.pair(), (400, -21));
    let a = create(vec![
        ("X-Agile-Basename", "f.txt"),
        ("X-Agile-Content-Type", "text/plain"),
        ("X-Agile-MTime", "1437426380"),
    ])
    .await;
    assert_eq!(a.pair(), (200, 0));
    let mpid = a.header("x-agile-multipart");
    assert!(
        mpid.len() == 32 && mpid.bytes().all(|b| b.is_ascii_hexdigit()),
        "{mpid}"
    );
    assert_eq!(a.header("x-agile-path"), "/testbed/f.txt");
    assert_eq!(
        a.header("x-agile-meta"),
        "content_type=text/plain mtime=1437426380"
    );
    let s = ed.rpc("getMultipartStatus", json!([t, mpid])).await;
    assert_eq!(
        (s["state"].clone(), s["numpieces"].clone()),
        (json!(1), json!(0))
    );
    assert_eq!(s["path"], "/testbed/f.txt");
    // The JSON-RPC twin, with its own shape.
    let r = ed.rpc("createMultipart", json!([t, "/nope/f"])).await;
    assert_eq!(r, json!({"code": -23}));
    let r = ed
        .rpc(
            "createMultipart",
            json!({"token": t, "path": "/g", "content_type": "text/plain"}),
        )
        .await;
    assert_eq!(r["code"], 0);
    Ok(())
}

#[tokio::test]
async fn rule7_piece_refusals() -> TestResult {
    let ed = Ed::start(quiet()).await;
    let t = ed.login().await;
    let mpid = ed.create(&t, "/", "p.bin").await;
    let body = content(50);
    assert_eq!(
        ed.piece(&t, "0123456789abcdef0123456789abcdef", "1", &body)
            .await
            .pair(),
        (400, -2)
    );
    assert_eq!(ed.piece(&t, &mpid, "0", &body).await.pair(), (400, -3));
    assert_eq!(ed.piece(&t, &mpid, "x", &body).await.pair(), (400, -3));
    assert_eq!(ed.piece(&t, &mpid, "1001", &body).await.pair(), (400, -10));
    let a = ed.piece(&t, &mpid, "1", &body).await;
    assert_eq!(a.pair(), (200, 0));
    assert_eq!(a.header("x-agile-checksum"), sha256_hex(&body));
    assert_eq!(a.header("x-agile-size"), "50");
    assert_eq!(ed.state(&t, &mpid).await, 2, "READY after the first piece");
    Ok(())
}

/// mpids belong to whoever created them: a token restricted to another subtree cannot
/// touch the upload.
#[tokio::test]
async fn rule7_a_foreign_mpid_is_2() -> TestResult {
    let ed = Ed::start(quiet()).await;
    let t = ed.login().await;
    ed.mkdir(&t, "/a").await;
    ed.mkdir(&t, "/b").await;
    let login_in = |dir: &'static str| {
        let ed = &ed;
        async move {
            let a = ed
                .post(
                    "/account/login",
                    &[
                        ("X-Agile-Username", "testbed"),
                        ("X-Agile-Password", crate::support::TOKEN),
                        ("X-Agile-Subdir", dir),
                    ],
                    Vec::new(),
                )
                .await;
            assert_eq!(a.header("x-agile-path"), format!("/testbed{dir}"));
            a.header("x-agile-token").to_string()
        }
    };
    let (ta, tb) = (login_in("/a").await, login_in("/b").await);
    let mpid = ed.create(&ta, "/", "mine.bin").await;
    assert_eq!(ed.piece(&tb, &mpid, "1", b"x").await.pair(), (400, -2));
    assert_eq!(ed.complete(&tb, &mpid).await.pair(), (400, -2));
    assert_eq!(ed.rpc("abortMultipart", json!([tb, mpid])).await, json!(-2));
    assert_eq!(ed.piece(&ta, &mpid, "1", b"x").await.pair(), (200, 0));
    // The account-wide token sees every upload.
    assert_eq!(ed.piece(&t, &mpid, "2", b"y").await.pair(), (200, 0));
    Ok(())
}

#[tokio::test]
async fn rule7_a_repeated_number_replaces_and_both_are_listed() -> TestResult {
    let ed = Ed::start(quiet()).await;
    let t = ed.login().await;
    let mpid = ed.create(&t, "/", "dup.bin").await;
    let (first, second) = (vec![1u8; 10], vec![2u8; 20]);
    assert_eq!(ed.piece(&t, &mpid, "1", &first).await.code, 0);
    assert_eq!(ed.piece(&t, &mpid, "1", &second).await.code, 0);
    let list = ed.rpc("listMultipartPiece", json!([t, mpid])).await;
    let sizes: Vec<_> = list["pieces"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| (p["number"].clone(), p["size"].clone()))
        .collect();
    assert_eq!(sizes, [(json!(1), json!(10)), (json!(1), json!(20))]);
    assert_eq!(ed.complete(&t, &mpid).await.header("x-agile-parts"), "1");
    ed.set(SettingsPatch {
        edgio_join_delay_ms: Some(0),
        ..Default::default()
    });
    assert_eq!(ed.state(&t, &mpid).await, 6);
    let head = ed.head("dup.bin").await;
    assert_eq!(
        head.header("x-agile-checksum"),
        sha256_hex(&second),
        "the later piece was joined"
    );
    let list = ed.rpc("listMultipartPiece", json!([t, mpid])).await;
    let states: Vec<_> = list["pieces"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| p["state"].clone())
        .collect();
    assert_eq!(
        states,
        [json!(10), json!(6)],
        "the replaced piece is SKIPPED"
    );
    Ok(())
}

#[tokio::test]
async fn rule7_size_limits_11_and_25() -> TestResult {
    let ed = Ed::start(SettingsPatch {
        edgio_max_piece: Some(100),
        edgio_max_total: Some(150),
        ..quiet()
    })
    .await;
    let t = ed.login().await;
    let mpid = ed.create(&t, "/", "big.bin").await;
    assert_eq!(
        ed.piece(&t, &mpid, "1", &content(101)).await.pair(),
        (400, -11)
    );
    assert_eq!(
        ed.piece(&t, &mpid, "1", &content(100)).await.pair(),
        (200, 0)
    );
    assert_eq!(
        ed.piece(&t, &mpid, "2", &content(51)).await.pair(),
        (400, -25)
    );
    // Replacing piece 1 does not count it twice.
    assert_eq!(
        ed.piece(&t, &mpid, "1", &content(99)).await.pair(),
        (200, 0)
    );
    assert_eq!(
        ed.piece(&t, &mpid, "2", &content(51)).await.pair(),
        (200, 0)
    );
    Ok(())
}

#[tokio::test]
async fn rule7_8_9_states_refuse_pieces_completes_and_aborts() -> TestResult {
    let ed = Ed::start(SettingsPatch {
        edgio_join_delay_ms: Some(60_000),
        ..quiet()
    })
    .await;
    let t = ed.login().await;
    let mpid = ed.create(&t, "/", "s.bin").await;
    assert_eq!(ed.complete(&t, &mpid).await.pair(), (400, -4), "no pieces");
    assert_eq!(ed.piece(&t, &mpid, "1", b"a").await.code, 0);
    assert_eq!(ed.piece(&t, &mpid, "3", b"c").await.code, 0);
    assert_eq!(ed.complete(&t, &mpid).await.pair(), (400, -5), "a gap at 2");
    assert_eq!(ed.piece(&t, &mpid, "2", b"b").await.code, 0);
    assert_eq!(
        ed.complete(&t, "ffffffffffffffffffffffffffffffff")
            .await
            .pair(),
        (400, -2)
    );
    let done = ed.complete(&t, &mpid).await;
    assert_eq!(done.pair(), (200, 0));
    assert_eq!(done.header("x-agile-parts"), "3");
    assert_eq!(done.header("x-agile-multipart"), mpid);
    assert_eq!(
        ed.complete(&t, &mpid).await.pair(),
        (400, -8),
        "completed already"
    );
    assert_eq!(ed.piece(&t, &mpid, "4", b"d").await.pair(), (400, -8));
    assert_eq!(ed.rpc("abortMultipart", json!([t, mpid])).await, json!(-18));

    let other = ed.create(&t, "/", "o.bin").await;
    assert_eq!(ed.rpc("abortMultipart", json!([t, other])).await, json!(0));
    assert_eq!(
        ed.rpc("abortMultipart", json!([t, other])).await,
        json!(-17)
    );
    assert_eq!(ed.piece(&t, &other, "1", b"x").await.pair(), (400, -17));
    assert_eq!(ed.complete(&t, &other).await.pair(), (400, -17));
    assert_eq!(
        ed.state(&t, &other).await,
        10,
        "aborted uploads stay listed"
    );
    let r = ed.rpc("completeMultipart", json!([t, other])).await;
    assert_eq!(r, json!({"code": -17}));
    Ok(())
}

#[tokio::test]
async fn rule14_complete_error_rate_is_500_13_and_changes_nothing() -> TestResult {
    let ed = Ed::start(SettingsPatch {
        edgio_complete_error_rate: Some(1.0),
        ..quiet()
    })
    .await;
    let t = ed.login().await;
    let mpid = ed.create(&t, "/", "e.bin").await;
    assert_eq!(ed.piece(&t, &mpid, "1", b"abc").await.code, 0);
    assert_eq!(ed.complete(&t, &mpid).await.pair(), (500, -13));
    assert_eq!(ed.state(&t, &mpid).await, 2, "still READY");
    ed.set(SettingsPatch {
        edgio_complete_error_rate: Some(0.0),
        ..Default::default()
    });
    assert_eq!(ed.complete(&t, &mpid).await.pair(), (200, 0));
    Ok(())
}

/// A body that ends before its Content-Length (the client's connection was cut): 500
/// `-49`, nothing stored (rule 7). The injected reset fault drops the connection
/// instead, so that client sees a reset; this is the answer a half-closed one reads.
#[tokio::test]
async fn rule7_a_body_cut_short_is_500_49_and_nothing_is_kept() -> TestResult {
    let ed = Ed::start(quiet()).await;
    let token = ed.login().await;
    let mpid = ed.create(&token, "/", "cut.bin").await;
    let mut sock = tokio::net::TcpStream::connect(ed.bed.tb.addr()).await?;
    let head = format!(
        "POST /edgio/multipart/piece HTTP/1.1\r\nHost: x\r\nX-Agile-Authorization: {token}\r\n\
         X-Agile-Multipart: {mpid}\r\nX-Agile-Part: 1\r\nContent-Length: 1000\r\n\r\n"
    );
    sock.write_all(head.as_bytes()).await?;
    sock.write_all(&content(400)).await?;
    sock.shutdown().await?; // our FIN: the body ends 600 bytes early
    let mut reply = String::new();
    let _ = sock.read_to_string(&mut reply).await;
    assert!(reply.starts_with("HTTP/1.1 500"), "{reply:?}");
    assert!(
        reply.to_ascii_lowercase().contains("x-agile-status: -49"),
        "{reply}"
    );
    let list = ed.rpc("listMultipartPiece", json!([token, mpid])).await;
    assert_eq!(list["pieces"], json!([]));
    assert_eq!(ed.state(&token, &mpid).await, 1, "still NEW");
    Ok(())
}

#[tokio::test]
async fn reset_fault_stores_no_piece() -> TestResult {
    let ed = Ed::start(SettingsPatch {
        reset_rate: Some(1.0),
        ..quiet()
    })
    .await;
    let t = ed.login().await;
    let mpid = ed.create(&t, "/", "r.bin").await;
    let sent = ed
        .bed
        .http
        .post(ed.url("/multipart/piece"))
        .header("X-Agile-Authorization", &t)
        .header("X-Agile-Multipart", &mpid)
        .header("X-Agile-Part", "1")
        .body(content(200_000))
        .send()
        .await;
    assert!(sent.is_err(), "the connection is reset");
    ed.set(SettingsPatch {
        reset_rate: Some(0.0),
        ..Default::default()
    });
    let list = ed.rpc("listMultipartPiece", json!([t, mpid])).await;
    assert_eq!(list["pieces"], json!([]));
    Ok(())
}
