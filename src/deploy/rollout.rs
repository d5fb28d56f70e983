//! Deployments: moving an alias to a new version by a strategy, after an optional pre-traffic
//! function, watching the new version's error rate, and rolling the alias back at once when it
//! crosses the alarm. A deployment's plan and progress live in the state store; one node drives
//! it at a time, and when that node goes away another carries it on from the recorded step.
//! The alarm judges the fleet's counts: every node's invocations and errors of the new version.

use super::store::{now_ms, Alarm, Alias, Counts, DeploymentRecord, State, Step, StoreError, Weighted};
use super::strategy::{Strategy, StrategyJson};
use super::{DeployError, Deployments};
use crate::edge::sample;
use crate::edge::sample::SampleOptions;
use crate::edge::EventType;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentRequest {
    pub version: u32,
    pub strategy: StrategyJson,
    #[serde(default)]
    pub alarm: Option<Alarm>,
    #[serde(default)]
    pub pre_traffic: Option<String>,
}

/// A deployment as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DeploymentStatus {
    pub id: String,
    pub function: String,
    pub alias: String,
    pub from_version: u32,
    pub to_version: u32,
    pub state: State,
    pub reason: Option<String>,
    /// The share of traffic the new version has now (0..1).
    pub weight: f64,
    pub invocations: u64,
    pub errors: u64,
    pub started_ms: u64,
    pub ended_ms: Option<u64>,
    /// The node driving it (or that drove it last).
    pub driver: String,
    pub history: Vec<Step>,
}

impl From<&DeploymentRecord> for DeploymentStatus {
    fn from(record: &DeploymentRecord) -> DeploymentStatus {
        DeploymentStatus {
            id: record.id.clone(),
            function: record.function.clone(),
            alias: record.alias.clone(),
            from_version: record.from_version,
            to_version: record.to_version,
            state: record.state,
            reason: record.reason.clone(),
            weight: record.weight,
            invocations: record.invocations,
            errors: record.errors,
            started_ms: record.started_ms,
            ended_ms: record.ended_ms,
            driver: record.driver.clone(),
            history: record.history.clone(),
        }
    }
}

/// How often the alarm is checked during a step.
const CHECK: Duration = Duration::from_millis(100);
/// How often a driver saves the counts it has seen (progress is saved at once).
const SAVE_COUNTS: Duration = Duration::from_secs(1);
/// How long a driver waits before trying an unavailable store again.
const RETRY: Duration = Duration::from_millis(500);

/// The reason a deployment an operator stopped ends with.
const STOPPED: &str = "stopped by an operator";

/// Why a driver stopped before the deployment succeeded.
enum Stop {
    /// The deployment ended (rolled back or failed), with the reason.
    Ended(State, String),
    /// Another node drives it now.
    Handed,
}

impl From<StoreError> for Stop {
    fn from(error: StoreError) -> Stop {
        match error {
            StoreError::NotDriver(_) => Stop::Handed,
            other => Stop::Ended(State::Failed, other.to_string()),
        }
    }
}

impl Deployments {
    pub fn deployment(&self, id: &str) -> Option<DeploymentStatus> {
        self.store
            .deployments()
            .iter()
            .find(|d| d.id == id)
            .map(DeploymentStatus::from)
    }

    pub fn deployments_of(&self, name: &str) -> Vec<DeploymentStatus> {
        self.store
            .deployments()
            .iter()
            .filter(|d| d.function == name)
            .map(DeploymentStatus::from)
            .collect()
    }

    /// Stops deployment `id` of `name`: its new version loses its traffic at the driver's next
    /// check (within 100 ms) and it ends rolled back. Only the node driving it can: another
    /// node answers which one does.
    pub async fn stop_deployment(&self, name: &str, id: &str) -> Result<DeploymentStatus, DeployError> {
        let Some(record) = self
            .store
            .deployments()
            .into_iter()
            .find(|d| d.id == id && d.function == name)
        else {
            return Err(DeployError::Invalid(format!("no deployment {id} of {name}")));
        };
        if record.state != State::InProgress {
            return Err(DeployError::Conflict(format!(
                "deployment {id} has ended ({:?})",
                record.state
            )));
        }
        if !self.driving.lock().contains(id) {
            return Err(DeployError::Conflict(format!(
                "deployment {id} is driven by node {}; stop it through that node's admin API",
                record.driver
            )));
        }
        self.stopping.lock().insert(id.to_string());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while tokio::time::Instant::now() < deadline {
            if let Some(status) = self.deployment(id).filter(|d| d.state != State::InProgress) {
                return Ok(status);
            }
            tokio::time::sleep(CHECK).await;
        }
        self.deployment(id)
            .ok_or_else(|| DeployError::Invalid(format!("no deployment {id} of {name}")))
    }

    /// Every process's counts of `key` now: the others' last reports and this one's own.
    fn fleet_counts(&self, key: &str) -> BTreeMap<String, Counts> {
        let mut counts = self.store.peer_counts(key);
        counts.insert(self.store.instance().to_string(), self.stats(key));
        counts
    }

    /// Starts moving `alias` of `name` to `request.version`; the deployment runs in the
    /// background and its record is kept in the store under the returned id.
    pub async fn start_deployment(
        self: &Arc<Self>,
        name: &str,
        alias: &str,
        request: DeploymentRequest,
    ) -> Result<DeploymentStatus, DeployError> {
        let strategy = Strategy::parse(&request.strategy).map_err(DeployError::Invalid)?;
        if let Some(alarm) = request.alarm {
            if !(0.0..=1.0).contains(&alarm.error_rate) {
                return Err(DeployError::Invalid(format!(
                    "alarm error_rate {} is not between 0 and 1",
                    alarm.error_rate
                )));
            }
        }
        if let Some(pre) = &request.pre_traffic {
            self.resolve(pre, "")?;
        }
        let current = self.alias(name, alias)?;
        self.ensure_version(name, request.version)?;
        let (steps, interval) = strategy.steps();
        let now = now_ms();
        let record = DeploymentRecord {
            id: String::new(),
            function: name.to_string(),
            alias: alias.to_string(),
            from_version: current.version,
            to_version: request.version,
            state: State::InProgress,
            reason: None,
            weight: 0.0,
            invocations: 0,
            errors: 0,
            steps,
            interval_ms: interval.as_millis() as u64,
            alarm: request.alarm,
            pre_traffic: request.pre_traffic,
            step: 0,
            step_started_ms: now,
            started_ms: now,
            ended_ms: None,
            driver: String::new(),
            baseline: self.fleet_counts(&format!("{name}:{}", request.version)),
            seen: BTreeMap::new(),
            history: vec![Step {
                at_ms: now,
                weight: 0.0,
                event: "started".into(),
            }],
        };
        let record = self.store.begin_deployment(record).await.map_err(|e| match e {
            StoreError::Conflict(message) => DeployError::Conflict(message),
            other => DeployError::Store(other),
        })?;
        self.driving.lock().insert(record.id.clone());
        let status = DeploymentStatus::from(&record);
        self.control.spawn(self.clone().drive(record));
        Ok(status)
    }

    /// Carries on deployments in progress that no live node drives.
    pub(super) async fn adopt_orphans(self: &Arc<Self>) {
        let orphans: Vec<String> = self
            .store
            .deployments()
            .into_iter()
            .filter(|d| d.state == State::InProgress)
            .map(|d| d.id)
            .collect();
        for id in orphans {
            self.adopt(&id).await;
        }
    }

    /// Drives deployment `id` from where it is, if it is in progress and no one drives it.
    pub(super) async fn adopt(self: &Arc<Self>, id: &str) {
        if self.driving.lock().contains(id) || self.store.driven(id) {
            return;
        }
        let Some(record) = self.store.deployments().into_iter().find(|d| d.id == id) else {
            return;
        };
        if record.state != State::InProgress || !self.configured.read().contains_key(&record.function) {
            return;
        }
        if !self.driving.lock().insert(id.to_string()) {
            return;
        }
        match self.store.take_over(id).await {
            Ok(true) => {
                tracing::info!(target: "edgehook::deploy", id, function = record.function, alias = record.alias, step = record.step, "carrying on a deployment");
                self.control.spawn(self.clone().drive(record));
            }
            Ok(false) | Err(_) => {
                self.driving.lock().remove(id);
            }
        }
    }

    /// Runs a deployment to its end (or until another node drives it), saving each step.
    async fn drive(self: Arc<Self>, mut record: DeploymentRecord) {
        record.driver = self.store.node().to_string();
        let outcome = self.run(&mut record).await;
        let ended = match outcome {
            Ok(()) => Some((State::Succeeded, None)),
            Err(Stop::Ended(state, reason)) => Some((state, Some(reason))),
            Err(Stop::Handed) => None,
        };
        if let Some((state, reason)) = ended {
            tracing::info!(target: "edgehook::deploy", id = record.id, function = record.function, alias = record.alias, ?state, reason, "deployment ended");
            record.state = state;
            record.reason = reason;
            record.ended_ms = Some(now_ms());
            // Counted before it is saved: whoever sees the end in the store sees it counted.
            let result = match state {
                State::Succeeded => "succeeded",
                State::RolledBack => "rolled_back",
                State::Failed => "failed",
                State::InProgress => "in_progress",
            };
            self.metrics
                .deployments
                .with_label_values(&[&record.function, &record.alias, result])
                .inc();
            let _ = self.save(&record).await;
        }
        self.driving.lock().remove(&record.id);
    }

    /// Saves the record, waiting out an unavailable store.
    async fn save(&self, record: &DeploymentRecord) -> Result<(), Stop> {
        loop {
            match self.store.save_deployment(record).await {
                Ok(()) => return Ok(()),
                Err(StoreError::Unavailable(_)) => tokio::time::sleep(RETRY).await,
                Err(other) => return Err(other.into()),
            }
        }
    }

    /// Gives the new version `weight` of the alias's traffic (0: all on the old version, 1: all
    /// on the new), waiting out an unavailable store.
    async fn route(&self, record: &DeploymentRecord, weight: f64) -> Result<(), Stop> {
        let value = if weight <= 0.0 {
            Alias {
                version: record.from_version,
                additional_version: None,
            }
        } else if weight >= 1.0 {
            Alias {
                version: record.to_version,
                additional_version: None,
            }
        } else {
            Alias {
                version: record.from_version,
                additional_version: Some(Weighted {
                    version: record.to_version,
                    weight,
                }),
            }
        };
        loop {
            match self.put_alias(&record.function, &record.alias, value).await {
                Ok(()) => return Ok(()),
                Err(DeployError::Store(StoreError::Unavailable(_))) => tokio::time::sleep(RETRY).await,
                Err(other) => return Err(Stop::Ended(State::Failed, other.to_string())),
            }
        }
    }

    /// Moves to a new weight: saved first (so only the driver moves it), then routed.
    async fn shift(&self, record: &mut DeploymentRecord, weight: f64, event: String) -> Result<(), Stop> {
        let now = now_ms();
        record.weight = weight;
        record.step_started_ms = now;
        record.history.push(Step {
            at_ms: now,
            weight,
            event,
        });
        self.save(record).await?;
        self.route(record, weight).await
    }

    async fn run(&self, record: &mut DeploymentRecord) -> Result<(), Stop> {
        if record.step == 0 && record.weight == 0.0 {
            if let Some(pre) = record.pre_traffic.clone() {
                self.pre_traffic(&record.id, &pre)
                    .await
                    .map_err(|e| Stop::Ended(State::Failed, format!("pre-traffic function `{pre}` failed: {e}")))?;
            }
        }
        let key = format!("{}:{}", record.function, record.to_version);
        let interval = Duration::from_millis(record.interval_ms);
        while record.step < record.steps.len() {
            let weight = record.steps[record.step];
            if record.weight != weight {
                tracing::info!(target: "edgehook::deploy", id = record.id, function = record.function, alias = record.alias, weight, "shifting traffic");
                self.shift(record, weight, "shifted".into()).await?;
            } else {
                // Carried on from another node: the alias may not have been moved yet.
                self.route(record, weight).await?;
            }
            let step_end = record.step_started_ms + interval.as_millis() as u64;
            let mut saved = tokio::time::Instant::now();
            let mut saved_counts = (record.invocations, record.errors);
            while now_ms() < step_end {
                let left = Duration::from_millis(step_end.saturating_sub(now_ms()));
                tokio::time::sleep(CHECK.min(left)).await;
                let verdict = match self.stopping.lock().remove(&record.id) {
                    true => Err(STOPPED.to_string()),
                    false => self.judge(record, &key),
                };
                if let Err(reason) = verdict {
                    self.shift(record, 0.0, format!("rolled back: {reason}")).await?;
                    return Err(Stop::Ended(State::RolledBack, reason));
                }
                let counts = (record.invocations, record.errors);
                if counts != saved_counts && saved.elapsed() >= SAVE_COUNTS {
                    self.save(record).await?;
                    saved = tokio::time::Instant::now();
                    saved_counts = counts;
                }
            }
            record.step += 1;
        }
        self.shift(record, 1.0, "completed".into()).await
    }

    /// Updates the record's fleet-wide counts and checks the alarm; Err with the reason when
    /// it is crossed.
    fn judge(&self, record: &mut DeploymentRecord, key: &str) -> Result<(), String> {
        for (instance, counts) in self.fleet_counts(key) {
            record.seen.insert(instance, counts);
        }
        let total = record.seen.iter().fold(Counts::default(), |sum, (instance, counts)| {
            let new = counts.since(record.baseline.get(instance).copied().unwrap_or_default());
            Counts {
                invocations: sum.invocations + new.invocations,
                errors: sum.errors + new.errors,
            }
        });
        record.invocations = total.invocations;
        record.errors = total.errors;
        let Some(alarm) = record.alarm else { return Ok(()) };
        let (invocations, errors) = (total.invocations, total.errors);
        if invocations == 0 || invocations < alarm.min_invocations {
            return Ok(());
        }
        let rate = errors as f64 / invocations as f64;
        if rate > alarm.error_rate {
            return Err(format!(
                "error rate {rate:.3} ({errors} of {invocations} invocations) crossed the alarm {}",
                alarm.error_rate
            ));
        }
        Ok(())
    }

    /// Runs the pre-traffic function on a sample viewer-request event.
    async fn pre_traffic(&self, id: &str, function: &str) -> Result<(), String> {
        let key = self.resolve(function, "").map_err(|e| e.to_string())?;
        let options = SampleOptions {
            request_id: Some(format!("deployment-{id}")),
            ..Default::default()
        };
        let event = sample::sample(EventType::ViewerRequest, &options);
        self.pool
            .invoke(&key, &event)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}
