//! The async face of the journal: a cloneable handle that runs each call on a
//! blocking thread, so SQLite's fsyncs never stall the runtime.

use std::path::Path;
use std::sync::{Arc, Mutex};

use super::{Journal, JournalError};

/// Shared by the watcher and the engine. A std mutex, not tokio's: it is held only
/// inside `spawn_blocking`, never across an `.await`.
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
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock aborted one call; SQLite rolled its open
            // transaction back, so the connection itself is still consistent.
            let mut j = inner.lock().unwrap_or_else(|p| p.into_inner());
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
