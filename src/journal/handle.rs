//! The async face of the journal: a cloneable handle that runs each call on a
//! blocking thread, so SQLite's fsyncs never stall the runtime.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::Mutex;

use super::{Journal, JournalError};

/// Shared by the watcher and the engine. A call waits for the journal here, as a
/// task, and only then takes a blocking thread: waiting on a lock inside
/// `spawn_blocking` held a thread per waiter, and with the blocking pool bounded
/// (`main.rs`) waiters could fill it, queueing every read and write behind the
/// journal.
#[derive(Clone, Debug)]
pub struct JournalHandle {
    inner: Arc<Mutex<Journal>>,
}

impl JournalHandle {
    /// Opens the journal (see [`Journal::open`]) on a blocking thread.
    pub async fn open(path: &Path) -> Result<JournalHandle, JournalError> {
        let path = path.to_path_buf();
        let journal = tokio::task::spawn_blocking(move || Journal::open(&path))
            .await
            .map_err(|e| JournalError::Task(e.to_string()))??;
        Ok(JournalHandle::new(journal))
    }

    pub fn new(journal: Journal) -> JournalHandle {
        JournalHandle {
            inner: Arc::new(Mutex::new(journal)),
        }
    }

    /// Runs `f` with the journal on a blocking thread.
    pub async fn call<T, F>(&self, f: F) -> Result<T, JournalError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Journal) -> Result<T, JournalError> + Send + 'static,
    {
        // The guard moves into the blocking task: if the caller stops waiting, the
        // call still runs to its end before the next one starts. A panic inside
        // drops the guard; SQLite rolled its open transaction back, so the
        // connection itself is still consistent.
        let mut j = self.inner.clone().lock_owned().await;
        tokio::task::spawn_blocking(move || {
            let result = f(&mut j);
            if result.as_ref().is_err_and(JournalError::is_full) {
                j.relieve_full();
            }
            result
        })
        .await
        .map_err(|e| JournalError::Task(e.to_string()))?
    }
}
