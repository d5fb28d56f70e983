//! Safe deployments: function versions and aliases kept in a state directory (`store`). The
//! admin API, traffic shifting and reloads build on it.
pub mod route;
pub mod store;
