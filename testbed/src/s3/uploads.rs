//! The multipart uploads the proxy saw created and not yet ended: what it answers
//! ListMultipartUploads with, and what `session_ttl_s` expires.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime};

/// One upload in progress, as ListMultipartUploads shows it.
#[derive(Debug, Clone)]
pub(crate) struct Open {
    pub(crate) key: String,
    pub(crate) id: String,
    pub(crate) initiated: SystemTime,
}

#[derive(Debug, Default)]
pub(crate) struct Uploads {
    /// By upload id: the upload, and when it began on the monotonic clock (for
    /// expiry, which must not move with the wall clock).
    open: HashMap<String, (Open, Instant)>,
    /// Ids completed, aborted or expired through the proxy: answered `NoSuchUpload`
    /// by the proxy itself. s3s-fs refuses an unknown id before reading the body
    /// and closes the connection, which a client still sending a part can meet as
    /// a reset instead of the answer (seen through the proxy's client), and which
    /// would then be retried as a network error for ever.
    ended: HashSet<String>,
}

impl Uploads {
    pub(crate) fn created(&mut self, key: String, id: String) {
        let open = Open {
            key,
            id: id.clone(),
            initiated: SystemTime::now(),
        };
        self.open.insert(id, (open, Instant::now()));
    }

    pub(crate) fn remove(&mut self, id: &str) {
        self.open.remove(id);
        self.ended.insert(id.to_string());
    }

    /// Whether upload `id` ended through the proxy.
    pub(crate) fn ended(&self, id: &str) -> bool {
        self.ended.contains(id)
    }

    /// Upload `id` if it is older than `ttl`: it ends here, as the lifecycle rule
    /// aborts it; the caller aborts it on the upstream.
    pub(crate) fn expire(&mut self, id: &str, ttl: Duration) -> Option<Open> {
        let old = self
            .open
            .get(id)
            .is_some_and(|(_, began)| began.elapsed() > ttl);
        if !old {
            return None;
        }
        let (open, _) = self.open.remove(id)?;
        self.ended.insert(id.to_string());
        Some(open)
    }

    /// Every upload older than `ttl`, ended as [`Uploads::expire`] ends one.
    pub(crate) fn expire_all(&mut self, ttl: Duration) -> Vec<Open> {
        let old: Vec<String> = self
            .open
            .iter()
            .filter(|(_, (_, began))| began.elapsed() > ttl)
            .map(|(id, _)| id.clone())
            .collect();
        old.iter().filter_map(|id| self.expire(id, ttl)).collect()
    }

    /// The uploads in progress, by key then id (the order S3 lists in). Call
    /// [`Uploads::expire_all`] first.
    pub(crate) fn open(&self) -> Vec<Open> {
        let mut list: Vec<Open> = self.open.values().map(|(o, _)| o.clone()).collect();
        list.sort_by(|a, b| (&a.key, &a.id).cmp(&(&b.key, &b.id)));
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_end_by_completion_abort_or_age() {
        let mut u = Uploads::default();
        u.created("b".into(), "2".into());
        u.created("a".into(), "1".into());
        u.created("c".into(), "3".into());
        let keys: Vec<String> = u.open().into_iter().map(|o| o.key).collect();
        assert_eq!(keys, ["a", "b", "c"]);
        u.remove("2");
        assert!(u.expire("1", Duration::from_secs(60)).is_none());
        std::thread::sleep(Duration::from_millis(5));
        let gone = u
            .expire("1", Duration::ZERO)
            .expect("older than a zero ttl");
        assert_eq!(gone.key, "a");
        assert!(u.expire("1", Duration::ZERO).is_none(), "ended once");
        assert!(u.ended("1") && u.ended("2") && !u.ended("3"));
        assert_eq!(u.open().len(), 1);
        assert!(u.expire_all(Duration::from_secs(60)).is_empty());
        assert_eq!(u.expire_all(Duration::ZERO).len(), 1);
        assert!(u.open().is_empty());
    }
}
