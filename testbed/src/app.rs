//! The shared state and the top-level router: every emulator under its prefix, plus
//! the `/_testbed` control endpoints.
//!
//! To add an emulator: one line in [`emulators`]. Nothing else here names a vendor.

use std::sync::{Arc, RwLock};

use axum::Router;
use axum::middleware::from_fn_with_state;

use crate::box_api::BoxApi;
use crate::edgio::Edgio;
use crate::emulator::Emulator;
use crate::exosite::Exosite;
use crate::faults::layer::{FaultLayer, inject};
use crate::faults::throttle::Throttle;
use crate::faults::{Settings, SettingsError, SettingsPatch};
use crate::insights_hub::InsightsHub;
use crate::s3::S3Proxy;
use crate::stats::{Counters, Stats};
use crate::store::Store;

/// State every emulator shares. Lives as long as the server.
pub(crate) struct Shared {
    /// Current knobs; read once per request, replaced whole on update.
    settings: RwLock<Settings>,
    /// Server-wide body speed limit; its rate mirrors `settings.throttle_bps`.
    pub(crate) throttle: Arc<Throttle>,
    pub(crate) store: Store,
    pub(crate) counters: Counters,
    /// The one credential every emulator accepts (Box: the bearer token). Read by
    /// every request's auth check and replaced whole at run time
    /// (`PUT /_testbed/secret`); never logged.
    secret: RwLock<String>,
    /// `http://ip:port` of this server, for absolute URLs in answers.
    pub(crate) base_url: String,
    /// How many times the secret was replaced: an emulator whose logins hand out
    /// tokens ends them when the password they were issued for changes.
    secret_generation: std::sync::atomic::AtomicU64,
}

impl Shared {
    pub(crate) fn new(settings: Settings, store: Store, secret: String, base_url: String) -> Self {
        Shared {
            throttle: Arc::new(Throttle::new(settings.throttle_bps)),
            settings: RwLock::new(settings),
            store,
            counters: Counters::default(),
            secret: RwLock::new(secret),
            base_url,
            secret_generation: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub(crate) fn settings(&self) -> Settings {
        // Poisoning cannot leave a half-written Settings: writers assign it whole.
        self.settings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether `presented` is the current secret. Read when each request is checked,
    /// so requests arriving after [`Shared::set_secret`] meet the new value.
    pub(crate) fn secret_matches(&self, presented: &str) -> bool {
        // Poisoning cannot leave a half-written String: writers assign it whole.
        *self.secret.read().unwrap_or_else(|p| p.into_inner()) == presented
    }

    /// The secret itself, for a check that needs the value (the `/s3` proxy's
    /// signature check signs with it). Never logged.
    pub(crate) fn secret(&self) -> String {
        self.secret
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the secret; `secret` has passed [`parse_secret`].
    pub(crate) fn set_secret(&self, secret: String) {
        *self.secret.write().unwrap_or_else(|p| p.into_inner()) = secret;
        self.secret_generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // The value itself is never logged: it is a credential, even if a test one.
        tracing::info!("secret changed");
    }

    /// Changes with every [`Shared::set_secret`].
    pub(crate) fn secret_generation(&self) -> u64 {
        self.secret_generation
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Applies `patch` if valid; returns the full new settings.
    pub(crate) fn try_update(&self, patch: &SettingsPatch) -> Result<Settings, SettingsError> {
        let mut s = self.settings.write().unwrap_or_else(|p| p.into_inner());
        s.apply(patch)?;
        self.throttle.set_rate(s.throttle_bps);
        Ok(s.clone())
    }

    /// Applies `patch`, clamping out-of-range values.
    pub(crate) fn update_clamped(&self, patch: &SettingsPatch) -> Settings {
        let mut s = self.settings.write().unwrap_or_else(|p| p.into_inner());
        s.apply_clamped(patch);
        self.throttle.set_rate(s.throttle_bps);
        s.clone()
    }
}

/// A new secret as `PUT /_testbed/secret` and `Testbed::set_secret` take it: surrounding
/// whitespace trimmed; refused if nothing is left, or if it holds a character an
/// HTTP header value cannot carry (no client could ever present it).
pub(crate) fn parse_secret(raw: &str) -> Result<&str, &'static str> {
    let secret = raw.trim();
    if secret.is_empty() {
        return Err("the secret must not be empty");
    }
    // What `HeaderValue::to_str` accepts, which the auth checks use to read it.
    if !secret
        .chars()
        .all(|c| c == ' ' || c == '\t' || c.is_ascii_graphic())
    {
        return Err("the secret must be printable ASCII (it travels in an HTTP header)");
    }
    Ok(secret)
}

/// Every emulator this server runs, each mounted at `/<name>`.
/// `s3_upstream`: the S3 server behind the `/s3` proxy.
pub(crate) fn emulators(
    shared: &Arc<Shared>,
    s3_upstream: Option<crate::S3Upstream>,
) -> Vec<Arc<dyn Emulator>> {
    vec![
        Arc::new(BoxApi::new(shared.clone())),
        Arc::new(InsightsHub::new(shared.clone())),
        Arc::new(Exosite::new(shared.clone())),
        Arc::new(Edgio::new(shared.clone())),
        Arc::new(S3Proxy::new(shared.clone(), s3_upstream)),
    ]
}

/// The whole server's routes.
pub(crate) fn router(shared: &Arc<Shared>, emulators: &[Arc<dyn Emulator>]) -> Router {
    let mut router = Router::new().nest(
        "/_testbed",
        crate::admin::routes(shared.clone(), emulators.to_vec()),
    );
    for emu in emulators {
        let layer = FaultLayer {
            shared: shared.clone(),
            counters: shared.counters.register(emu.name()),
            emulator: emu.clone(),
        };
        let routes = emu
            .clone()
            .routes()
            .layer(from_fn_with_state(layer, inject));
        router = router.nest(&format!("/{}", emu.name()), routes);
    }
    router
}

/// The same numbers as `GET /_testbed/stats`.
pub(crate) fn stats(shared: &Shared, emulators: &[Arc<dyn Emulator>]) -> Stats {
    for emu in emulators {
        // An emulator that has served nothing yet still appears, with zeros.
        shared.counters.register(emu.name());
    }
    let sessions = |name: &str| {
        emulators
            .iter()
            .find(|e| e.name() == name)
            .map_or(0, |e| e.sessions_open())
    };
    shared
        .counters
        .snapshot(&|name| shared.store.count(name), &sessions)
}

#[cfg(test)]
mod tests {
    use super::parse_secret;

    #[test]
    fn secrets_are_trimmed_and_must_fit_a_header() {
        assert_eq!(parse_secret("  new secret\n"), Ok("new secret"));
        assert!(parse_secret("").is_err());
        assert!(parse_secret(" \t\r\n").is_err());
        assert!(parse_secret("caf\u{e9}").is_err());
        assert!(parse_secret("a\u{1}b").is_err());
    }
}
