//! Login, tokens and their expiry (protocols/edgio.md rules 1–3, 14).

use dropship_testbed::SettingsPatch;
use serde_json::json;

use crate::edgio_support::{Ed, USER, quiet};
use crate::support::{TOKEN, TestResult};

async fn http_login(ed: &Ed, headers: &[(&str, &str)]) -> crate::edgio_support::Agile {
    ed.post("/account/login", headers, Vec::new()).await
}

#[tokio::test]
async fn rule1_http_login_answers_and_refusals() -> TestResult {
    let ed = Ed::start(quiet()).await;
    let ok = http_login(
        &ed,
        &[("X-Agile-Username", USER), ("X-Agile-Password", TOKEN)],
    )
    .await;
    assert_eq!(ok.pair(), (200, 0));
    let token = ok.header("x-agile-token");
    assert_eq!(
        token.split('-').map(str::len).collect::<Vec<_>>(),
        [8, 4, 4, 4, 12]
    );
    assert_eq!(ok.header("x-agile-path"), "/testbed");
    assert!(!ok.header("x-agile-uid").is_empty() && !ok.header("x-agile-gid").is_empty());
    for (headers, code) in [
        (
            vec![("X-Agile-Username", USER), ("X-Agile-Password", "wrong")],
            -10001,
        ),
        (
            vec![("X-Agile-Username", "other"), ("X-Agile-Password", TOKEN)],
            -10001,
        ),
        (vec![("X-Agile-Username", USER)], -10001),
        (vec![], -10001),
        (
            vec![("X-Agile-Username", ""), ("X-Agile-Password", TOKEN)],
            -40,
        ),
        (
            vec![("X-Agile-Username", USER), ("X-Agile-Password", "")],
            -41,
        ),
        (
            vec![
                ("X-Agile-Username", USER),
                ("X-Agile-Password", TOKEN),
                ("X-Agile-Expiry", "soon"),
            ],
            -34,
        ),
        (
            vec![
                ("X-Agile-Username", USER),
                ("X-Agile-Password", TOKEN),
                ("X-Agile-Expiry", "-5"),
            ],
            -34,
        ),
        (
            vec![
                ("X-Agile-Username", USER),
                ("X-Agile-Password", TOKEN),
                ("X-Agile-Subdir", "/missing"),
            ],
            -47,
        ),
    ] {
        let a = http_login(&ed, &headers).await;
        assert_eq!(a.pair(), (400, code), "{headers:?}");
        assert!(a.header("x-agile-token").is_empty());
    }
    Ok(())
}

#[tokio::test]
async fn rule1_json_rpc_login_answers_and_refusals() -> TestResult {
    let ed = Ed::start(quiet()).await;
    let r = ed.rpc("login", json!([USER, TOKEN])).await;
    assert!(r[0].as_str().is_some_and(|t| t.len() == 36), "{r}");
    assert_eq!(r[1], json!({"uid": 12020, "gid": 100}));
    let r = ed
        .rpc(
            "login",
            json!({"username": USER, "password": TOKEN, "detail": true}),
        )
        .await;
    assert_eq!(r[1]["path"], "/testbed");
    assert_eq!(
        ed.rpc("login", json!([USER, "wrong"])).await,
        json!([null, null])
    );
    assert_eq!(ed.rpc("login", json!(["", TOKEN])).await, json!(-40));
    assert_eq!(ed.rpc("login", json!([USER, ""])).await, json!(-41));
    let req = json!({"jsonrpc": "2.0", "id": 7, "method": "login", "params": [USER]});
    let reply = ed.rpc_raw("/jsonrpc2", req.to_string()).await;
    assert_eq!(reply["error"]["code"], -32603);
    Ok(())
}

#[tokio::test]
async fn rule3_no_token_is_401_a_bad_one_403_and_json_rpc_minus_10001() -> TestResult {
    let ed = Ed::start(quiet()).await;
    let a = ed
        .post("/post/raw", &[("X-Agile-Basename", "f")], b"x".to_vec())
        .await;
    assert_eq!(a.pair(), (401, -10001));
    let a = ed.post_raw("not-a-token", "/", "f", b"x").await;
    assert_eq!(a.pair(), (403, -10001));
    let a = ed
        .post(
            "/multipart/create",
            &[("X-Agile-Authorization", "nope")],
            Vec::new(),
        )
        .await;
    assert_eq!(a.pair(), (403, -10001));
    assert!(ed.objects().is_empty());
    // Each method in its own shape.
    assert_eq!(
        ed.rpc("stat", json!(["nope", "/"])).await,
        json!({"code": -10001})
    );
    assert_eq!(
        ed.rpc("makeDir", json!(["nope", "/d"])).await,
        json!(-10001)
    );
    assert_eq!(
        ed.rpc("abortMultipart", json!(["nope", "x"])).await,
        json!(-10001)
    );
    assert_eq!(
        ed.rpc("listMultipart", json!(["nope"])).await,
        json!({"code": -10001})
    );
    Ok(())
}

#[tokio::test]
async fn rule2_14_lowering_the_token_ttl_to_0_expires_every_token() -> TestResult {
    let ed = Ed::start(quiet()).await;
    let t = ed.login().await;
    let never = ed.login().await;
    assert_eq!(ed.rpc("updateSession", json!([never, 0])).await, json!(0));
    assert_eq!(ed.post_raw(&t, "/", "a", b"1").await.pair(), (200, 0));
    ed.set(SettingsPatch {
        edgio_token_ttl_s: Some(0),
        ..Default::default()
    });
    assert_eq!(ed.post_raw(&t, "/", "b", b"2").await.pair(), (403, -10001));
    assert_eq!(
        ed.post_raw(&never, "/", "b", b"2").await.pair(),
        (403, -10001),
        "forced: even never-expiring"
    );
    assert_eq!(
        ed.rpc("checkToken", json!([t])).await,
        json!({"code": -10001})
    );
    ed.set(SettingsPatch {
        edgio_token_ttl_s: Some(3600),
        ..Default::default()
    });
    assert_eq!(
        ed.post_raw(&t, "/", "b", b"2").await.code,
        -10001,
        "an expired token stays expired"
    );
    let fresh = ed.login().await;
    assert_eq!(ed.post_raw(&fresh, "/", "b", b"2").await.pair(), (200, 0));
    Ok(())
}

#[tokio::test]
async fn rule2_update_session_once_check_token_and_logout() -> TestResult {
    let ed = Ed::start(quiet()).await;
    let t = ed.login().await;
    let c = ed.rpc("checkToken", json!([t])).await;
    assert_eq!(c["code"], 0);
    assert!(
        c["age"].as_f64().is_some_and(|a| (0.0..60.0).contains(&a)),
        "{c}"
    );
    assert_eq!(
        (c["username"].clone(), c["path"].clone()),
        (json!("testbed"), json!("/testbed"))
    );
    assert_eq!(ed.rpc("updateSession", json!([t, -5])).await, json!(-34));
    assert_eq!(ed.rpc("updateSession", json!([t, 7200])).await, json!(0));
    assert_eq!(
        ed.rpc("updateSession", json!([t, 60])).await,
        json!(-1),
        "only once"
    );
    let timed = ed
        .post(
            "/account/login",
            &[
                ("X-Agile-Username", USER),
                ("X-Agile-Password", TOKEN),
                ("X-Agile-Expiry", "600"),
            ],
            Vec::new(),
        )
        .await;
    let timed = timed.header("x-agile-token").to_string();
    assert_eq!(
        ed.rpc("updateSession", json!([timed])).await,
        json!(-1),
        "X-Agile-Expiry set it"
    );
    assert_eq!(ed.rpc("logout", json!([t])).await, json!(0));
    assert_eq!(ed.rpc("logout", json!([t])).await, json!(-1));
    assert_eq!(ed.post_raw(&t, "/", "f", b"x").await.pair(), (403, -10001));
    assert_eq!(ed.rpc("updateSession", json!([t, 5])).await, json!(-10001));
    Ok(())
}

#[tokio::test]
async fn a_new_secret_ends_issued_tokens_and_is_needed_for_new_logins() -> TestResult {
    let ed = Ed::start(quiet()).await;
    let t = ed.login().await;
    ed.bed.tb.set_secret("rotated");
    let old = ed
        .post(
            "/account/login",
            &[("X-Agile-Username", USER), ("X-Agile-Password", TOKEN)],
            Vec::new(),
        )
        .await;
    assert_eq!(old.pair(), (400, -10001));
    assert_eq!(
        ed.post_raw(&t, "/", "f", b"x").await.pair(),
        (403, -10001),
        "a password change ends the tokens issued before it"
    );
    let fresh = ed.rpc("login", json!([USER, "rotated"])).await;
    assert_eq!(fresh[1]["uid"], 12020);
    let fresh = fresh[0].as_str().expect("token").to_string();
    assert_eq!(ed.post_raw(&fresh, "/", "f", b"x").await.pair(), (200, 0));
    Ok(())
}

#[tokio::test]
async fn a_subdir_login_roots_every_path() -> TestResult {
    let ed = Ed::start(quiet()).await;
    let t = ed.login().await;
    ed.mkdir(&t, "/EMEA/pictures").await;
    let a = ed
        .post(
            "/account/login",
            &[
                ("X-Agile-Username", USER),
                ("X-Agile-Password", TOKEN),
                ("X-Agile-Subdir", "/EMEA"),
            ],
            Vec::new(),
        )
        .await;
    assert_eq!(a.header("x-agile-path"), "/testbed/EMEA");
    let sub = a.header("x-agile-token").to_string();
    let up = ed.post_raw(&sub, "/pictures", "p.jpg", b"jpg").await;
    assert_eq!(up.header("x-agile-path"), "/testbed/EMEA/pictures/p.jpg");
    assert_eq!(
        ed.bed.tb.object_bytes("edgio", "EMEA/pictures/p.jpg")?,
        b"jpg"
    );
    let up = ed.post_raw(&sub, "/../x", "p.jpg", b"jpg").await;
    assert_eq!(up.pair(), (400, -8), "no way out of the subtree");
    Ok(())
}
