//! `/post/raw`, `/post/file` and `/post/directory` (protocols/edgio.md rule 5; the
//! HTTP directory page).

use dropship_testbed::SettingsPatch;
use serde_json::{Value, json};

use crate::edgio_support::{Ed, quiet, sha256_hex};
use crate::support::{TestResult, content};

#[tokio::test]
async fn rule5_raw_post_stores_and_answers_path_size_checksum() -> TestResult {
    let ed = Ed::start(quiet()).await;
    let t = ed.login().await;
    let data = content(5000);
    let a = ed.post_raw(&t, "/", "test.mp3", &data).await;
    assert_eq!(a.pair(), (200, 0));
    assert_eq!(a.header("x-agile-path"), "/testbed/test.mp3");
    assert_eq!(a.header("x-agile-size"), "5000");
    assert_eq!(a.header("x-agile-checksum"), sha256_hex(&data));
    assert_eq!(a.header("content-type"), "text/json;charset=utf-8");
    assert!(a.body.is_empty());
    assert_eq!(ed.bed.tb.object_bytes("edgio", "test.mp3")?, data);
    // The same path again replaces the file.
    let a = ed.post_raw(&t, "/", "test.mp3", b"v2").await;
    assert_eq!(a.code, 0);
    assert_eq!(
        ed.head("test.mp3").await.header("x-agile-checksum"),
        sha256_hex(b"v2")
    );
    assert_eq!(ed.objects().len(), 1);
    Ok(())
}

#[tokio::test]
async fn rule5_raw_post_refusals() -> TestResult {
    let ed = Ed::start(quiet()).await;
    let t = ed.login().await;
    let long = "d".repeat(4097);
    /// Headers besides the token, body, expected code.
    type Case<'a> = (Vec<(&'a str, &'a str)>, Vec<u8>, i64);
    let cases: Vec<Case> = vec![
        (vec![("X-Agile-Basename", "a/b")], b"x".to_vec(), -8),
        (vec![("X-Agile-Basename", "..")], b"x".to_vec(), -8),
        (
            vec![("X-Agile-Basename", "f"), ("X-Agile-Directory", &long)],
            b"x".to_vec(),
            -8,
        ),
        (
            vec![("X-Agile-Basename", "f"), ("X-Agile-Directory", "/no/such")],
            b"x".to_vec(),
            -3,
        ),
        (
            vec![("X-Agile-Basename", "f"), ("X-Agile-Recursive", "perhaps")],
            b"x".to_vec(),
            -39,
        ),
        (vec![("X-Agile-Basename", "f")], Vec::new(), -24),
        (
            vec![("X-Agile-Basename", "f"), ("X-Agile-Content-Type", "nope")],
            b"x".to_vec(),
            -33,
        ),
        (
            vec![("X-Agile-Basename", "f"), ("X-Agile-Encoding", "latin1")],
            b"x".to_vec(),
            -51,
        ),
    ];
    for (headers, body, code) in cases {
        let mut h = vec![("X-Agile-Authorization", t.as_str())];
        h.extend(headers.iter().copied());
        let a = ed.post("/post/raw", &h, body).await;
        assert_eq!(a.pair(), (400, code), "{headers:?}");
    }
    assert!(ed.objects().is_empty());
    // Recursive creates the missing parents.
    let a = ed
        .post(
            "/post/raw",
            &[
                ("X-Agile-Authorization", &t),
                ("X-Agile-Basename", "f"),
                ("X-Agile-Directory", "/no/such"),
                ("X-Agile-Recursive", "yes"),
            ],
            b"x".to_vec(),
        )
        .await;
    assert_eq!(a.pair(), (200, 0));
    assert_eq!(ed.rpc("stat", json!([t, "/no"])).await["type"], 1);
    // Without a basename the service names it post-<hex>.
    let a = ed
        .post("/post/raw", &[("X-Agile-Authorization", &t)], b"y".to_vec())
        .await;
    assert!(
        a.header("x-agile-path").starts_with("/testbed/post-"),
        "{a:?}"
    );
    Ok(())
}

#[tokio::test]
async fn rule5_checksum_mismatch_is_26_and_nothing_is_stored() -> TestResult {
    let ed = Ed::start(quiet()).await;
    let t = ed.login().await;
    let data = content(300);
    let wrong = sha256_hex(b"something else");
    let a = ed
        .post(
            "/post/raw",
            &[
                ("X-Agile-Authorization", &t),
                ("X-Agile-Basename", "f"),
                ("X-Agile-Checksum", &wrong),
            ],
            data.clone(),
        )
        .await;
    assert_eq!(a.pair(), (400, -26));
    assert!(ed.objects().is_empty());
    assert_eq!(ed.head("f").await.status, 404);
    assert_eq!(ed.bed.tb.stats().emulators["edgio"].digest_mismatches, 1);
    let right = sha256_hex(&data).to_uppercase();
    let a = ed
        .post(
            "/post/raw",
            &[
                ("X-Agile-Authorization", &t),
                ("X-Agile-Basename", "f"),
                ("X-Agile-Checksum", &right),
            ],
            data,
        )
        .await;
    assert_eq!(a.pair(), (200, 0), "hex case does not matter");
    Ok(())
}

/// A corrupted store is caught by `X-Agile-Checksum`; without it, every checksum the
/// server reports describes the corrupted bytes.
#[tokio::test]
async fn corruption_with_and_without_a_client_checksum() -> TestResult {
    let ed = Ed::start(SettingsPatch {
        corrupt_rate: Some(1.0),
        corrupt_offset: Some(3),
        ..quiet()
    })
    .await;
    let t = ed.login().await;
    let data = content(64);
    let sum = sha256_hex(&data);
    let a = ed
        .post(
            "/post/raw",
            &[
                ("X-Agile-Authorization", &t),
                ("X-Agile-Basename", "f"),
                ("X-Agile-Checksum", &sum),
            ],
            data.clone(),
        )
        .await;
    assert_eq!(a.pair(), (400, -26));
    assert!(ed.objects().is_empty());
    let a = ed.post_raw(&t, "/", "g", &data).await;
    let mut bad = data.clone();
    bad[3] ^= 0xff;
    assert_eq!(a.header("x-agile-checksum"), sha256_hex(&bad));
    assert_eq!(
        ed.head("g").await.header("x-agile-checksum"),
        sha256_hex(&bad)
    );
    assert_eq!(
        ed.rpc("stat", json!([t, "g", true])).await["checksum"],
        sha256_hex(&bad)
    );
    Ok(())
}

/// A multipart/form-data body with these text fields and file parts.
fn form(fields: &[(&str, &str)], files: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "----edgioTestBoundary44f9af2ecd0c";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    for (filename, data) in files {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"uploadFile\"; filename=\"{filename}\"\r\nContent-Type: text/plain\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test]
async fn post_file_form_upload() -> TestResult {
    let ed = Ed::start(quiet()).await;
    let t = ed.login().await;
    ed.mkdir(&t, "/zz").await;
    let (ct, body) = form(
        &[("basename", "/1983/img001.jpg"), ("directory", "/zz")],
        &[("local.jpg", b"jpeg")],
    );
    let a = ed
        .post(
            "/post/file",
            &[("X-Agile-Authorization", &t), ("Content-Type", &ct)],
            body,
        )
        .await;
    assert_eq!(a.pair(), (200, 0));
    assert_eq!(
        a.header("x-agile-path"),
        "/testbed/zz/img001.jpg",
        "leading paths of basename stripped"
    );
    assert_eq!(a.header("x-agile-checksum"), sha256_hex(b"jpeg"));
    // The token may come as ?token=, and an empty file is fine (the seed's).
    let (ct, body) = form(&[("directory", "/zz")], &[("empty.txt", b"")]);
    let url = format!("/post/file?token={t}");
    let a = ed.post(&url, &[("Content-Type", &ct)], body).await;
    assert_eq!(a.pair(), (200, 0));
    assert_eq!(a.header("x-agile-size"), "0");
    assert_eq!(a.header("x-agile-path"), "/testbed/zz/empty.txt");
    let (ct, body) = form(&[("basename", "x")], &[]);
    let a = ed
        .post(
            "/post/file",
            &[("X-Agile-Authorization", &t), ("Content-Type", &ct)],
            body,
        )
        .await;
    assert_eq!(a.pair(), (400, -24), "no file");
    let (ct, body) = form(&[("basename", "x")], &[("a", b"1"), ("b", b"2")]);
    let a = ed
        .post(
            "/post/file",
            &[("X-Agile-Authorization", &t), ("Content-Type", &ct)],
            body,
        )
        .await;
    assert_eq!(a.pair(), (400, -25), "two files");
    let (ct, body) = form(&[("directory", "/missing")], &[("a", b"1")]);
    let a = ed
        .post(
            "/post/file",
            &[("X-Agile-Authorization", &t), ("Content-Type", &ct)],
            body,
        )
        .await;
    assert_eq!(a.pair(), (400, -3), "not recursive by default");
    let (ct, body) = form(&[], &[("a", b"1")]);
    let a = ed.post("/post/file", &[("Content-Type", &ct)], body).await;
    assert_eq!(a.pair(), (401, -10001));
    Ok(())
}

#[tokio::test]
async fn post_directory_codes_and_body() -> TestResult {
    let ed = Ed::start(quiet()).await;
    let t = ed.login().await;
    let mkdir = |dir: &'static str, recursive: Option<&'static str>| {
        let t = t.clone();
        let ed = &ed;
        async move {
            let mut h = vec![
                ("X-Agile-Authorization", t.as_str()),
                ("X-Agile-Directory", dir),
            ];
            if let Some(r) = recursive {
                h.push(("X-Agile-Recursive", r));
            }
            ed.post("/post/directory", &h, Vec::new()).await
        }
    };
    let a = mkdir("/APAC/a/b", None).await;
    assert_eq!(a.pair(), (200, 0), "recursive by default");
    let body: Value = serde_json::from_str(&a.body)?;
    assert_eq!(body, json!({"message": "success", "code": 0}));
    assert_eq!(
        mkdir("/APAC/a/b", None).await.pair(),
        (200, 0),
        "exists already"
    );
    let a = mkdir("/future-releases/hot", Some("false")).await;
    assert_eq!(a.pair(), (400, -3));
    assert_eq!(serde_json::from_str::<Value>(&a.body)?["code"], -3);
    assert_eq!(mkdir("/x", Some("sometimes")).await.pair(), (400, -39));
    assert_eq!(ed.post_raw(&t, "/APAC", "file", b"x").await.code, 0);
    assert_eq!(mkdir("/APAC/file", None).await.pair(), (400, -2));
    Ok(())
}
