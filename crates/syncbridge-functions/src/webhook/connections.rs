//! What the accept path knows about a connection (its scheme, opened
//! secrets and inbound tasks), cached for [`CONFIG_TTL`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use syncbridge_core::pipeline::webhook::{RouteTarget, load_target};
use syncbridge_core::{ConnectionId, StoreError};
use syncbridge_signatures::{Scheme, WebhookSecret};

use super::parse_scheme;
use crate::state::AppState;

/// How long connection settings stay cached.
pub const CONFIG_TTL: Duration = Duration::from_secs(2);

/// Most connections whose settings are cached at once.
pub(super) const CACHE_CAP: usize = 10_000;

/// What the accept path needs to know about a connection.
#[derive(Debug)]
pub(super) struct ConnInfo {
    /// The connection and its inbound tasks.
    pub(super) target: RouteTarget,
    /// The parsed scheme, or why the stored one cannot be used.
    pub(super) scheme: Result<Scheme, String>,
    /// The opened secrets, or why the stored ones cannot be used.
    pub(super) secrets: Result<Vec<WebhookSecret>, String>,
}

/// When it was loaded, and the connection's info (`None`: no such webhook connection).
type CachedInfo = (Instant, Option<Arc<ConnInfo>>);

#[derive(Debug, Default)]
pub(super) struct ConfigCache {
    pub(super) map: Mutex<HashMap<String, CachedInfo>>,
}

async fn load_info(app: &AppState, id: &ConnectionId) -> Result<Option<Arc<ConnInfo>>, StoreError> {
    let Some(target) = load_target(&*app.store, id).await? else {
        return Ok(None);
    };
    let Some(settings) = target.conn.webhook.clone() else {
        return Ok(None);
    };
    let sealer = app.credential_manager.sealer();
    let secrets = match syncbridge_credentials::open_webhook_secrets(
        sealer,
        id,
        &settings.sealed_secrets,
    )
    .await
    {
        Ok(list) => Ok(list
            .iter()
            .map(|x| WebhookSecret::new(x.expose()))
            .collect()),
        Err(syncbridge_credentials::SealError::SecretStore(
            syncbridge_core::secrets::SecretStoreError::Unavailable(e),
        )) => {
            // The key store is down: a retry can succeed.
            return Err(StoreError::Unavailable(format!(
                "opening the webhook secrets: {e}"
            )));
        }
        Err(e) => Err(format!(
            "the stored webhook secrets cannot be used ({e}); set them again with `syncbridge connections add --replace`"
        )),
    };
    Ok(Some(Arc::new(ConnInfo {
        scheme: parse_scheme(&settings.scheme),
        secrets,
        target,
    })))
}

impl ConfigCache {
    /// The connection's info, from the cache while it is fresh.
    pub(super) async fn get(
        &self,
        app: &AppState,
        id: &ConnectionId,
    ) -> Result<Option<Arc<ConnInfo>>, StoreError> {
        if let Some((at, info)) = self
            .map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id.as_str())
            && at.elapsed() < CONFIG_TTL
        {
            return Ok(info.clone());
        }
        let info = load_info(app, id).await?;
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        // Anyone can post to any connection id: the cache stays bounded.
        if map.len() >= CACHE_CAP {
            map.retain(|_, (at, _)| at.elapsed() < CONFIG_TTL);
            if map.len() >= CACHE_CAP {
                map.clear();
            }
        }
        map.insert(id.to_string(), (Instant::now(), info.clone()));
        Ok(info)
    }
}
