//! Shared helpers for the emulator's integration tests: start an emulator on port 0 with a
//! manual clock and four projects, and talk to it over real HTTP.
#![allow(dead_code)]

use std::sync::Arc;

use iterable_emulator::{
    Emulator, EmulatorConfig, ManualClock, ProjectConfig, ProjectType, Region, RunningEmulator,
};
use reqwest::header::HeaderMap;
use serde_json::Value;

pub const HYBRID_KEY: &str = "11111111111111111111111111111111";
pub const USERID_KEY: &str = "22222222222222222222222222222222";
pub const EMAIL_KEY: &str = "33333333333333333333333333333333";
pub const EU_KEY: &str = "44444444444444444444444444444444";
/// Project ids given to the four projects of [`config`], in order.
pub const HYBRID_PID: u64 = 10001;
pub const USERID_PID: u64 = 10002;
pub const EMAIL_PID: u64 = 10003;
pub const EU_PID: u64 = 10004;

/// Hybrid, userId and email projects in the US, and a hybrid project in the EU.
pub fn config() -> EmulatorConfig {
    let mut c = EmulatorConfig::default()
        .with_project(ProjectConfig::new(ProjectType::Hybrid, HYBRID_KEY))
        .with_project(ProjectConfig::new(ProjectType::UserId, USERID_KEY))
        .with_project(ProjectConfig::new(ProjectType::Email, EMAIL_KEY))
        .with_project(ProjectConfig::new(ProjectType::Hybrid, EU_KEY).in_region(Region::Eu));
    c.listen = "127.0.0.1:0".parse().expect("address");
    c.seed = Some(42);
    c
}

/// A plain HTTP client for tests. In a workspace build reqwest carries rustls without a
/// default crypto provider (the Iterable client's choice), so one is installed first.
pub fn http_builder() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

pub fn http() -> reqwest::Client {
    http_builder().build().expect("http client")
}

pub struct Harness {
    pub emu: RunningEmulator,
    pub http: reqwest::Client,
    pub clock: Arc<ManualClock>,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }
    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub async fn start() -> Harness {
    start_with(config()).await
}

pub async fn start_with(config: EmulatorConfig) -> Harness {
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let emu = Emulator::start_with_clock(config, clock.clone())
        .await
        .expect("emulator starts");
    Harness {
        emu,
        http: http(),
        clock,
    }
}

impl Harness {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.emu.url())
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Resp {
        let r = req.send().await.expect("request sent");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.expect("body read");
        Resp {
            status,
            headers,
            text,
        }
    }

    pub async fn get(&self, key: &str, path: &str) -> Resp {
        self.send(self.http.get(self.url(path)).header("Api-Key", key))
            .await
    }

    pub async fn delete(&self, key: &str, path: &str) -> Resp {
        self.send(self.http.delete(self.url(path)).header("Api-Key", key))
            .await
    }

    pub async fn post_raw(&self, key: &str, path: &str, body: &str) -> Resp {
        self.send(
            self.http
                .post(self.url(path))
                .header("Api-Key", key)
                .header("Content-Type", "application/json")
                .body(body.to_string()),
        )
        .await
    }

    pub async fn post(&self, key: &str, path: &str, body: Value) -> Resp {
        self.post_raw(key, path, &body.to_string()).await
    }

    /// Creates a list and returns its id.
    pub async fn create_list(&self, key: &str, name: &str) -> i64 {
        let r = self
            .post(key, "/api/lists", serde_json::json!({ "name": name }))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.json()["listId"].as_i64().expect("listId")
    }

    /// Subscribes and returns the 200 body.
    pub async fn subscribe(&self, key: &str, list: i64, subscribers: Value) -> Value {
        let r = self
            .post(
                key,
                "/api/lists/subscribe",
                serde_json::json!({"listId": list, "subscribers": subscribers}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.json()
    }

    /// The sorted `(email, userId)` members of a list, from the inspection state.
    pub fn members(&self, list: i64) -> Vec<(Option<String>, Option<String>)> {
        self.emu
            .members(list)
            .expect("list exists")
            .into_iter()
            .map(|m| (m.email, m.user_id))
            .collect()
    }
}

/// `(Some(email), None)` style member tuples, for assertions.
pub fn m(email: Option<&str>, user_id: Option<&str>) -> (Option<String>, Option<String>) {
    (email.map(str::to_string), user_id.map(str::to_string))
}
