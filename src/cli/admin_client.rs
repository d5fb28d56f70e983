//! The admin API as the command line calls it (`edgehook deploy`, `edgehook fleet`).

use std::time::Duration;

/// The admin API, called with the token.
pub(super) struct Admin {
    base: String,
    token: String,
    agent: ureq::Agent,
}

/// How long a connection to the admin API may take to open, and a call to complete.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

impl Admin {
    pub(super) fn new(base: &str, token: String, connect_timeout: Duration) -> Result<Admin, String> {
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(format!("--admin `{base}` must be an http:// or https:// URL"));
        }
        let agent = ureq::Agent::config_builder()
            .timeout_connect(Some(connect_timeout))
            .timeout_global(Some(CALL_TIMEOUT))
            // Error answers carry the admin API's message: read them like any other.
            .http_status_as_error(false)
            .build()
            .into();
        Ok(Admin {
            base: base.trim_end_matches('/').to_string(),
            token,
            agent,
        })
    }

    pub(super) fn call(&self, method: &str, path: &str, body: &[u8]) -> Result<serde_json::Value, String> {
        let request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(http::header::AUTHORIZATION, format!("Bearer {}", self.token))
            .body(body.to_vec())
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let mut response = self
            .agent
            .run(request)
            .map_err(|e| format!("cannot reach the admin API at {}: {e}", self.base))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| format!("{method} {path}: the answer could not be read: {e}"))?;
        let value: serde_json::Value =
            serde_json::from_str(text.trim()).unwrap_or(serde_json::Value::String(text.clone()));
        if status >= 400 {
            let message = value["error"]
                .as_str()
                .map_or_else(|| value.to_string(), str::to_string);
            return Err(format!("{method} {path}: {status} {message}"));
        }
        Ok(value)
    }
}
