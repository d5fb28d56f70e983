//! Traffic-shifting strategies, named as in AWS SAM, plus custom ones for short tests.

use crate::config::units;
use serde::Deserialize;
use std::time::Duration;

/// How a deployment moves an alias to its new version.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Strategy {
    AllAtOnce,
    /// `percent` of the traffic for `interval`, then all of it.
    Canary {
        percent: f64,
        interval: Duration,
    },
    /// `percent` more of the traffic every `interval` until all of it.
    Linear {
        percent: f64,
        interval: Duration,
    },
}

/// The JSON form: a SAM name, or `{"type": "canary"|"linear", "percent": P, "interval": "30s"}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum StrategyJson {
    Name(String),
    Custom {
        #[serde(rename = "type")]
        kind: String,
        percent: f64,
        interval: String,
    },
}

impl Strategy {
    pub fn parse(json: &StrategyJson) -> Result<Strategy, String> {
        let minutes = |m: u64| Duration::from_secs(m * 60);
        match json {
            StrategyJson::Name(name) => Ok(match name.as_str() {
                "AllAtOnce" => Strategy::AllAtOnce,
                "Canary10Percent5Minutes" => Strategy::Canary {
                    percent: 10.0,
                    interval: minutes(5),
                },
                "Canary10Percent10Minutes" => Strategy::Canary {
                    percent: 10.0,
                    interval: minutes(10),
                },
                "Canary10Percent15Minutes" => Strategy::Canary {
                    percent: 10.0,
                    interval: minutes(15),
                },
                "Canary10Percent30Minutes" => Strategy::Canary {
                    percent: 10.0,
                    interval: minutes(30),
                },
                "Linear10PercentEvery1Minute" => Strategy::Linear {
                    percent: 10.0,
                    interval: minutes(1),
                },
                "Linear10PercentEvery2Minutes" => Strategy::Linear {
                    percent: 10.0,
                    interval: minutes(2),
                },
                "Linear10PercentEvery3Minutes" => Strategy::Linear {
                    percent: 10.0,
                    interval: minutes(3),
                },
                "Linear10PercentEvery10Minutes" => Strategy::Linear {
                    percent: 10.0,
                    interval: minutes(10),
                },
                other => return Err(format!("unknown strategy `{other}`")),
            }),
            StrategyJson::Custom {
                kind,
                percent,
                interval,
            } => {
                if !(*percent > 0.0 && *percent <= 100.0) {
                    return Err(format!("percent {percent} is not in (0, 100]"));
                }
                let interval = units::parse_duration(interval)?;
                if interval.is_zero() {
                    return Err("interval must be more than 0".into());
                }
                match kind.as_str() {
                    "canary" => Ok(Strategy::Canary {
                        percent: *percent,
                        interval,
                    }),
                    "linear" => Ok(Strategy::Linear {
                        percent: *percent,
                        interval,
                    }),
                    other => Err(format!("strategy type `{other}` is not `canary` or `linear`")),
                }
            }
        }
    }

    /// The weights of the new version, each held for the interval, before it takes everything.
    pub fn steps(&self) -> (Vec<f64>, Duration) {
        match *self {
            Strategy::AllAtOnce => (Vec::new(), Duration::ZERO),
            Strategy::Canary { percent, interval } => (vec![percent / 100.0], interval),
            Strategy::Linear { percent, interval } => {
                let mut steps = Vec::new();
                let mut weight = percent;
                while weight < 100.0 - 1e-9 {
                    steps.push(weight / 100.0);
                    weight += percent;
                }
                (steps, interval)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Strategy, String> {
        Strategy::parse(&serde_json::from_str(json).unwrap())
    }

    #[test]
    fn names_and_custom_strategies() {
        assert_eq!(parse(r#""AllAtOnce""#).unwrap().steps().0, Vec::<f64>::new());
        let (steps, interval) = parse(r#""Canary10Percent5Minutes""#).unwrap().steps();
        assert_eq!((steps, interval), (vec![0.1], Duration::from_secs(300)));
        let (steps, interval) = parse(r#""Linear10PercentEvery1Minute""#).unwrap().steps();
        assert_eq!(steps.len(), 9);
        assert_eq!(interval, Duration::from_secs(60));
        let (steps, interval) = parse(r#"{"type": "linear", "percent": 25, "interval": "2s"}"#)
            .unwrap()
            .steps();
        assert_eq!((steps, interval), (vec![0.25, 0.5, 0.75], Duration::from_secs(2)));
        assert!(parse(r#""Sideways""#).is_err());
        assert!(parse(r#"{"type": "canary", "percent": 0, "interval": "1s"}"#).is_err());
        assert!(parse(r#"{"type": "wave", "percent": 10, "interval": "1s"}"#).is_err());
        assert!(parse(r#"{"type": "canary", "percent": 10, "interval": "soon"}"#).is_err());
    }
}
