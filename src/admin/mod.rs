//! The admin listener: health, metrics and cache purges.
pub mod api;
