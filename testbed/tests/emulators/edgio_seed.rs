//! The vendor's end-to-end examples (seeds/004, the docs' "File Upload End-to-End
//! Examples"), replayed call by call: JSON-RPC login on `/jsonrpc2` and `/jsonrpc`,
//! HTTP login, `/post/file`, `/post/raw`, multipart create / piece / complete in
//! 200,000-byte pieces, HEAD on the stored object (delivery and upload host) and
//! `stat(token, path, True)`, then `logout`. The directories the examples upload into
//! (`/zz`, `/multipart`) exist on the vendor's account; the replay creates them first.

use dropship_testbed::SettingsPatch;
use serde_json::json;

use crate::edgio_support::{ACCOUNT, Ed, USER, agile, sha256_hex};
use crate::support::{TOKEN, TestResult, content};

/// `requests.post(url, data=payload, headers=..., files={'uploadFile': f})`, as
/// requests encodes it: the data fields first, then the file.
fn requests_form(fields: &[(&str, &str)], filename: &str, data: &[u8]) -> (String, Vec<u8>) {
    let boundary = "44f9af2ecd0c";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"uploadFile\"; filename=\"{filename}\"\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test]
async fn seed_004_end_to_end_examples() -> TestResult {
    // The seed sleeps 5 s after completing; a short join keeps the replay fast.
    let ed = Ed::start(SettingsPatch {
        edgio_join_delay_ms: Some(0),
        ..Default::default()
    })
    .await;

    // Obtain a token: JSON-RPC (`token, uid_gid = api.login(...)`) ...
    let login = json!({"jsonrpc": "2.0", "id": 0, "method": "login", "params": [USER, TOKEN]});
    let reply = ed.rpc_raw("/jsonrpc2", login.to_string()).await;
    let token = reply["result"][0].as_str().expect("token").to_string();
    assert!(reply["result"][1]["uid"].is_u64());
    // ... and HTTP (`r.headers['x-agile-token']`).
    let http = ed
        .post(
            "/account/login",
            &[("X-Agile-Username", USER), ("X-Agile-Password", TOKEN)],
            Vec::new(),
        )
        .await;
    assert_eq!(http.pair(), (200, 0));
    assert!(!http.header("x-agile-token").is_empty());
    ed.mkdir(&token, "/zz").await;
    ed.mkdir(&token, "/multipart").await;

    // /post/file of an empty file1.txt into /zz.
    let (ct, body) = requests_form(
        &[("basename", "file1.txt"), ("directory", "/zz")],
        "file1.txt",
        b"",
    );
    let r = ed
        .post(
            "/post/file",
            &[("X-Agile-Authorization", &token), ("Content-Type", &ct)],
            body,
        )
        .await;
    assert_eq!(r.pair(), (200, 0));
    assert_eq!(
        r.header("x-agile-checksum"),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(r.header("x-agile-size"), "0");
    assert_eq!(r.header("x-agile-path"), format!("/{ACCOUNT}/zz/file1.txt"));
    let r2 = ed.head("zz/file1.txt").await;
    assert_eq!(r2.status, 200);
    assert_eq!(r2.header("x-agile-checksum"), r.header("x-agile-checksum"));
    let st = ed.rpc("stat", json!([token, "zz/file1.txt", true])).await;
    assert_eq!(
        (st["code"].clone(), st["size"].clone(), st["type"].clone()),
        (json!(0), json!(0), json!(2))
    );
    let st = ed.rpc("stat", json!([token, "/zz/file1.txt", true])).await;
    assert_eq!(st["checksum"], r.header("x-agile-checksum"));

    // /post/raw of test.mp3 into / (the "Complete HTTP Example" logs in on /jsonrpc).
    let reply = ed
        .rpc_raw(
            "/jsonrpc",
            json!({"id": 1, "method": "login", "params": [USER, TOKEN]}).to_string(),
        )
        .await;
    let token = reply["result"][0].as_str().expect("token").to_string();
    let mp3 = content(594_472);
    let r = ed.post_raw(&token, "/", "test.mp3", &mp3).await;
    assert_eq!(r.pair(), (200, 0));
    assert_eq!(r.header("x-agile-size"), "594472");
    assert_eq!(r.header("x-agile-path"), format!("/{ACCOUNT}/test.mp3"));
    let url = ed.url(&format!("/{ACCOUNT}/test.mp3")); // upload host + account + basename
    let r2 = agile(ed.bed.http.head(&url).send().await?).await;
    assert_eq!(r2.status, 200);
    assert_eq!(r2.header("content-length"), "594472");
    assert_eq!(r2.header("x-agile-checksum"), sha256_hex(&mp3));
    let st = ed.rpc("stat", json!([token, "/test.mp3", true])).await;
    assert_eq!(
        (st["size"].clone(), st["checksum"].clone()),
        (json!(594_472), json!(sha256_hex(&mp3)))
    );

    // Multipart: create, 200,000-byte pieces until X-Agile-Status is not 0, complete.
    let jpg = content(450_000);
    let mpid = ed.create(&token, "/multipart", "flat-irons3.jpg").await;
    // `pieceNum` counts from 1, as the seed's loop does.
    for (piece_num, chunk) in (1..).zip(jpg.chunks(200_000)) {
        let r2 = ed.piece(&token, &mpid, &piece_num.to_string(), chunk).await;
        assert_eq!((r2.status, r2.header("x-agile-status")), (200, "0"));
        assert_eq!(r2.header("x-agile-checksum"), sha256_hex(chunk));
    }
    let r3 = ed.complete(&token, &mpid).await;
    assert_eq!((r3.status, r3.header("x-agile-status")), (200, "0"));
    assert_eq!(r3.header("x-agile-parts"), "3");
    let r4 = ed.head("multipart/flat-irons3.jpg").await;
    assert_eq!(r4.status, 200);
    assert_eq!(r4.header("content-length"), "450000");
    let results = ed
        .rpc("stat", json!([token, "/multipart/flat-irons3.jpg", true]))
        .await;
    assert_eq!(results["code"], 0);
    assert_eq!(
        results["checksum"],
        sha256_hex(&jpg),
        "stat checksum matches the local file"
    );
    assert_eq!(r4.header("x-agile-checksum"), sha256_hex(&jpg));
    assert_eq!(ed.rpc("logout", json!([token])).await, json!(0));
    Ok(())
}
