//! Tolerant readers of the few flat XML answers S3 gives: the upload id of
//! CreateMultipartUpload, ListParts, ListMultipartUploads, CompleteMultipartUpload,
//! and `<Error>`.
//!
//! Hand-written (no XML crate is in the lock): these documents are flat, and only
//! a handful of leaf elements matter. Unknown elements are skipped, missing optional
//! ones are defaults, so that servers short of AWS's schema still parse: s3s-fs's
//! ListParts has no `<ETag>`, `<IsTruncated>` or `<NextPartNumberMarker>` and lists
//! parts unsorted (s3-brief §0.2). Nothing here trusts the input: every number is
//! parsed with a checked conversion and a malformed document is an `Err`.

/// The text of every `<tag>…</tag>` (or `<tag attr…>…</tag>`) in `doc`, in order,
/// with entities decoded. `<tag/>` gives an empty text. Nesting of the same tag is
/// not handled: no document read here has any.
fn all<'a>(doc: &'a str, tag: &'a str) -> impl Iterator<Item = String> + 'a {
    raw(doc, tag).map(unescape)
}

/// Like [`all`], entities left as they are: for an element whose children are read
/// next, so that a decoded `&lt;` in a key cannot pass for markup.
fn raw<'a>(doc: &'a str, tag: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    let mut rest = doc;
    std::iter::from_fn(move || {
        loop {
            let at = rest.find('<')?;
            let after = &rest[at + 1..];
            let Some(tail) = after.strip_prefix(tag) else {
                rest = after;
                continue;
            };
            // `<PartNumber>` must not match `<PartNumberMarker>`.
            match tail.chars().next() {
                Some('>') | Some(' ') | Some('/') | Some('\t') | Some('\n') | Some('\r') => {}
                _ => {
                    rest = after;
                    continue;
                }
            }
            let close = tail.find('>')?;
            if tail[..close].ends_with('/') {
                rest = &tail[close + 1..];
                return Some("");
            }
            let body = &tail[close + 1..];
            let end_tag = format!("</{tag}>");
            let end = body.find(&end_tag)?;
            rest = &body[end + end_tag.len()..];
            return Some(&body[..end]);
        }
    })
}

/// The first `<tag>`'s text.
fn first(doc: &str, tag: &str) -> Option<String> {
    all(doc, tag).next()
}

/// Decodes the five predefined entities and numeric references (AWS writes the
/// ETag's quotes as `&quot;`). An unknown entity stays as it is.
fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.trim().to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let Some(semi) = tail.find(';').filter(|&i| i <= 10) else {
            out.push('&');
            rest = &tail[1..];
            continue;
        };
        let name = &tail[1..semi];
        let ch = match name {
            "quot" => Some('"'),
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "apos" => Some('\''),
            n if n.starts_with("#x") => u32::from_str_radix(&n[2..], 16)
                .ok()
                .and_then(char::from_u32),
            n if n.starts_with('#') => n[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match ch {
            Some(c) => {
                out.push(c);
                rest = &tail[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out.trim().to_string()
}

/// `<Error><Code>…</Code><Message>…</Message></Error>`: also the body of a 200
/// that failed (CompleteMultipartUpload may answer so after a long assembly).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct S3Error {
    pub code: String,
    pub message: String,
}

/// The error document in `doc`, if it is one.
pub fn error(doc: &str) -> Option<S3Error> {
    let inner = raw(doc, "Error").next()?;
    Some(S3Error {
        code: first(inner, "Code").unwrap_or_default(),
        message: first(inner, "Message").unwrap_or_default(),
    })
}

/// CreateMultipartUpload's `<UploadId>`.
pub fn upload_id(doc: &str) -> Result<String, String> {
    match first(doc, "UploadId") {
        Some(id) if !id.is_empty() => Ok(id),
        _ => Err("the answer holds no UploadId".into()),
    }
}

/// One `<Part>` of ListParts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedPart {
    pub number: u32,
    pub size: u64,
    /// Quotes removed; `None` where the server gives none (s3s-fs).
    pub etag: Option<String>,
}

/// One page of ListParts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PartsPage {
    /// Sorted by number (s3s-fs lists them in directory order).
    pub parts: Vec<ListedPart>,
    /// Where the next page starts, when the answer says it is truncated. AWS pages
    /// at 1000 parts; a truncated page without a marker is an `Err`, not a loop.
    pub next_marker: Option<u32>,
}

pub fn list_parts(doc: &str) -> Result<PartsPage, String> {
    if first(doc, "ListPartsResult").is_none() && !doc.contains("<ListPartsResult") {
        return Err("the answer is not a ListPartsResult".into());
    }
    let mut parts = Vec::new();
    for p in raw(doc, "Part") {
        let number = first(p, "PartNumber")
            .and_then(|n| n.parse::<u32>().ok())
            .ok_or_else(|| format!("a part without a valid PartNumber: {p:.200}"))?;
        let size = first(p, "Size")
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| format!("part {number} without a valid Size"))?;
        let etag = first(p, "ETag")
            .map(|e| e.trim_matches('"').to_string())
            .filter(|e| !e.is_empty());
        parts.push(ListedPart { number, size, etag });
    }
    parts.sort_by_key(|p| p.number);
    // Only the part outside `<Part>` elements holds the paging fields; they are
    // never inside one, so reading them from the whole document is safe.
    let truncated = first(doc, "IsTruncated").is_some_and(|t| t.eq_ignore_ascii_case("true"));
    let next_marker = if truncated {
        let m = first(doc, "NextPartNumberMarker")
            .and_then(|n| n.parse::<u32>().ok())
            .ok_or("a truncated ListParts page without a NextPartNumberMarker")?;
        Some(m)
    } else {
        None
    };
    Ok(PartsPage { parts, next_marker })
}

/// One page of ListMultipartUploads.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UploadsPage {
    /// `(key, upload id)` of each upload in progress.
    pub uploads: Vec<(String, String)>,
    /// `(key-marker, upload-id-marker)` of the next page, when the answer says it
    /// is truncated. A truncated page without them is an `Err`, not a loop.
    pub next: Option<(String, String)>,
}

pub fn list_uploads(doc: &str) -> Result<UploadsPage, String> {
    if !doc.contains("<ListMultipartUploadsResult") {
        return Err("the answer is not a ListMultipartUploadsResult".into());
    }
    let mut uploads = Vec::new();
    for u in raw(doc, "Upload") {
        let key = first(u, "Key").ok_or("an upload without a Key")?;
        let id = first(u, "UploadId")
            .filter(|id| !id.is_empty())
            .ok_or_else(|| format!("the upload of {key:?} has no UploadId"))?;
        uploads.push((key, id));
    }
    let truncated = first(doc, "IsTruncated").is_some_and(|t| t.eq_ignore_ascii_case("true"));
    let next = if truncated {
        let key = first(doc, "NextKeyMarker").unwrap_or_default();
        let id = first(doc, "NextUploadIdMarker").unwrap_or_default();
        if key.is_empty() && id.is_empty() {
            return Err("a truncated ListMultipartUploads page without a next marker".into());
        }
        Some((key, id))
    } else {
        None
    };
    Ok(UploadsPage { uploads, next })
}

/// CompleteMultipartUpload's ETag (quotes removed), or the error a 200 carried.
pub fn completed(doc: &str) -> Result<Option<String>, S3Error> {
    if let Some(e) = error(doc) {
        return Err(e);
    }
    if !doc.contains("<CompleteMultipartUploadResult") {
        return Err(S3Error {
            code: String::new(),
            message: "the answer is not a CompleteMultipartUploadResult".into(),
        });
    }
    Ok(first(doc, "ETag")
        .map(|e| e.trim_matches('"').to_string())
        .filter(|e| !e.is_empty()))
}

/// The body of CompleteMultipartUpload: `(part number, ETag as the server gave it)`.
pub fn complete_body(parts: &[(u32, String)]) -> String {
    let mut s = String::from("<CompleteMultipartUpload>");
    for (n, etag) in parts {
        s.push_str("<Part><PartNumber>");
        s.push_str(&n.to_string());
        s.push_str("</PartNumber><ETag>");
        s.push_str(&escape(&format!("\"{}\"", etag.trim_matches('"'))));
        s.push_str("</ETag></Part>");
    }
    s.push_str("</CompleteMultipartUpload>");
    s
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    // Answers of s3s-fs 0.14.1, from /work/notes/s3-brief-files/run-*.txt.
    const INITIATE: &str = r#"<?xml version="1.0" encoding="UTF-8"?><InitiateMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>bkt</Bucket><Key>edge/a.bin</Key><UploadId>3a117da4-a62f-4ac2-a6a4-17b0500904c1</UploadId></InitiateMultipartUploadResult>"#;
    const LIST_UNSORTED: &str = r#"<?xml version="1.0" encoding="UTF-8"?><ListPartsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>bkt</Bucket><Key>mpu/a.bin</Key><Part><LastModified>2026-11-25T01:37:49.617Z</LastModified><PartNumber>3</PartNumber><Size>1048583</Size></Part><Part><LastModified>2026-11-25T01:37:49.449Z</LastModified><PartNumber>2</PartNumber><Size>1048583</Size></Part><Part><LastModified>2026-11-25T01:37:49.457Z</LastModified><PartNumber>1</PartNumber><Size>5242880</Size></Part><Part><LastModified>2026-11-25T01:37:49.625Z</LastModified><PartNumber>0</PartNumber><Size>1</Size></Part><Part><LastModified>2026-11-25T01:37:49.621Z</LastModified><PartNumber>4</PartNumber><Size>1048583</Size></Part><UploadId>47f260c3-2ebe-4748-ab22-2ac53965db10</UploadId></ListPartsResult>"#;
    const LIST_EMPTY: &str = r#"<?xml version="1.0" encoding="UTF-8"?><ListPartsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>bkt</Bucket><Key>mpu/a.bin</Key><UploadId>00000000-0000-0000-0000-000000000000</UploadId></ListPartsResult>"#;
    const COMPLETE: &str = r#"<?xml version="1.0" encoding="UTF-8"?><CompleteMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>bkt</Bucket><ETag>"ea62d57755f34c46eea7035b29d5fc46-1"</ETag><Key>edge/etag.bin</Key></CompleteMultipartUploadResult>"#;
    const DENIED: &str =
        r#"<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code></Error>"#;
    const NOT_IMPL: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Error><Code>NotImplemented</Code><Message>ListMultipartUploads is not implemented yet</Message></Error>"#;
    // AWS's documented shape (API_ListParts, trimmed): quoted ETags as entities,
    // paging fields, an owner block.
    const LIST_AWS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListPartsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>example-bucket</Bucket><Key>example-object</Key><UploadId>XXBsb2FkIElEIGZvciBlbHZpbmcncyVcdS1tb3ZpZS5tMnRzEEEwbG9hZA</UploadId>
  <Initiator><ID>arn:aws:iam::111122223333:user/some-user-11116a31-17b5-4fb7-9df5-b288870f11xx</ID><DisplayName>umat-user-11116a31-17b5-4fb7-9df5-b288870f11xx</DisplayName></Initiator>
  <StorageClass>STANDARD</StorageClass>
  <PartNumberMarker>1</PartNumberMarker><NextPartNumberMarker>3</NextPartNumberMarker><MaxParts>2</MaxParts><IsTruncated>true</IsTruncated>
  <Part><PartNumber>2</PartNumber><LastModified>2010-11-10T20:48:34.000Z</LastModified><ETag>&quot;7778aef83f66abc1fa1e8477f296d394&quot;</ETag><Size>10485760</Size></Part>
  <Part><PartNumber>3</PartNumber><LastModified>2010-11-10T20:48:33.000Z</LastModified><ETag>"aaaa18db4cc2f85cedef654fccc4a4x8"</ETag><Size>10485760</Size></Part>
</ListPartsResult>"#;

    #[test]
    fn s3_xml_initiate() {
        assert_eq!(
            upload_id(INITIATE).as_deref(),
            Ok("3a117da4-a62f-4ac2-a6a4-17b0500904c1")
        );
        assert!(upload_id("<InitiateMultipartUploadResult/>").is_err());
        assert!(upload_id("garbage <UploadId>").is_err());
    }

    #[test]
    fn s3_xml_list_parts_of_s3s_fs_sorted_without_etags() {
        let page = list_parts(LIST_UNSORTED).expect("parse");
        let numbers: Vec<u32> = page.parts.iter().map(|p| p.number).collect();
        assert_eq!(numbers, [0, 1, 2, 3, 4]);
        assert_eq!(page.parts[1].size, 5242880);
        assert!(page.parts.iter().all(|p| p.etag.is_none()));
        assert_eq!(page.next_marker, None);
        let empty = list_parts(LIST_EMPTY).expect("parse");
        assert!(empty.parts.is_empty());
    }

    #[test]
    fn s3_xml_list_parts_of_aws_with_paging() {
        let page = list_parts(LIST_AWS).expect("parse");
        assert_eq!(page.parts.len(), 2);
        assert_eq!(
            page.parts[0].etag.as_deref(),
            Some("7778aef83f66abc1fa1e8477f296d394")
        );
        assert_eq!(
            page.parts[1].etag.as_deref(),
            Some("aaaa18db4cc2f85cedef654fccc4a4x8")
        );
        assert_eq!(page.next_marker, Some(3));
        let no_marker = LIST_AWS.replace("<NextPartNumberMarker>3</NextPartNumberMarker>", "");
        assert!(list_parts(&no_marker).is_err());
        assert!(
            list_parts(
                "<ListPartsResult><Part><PartNumber>x</PartNumber></Part></ListPartsResult>"
            )
            .is_err()
        );
        assert!(list_parts(DENIED).is_err());
    }

    // AWS's documented shape (API_ListMultipartUploads, trimmed): a truncated page.
    const UPLOADS_AWS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>bucket</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>
  <NextKeyMarker>my-movie.m2ts</NextKeyMarker><NextUploadIdMarker>YW55IGlkZWEgd2h5IGVsdmluZydzIHVwbG9hZCBmYWlsZWQ</NextUploadIdMarker>
  <MaxUploads>3</MaxUploads><IsTruncated>true</IsTruncated>
  <Upload><Key>my-divisor</Key><UploadId>XMgbGlrZSBlbHZpbmcncyBub3QgaGF2aW5nIG11Y2ggbHVjaw</UploadId><Initiator><ID>arn:aws:iam::111122223333:user/user1-11111a31-17b5-4fb7-9df5-b111111f13de</ID></Initiator><StorageClass>STANDARD</StorageClass><Initiated>2010-11-10T20:48:33.000Z</Initiated></Upload>
  <Upload><Key>a&lt;b &amp; c</Key><UploadId>VXBsb2FkIElEIGZvciBlbHZpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA</UploadId><Initiated>2010-11-10T20:48:33.000Z</Initiated></Upload>
</ListMultipartUploadsResult>"#;

    #[test]
    fn s3_xml_list_uploads_with_paging_and_entities() {
        let page = list_uploads(UPLOADS_AWS).expect("parse");
        assert_eq!(page.uploads.len(), 2);
        assert_eq!(page.uploads[0].0, "my-divisor");
        assert_eq!(
            page.uploads[1].0, "a<b & c",
            "entities decoded once, in the leaf"
        );
        assert_eq!(
            page.next,
            Some((
                "my-movie.m2ts".into(),
                "YW55IGlkZWEgd2h5IGVsdmluZydzIHVwbG9hZCBmYWlsZWQ".into()
            ))
        );
        let last = UPLOADS_AWS.replace("<IsTruncated>true", "<IsTruncated>false");
        assert_eq!(list_uploads(&last).expect("parse").next, None);
        let broken = UPLOADS_AWS
            .replace("<NextKeyMarker>my-movie.m2ts</NextKeyMarker>", "")
            .replace(
                "<NextUploadIdMarker>YW55IGlkZWEgd2h5IGVsdmluZydzIHVwbG9hZCBmYWlsZWQ</NextUploadIdMarker>",
                "",
            );
        assert!(list_uploads(&broken).is_err());
        assert!(list_uploads(NOT_IMPL).is_err());
        let empty = "<ListMultipartUploadsResult><IsTruncated>false</IsTruncated></ListMultipartUploadsResult>";
        assert!(list_uploads(empty).expect("parse").uploads.is_empty());
    }

    #[test]
    fn s3_xml_complete_and_errors() {
        assert_eq!(
            completed(COMPLETE),
            Ok(Some("ea62d57755f34c46eea7035b29d5fc46-1".into()))
        );
        let e = completed(DENIED).expect_err("error");
        assert_eq!(e.code, "AccessDenied");
        assert_eq!(
            error(NOT_IMPL),
            Some(S3Error {
                code: "NotImplemented".into(),
                message: "ListMultipartUploads is not implemented yet".into()
            })
        );
        assert_eq!(error(COMPLETE), None);
        assert_eq!(error(""), None);
    }

    #[test]
    fn s3_xml_complete_body_and_entities() {
        assert_eq!(
            complete_body(&[(1, "\"ab\"".into()), (2, "cd".into())]),
            "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&quot;ab&quot;</ETag></Part><Part><PartNumber>2</PartNumber><ETag>&quot;cd&quot;</ETag></Part></CompleteMultipartUpload>"
        );
        assert_eq!(unescape("a&amp;b&#34;&#x41;&bogus;&"), "a&b\"A&bogus;&");
    }
}
