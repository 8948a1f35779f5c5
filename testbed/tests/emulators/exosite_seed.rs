//! Exosite: the vendor's own example (seed 000) request for request, at the real
//! 5 MiB ranges; credentials (rule 1), the product in the host (rule 2) and a revoked
//! token (rule 13).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use dropship_testbed::SettingsPatch;
use reqwest::Method;

use crate::exosite_client::*;
use crate::support::*;

/// The seed's loop: `in_file.read(5*1024*1024)` until EOF, one PATCH per read.
#[tokio::test]
async fn the_seed_sequence_at_five_mib_stores_the_file() -> TestResult {
    let bed = start(SettingsPatch::default()).await;
    const PART: usize = 5 * 1024 * 1024;
    let data = content(2 * PART + 1000);
    let total = data.len();

    // First POST: `json.dumps(info)` with Python's default separators.
    let info = format!(r#"{{"id": "bigfile.txt", "length": {total}, "type": "text/plain"}}"#);
    let r = bed
        .http
        .post(bed.ex_url("/onep:v1/content/"))
        .header("Content-Type", "application/json")
        .header("X-Exosite-CIK", TOKEN)
        .body(info)
        .send()
        .await?;
    let r = Answer::of(r).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(bed.tb.stats().sessions_open, 1);

    let mut range_pointer = 0usize;
    for data in data.chunks(PART) {
        let data_len = data.len();
        let r = bed
            .http
            .patch(bed.ex_url("/onep:v1/content/bigfile.txt"))
            .header("X-Exosite-CIK", TOKEN)
            .header("Content-Type", "application/octet-stream")
            .header("MD5", md5_b64(data))
            .header(
                "Content-Range",
                format!(
                    "bytes {}-{}/{}",
                    range_pointer,
                    range_pointer + data_len - 1,
                    total
                ),
            )
            .body(data.to_vec())
            .send()
            .await?;
        let r = Answer::of(r).await;
        assert_eq!(r.status, 204, "range at {range_pointer}: {}", r.body);
        range_pointer += data_len;
    }

    assert_eq!(bed.ex_stored("bigfile.txt"), data);
    let stats = bed.tb.stats();
    assert_eq!(
        stats.sessions_open, 0,
        "the upload ended with its last byte"
    );
    assert_eq!(stats.emulators["exosite"].objects, 1);
    let o = &bed.tb.objects()[0];
    assert_eq!(
        (o.emulator.as_str(), o.path.as_str()),
        ("exosite", "bigfile.txt")
    );
    assert_eq!(o.sha1, sha1_hex(&data));
    let info = bed.ex_info("bigfile.txt").await;
    assert_eq!(info.status, 200);
    assert!(
        info.body.starts_with(&format!("text/plain,{total},")),
        "{}",
        info.body
    );
    Ok(())
}

#[tokio::test]
async fn rule1_all_four_credential_forms_are_accepted() -> TestResult {
    let bed = start(ex_small()).await;
    let post = |id: &str| {
        bed.http
            .post(bed.ex_url("/onep:v1/content/"))
            .header("Content-Type", "application/json")
            .body(format!(
                r#"{{"id": "{id}", "length": 5, "type": "text/plain"}}"#
            ))
    };
    let basic = |pair: &str| format!("Basic {}", STANDARD.encode(pair));
    let forms = [
        ("X-Exosite-CIK", TOKEN.to_string()),
        ("Authorization", format!("token {TOKEN}")),
        ("Authorization", basic(&format!(":{TOKEN}"))),
        ("Authorization", basic(&format!("device-0001:{TOKEN}"))),
    ];
    for (i, (name, value)) in forms.iter().enumerate() {
        let a = bed
            .ex_send(post(&format!("f{i}")).header(*name, value))
            .await;
        assert_eq!(a.status, 204, "{name}: {value}: {}", a.body);
        // Every route takes every form: the range, and reading back.
        let a = bed
            .ex_send(
                bed.http
                    .patch(bed.ex_url(&format!("/onep:v1/content/f{i}")))
                    .header(*name, value)
                    .header("MD5", md5_b64(b"hello"))
                    .header("Content-Range", "bytes 0-4/5")
                    .body("hello"),
            )
            .await;
        assert_eq!(a.status, 204, "{name}: {}", a.body);
        let a = bed
            .ex_send(
                bed.http
                    .get(bed.ex_url(&format!("/onep:v1/content/f{i}")))
                    .header(*name, value),
            )
            .await;
        assert_eq!((a.status, a.body.as_str()), (200, "hello"));
    }
    let wrong = [
        ("X-Exosite-CIK", "nope".to_string()),
        ("Authorization", "token nope".to_string()),
        ("Authorization", format!("Bearer {TOKEN}")),
        ("Authorization", basic(":nope")),
        ("Authorization", basic(&format!("{TOKEN}:"))),
        ("Authorization", "Basic not-base64!".to_string()),
    ];
    for (name, value) in wrong {
        let a = bed.ex_send(post("w").header(name, &value)).await;
        a.assert_error(401);
    }
    Answer::of(post("anon").send().await?)
        .await
        .assert_error(401);
    for path in [
        "/onep:v1/content/",
        "/onep:v1/content/f0",
        "/provision/download?vendor=testbed&model=testbed",
    ] {
        let a = bed.ex_send(bed.http.get(bed.ex_url(path))).await;
        a.assert_error(401);
    }
    assert_eq!(bed.tb.stats().sessions_open, 0);
    Ok(())
}

#[tokio::test]
async fn rule1_a_revoked_token_gets_401_even_mid_upload() -> TestResult {
    let bed = start(ex_small()).await;
    let data = content(3000);
    assert_eq!(
        bed.ex_initiate("r.bin", 3000, "application/x-r")
            .await
            .status,
        204
    );
    assert_eq!(
        bed.ex_patch("r.bin", &data[..1024], 0, 3000).await.status,
        204
    );

    // The secret changes over HTTP: the old token is refused, body read first.
    let resp = bed
        .http
        .put(format!("{}/_testbed/secret", bed.tb.url()))
        .body("rotated")
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 204);
    bed.ex_patch("r.bin", &data[1024..2048], 1024, 3000)
        .await
        .assert_error(401);
    bed.ex_info("r.bin").await.assert_error(401);

    // The new token continues the same upload where it was.
    let next = |start: usize, end: usize| {
        bed.http
            .patch(bed.ex_url("/onep:v1/content/r.bin"))
            .header("Authorization", "token rotated")
            .header("MD5", md5_b64(&data[start..end]))
            .header("Content-Range", format!("bytes {start}-{}/3000", end - 1))
            .body(data[start..end].to_vec())
    };
    assert_eq!(bed.ex_send(next(1024, 2048)).await.status, 204);
    assert_eq!(bed.ex_send(next(2048, 3000)).await.status, 204);
    assert_eq!(bed.ex_stored("r.bin"), data);
    Ok(())
}

#[tokio::test]
async fn rule2_the_host_must_name_the_product_when_checked() -> TestResult {
    let bed = start(ex_small()).await;
    let list = |host: Option<&str>| {
        let mut req = bed.ex(Method::GET, "/onep:v1/content/");
        if let Some(h) = host {
            req = req.header("Host", h);
        }
        req.send()
    };
    // Off by default: any host, the loopback address included.
    assert_eq!(list(None).await?.status().as_u16(), 200);
    assert_eq!(
        list(Some("other.m2.exosite.io")).await?.status().as_u16(),
        200
    );

    bed.tb.update_settings(SettingsPatch {
        exosite_check_host: Some(true),
        ..Default::default()
    });
    Answer::of(list(None).await?).await.assert_error(404);
    Answer::of(list(Some("other.m2.exosite.io")).await?)
        .await
        .assert_error(404);
    assert_eq!(
        list(Some("testbed.m2.exosite.io")).await?.status().as_u16(),
        200
    );
    assert_eq!(
        list(Some("TestBed.m2.exosite.io:443"))
            .await?
            .status()
            .as_u16(),
        200
    );

    // An unknown product is 404 before the credential is looked at.
    let anon = bed
        .http
        .get(bed.ex_url("/onep:v1/content/"))
        .header("Host", "other.m2.exosite.io")
        .send()
        .await?;
    assert_eq!(anon.status().as_u16(), 404);

    bed.tb.update_settings(SettingsPatch {
        exosite_product: Some("p1234".into()),
        ..Default::default()
    });
    Answer::of(list(Some("testbed.m2.exosite.io")).await?)
        .await
        .assert_error(404);
    assert_eq!(
        list(Some("p1234.m2.exosite.io")).await?.status().as_u16(),
        200
    );
    Ok(())
}
