//! The admin listener: health, metrics, functions and deployments, cache purges, the fleet, and
//! the web console.
pub mod api;
pub mod console;
pub mod fleet;
pub mod history;
