//! A headless Chromium driven over WebDriver (Debian's `chromium` and `chromium-driver`), for
//! tests of the web console. Only the few WebDriver commands the tests use.

use super::edgehook::free_addr;
use base64::Engine as _;
use serde_json::{json, Value};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    http: reqwest::Client,
    session: String,
    driver: Child,
}

impl Browser {
    /// A fresh headless browser, or None (with the reason printed) when Chromium or its driver
    /// is not installed.
    pub async fn start() -> Option<Browser> {
        for program in ["chromedriver", "chromium"] {
            if Command::new(program).arg("--version").output().is_err() {
                eprintln!("SKIPPED: no {program}; install Debian's chromium and chromium-driver (scripts/setup does)");
                return None;
            }
        }
        let port = free_addr().port();
        // A process group of its own: the browsers it starts are killed with it.
        let driver = Command::new("chromedriver")
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,1000", "--no-first-run", "--no-proxy-server"]
            }
        }}});
        let created = json_of(http.post(format!("{base}/session")), Some(capabilities)).await;
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_string();
        Some(Browser {
            http,
            session: format!("{base}/session/{session}"),
            driver,
        })
    }

    async fn try_command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value, String> {
        let answer = json_of(self.http.request(method, format!("{}{path}", self.session)), body).await;
        let value = answer["value"].clone();
        match value.get("error") {
            Some(error) => Err(format!("WebDriver {path}: {error}: {}", value["message"])),
            None => Ok(value),
        }
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.try_command(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    pub async fn goto(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    async fn element(&self, css: &str) -> String {
        let found = self
            .command(
                reqwest::Method::POST,
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        found[ELEMENT].as_str().unwrap().to_string()
    }

    /// Clicks the element `css` finds; found again if the page redrew it in between.
    pub async fn click(&self, css: &str) {
        for _ in 0..10 {
            let id = self.element(css).await;
            let path = format!("/element/{id}/click");
            match self.try_command(reqwest::Method::POST, &path, Some(json!({}))).await {
                Ok(_) => return,
                Err(e) if e.contains("stale element") => continue,
                Err(e) => panic!("{e}"),
            }
        }
        panic!("{css} was redrawn under every click");
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// Runs `script` (a function body) in the page and gives back what it returns.
    pub async fn script(&self, script: &str) -> Value {
        self.command(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
        .await
    }

    /// Waits (up to `within`) until `script` returns something other than null or false.
    pub async fn wait_for(&self, script: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let value = self.script(script).await;
            if !value.is_null() && value != Value::Bool(false) {
                return value;
            }
            assert!(Instant::now() < deadline, "never true in the page: {script}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        let encoded = self.command(reqwest::Method::GET, "/screenshot", None).await;
        base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().unwrap())
            .expect("a PNG in base64")
    }
}

/// Sends `request` with `body` as JSON and reads the answer as JSON.
async fn json_of(request: reqwest::RequestBuilder, body: Option<Value>) -> Value {
    let request = match body {
        Some(body) => request
            .header("content-type", "application/json")
            .body(body.to_string()),
        None => request,
    };
    let text = request.send().await.expect("WebDriver").text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("WebDriver said {text}: {e}"))
}

impl Drop for Browser {
    fn drop(&mut self) {
        // SAFETY: kill with a valid signal on the process group this test started.
        unsafe { libc::kill(-(self.driver.id() as i32), libc::SIGKILL) };
        let _ = self.driver.wait();
    }
}
