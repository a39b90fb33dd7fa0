//! A real browser for the console's tests: the system's headless Chromium, driven over the
//! Chrome DevTools Protocol (JSON messages on a WebSocket, one flattened session on one page).
//!
//! Without Chromium a test prints "skipped" and passes, unless `SCIMLITE_TEST_REQUIRE_CHROMIUM`
//! is set (CI sets it, after installing Debian's `chromium`): then it fails and says what to
//! install. `SCIMLITE_CHROMIUM` names another binary.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

/// How long one protocol answer or page load may take before the test fails.
const WAIT: Duration = Duration::from_secs(30);

pub struct Browser {
    child: Child,
    ws: WebSocket<TcpStream>,
    session: String,
    next_id: u64,
    /// Events of the page's session not yet taken, oldest first.
    events: Vec<Value>,
    /// Every dialog the page opened and every uncaught exception: must stay empty.
    pub alarms: Vec<Value>,
    _profile: tempfile::TempDir,
}

fn find_chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SCIMLITE_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser", "google-chrome", "chrome"] {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

impl Browser {
    /// A fresh browser with an empty profile and one blank page; `None` (after printing
    /// "skipped") when Chromium is missing and not required.
    pub fn launch(test: &str) -> Option<Browser> {
        let Some(binary) = find_chromium() else {
            if std::env::var_os("SCIMLITE_TEST_REQUIRE_CHROMIUM").is_some() {
                panic!(
                    "{test}: Chromium is required (SCIMLITE_TEST_REQUIRE_CHROMIUM is set) but no \
                     chromium, chromium-browser or google-chrome is on PATH: install Debian's \
                     package (apt-get install chromium) or set SCIMLITE_CHROMIUM"
                );
            }
            println!("{test}: skipped (no Chromium; apt-get install chromium to run it)");
            return None;
        };
        Some(Self::start(&binary))
    }

    fn start(binary: &Path) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new(binary)
            .args([
                "--headless",
                // CI runs as root, where Chromium's sandbox refuses to start; the browser
                // only ever loads the test's own pages on 127.0.0.1.
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--no-default-browser-check",
                "--hide-scrollbars",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        // The DevTools address is announced on stderr; keep draining it afterwards so the
        // browser never blocks on a full pipe.
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.split("DevTools listening on ").nth(1) {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let url = match rx.recv_timeout(WAIT) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!("{} did not announce its DevTools address", binary.display());
            }
        };
        let authority = url
            .strip_prefix("ws://")
            .and_then(|r| r.split('/').next())
            .unwrap_or_else(|| panic!("unexpected DevTools address {url}"));
        let stream = TcpStream::connect(authority).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let (ws, _) = tungstenite::client(url.as_str(), stream).unwrap();
        let mut browser = Browser {
            child,
            ws,
            session: String::new(),
            next_id: 0,
            events: Vec::new(),
            alarms: Vec::new(),
            _profile: profile,
        };
        let target = browser.send(None, "Target.createTarget", json!({"url": "about:blank"}));
        let attached = browser.send(
            None,
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
        );
        browser.session = attached["sessionId"].as_str().unwrap().to_string();
        for domain in ["Page.enable", "Runtime.enable", "Network.enable"] {
            browser.call(domain, json!({}));
        }
        browser
    }

    fn send(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            message["sessionId"] = json!(s);
        }
        self.ws
            .send(Message::text(message.to_string()))
            .unwrap_or_else(|e| panic!("{method}: {e}"));
        let deadline = Instant::now() + WAIT;
        loop {
            assert!(Instant::now() < deadline, "{method}: no answer");
            let v = self.receive(method);
            if v["id"] == json!(id) {
                if let Some(err) = v.get("error") {
                    panic!("{method}: {err}");
                }
                return v["result"].clone();
            }
        }
    }

    /// The next message; events are kept, dialogs and exceptions noted (a dialog is dismissed
    /// so the page goes on).
    fn receive(&mut self, waiting_for: &str) -> Value {
        let message = self
            .ws
            .read()
            .unwrap_or_else(|e| panic!("waiting for {waiting_for}: {e}"));
        let Message::Text(text) = message else {
            return Value::Null;
        };
        let v: Value = serde_json::from_str(text.as_str()).unwrap();
        if v.get("method").is_some() {
            let method = v["method"].as_str().unwrap_or_default();
            if method == "Page.javascriptDialogOpening" || method == "Runtime.exceptionThrown" {
                self.alarms.push(v.clone());
            }
            if method == "Page.javascriptDialogOpening" {
                let session = self.session.clone();
                self.next_id += 1;
                let dismiss = json!({"id": self.next_id, "sessionId": session,
                    "method": "Page.handleJavaScriptDialog", "params": {"accept": false}});
                let _ = self.ws.send(Message::text(dismiss.to_string()));
            }
            self.events.push(v.clone());
        }
        v
    }

    /// A command on the page's session.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.send(Some(&session), method, params)
    }

    /// Runs `action` and waits until the page it starts has loaded.
    fn loading(&mut self, what: &str, action: impl FnOnce(&mut Browser)) {
        self.events.retain(|e| e["method"] != "Page.loadEventFired");
        action(self);
        let deadline = Instant::now() + WAIT;
        while !self
            .events
            .iter()
            .any(|e| e["method"] == "Page.loadEventFired")
        {
            assert!(Instant::now() < deadline, "{what}: the page did not load");
            self.receive(what);
        }
        self.events.retain(|e| e["method"] != "Page.loadEventFired");
    }

    pub fn navigate(&mut self, url: &str) {
        self.loading(url, |b| {
            b.call("Page.navigate", json!({"url": url}));
        });
    }

    /// The value of a JavaScript expression in the page (DevTools evaluation, which the page's
    /// CSP does not govern).
    pub fn eval(&mut self, expression: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true}),
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!("{expression}: {e}");
        }
        r["result"]["value"].clone()
    }

    pub fn text(&mut self, selector: &str) -> String {
        let v = self.eval(&format!(
            "(document.querySelector({}) || {{}}).textContent || ''",
            json!(selector)
        ));
        v.as_str().unwrap_or_default().to_string()
    }

    pub fn url(&mut self) -> String {
        self.eval("location.href")
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Types into a field as a user would (focus, then text input events).
    pub fn type_into(&mut self, selector: &str, text: &str) {
        self.eval(&format!(
            "(() => {{ const e = document.querySelector({}); e.value = ''; e.focus(); }})()",
            json!(selector)
        ));
        self.call("Input.insertText", json!({"text": text}));
    }

    /// Clicks a button or link and waits for the page it leads to.
    pub fn click(&mut self, selector: &str) {
        let expression = format!("document.querySelector({}).click()", json!(selector));
        self.loading(selector, |b| {
            b.eval(&expression);
        });
    }

    /// The cookies the browser holds for `url`.
    pub fn cookies(&mut self, url: &str) -> Vec<Value> {
        let r = self.call("Network.getCookies", json!({"urls": [url]}));
        r["cookies"].as_array().cloned().unwrap_or_default()
    }

    /// A PNG of the page at `width` CSS pixels, as tall as its content (at most `max_height`).
    pub fn screenshot(&mut self, path: &Path, width: u32, max_height: u32, mobile: bool) {
        let metrics = |b: &mut Browser, height: u32| {
            b.call(
                "Emulation.setDeviceMetricsOverride",
                json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}),
            );
        };
        metrics(self, 600);
        let height = self
            .eval("document.documentElement.scrollHeight")
            .as_u64()
            .unwrap_or(600) as u32;
        metrics(self, height.clamp(200, max_height));
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.ws.close(None);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
