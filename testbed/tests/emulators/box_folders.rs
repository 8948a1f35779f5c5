//! Folders: enough to mirror a tree.

use reqwest::Method;

use crate::support::*;

#[tokio::test]
async fn folders_nest_list_and_name_objects_by_path() -> TestResult {
    let bed = start(small()).await;
    let (status, _, a) = answer(bed.mkdir("0", "a").await).await;
    assert_eq!(status, 201);
    assert_eq!(a["type"], "folder");
    assert_eq!(a["parent"]["id"], "0");
    let a_id = a["id"].as_str().unwrap_or_default().to_string();
    let (_, _, b) = answer(bed.mkdir(&a_id, "b").await).await;
    let b_id = b["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(
        answer(bed.direct_new(&b_id, "deep.txt", b"deep").await)
            .await
            .0,
        201
    );
    for name in ["z.txt", "m.txt"] {
        assert_eq!(answer(bed.direct_new(&a_id, name, b"x").await).await.0, 201);
    }

    let (status, _, page) = answer(bed.get(&format!("/folders/{a_id}/items")).await).await;
    assert_eq!(status, 200);
    assert_eq!(page["total_count"], 3);
    assert_eq!(page["offset"], 0);
    assert_eq!(page["limit"], 100);
    let names: Vec<&str> = page["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(
        names,
        vec!["b", "m.txt", "z.txt"],
        "folders first, then by name"
    );
    assert_eq!(page["entries"][0]["type"], "folder");
    assert_eq!(page["entries"][1]["type"], "file");

    let (_, _, page) = answer(
        bed.get(&format!("/folders/{a_id}/items?offset=1&limit=1"))
            .await,
    )
    .await;
    assert_eq!(page["entries"].as_array().map(Vec::len), Some(1));
    assert_eq!(page["entries"][0]["name"], "m.txt");

    let (status, _, info) = answer(bed.get(&format!("/folders/{b_id}")).await).await;
    assert_eq!(status, 200);
    assert_eq!(info["path_collection"]["total_count"], 2);
    assert_eq!(info["item_collection"]["total_count"], 1);

    assert_eq!(bed.tb.object_bytes("box", "a/b/deep.txt")?, b"deep");
    let mut paths: Vec<String> = bed.tb.objects().into_iter().map(|o| o.path).collect();
    paths.sort();
    assert_eq!(paths, vec!["a/b/deep.txt", "a/m.txt", "a/z.txt"]);
    Ok(())
}

#[tokio::test]
async fn folder_name_conflict_is_409_with_conflicts_list() -> TestResult {
    let bed = start(small()).await;
    let (_, _, a) = answer(bed.mkdir("0", "Photos").await).await;
    let (status, code, err) = answer(bed.mkdir("0", "photos").await).await;
    assert_eq!((status, code.as_str()), (409, "item_name_in_use"));
    assert_eq!(err["context_info"]["conflicts"][0]["id"], a["id"]);
    assert_eq!(err["context_info"]["conflicts"][0]["type"], "folder");
    // A file's name blocks a folder too.
    assert_eq!(
        answer(bed.direct_new("0", "notes", b"x").await).await.0,
        201
    );
    let (status, _, err) = answer(bed.mkdir("0", "notes").await).await;
    assert_eq!(status, 409);
    assert_eq!(err["context_info"]["conflicts"][0]["type"], "file");
    Ok(())
}

#[tokio::test]
async fn folder_refusals_and_delete() -> TestResult {
    let bed = start(small()).await;
    let (status, code, _) = answer(bed.mkdir("999", "x").await).await;
    assert_eq!((status, code.as_str()), (404, "not_found"));
    let (status, code, _) = answer(bed.mkdir("0", "a/b").await).await;
    assert_eq!((status, code.as_str()), (400, "item_name_invalid"));
    let (status, code, _) = answer(bed.get("/folders/999/items").await).await;
    assert_eq!((status, code.as_str()), (404, "not_found"));

    let (_, _, a) = answer(bed.mkdir("0", "a").await).await;
    let a_id = a["id"].as_str().unwrap_or_default();
    assert_eq!(answer(bed.direct_new(a_id, "f", b"x").await).await.0, 201);
    let resp = bed
        .req(Method::DELETE, &format!("/folders/{a_id}"))
        .send()
        .await?;
    let (status, code, _) = answer(resp).await;
    assert_eq!((status, code.as_str()), (400, "folder_not_empty"));
    let resp = bed
        .req(Method::DELETE, &format!("/folders/{a_id}?recursive=true"))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 204);
    assert!(bed.tb.objects().is_empty());
    Ok(())
}
