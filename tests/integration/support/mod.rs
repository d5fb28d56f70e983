pub mod edgehook;
pub mod name_server;
pub mod origin;

pub use edgehook::*;
pub use name_server::*;
pub use origin::*;
