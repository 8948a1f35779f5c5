//! `content_type = "auto"`: the MIME type Exosite stores with the content, from the
//! file name's extension. A short table of what devices upload; anything else is
//! `application/octet-stream`, which never misleads a consumer.

/// The MIME type for a file named `name`.
pub fn for_name(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "txt" | "log" => "text/plain",
        "csv" => "text/csv",
        "json" => "application/json",
        "xml" => "application/xml",
        "html" | "htm" => "text/html",
        "gz" => "application/gzip",
        "zst" => "application/zstd",
        "zip" => "application/zip",
        "tar" => "application/x-tar",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "mp4" => "video/mp4",
        "pdf" => "application/pdf",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::for_name;

    #[test]
    fn known_extensions_and_the_fallback() {
        assert_eq!(for_name("report.CSV"), "text/csv");
        assert_eq!(for_name("logs/app.log.gz"), "application/gzip");
        assert_eq!(for_name("noext"), "application/octet-stream");
        assert_eq!(for_name("x.weird"), "application/octet-stream");
    }
}
