//! Insights Hub rule 14: search by name and path, paging, count.

use reqwest::Method;
use serde_json::Value;

use crate::insights_hub_client::*;
use crate::support::*;

async fn search(bed: &Bed, asset: &str, query: &[(&str, &str)]) -> Answer {
    bed.ih_search(asset, query).await
}

fn names(a: &Answer) -> Vec<String> {
    a.body
        .as_array()
        .map(|v| {
            v.iter()
                .map(|f| {
                    format!(
                        "{}{}",
                        f["path"].as_str().unwrap_or("?"),
                        f["name"].as_str().unwrap_or("?")
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// a.txt, logs/a.txt, logs/b.bin, logs/2024/c.log in ASSET; x.txt in ASSET2.
async fn seeded() -> Bed {
    let bed = start(ih_small()).await;
    for file in ["a.txt", "logs/a.txt", "logs/b.bin", "logs/2024/c.log"] {
        let a = bed
            .ih_put(file, "", file.as_bytes(), &[("description", "seed")])
            .await;
        assert_eq!(a.status, 201, "{}", a.body);
    }
    let a = Answer::of(
        bed.ih(Method::PUT, &format!("files/{ASSET2}/x.txt"))
            .body("x")
            .send()
            .await
            .expect("put"),
    )
    .await;
    assert_eq!(a.status, 201);
    bed
}

#[tokio::test]
async fn rule14_name_and_path_filters() -> TestResult {
    let bed = seeded().await;
    for (filter, want) in [
        ("name eq 'a.txt'", vec!["/a.txt", "logs/a.txt"]),
        ("name eq 'a.txt' and path eq 'logs/'", vec!["logs/a.txt"]),
        ("name eq \"a.txt\" and path eq \"/\"", vec!["/a.txt"]),
        ("name eq a.txt and path eq logs/", vec!["logs/a.txt"]),
        ("name='a.txt' and path='logs/'", vec!["logs/a.txt"]),
        ("path eq 'logs/2024/'", vec!["logs/2024/c.log"]),
        ("path eq 'logs'", vec![]),
        ("name eq '*.txt'", vec!["/a.txt", "logs/a.txt"]),
        ("name eq 'x.txt'", vec![]),
    ] {
        let a = search(&bed, ASSET, &[("filter", filter)]).await;
        assert_eq!(a.status, 200, "{filter}: {}", a.body);
        assert_eq!(names(&a), want, "{filter}");
    }
    let a = search(&bed, ASSET2, &[("filter", "name eq 'x.txt'")]).await;
    assert_eq!(names(&a), ["/x.txt"]);
    Ok(())
}

#[tokio::test]
async fn rule14_results_carry_size_etag_and_the_other_fields() -> TestResult {
    let bed = seeded().await;
    assert_eq!(
        bed.ih_put("logs/b.bin", "", b"longer content", &[("If-Match", "0")])
            .await
            .status,
        204
    );
    let a = search(
        &bed,
        ASSET,
        &[("filter", "name eq b.bin and path eq logs/")],
    )
    .await;
    let f = a.body.get(0).ok_or("one result")?;
    let mut keys: Vec<_> = f.as_object().ok_or("object")?.keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "created",
            "createdBy",
            "description",
            "etag",
            "name",
            "path",
            "size",
            "timestamp",
            "type",
            "updated",
            "updatedBy"
        ]
    );
    assert_eq!(f["size"], 14);
    assert_eq!(f["etag"], 1);
    assert!(f["etag"].is_u64() && f["size"].is_u64());
    assert_eq!(f["description"], "", "the update sent no description");
    assert_eq!(f["type"], "application/octet-stream");
    for time in ["timestamp", "created", "updated"] {
        let t = f[time].as_str().ok_or("time is a string")?;
        assert!(
            t.len() == 24 && t.ends_with('Z') && t.as_bytes()[10] == b'T',
            "{time}: {t}"
        );
    }
    assert!(f["created"].as_str() <= f["updated"].as_str());
    Ok(())
}

#[tokio::test]
async fn rule14_limit_offset_and_count() -> TestResult {
    let bed = seeded().await;
    let all = search(&bed, ASSET, &[]).await;
    assert_eq!(all.body.as_array().map(Vec::len), Some(4));
    assert_eq!(all.header("x-total-count"), None, "only with count=true");
    let page = search(
        &bed,
        ASSET,
        &[("limit", "2"), ("offset", "1"), ("count", "true")],
    )
    .await;
    assert_eq!(page.status, 200);
    assert_eq!(names(&page), names(&all)[1..3].to_vec());
    assert_eq!(page.header("x-total-count"), Some("4"));
    let counted = search(
        &bed,
        ASSET,
        &[
            ("filter", "path eq 'logs/'"),
            ("count", "true"),
            ("limit", "1"),
        ],
    )
    .await;
    assert_eq!(counted.body.as_array().map(Vec::len), Some(1));
    assert_eq!(counted.header("x-total-count"), Some("2"));
    let past = search(&bed, ASSET, &[("offset", "10")]).await;
    assert_eq!(past.body, Value::Array(vec![]));
    assert_eq!(search(&bed, ASSET, &[("limit", "200")]).await.status, 200);
    for bad in [
        ("limit", "201"),
        ("limit", "0"),
        ("limit", "ten"),
        ("offset", "-1"),
        ("offset", "10001"),
        ("count", "yes"),
    ] {
        search(&bed, ASSET, &[bad]).await.assert_error(400);
    }
    Ok(())
}

#[tokio::test]
async fn rule14_an_invalid_filter_is_ignored_as_documented() -> TestResult {
    let bed = seeded().await;
    for filter in [
        "name eq",
        "name like 'a.txt'",
        "owner eq x",
        "name eq a.txt or path eq /",
    ] {
        let a = search(&bed, ASSET, &[("filter", filter)]).await;
        assert_eq!(a.status, 200);
        assert_eq!(names(&a).len(), 4, "{filter}: every file of the asset");
    }
    Ok(())
}
