//! The admin listener: health, metrics, functions and deployments, cache purges, and the fleet.
pub mod api;
pub mod fleet;
