//! The Lambda@Edge contract, pure and independent of the engine: the event model, the header
//! rules, and the validation of a function's result.

#[cfg(test)]
pub(crate) mod arbitrary;
pub mod event;
pub mod event_json;
pub mod geoip;
pub mod json;
pub mod result;
pub mod rules;
pub mod sample;
pub mod viewer;

pub use event::{Event, EventType};
pub use result::{validate, Outcome, RequestOutcome, ResponseOutcome, ValidationError};
