//! The JSON-RPC envelope and the file methods (protocols/edgio.md rules 4, 12).

use serde_json::json;

use crate::edgio_support::{Ed, USER, quiet, sha256_hex};
use crate::support::{TOKEN, TestResult};

#[tokio::test]
async fn rule4_envelope_errors() -> TestResult {
    let ed = Ed::start(quiet()).await;
    let t = ed.login().await;
    for endpoint in ["/jsonrpc", "/jsonrpc2"] {
        let r = ed.rpc_raw(endpoint, "{not json".into()).await;
        assert_eq!(r["error"]["code"], -32700, "{endpoint}");
        let r = ed
            .rpc_raw(
                endpoint,
                json!({"jsonrpc": "2.0", "id": 3, "method": "frobnicate", "params": []})
                    .to_string(),
            )
            .await;
        assert_eq!(
            (r["error"]["code"].clone(), r["id"].clone()),
            (json!(-32601), json!(3))
        );
        let r = ed
            .rpc_raw(
                endpoint,
                json!({"jsonrpc": "2.0", "id": 4, "method": "stat", "params": [t, 42]}).to_string(),
            )
            .await;
        assert_eq!(r["error"]["code"], -32602, "a path that is not a string");
        let r = ed
            .rpc_raw(
                endpoint,
                json!({"jsonrpc": "2.0", "id": 5, "method": "stat", "params": "x"}).to_string(),
            )
            .await;
        assert_eq!(
            r["error"]["code"], -32602,
            "params neither array nor object"
        );
        let r = ed.rpc_raw(endpoint, json!({"id": 6}).to_string()).await;
        assert_eq!(r["error"]["code"], -32600);
    }
    Ok(())
}

#[tokio::test]
async fn rule4_version_1_and_2_answers_and_batches() -> TestResult {
    let ed = Ed::start(quiet()).await;
    let v1 = ed
        .rpc_raw(
            "/jsonrpc",
            json!({"id": 1, "method": "login", "params": [USER, TOKEN]}).to_string(),
        )
        .await;
    assert!(v1.get("jsonrpc").is_none());
    assert_eq!(
        (v1["error"].clone(), v1["id"].clone()),
        (json!(null), json!(1))
    );
    assert!(v1["result"][0].is_string());
    let v2 = ed
        .rpc_raw(
            "/jsonrpc2",
            json!({"jsonrpc": "2.0", "id": "a", "method": "login", "params": [USER, TOKEN]})
                .to_string(),
        )
        .await;
    assert_eq!(
        (v2["jsonrpc"].clone(), v2["id"].clone()),
        (json!("2.0"), json!("a"))
    );
    assert!(v2.get("error").is_none());
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "login", "params": [USER, TOKEN]},
        {"jsonrpc": "2.0", "id": 2, "method": "nope"},
    ]);
    let r = ed.rpc_raw("/jsonrpc2", batch.to_string()).await;
    assert_eq!(r[1]["error"]["code"], -32601);
    assert!(r[0]["result"][0].is_string());
    Ok(())
}

#[tokio::test]
async fn rule12_stat_reports_files_and_directories() -> TestResult {
    let ed = Ed::start(quiet()).await;
    let t = ed.login().await;
    ed.mkdir(&t, "/zz").await;
    let a = ed
        .post(
            "/post/raw",
            &[
                ("X-Agile-Authorization", &t),
                ("X-Agile-Directory", "/zz"),
                ("X-Agile-Basename", "f.txt"),
                ("X-Agile-Content-Type", "text/plain"),
                ("X-Agile-MTime", "1439842997"),
            ],
            b"hello".to_vec(),
        )
        .await;
    assert_eq!(a.code, 0);
    let short = ed.rpc("stat", json!([t, "zz/f.txt"])).await;
    assert_eq!(
        (
            short["code"].clone(),
            short["size"].clone(),
            short["type"].clone()
        ),
        (json!(0), json!(5), json!(2))
    );
    assert_eq!(short["mtime"], 1_439_842_997);
    assert!(short.get("checksum").is_none(), "detail false: no checksum");
    let long = ed
        .rpc(
            "stat",
            json!({"token": t, "path": "/zz/f.txt", "detail": true}),
        )
        .await;
    assert_eq!(long["checksum"], sha256_hex(b"hello"));
    assert_eq!(long["mimetype"], "text/plain");
    assert_eq!(
        (long["uid"].clone(), long["gid"].clone()),
        (json!(12020), json!(100))
    );
    let dir = ed.rpc("stat", json!([t, "/zz", true])).await;
    assert_eq!(
        (dir["type"].clone(), dir["checksum"].clone()),
        (json!(1), json!(""))
    );
    let missing = ed.rpc("stat", json!([t, "/zz/none", true])).await;
    assert_eq!(
        missing,
        json!({"code": -1, "uid": 0, "gid": 0, "checksum": ""})
    );
    Ok(())
}

#[tokio::test]
async fn make_dir_make_dir2_and_delete_file_codes() -> TestResult {
    let ed = Ed::start(quiet()).await;
    let t = ed.login().await;
    assert_eq!(
        ed.rpc("makeDir", json!([t, "/a/b"])).await,
        json!(-3),
        "no parents"
    );
    assert_eq!(ed.rpc("makeDir2", json!([t, "/a/b"])).await, json!(0));
    assert_eq!(ed.rpc("makeDir", json!([t, "/a/b/c"])).await, json!(0));
    assert_eq!(
        ed.rpc("makeDir", json!([t, "/a/b/c"])).await,
        json!(0),
        "exists"
    );
    assert_eq!(ed.rpc("makeDir", json!([t, "/a/../x"])).await, json!(-1));
    assert_eq!(ed.post_raw(&t, "/a", "f", b"x").await.code, 0);
    assert_eq!(
        ed.rpc("makeDir2", json!([t, "/a/f"])).await,
        json!(-2),
        "a file has the name"
    );
    assert_eq!(ed.rpc("deleteFile", json!([t, "/a/f"])).await, json!(0));
    assert_eq!(ed.rpc("deleteFile", json!([t, "/a/f"])).await, json!(-1));
    assert_eq!(ed.head("a/f").await.status, 404);
    assert!(ed.objects().is_empty());
    Ok(())
}
