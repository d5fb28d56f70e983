//! Deployments: moving an alias to a new version by a strategy, after an optional pre-traffic
//! function, watching the new version's error rate, and rolling the alias back at once when it
//! crosses the alarm.

use super::store::{Alias, Weighted};
use super::strategy::{Strategy, StrategyJson};
use super::{DeployError, Deployments};
use crate::edge::sample;
use crate::edge::sample::SampleOptions;
use crate::edge::EventType;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Alarm {
    /// Execution plus validation errors over invocations of the new version.
    pub error_rate: f64,
    /// The alarm is not judged on fewer invocations than this.
    #[serde(default)]
    pub min_invocations: u64,
}

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum State {
    InProgress,
    Succeeded,
    RolledBack,
    Failed,
}

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
}

/// How often the alarm is checked during a step.
const CHECK: Duration = Duration::from_millis(100);

impl Deployments {
    fn update(&self, id: &str, change: impl FnOnce(&mut DeploymentStatus)) {
        if let Some(status) = self.rollouts.lock().get_mut(id) {
            change(status);
        }
    }

    pub fn deployment(&self, id: &str) -> Option<DeploymentStatus> {
        self.rollouts.lock().get(id).cloned()
    }

    pub fn deployments_of(&self, name: &str) -> Vec<DeploymentStatus> {
        let mut list: Vec<_> = self
            .rollouts
            .lock()
            .values()
            .filter(|d| d.function == name)
            .cloned()
            .collect();
        list.sort_by(|a, b| a.id.cmp(&b.id));
        list
    }

    /// Starts moving `alias` of `name` to `request.version`; the deployment runs in the
    /// background and its status is kept under the returned id.
    pub fn start_deployment(
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
        let id = {
            let mut active = self.active.lock();
            if let Some(running) = active.get(&(name.to_string(), alias.to_string())) {
                return Err(DeployError::Conflict(format!(
                    "deployment {running} is already moving alias `{alias}`"
                )));
            }
            let id = format!(
                "d-{}",
                self.next_deployment.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            );
            active.insert((name.to_string(), alias.to_string()), id.clone());
            id
        };
        let status = DeploymentStatus {
            id: id.clone(),
            function: name.to_string(),
            alias: alias.to_string(),
            from_version: current.version,
            to_version: request.version,
            state: State::InProgress,
            reason: None,
            weight: 0.0,
            invocations: 0,
            errors: 0,
        };
        self.rollouts.lock().insert(id.clone(), status.clone());
        let this = self.clone();
        let (name, alias) = (name.to_string(), alias.to_string());
        tokio::spawn(async move {
            let outcome = this.run(&id, &name, &alias, current.version, &request, strategy).await;
            let (state, reason) = match outcome {
                Ok(()) => (State::Succeeded, None),
                Err((state, reason)) => (state, Some(reason)),
            };
            tracing::info!(target: "edgehook::deploy", id, function = name, alias, ?state, reason, "deployment ended");
            this.update(&id, |s| {
                s.state = state;
                s.reason = reason;
            });
            this.active.lock().remove(&(name, alias));
        });
        Ok(status)
    }

    async fn run(
        &self,
        id: &str,
        name: &str,
        alias: &str,
        from: u32,
        request: &DeploymentRequest,
        strategy: Strategy,
    ) -> Result<(), (State, String)> {
        let to = request.version;
        if let Some(pre) = &request.pre_traffic {
            self.pre_traffic(id, pre)
                .await
                .map_err(|e| (State::Failed, format!("pre-traffic function `{pre}` failed: {e}")))?;
        }
        let key = format!("{name}:{to}");
        let baseline = self.stats(&key);
        let (steps, interval) = strategy.steps();
        let set = |weight: Option<f64>| {
            let value = match weight {
                Some(weight) => Alias {
                    version: from,
                    additional_version: Some(Weighted { version: to, weight }),
                },
                None => Alias {
                    version: to,
                    additional_version: None,
                },
            };
            self.put_alias(name, alias, value)
                .map_err(|e| (State::Failed, e.to_string()))
        };
        for weight in steps {
            set(Some(weight))?;
            self.update(id, |s| s.weight = weight);
            tracing::info!(target: "edgehook::deploy", id, function = name, alias, weight, "shifting traffic");
            let step_end = tokio::time::Instant::now() + interval;
            while tokio::time::Instant::now() < step_end {
                tokio::time::sleep(CHECK.min(step_end - tokio::time::Instant::now())).await;
                if let Err(reason) = self.judge(id, &key, baseline, request.alarm) {
                    let back = Alias {
                        version: from,
                        additional_version: None,
                    };
                    self.put_alias(name, alias, back)
                        .map_err(|e| (State::Failed, e.to_string()))?;
                    self.update(id, |s| s.weight = 0.0);
                    return Err((State::RolledBack, reason));
                }
            }
        }
        set(None)?;
        self.update(id, |s| s.weight = 1.0);
        Ok(())
    }

    /// Updates the counts and checks the alarm; Err with the reason when it is crossed.
    fn judge(&self, id: &str, key: &str, baseline: (u64, u64), alarm: Option<Alarm>) -> Result<(), String> {
        let (invocations, errors) = self.stats(key);
        let (invocations, errors) = (invocations - baseline.0, errors - baseline.1);
        self.update(id, |s| {
            s.invocations = invocations;
            s.errors = errors;
        });
        let Some(alarm) = alarm else { return Ok(()) };
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
