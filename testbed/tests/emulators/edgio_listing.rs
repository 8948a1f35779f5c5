//! `listMultipart`, `listMultipartPiece`, status and the state maps (protocols/edgio.md
//! rule 10).

use serde_json::{Value, json};

use crate::edgio_support::{Ed, quiet};
use crate::support::TestResult;

#[tokio::test]
async fn rule10_pieces_page_with_a_cookie_until_0() -> TestResult {
    let ed = Ed::start(quiet()).await;
    let t = ed.login().await;
    let mpid = ed.create(&t, "/", "l.bin").await;
    for n in ["1", "2", "3", "2"] {
        assert_eq!(ed.piece(&t, &mpid, n, n.as_bytes()).await.code, 0);
    }
    let mut cookie = 0;
    let mut seen = Vec::new();
    let mut calls = 0;
    loop {
        let page = ed
            .rpc("listMultipartPiece", json!([t, mpid, cookie, 2]))
            .await;
        assert_eq!(page["code"], 0);
        seen.extend(
            page["pieces"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| p["number"].clone()),
        );
        calls += 1;
        cookie = page["cookie"].as_i64().expect("cookie");
        if cookie == 0 {
            assert_eq!(
                page["pieces"],
                json!([]),
                "4 pieces in pages of 2: the last is empty"
            );
            break;
        }
        assert!(calls < 10);
    }
    assert_eq!(
        seen,
        [json!(1), json!(2), json!(3), json!(2)],
        "arrival order, duplicates included"
    );
    assert_eq!(calls, 3);
    let p = ed
        .rpc(
            "listMultipartPiece",
            json!({"token": t, "mpid": mpid, "pagesize": 100}),
        )
        .await;
    assert_eq!(
        (p["cookie"].clone(), p["pieces"][0]["size"].clone()),
        (json!(0), json!(1))
    );
    assert_eq!(p["pieces"][0]["state"], 1);
    assert_eq!(
        ed.rpc("listMultipartPiece", json!([t, mpid, 0, 0])).await,
        json!({"code": -14})
    );
    assert_eq!(
        ed.rpc("listMultipartPiece", json!([t, mpid, 0, -3])).await,
        json!({"code": -14})
    );
    assert_eq!(
        ed.rpc("listMultipartPiece", json!([t, mpid, 99, 2])).await,
        json!({"code": -3})
    );
    assert_eq!(
        ed.rpc("listMultipartPiece", json!([t, "0000", 0, 2])).await,
        json!({"code": -2})
    );
    Ok(())
}

#[tokio::test]
async fn rule10_uploads_list_and_status_fields() -> TestResult {
    let ed = Ed::start(quiet()).await;
    let t = ed.login().await;
    let mut ids = Vec::new();
    for name in ["a", "b", "c"] {
        ids.push(ed.create(&t, "/", name).await);
    }
    let first = ed.rpc("listMultipart", json!([t, 0, 2])).await;
    assert_eq!(first["cookie"], 2);
    let second = ed.rpc("listMultipart", json!([t, 2, 2])).await;
    assert_eq!(second["cookie"], 0);
    let all: Vec<Value> = [first, second]
        .iter()
        .flat_map(|p| p["multipart"].as_array().cloned().unwrap_or_default())
        .collect();
    let mpids: Vec<_> = all.iter().map(|u| u["mpid"].clone()).collect();
    assert_eq!(mpids, ids.iter().map(|i| json!(i)).collect::<Vec<_>>());
    let u = &all[0];
    assert_eq!(
        (u["path"].clone(), u["state"].clone(), u["error"].clone()),
        (json!("/testbed/a"), json!(1), json!(0))
    );
    for key in ["content_type", "mtime", "uid", "gid"] {
        assert!(u.get(key).is_some(), "{key} in {u}");
    }
    assert_eq!(
        ed.rpc("listMultipart", json!([t, 0, 0])).await,
        json!({"code": -14})
    );
    let s = ed.rpc("getMultipartStatus", json!([t, ids[0]])).await;
    for key in [
        "code",
        "path",
        "content_type",
        "numpieces",
        "created",
        "state",
        "mtime",
        "error",
    ] {
        assert!(s.get(key).is_some(), "{key} in {s}");
    }
    assert_eq!(
        ed.rpc("getMultipartStatus", json!([t, "nope"])).await,
        json!({"code": -2})
    );
    Ok(())
}

#[tokio::test]
async fn state_maps() -> TestResult {
    let ed = Ed::start(quiet()).await;
    let t = ed.login().await;
    let up = ed.rpc("getMultipartStatusMap", json!([t, "upload"])).await;
    assert_eq!(
        (up["map"]["6"].clone(), up["map"]["12"].clone()),
        (json!("SUCCESS"), json!("FAILED"))
    );
    let piece = ed.rpc("getMultipartStatusMap", json!([t, "piece"])).await;
    assert_eq!(
        (piece["map"]["10"].clone(), piece["map"]["13"].clone()),
        (json!("SKIPPED"), json!("FAILED"))
    );
    assert_eq!(
        ed.rpc("getMultipartStatusMap", json!([t, "other"])).await,
        json!({"code": -19})
    );
    Ok(())
}
