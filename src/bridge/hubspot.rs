//! HubSpot's CRM objects API, for what HubSpot webhooks do not carry
//! (amounts, owners): `GET {api_base_url}/crm/v3/objects/{object}/{id}?properties=...`
//! with the private-app token, a bounded timeout and a few retries.
//!
//! Owns: the request, retries (429, 5xx, timeouts; with backoff), the
//! response shape (`{"id": ..., "properties": {...}}`).
//! Must not touch: mapping (the fetched object is handed to it as
//! `fetched.*`), HTTP responses of the bridge.
//!
//! A 404 is an answer (the object was deleted: the event's fetched fields
//! are then absent and the engine's validation names them); anything else
//! that fails after the retries fails the request with 503, so HubSpot
//! retries the whole delivery later.

use std::time::Duration;

use serde_json::Value;
use tracing::warn;

use super::mapping::FetchRequest;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("hubspot objects API: {0}")]
    Http(String),
    #[error("hubspot objects API answered {status} for {object}/{id}")]
    Status { status: u16, object: String, id: String },
    #[error("hubspot objects API: base URL {0:?} is not a URL")]
    BadBase(String),
}

pub struct Client {
    http: reqwest::Client,
    base: reqwest::Url,
    token: String,
    retries: u32,
}

impl Client {
    pub fn new(base: &str, token: &str, timeout: Duration, retries: u32) -> Result<Client, FetchError> {
        let base = reqwest::Url::parse(base).map_err(|_| FetchError::BadBase(base.to_string()))?;
        if base.cannot_be_a_base() {
            return Err(FetchError::BadBase(base.to_string()));
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("salespulse-bridge/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| FetchError::Http(e.to_string()))?;
        Ok(Client { http, base, token: token.to_string(), retries })
    }

    fn url(&self, r: &FetchRequest) -> reqwest::Url {
        let mut u = self.base.clone();
        if let Ok(mut p) = u.path_segments_mut() {
            p.pop_if_empty().extend(["crm", "v3", "objects", &r.object, &r.id]);
        }
        if !r.properties.is_empty() {
            u.query_pairs_mut().append_pair("properties", &r.properties.join(","));
        }
        u
    }

    /// The object, or `None` when HubSpot says it does not exist.
    pub async fn fetch(&self, r: &FetchRequest) -> Result<Option<Value>, FetchError> {
        let url = self.url(r);
        let mut last = FetchError::Http("no attempt".into());
        for attempt in 0..=self.retries {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100 << attempt.min(6))).await;
            }
            let resp = self.http.get(url.clone()).bearer_auth(&self.token).send().await;
            match resp {
                Ok(resp) => {
                    let status = resp.status();
                    if status.is_success() {
                        return resp.json::<Value>().await.map(Some).map_err(|e| FetchError::Http(format!("response is not JSON: {e}")));
                    }
                    if status == reqwest::StatusCode::NOT_FOUND {
                        return Ok(None);
                    }
                    last = FetchError::Status { status: status.as_u16(), object: r.object.clone(), id: r.id.clone() };
                    // 4xx other than 429: retrying will not help (token, scopes)
                    if status.is_client_error() && status != reqwest::StatusCode::TOO_MANY_REQUESTS {
                        break;
                    }
                }
                Err(e) => last = FetchError::Http(e.to_string()),
            }
            warn!(object = %r.object, id = %r.id, attempt, error = %last, "hubspot fetch failed");
        }
        Err(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_of_an_object() {
        let c = Client::new("http://127.0.0.1:9/base/", "t", Duration::from_secs(1), 0).unwrap();
        let r = FetchRequest { object: "deals".into(), id: "12/../x".into(), properties: vec!["amount".into(), "hubspot_owner_id".into()] };
        assert_eq!(c.url(&r).as_str(), "http://127.0.0.1:9/base/crm/v3/objects/deals/12%2F..%2Fx?properties=amount%2Chubspot_owner_id");
        assert!(Client::new("not a url", "t", Duration::from_secs(1), 0).is_err());
    }
}
